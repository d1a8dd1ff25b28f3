//! Keeps label values from callers inside a bounded set.

use std::{collections::HashSet, sync::RwLock};

use crate::names::OTHER;

/// Admits at most `cap` distinct short, simple values; anything else maps to `other`. It
/// protects the registry from values a remote peer can influence (an HTTP method, a status
/// string) even when the caller forgot to bound them.
#[derive(Debug)]
pub(crate) struct BoundedLabel {
    cap: usize,
    seen: RwLock<HashSet<Box<str>>>,
}

impl BoundedLabel {
    pub(crate) fn new(cap: usize) -> Self {
        Self {
            cap,
            seen: RwLock::new(HashSet::new()),
        }
    }

    /// The value to record for `value`: itself if admitted, otherwise `other`.
    pub(crate) fn admit<'a>(&self, value: &'a str) -> &'a str {
        if !is_simple(value) {
            return OTHER;
        }
        // A poisoned lock only means another recorder panicked mid-insert; the set is still
        // a valid set, so keep using it.
        let seen = self
            .seen
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if seen.contains(value) {
            return value;
        }
        if seen.len() >= self.cap {
            return OTHER;
        }
        drop(seen);
        let mut seen = self
            .seen
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if seen.len() >= self.cap && !seen.contains(value) {
            return OTHER;
        }
        seen.insert(value.into());
        value
    }
}

/// Short ASCII words: letters, digits, `_`, `-`, `.`, `/`.
fn is_simple(value: &str) -> bool {
    !value.is_empty()
        && value.len() <= MAX_LABEL_LEN
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b'/'))
}

/// Longest label value accepted from a caller.
const MAX_LABEL_LEN: usize = 64;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admits_up_to_cap_then_other() {
        let g = BoundedLabel::new(2);
        assert_eq!(g.admit("GET"), "GET");
        assert_eq!(g.admit("POST"), "POST");
        assert_eq!(g.admit("GET"), "GET");
        assert_eq!(g.admit("BREW"), OTHER);
        assert_eq!(g.admit("with space"), OTHER);
        assert_eq!(g.admit(""), OTHER);
        assert_eq!(g.admit(&"x".repeat(65)), OTHER);
    }
}
