//! Validated identifiers: [`TaskId`], [`AgentId`], [`Slot`].

use std::{borrow::Borrow, fmt, str::FromStr, sync::Arc};

use serde::{Deserialize, Serialize};

use crate::ModelError;

/// Longest accepted slot name.
pub const MAX_SLOT_LEN: usize = 64;
/// Longest accepted task id.
pub const MAX_TASK_ID_LEN: usize = 256;
/// Longest accepted agent id.
pub const MAX_AGENT_ID_LEN: usize = 128;

/// Checks the shared identifier rule: 1..=max chars of `[A-Za-z0-9._-]`, not `.` or `..`.
fn check_ident(field: &'static str, value: &str, max: usize) -> Result<(), ModelError> {
    let len = value.chars().count();
    if len == 0 || len > max {
        return Err(ModelError::invalid(
            field,
            format!("must be 1..={max} chars of [A-Za-z0-9._-], got {len}"),
        ));
    }
    if let Some(bad) = value
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        return Err(ModelError::invalid(
            field,
            format!("must be 1..={max} chars of [A-Za-z0-9._-], found {bad:?}"),
        ));
    }
    if value == "." || value == ".." {
        return Err(ModelError::invalid(field, format!("must not be {value:?}")));
    }
    Ok(())
}

macro_rules! ident {
    ($(#[$m:meta])* $name:ident, $field:literal, $max:ident) => {
        $(#[$m])*
        #[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(Arc<str>);

        impl $name {
            /// Validates `value` and wraps it.
            ///
            /// # Errors
            /// When the value is empty, too long, or has a character outside `[A-Za-z0-9._-]`.
            pub fn try_new(value: impl AsRef<str>) -> Result<Self, ModelError> {
                let value = value.as_ref();
                check_ident($field, value, $max)?;
                Ok(Self(Arc::from(value)))
            }

            /// The identifier as a string slice.
            #[must_use]
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl FromStr for $name {
            type Err = ModelError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Self::try_new(s)
            }
        }

        impl TryFrom<String> for $name {
            type Error = ModelError;
            fn try_from(s: String) -> Result<Self, Self::Error> {
                Self::try_new(s)
            }
        }

        impl TryFrom<&str> for $name {
            type Error = ModelError;
            fn try_from(s: &str) -> Result<Self, Self::Error> {
                Self::try_new(s)
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> Self {
                id.0.as_ref().to_owned()
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl Borrow<str> for $name {
            fn borrow(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({:?})", stringify!($name), &*self.0)
            }
        }
    };
}

ident!(
    /// A task's identity, assigned by the agent (`tsk_` + a ULID), unique across restarts.
    TaskId, "task_id", MAX_TASK_ID_LEN
);
ident!(
    /// An agent's stable identity towards the control plane.
    AgentId, "agent_id", MAX_AGENT_ID_LEN
);
ident!(
    /// The admission key: at most one task runs per slot at a time.
    Slot, "slot", MAX_SLOT_LEN
);

impl TaskId {
    /// Generates a fresh id: `tsk_` followed by a ULID (time-ordered, 80 random bits), so
    /// ids never repeat across agent restarts.
    #[must_use]
    pub fn generate() -> Self {
        Self(Arc::from(format!("tsk_{}", ulid::Ulid::new())))
    }
}

impl AgentId {
    /// Wraps an agent id.
    ///
    /// # Panics
    /// When `value` is not a valid agent id; use [`AgentId::try_new`] for untrusted input.
    /// This constructor exists for literals in code, as in the crate examples.
    #[must_use]
    #[expect(
        clippy::expect_used,
        reason = "documented panic for literal ids; try_new is the fallible form"
    )]
    pub fn new(value: impl AsRef<str>) -> Self {
        Self::try_new(value).expect("AgentId::new: invalid agent id literal")
    }

    /// Generates a fresh agent id: `agt_` followed by a ULID.
    #[must_use]
    pub fn generate() -> Self {
        Self(Arc::from(format!("agt_{}", ulid::Ulid::new())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slot_rules() {
        assert!(Slot::try_new("build-1.x_y").is_ok());
        let err = Slot::try_new("a".repeat(65)).unwrap_err();
        assert_eq!(
            err.to_string(),
            "slot: must be 1..=64 chars of [A-Za-z0-9._-], got 65"
        );
        assert!(Slot::try_new("").is_err());
        assert!(Slot::try_new("..").is_err());
        assert!(
            Slot::try_new("a/b")
                .unwrap_err()
                .to_string()
                .contains("'/'")
        );
        assert!(Slot::try_new("é").is_err());
    }

    #[test]
    fn generated_ids_are_valid_and_distinct() {
        let a = TaskId::generate();
        let b = TaskId::generate();
        assert_ne!(a, b);
        assert!(a.as_str().starts_with("tsk_"));
        assert!(TaskId::try_new(a.as_str()).is_ok());
        assert!(AgentId::try_new(AgentId::generate().as_str()).is_ok());
    }

    proptest::proptest! {
        #[test]
        fn valid_idents_roundtrip(s in "[A-Za-z0-9_-][A-Za-z0-9._-]{0,63}") {
            let slot = Slot::try_new(&s).unwrap();
            proptest::prop_assert_eq!(slot.as_str(), s.as_str());
        }

        #[test]
        fn invalid_chars_rejected(s in "[a-z]{0,5}[/ :@\u{0}][a-z]{0,5}") {
            proptest::prop_assert!(Slot::try_new(&s).is_err());
        }
    }
}
