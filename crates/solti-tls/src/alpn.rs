//! ALPN protocol lists: collection, validation and a readable `Debug`.

use std::fmt;

use crate::TlsError;

/// The server's default list: HTTP/2 first (gRPC needs it), then HTTP/1.1.
pub(crate) fn server_default() -> Vec<Vec<u8>> {
    vec![b"h2".to_vec(), b"http/1.1".to_vec()]
}

/// Copies the protocol names out of any list of strings or byte strings.
pub(crate) fn collect<I>(protocols: I) -> Vec<Vec<u8>>
where
    I: IntoIterator,
    I::Item: AsRef<[u8]>,
{
    protocols.into_iter().map(|p| p.as_ref().to_vec()).collect()
}

/// Each name must be 1..=255 bytes: the length prefix in the TLS extension is one byte and
/// an empty name is forbidden by RFC 7301.
pub(crate) fn validate(protocols: &[Vec<u8>]) -> Result<(), TlsError> {
    match protocols
        .iter()
        .position(|p| p.is_empty() || p.len() > MAX_PROTOCOL_LEN)
    {
        Some(index) => Err(TlsError::InvalidAlpn {
            index,
            len: protocols[index].len(),
        }),
        None => Ok(()),
    }
}

/// Prints `["h2", "http/1.1"]` instead of byte arrays.
pub(crate) struct AlpnDebug<'a>(pub(crate) &'a [Vec<u8>]);

impl fmt::Debug for AlpnDebug<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.0.iter().map(|p| String::from_utf8_lossy(p)))
            .finish()
    }
}

const MAX_PROTOCOL_LEN: usize = 255;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_names_of_1_to_255_bytes_and_the_empty_list() {
        assert!(validate(&[]).is_ok());
        assert!(validate(&collect(["h2", "x"])).is_ok());
        assert!(validate(&[vec![b'a'; 255]]).is_ok());
    }

    #[test]
    fn rejects_empty_and_overlong_names_with_their_index() {
        assert!(matches!(
            validate(&collect(["h2", ""])),
            Err(TlsError::InvalidAlpn { index: 1, len: 0 })
        ));
        assert!(matches!(
            validate(&[vec![b'a'; 256]]),
            Err(TlsError::InvalidAlpn { index: 0, len: 256 })
        ));
    }

    #[test]
    fn debug_prints_names() {
        assert_eq!(
            format!("{:?}", AlpnDebug(&server_default())),
            r#"["h2", "http/1.1"]"#
        );
    }
}
