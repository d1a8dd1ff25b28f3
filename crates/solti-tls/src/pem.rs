//! Where PEM material comes from (a file or memory) and how it is parsed and checked.
//!
//! Everything here runs inside `build()`: setters only record the source, so a builder chain
//! never fails half-way and every problem surfaces as one [`TlsError`] from `build()`.

use std::{
    fmt,
    fs::File,
    io::{self, Read as _},
    path::PathBuf,
    sync::Arc,
};

use rustls::{
    RootCertStore,
    crypto::CryptoProvider,
    pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject as _},
    sign::CertifiedKey,
};

use crate::TlsError;

/// Largest PEM file `build()` reads. Real certificate bundles are a few hundred KiB at most;
/// the cap keeps a wrong path (`/dev/zero`, a log file) from exhausting memory.
pub(crate) const MAX_PEM_FILE_BYTES: u64 = 1024 * 1024;

/// Where one PEM input comes from.
#[derive(Clone)]
pub(crate) enum PemSource {
    /// Read at `build()` time.
    File(PathBuf),
    /// In-memory PEM.
    Bytes(Arc<[u8]>),
}

impl PemSource {
    /// Returns the PEM bytes, reading the file if needed.
    pub(crate) fn load(&self) -> Result<Arc<[u8]>, TlsError> {
        match self {
            Self::Bytes(bytes) => Ok(Arc::clone(bytes)),
            Self::File(path) => {
                read_capped(path)
                    .map(Arc::from)
                    .map_err(|source| TlsError::ReadFile {
                        path: path.clone(),
                        source,
                    })
            }
        }
    }
}

/// Debug for public material (certificates, CAs): the path, or the size of the bytes.
impl fmt::Debug for PemSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::File(path) => f.debug_tuple("File").field(path).finish(),
            Self::Bytes(bytes) => write!(f, "Bytes(<{} bytes>)", bytes.len()),
        }
    }
}

/// Debug for a private-key source: the path is shown (it is not secret), bytes never are.
pub(crate) struct RedactedSource<'a>(pub(crate) &'a PemSource);

impl fmt::Debug for RedactedSource<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            PemSource::File(path) => f.debug_tuple("File").field(path).finish(),
            PemSource::Bytes(_) => f.write_str("Bytes(<redacted>)"),
        }
    }
}

/// Parses every `CERTIFICATE` block; at least one is required.
pub(crate) fn certificates(
    pem: &[u8],
    what: &'static str,
) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|source| TlsError::InvalidPem { what, source })?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate { what });
    }
    Ok(certs)
}

/// Parses the first private key block (PKCS#8, PKCS#1 or SEC1).
pub(crate) fn private_key(
    pem: &[u8],
    what: &'static str,
) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_slice(pem).map_err(|source| match source {
        rustls_pki_types::pem::Error::NoItemsFound => TlsError::NoPrivateKey { what },
        source => TlsError::InvalidPem { what, source },
    })
}

/// Builds a trust store from every certificate in `pem`; each one must be a usable anchor.
pub(crate) fn root_store(pem: &[u8], what: &'static str) -> Result<RootCertStore, TlsError> {
    let mut roots = RootCertStore::empty();
    for cert in certificates(pem, what)? {
        roots.add(cert).map_err(|source| TlsError::InvalidCa {
            what,
            source: Box::new(source),
        })?;
    }
    Ok(roots)
}

/// Checks that `key` is usable by `provider` and belongs to the first certificate of `chain`,
/// so a mismatch is reported as [`TlsError::KeyMismatch`] instead of a generic rustls error.
pub(crate) fn check_identity(
    chain: &[CertificateDer<'static>],
    key: &PrivateKeyDer<'static>,
    provider: &CryptoProvider,
    cert_what: &'static str,
    key_what: &'static str,
) -> Result<(), TlsError> {
    let signing_key = provider
        .key_provider
        .load_private_key(key.clone_key())
        .map_err(|source| TlsError::InvalidPrivateKey {
            what: key_what,
            source,
        })?;
    match CertifiedKey::new(chain.to_vec(), signing_key).keys_match() {
        // `Unknown` means the key cannot report its public half; rustls accepts that too.
        Ok(()) | Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => Ok(()),
        Err(rustls::Error::InconsistentKeys(_)) => Err(TlsError::KeyMismatch),
        Err(source) => Err(TlsError::InvalidCertificate {
            what: cert_what,
            source,
        }),
    }
}

/// The ring provider, the only one this crate uses. Configs are built with it explicitly, so
/// no process-wide default provider has to be installed.
pub(crate) fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn read_capped(path: &PathBuf) -> io::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    File::open(path)?
        .take(MAX_PEM_FILE_BYTES + 1)
        .read_to_end(&mut bytes)?;
    if bytes.len() as u64 > MAX_PEM_FILE_BYTES {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "file is larger than the 1 MiB limit for pem files",
        ));
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    const CERT_A: &str = "-----BEGIN CERTIFICATE-----\nAQID\n-----END CERTIFICATE-----\n";
    const CERT_B: &str = "-----BEGIN CERTIFICATE-----\nBAUG\n-----END CERTIFICATE-----\n";
    const KEY_EC: &str = "-----BEGIN EC PRIVATE KEY-----\nBwgJ\n-----END EC PRIVATE KEY-----\n";
    const KEY_RSA: &str = "-----BEGIN RSA PRIVATE KEY-----\nCgsM\n-----END RSA PRIVATE KEY-----\n";

    #[test]
    fn certificates_keeps_order_and_skips_other_blocks() {
        let pem = format!("{KEY_EC}{CERT_A}junk between blocks\n{CERT_B}");
        let certs = certificates(pem.as_bytes(), "test").unwrap();
        assert_eq!(
            certs
                .iter()
                .map(|c| c.as_ref().to_vec())
                .collect::<Vec<_>>(),
            [vec![1, 2, 3], vec![4, 5, 6]]
        );
    }

    #[test]
    fn private_key_takes_the_first_key_of_any_supported_encoding() {
        let pem = format!("{CERT_A}{KEY_RSA}{KEY_EC}");
        let key = private_key(pem.as_bytes(), "test").unwrap();
        assert!(matches!(key, PrivateKeyDer::Pkcs1(_)));
        assert_eq!(key.secret_der(), [10, 11, 12]);
    }

    #[test]
    fn redacted_source_never_prints_bytes() {
        let bytes = PemSource::Bytes(Arc::from(KEY_EC.as_bytes()));
        assert_eq!(format!("{:?}", RedactedSource(&bytes)), "Bytes(<redacted>)");
        assert_eq!(
            format!("{bytes:?}"),
            format!("Bytes(<{} bytes>)", KEY_EC.len())
        );
        let file = PemSource::File(PathBuf::from("/etc/solti/tls/server.key"));
        assert_eq!(
            format!("{:?}", RedactedSource(&file)),
            r#"File("/etc/solti/tls/server.key")"#
        );
    }

    #[test]
    fn reads_up_to_the_cap_and_refuses_more() {
        let dir = tempfile::tempdir().unwrap();
        let at_cap = dir.path().join("at-cap.pem");
        let over = dir.path().join("over.pem");
        std::fs::write(&at_cap, vec![b'a'; MAX_PEM_FILE_BYTES as usize]).unwrap();
        std::fs::write(&over, vec![b'a'; MAX_PEM_FILE_BYTES as usize + 1]).unwrap();
        assert_eq!(
            read_capped(&at_cap).unwrap().len() as u64,
            MAX_PEM_FILE_BYTES
        );
        assert_eq!(
            read_capped(&over).unwrap_err().kind(),
            io::ErrorKind::InvalidData
        );
    }
}
