//! In-memory test PKI: two CAs, a server certificate for localhost/127.0.0.1, client
//! certificates, and key re-encodings (PKCS#1, SEC1).

use base64::{Engine as _, engine::general_purpose::STANDARD};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};

/// A certificate (chain) and its private key, both PEM.
#[derive(Clone)]
pub(crate) struct Identity {
    pub(crate) cert: String,
    pub(crate) key: String,
}

pub(crate) type Ca = CertifiedIssuer<'static, KeyPair>;

/// Everything the handshake tests need.
pub(crate) struct Pki {
    pub(crate) ca: Ca,
    /// Server certificate for `localhost` and `127.0.0.1`, signed by `ca`.
    pub(crate) server: Identity,
    /// Client certificate signed by `ca`.
    pub(crate) client: Identity,
    /// A CA unrelated to `ca`.
    pub(crate) other_ca: Ca,
    /// Client certificate signed by `other_ca`.
    pub(crate) other_client: Identity,
}

impl Pki {
    pub(crate) fn new() -> Self {
        let main_ca = ca("solti test ca");
        let other_ca = ca("solti other ca");
        Self {
            server: server_cert(&main_ca, &KeyPair::generate().unwrap()),
            client: client_cert(&main_ca, "agent-1"),
            other_client: client_cert(&other_ca, "intruder"),
            ca: main_ca,
            other_ca,
        }
    }

    pub(crate) fn ca_pem(&self) -> String {
        self.ca.pem()
    }
}

/// A self-signed root CA.
pub(crate) fn ca(name: &str) -> Ca {
    CertifiedIssuer::self_signed(ca_params(name), KeyPair::generate().unwrap()).unwrap()
}

/// An intermediate CA signed by `issuer`.
pub(crate) fn intermediate(issuer: &Ca, name: &str) -> Ca {
    CertifiedIssuer::signed_by(ca_params(name), KeyPair::generate().unwrap(), issuer).unwrap()
}

fn ca_params(name: &str) -> CertificateParams {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.distinguished_name.push(DnType::CommonName, name);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    params
}

/// A server certificate for `localhost` and `127.0.0.1` with the given key.
pub(crate) fn server_cert(issuer: &Ca, key: &KeyPair) -> Identity {
    let mut params =
        CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()]).unwrap();
    params
        .distinguished_name
        .push(DnType::CommonName, "localhost");
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let cert = params.signed_by(key, issuer).unwrap();
    Identity {
        cert: cert.pem(),
        key: key.serialize_pem(),
    }
}

/// A client certificate (clientAuth) for `name`.
pub(crate) fn client_cert(issuer: &Ca, name: &str) -> Identity {
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(vec![name.to_owned()]).unwrap();
    params.distinguished_name.push(DnType::CommonName, name);
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let cert = params.signed_by(&key, issuer).unwrap();
    Identity {
        cert: cert.pem(),
        key: key.serialize_pem(),
    }
}

/// A 2048-bit RSA test key (PKCS#8), generated once with
/// `openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048`. ring cannot generate RSA
/// keys, so this one is a fixture; it protects nothing.
pub(crate) fn rsa_key() -> KeyPair {
    KeyPair::from_pem(include_str!("fixtures/rsa-2048.pk8.pem")).unwrap()
}

/// Re-encodes a PKCS#8 key as its inner algorithm-specific key: PKCS#1 `RSAPrivateKey` for
/// RSA, SEC1 `ECPrivateKey` for ECDSA. PKCS#8 is
/// `SEQUENCE { INTEGER version, SEQUENCE algorithm, OCTET STRING privateKey, .. }`.
pub(crate) fn pkcs8_to_inner_pem(key: &KeyPair, label: &str) -> String {
    let (tag, body, _) = tlv(key.serialized_der());
    assert_eq!(tag, 0x30);
    let (tag, _, rest) = tlv(body);
    assert_eq!(tag, 0x02);
    let (tag, _, rest) = tlv(rest);
    assert_eq!(tag, 0x30);
    let (tag, inner, _) = tlv(rest);
    assert_eq!(tag, 0x04);
    pem(label, inner)
}

/// PEM-encodes DER with the given label (64-column base64, as openssl writes it).
pub(crate) fn pem(label: &str, der: &[u8]) -> String {
    let b64 = STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(line).unwrap());
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

/// Splits one DER TLV: (tag, contents, rest).
fn tlv(input: &[u8]) -> (u8, &[u8], &[u8]) {
    let tag = input[0];
    let (len, header) = match input[1] {
        n if n < 0x80 => (usize::from(n), 2),
        n => {
            let count = usize::from(n & 0x7f);
            let len = input[2..2 + count]
                .iter()
                .fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
            (len, 2 + count)
        }
    };
    (tag, &input[header..header + len], &input[header + len..])
}
