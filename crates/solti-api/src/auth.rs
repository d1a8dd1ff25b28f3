//! Bearer-token checks shared by both transports.

use solti_model::Token;

/// Whether an `Authorization` header value carries `token`.
///
/// The scheme is matched case-insensitively (`Bearer`, `bearer`), surrounding blanks are
/// ignored, and the secret is compared with [`Token::verify`] (constant time for equal
/// lengths).
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

fn split_scheme(value: &[u8]) -> Option<(&[u8], &[u8])> {
    let value = trim(value);
    let at = value.iter().position(|b| *b == b' ' || *b == b'\t')?;
    Some((&value[..at], &value[at..]))
}

fn trim(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = s {
        s = rest;
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

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
