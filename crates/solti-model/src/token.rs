//! Bearer tokens.

use std::{fmt, path::Path};

use subtle::ConstantTimeEq as _;

use crate::ModelError;

/// Longest accepted token.
pub const MAX_TOKEN_LEN: usize = 4096;

/// A bearer secret shared between an agent, its API clients and its control plane.
///
/// `Debug` and `Display` never show the secret; [`verify`](Self::verify) compares in
/// constant time.
#[derive(Clone)]
pub struct Token(String);

impl Token {
    /// Wraps a token: 1..=4096 visible ASCII characters.
    ///
    /// # Errors
    /// When the token is empty, too long, or has whitespace or control characters.
    pub fn new(secret: impl Into<String>) -> Result<Self, ModelError> {
        let secret = secret.into();
        if secret.is_empty() || secret.len() > MAX_TOKEN_LEN {
            return Err(ModelError::Token(format!(
                "must be 1..={MAX_TOKEN_LEN} characters, got {}",
                secret.len()
            )));
        }
        if !secret.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(ModelError::Token(
                "must be visible ASCII without spaces".to_owned(),
            ));
        }
        Ok(Self(secret))
    }

    /// Reads the token from environment variable `var` (for binaries; libraries take a
    /// `Token` from their caller).
    ///
    /// # Errors
    /// When the variable is unset, not Unicode, or not a valid token.
    pub fn from_env(var: &str) -> Result<Self, ModelError> {
        let v = std::env::var(var)
            .map_err(|e| ModelError::Token(format!("environment variable {var}: {e}")))?;
        Self::new(v.trim())
    }

    /// Reads the token from a file; surrounding whitespace is ignored.
    ///
    /// # Errors
    /// When the file cannot be read or does not hold a valid token.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self, ModelError> {
        let path = path.as_ref();
        let v = std::fs::read_to_string(path)
            .map_err(|e| ModelError::Token(format!("cannot read {}: {e}", path.display())))?;
        Self::new(v.trim())
    }

    /// Generates a random token (32 bytes from the OS, hex-encoded).
    ///
    /// # Errors
    /// When the OS random source fails.
    pub fn generate() -> Result<Self, ModelError> {
        let mut buf = [0u8; 32];
        getrandom::fill(&mut buf)
            .map_err(|e| ModelError::Token(format!("os random source failed: {e}")))?;
        Ok(Self(buf.iter().map(|b| format!("{b:02x}")).collect()))
    }

    /// Compares `candidate` with the secret in time that depends on neither the secret's
    /// length nor its contents: both are copied into fixed buffers of [`MAX_TOKEN_LEN`]
    /// bytes, which are compared in constant time together with the two lengths. (A plain
    /// constant-time comparison returns early on a length mismatch, which tells an attacker
    /// the secret's length.) A candidate longer than the longest token is refused at once:
    /// that says nothing about the secret.
    #[must_use]
    pub fn verify(&self, candidate: &[u8]) -> bool {
        if candidate.len() > MAX_TOKEN_LEN {
            return false;
        }
        let mut want = [0u8; MAX_TOKEN_LEN];
        let mut got = [0u8; MAX_TOKEN_LEN];
        want[..self.0.len()].copy_from_slice(self.0.as_bytes());
        got[..candidate.len()].copy_from_slice(candidate);
        let same_len = (self.0.len() as u64).ct_eq(&(candidate.len() as u64));
        (want.ct_eq(&got) & same_len).into()
    }

    /// The secret itself, for sending it (e.g. as `Authorization: Bearer …`).
    #[must_use]
    pub fn expose_secret(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_basics() {
        let t = Token::new("abc123").unwrap();
        assert!(t.verify(b"abc123"));
        assert!(!t.verify(b"abc124"));
        assert!(!t.verify(b"abc"));
        // A prefix padded with zeros is not the token: the lengths are compared too.
        assert!(!t.verify(b"abc123\0"));
        assert!(!t.verify(&[b'a'; MAX_TOKEN_LEN + 1]));
        let long = Token::new("x".repeat(MAX_TOKEN_LEN)).unwrap();
        assert!(long.verify("x".repeat(MAX_TOKEN_LEN).as_bytes()));
        assert_eq!(format!("{t:?}"), "Token(<redacted>)");
        assert!(Token::new("").is_err());
        assert!(Token::new("a b").is_err());
        let g = Token::generate().unwrap();
        assert_eq!(g.expose_secret().len(), 64);
    }
}
