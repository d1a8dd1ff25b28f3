//! Task environment variables and the on/off [`Flag`].

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::{
    ModelError,
    spec::{MAX_ENV_ENTRIES, check_str_owned},
};

/// Ordered environment variables for a task. `Debug` prints the keys only, since values
/// often carry credentials.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct TaskEnv(Vec<(String, String)>);

impl TaskEnv {
    /// An empty environment.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }
    /// Adds a variable (builder form).
    #[must_use]
    pub fn with(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.push(key, value);
        self
    }
    /// Sets a variable, replacing an earlier value of the same key.
    pub fn push(&mut self, key: impl Into<String>, value: impl Into<String>) {
        let key = key.into();
        let value = value.into();
        if let Some(slot) = self.0.iter_mut().find(|(k, _)| *k == key) {
            slot.1 = value;
        } else {
            self.0.push((key, value));
        }
    }
    /// The value of `key`.
    #[must_use]
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
    /// Variables in insertion order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }
    /// Number of variables.
    #[must_use]
    pub fn len(&self) -> usize {
        self.0.len()
    }
    /// Whether there are none.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    /// Returns `self` with `base` entries added where `self` has no value for the key.
    #[must_use]
    pub fn merged_over(&self, base: &Self) -> Self {
        let mut out = base.clone();
        for (k, v) in self.iter() {
            out.push(k, v);
        }
        out
    }

    pub(crate) fn check(&self) -> Result<(), ModelError> {
        if self.0.len() > MAX_ENV_ENTRIES {
            return Err(ModelError::invalid(
                "env",
                format!("at most {MAX_ENV_ENTRIES} entries, got {}", self.0.len()),
            ));
        }
        for (i, (k, v)) in self.0.iter().enumerate() {
            if k.is_empty() || k.len() > 256 || k.contains('=') || k.contains('\0') {
                return Err(ModelError::invalid(
                    format!("env[{i}].key"),
                    "must be 1..=256 bytes without '=' or NUL",
                ));
            }
            check_str_owned(format!("env[{i}].value"), v, true)?;
        }
        Ok(())
    }
}

impl<K: Into<String>, V: Into<String>> FromIterator<(K, V)> for TaskEnv {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        let mut env = Self::new();
        for (k, v) in iter {
            env.push(k, v);
        }
        env
    }
}

impl fmt::Debug for TaskEnv {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set()
            .entries(self.0.iter().map(|(k, _)| k))
            .finish()
    }
}

/// An explicit on/off switch (reads better than a bare `bool` in struct literals).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Flag(bool);

impl Flag {
    /// On.
    #[must_use]
    pub const fn enabled() -> Self {
        Self(true)
    }
    /// Off.
    #[must_use]
    pub const fn disabled() -> Self {
        Self(false)
    }
    /// Whether it is on.
    #[must_use]
    pub const fn is_enabled(self) -> bool {
        self.0
    }
}

impl From<bool> for Flag {
    fn from(b: bool) -> Self {
        Self(b)
    }
}
