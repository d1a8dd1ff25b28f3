//! The one error type of this crate.

use std::borrow::Cow;

/// A value failed validation or could not be parsed.
///
/// Every variant names the field (or the kind of input) and the rule it broke, so the
/// message can be shown to the person who sent the value as it is.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ModelError {
    /// A field broke a validation rule.
    #[error("{field}: {rule}")]
    Invalid {
        /// Path of the field, e.g. `slot` or `kind.subprocess.env[2].key`.
        field: Cow<'static, str>,
        /// The rule that was broken, with the offending value or its size.
        rule: String,
    },
    /// A human-readable name (a policy, a phase) was not recognised.
    #[error("unknown {what} {input:?}; expected one of: {expected}")]
    UnknownName {
        /// What was being parsed, e.g. `restart policy`.
        what: &'static str,
        /// The input, truncated to 64 characters.
        input: String,
        /// The accepted spellings.
        expected: &'static str,
    },
    /// A secret could not be loaded.
    #[error("token: {0}")]
    Token(String),
}

/// `err` and its sources joined with `": "` (`a: b: c`), for messages and log lines that
/// must say what failed and why in one line. Every Solti crate that flattens an error uses it.
#[must_use]
pub fn error_chain(err: &dyn std::error::Error) -> String {
    let mut out = err.to_string();
    let mut source = err.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

impl ModelError {
    /// Builds an [`ModelError::Invalid`] for `field` and `rule`.
    pub fn invalid(field: impl Into<Cow<'static, str>>, rule: impl Into<String>) -> Self {
        Self::Invalid {
            field: field.into(),
            rule: rule.into(),
        }
    }

    /// Prefixes the field path with `prefix` (`spec` + `slot` → `spec.slot`).
    #[must_use]
    pub fn in_field(self, prefix: &str) -> Self {
        match self {
            Self::Invalid { field, rule } => Self::Invalid {
                field: Cow::Owned(format!("{prefix}.{field}")),
                rule,
            },
            other => other,
        }
    }

    pub(crate) fn unknown(what: &'static str, input: &str, expected: &'static str) -> Self {
        Self::UnknownName {
            what,
            input: input.chars().take(64).collect(),
            expected,
        }
    }
}
