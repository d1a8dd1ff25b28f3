//! Bearer-token checks shared by both transports.

use std::{
    fmt,
    sync::{Arc, PoisonError, RwLock},
};

use solti_model::Token;

/// A bearer token that can be replaced while the API serves (say, on SIGHUP after the token
/// file changed): every clone sees the replacement, from the next request on.
/// `Debug` never shows the token.
#[derive(Clone)]
pub struct SharedToken(Arc<RwLock<Token>>);

impl SharedToken {
    /// Shares `token`.
    #[must_use]
    pub fn new(token: Token) -> Self {
        Self(Arc::new(RwLock::new(token)))
    }

    /// Replaces the token: requests that start after this call must carry `token`.
    pub fn replace(&self, token: Token) {
        *self.0.write().unwrap_or_else(PoisonError::into_inner) = token;
    }

    /// Whether an `Authorization` header value carries the current token (see
    /// [`bearer_matches`]).
    #[cfg(any(feature = "http", feature = "grpc"))]
    pub(crate) fn matches(&self, header: Option<&[u8]>) -> bool {
        bearer_matches(
            &self.0.read().unwrap_or_else(PoisonError::into_inner),
            header,
        )
    }
}

impl fmt::Debug for SharedToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SharedToken(<redacted>)")
    }
}

/// Whether an `Authorization` header value carries `token`.
///
/// The scheme is matched case-insensitively (`Bearer`, `bearer`), surrounding blanks are
/// ignored, and the secret is compared with [`Token::verify`] (constant time for equal
/// lengths).
#[cfg(any(feature = "http", feature = "grpc"))]
pub(crate) fn bearer_matches(token: &Token, header: Option<&[u8]>) -> bool {
    let Some(value) = header else { return false };
    let Some((scheme, rest)) = split_scheme(value) else {
        return false;
    };
    if !scheme.eq_ignore_ascii_case(b"bearer") {
        return false;
    }
    token.verify(trim(rest))
}

#[cfg(any(feature = "http", feature = "grpc"))]
fn split_scheme(value: &[u8]) -> Option<(&[u8], &[u8])> {
    let value = trim(value);
    let at = value.iter().position(|b| *b == b' ' || *b == b'\t')?;
    Some((&value[..at], &value[at..]))
}

#[cfg(any(feature = "http", feature = "grpc"))]
fn trim(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = s {
        s = rest;
    }
    s
}

#[cfg(all(test, any(feature = "http", feature = "grpc")))]
mod tests {
    use super::*;

    #[test]
    fn shared_token_is_replaced_for_every_clone() {
        let shared = SharedToken::new(Token::new("old-token").unwrap());
        let clone = shared.clone();
        assert!(clone.matches(Some(b"Bearer old-token")));
        shared.replace(Token::new("new-token").unwrap());
        assert!(!clone.matches(Some(b"Bearer old-token")));
        assert!(clone.matches(Some(b"Bearer new-token")));
        assert!(!format!("{clone:?}").contains("token\""));
    }

    #[test]
    fn bearer_forms() {
        let t = Token::new("s3cret").unwrap();
        assert!(bearer_matches(&t, Some(b"Bearer s3cret")));
        assert!(bearer_matches(&t, Some(b"bearer  s3cret ")));
        assert!(!bearer_matches(&t, Some(b"Bearer s3cre")));
        assert!(!bearer_matches(&t, Some(b"Basic s3cret")));
        assert!(!bearer_matches(&t, Some(b"Bearer")));
        assert!(!bearer_matches(&t, Some(b"s3cret")));
        assert!(!bearer_matches(&t, Some(b"")));
        assert!(!bearer_matches(&t, None));
    }
}
