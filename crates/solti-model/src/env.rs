//! Task environment variables and the on/off [`Flag`].

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::{
    ModelError,
    spec::{MAX_ENV_BYTES, MAX_ENV_ENTRIES, check_str_owned},
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
    /// Sets a variable, replacing an earlier value of the same key (a linear search: to
    /// build from many pairs, collect them with [`FromIterator`], which sorts once).
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
        let bytes: usize = self.0.iter().map(|(k, v)| k.len() + v.len()).sum();
        if bytes > MAX_ENV_BYTES {
            return Err(ModelError::invalid(
                "env",
                format!("at most {MAX_ENV_BYTES} bytes of keys and values in all, got {bytes}"),
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

/// Same result as [`TaskEnv::push`] for each pair in turn (a key keeps the position of its
/// first occurrence and the value of its last) in O(n log n): a hostile list of many pairs
/// costs a sort, never a pairwise comparison.
impl<K: Into<String>, V: Into<String>> FromIterator<(K, V)> for TaskEnv {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        let pairs: Vec<(String, String)> = iter
            .into_iter()
            .map(|(k, v)| (k.into(), v.into()))
            .collect();
        Self(dedup_last_wins(pairs))
    }
}

/// Keeps one entry per key: at the position of the key's first occurrence, with the value
/// of its last.
fn dedup_last_wins(pairs: Vec<(String, String)>) -> Vec<(String, String)> {
    if pairs.len() < 2 {
        return pairs;
    }
    let mut order: Vec<usize> = (0..pairs.len()).collect();
    // Stable: equal keys stay in input order, so a group runs first → last occurrence.
    order.sort_by(|&a, &b| pairs[a].0.cmp(&pairs[b].0));
    // For each kept index (first occurrence), the index whose value wins (last occurrence).
    let mut winner: Vec<Option<usize>> = vec![None; pairs.len()];
    let mut i = 0;
    while i < order.len() {
        let mut j = i;
        while j + 1 < order.len() && pairs[order[j + 1]].0 == pairs[order[i]].0 {
            j += 1;
        }
        winner[order[i]] = Some(order[j]);
        i = j + 1;
    }
    let mut values: Vec<Option<String>> = Vec::with_capacity(pairs.len());
    let mut keys: Vec<Option<String>> = Vec::with_capacity(pairs.len());
    for (k, v) in pairs {
        keys.push(Some(k));
        values.push(Some(v));
    }
    let mut out = Vec::with_capacity(keys.len());
    for (first, last) in winner.iter().enumerate() {
        if let (Some(last), Some(key)) = (*last, keys[first].take())
            && let Some(value) = values[last].take()
        {
            out.push((key, value));
        }
    }
    out
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn collecting_matches_pushing_one_by_one() {
        let pairs = [
            ("B", "1"),
            ("A", "2"),
            ("B", "3"),
            ("C", "4"),
            ("A", "5"),
            ("B", "6"),
        ];
        let mut pushed = TaskEnv::new();
        for (k, v) in pairs {
            pushed.push(k, v);
        }
        let collected: TaskEnv = pairs.into_iter().collect();
        assert_eq!(collected, pushed);
        assert_eq!(
            collected.iter().collect::<Vec<_>>(),
            [("B", "6"), ("A", "5"), ("C", "4")]
        );
    }

    #[test]
    fn many_pairs_are_cheap_and_then_refused_by_count() {
        // 125,000 distinct keys: a sort, not 7.8e9 comparisons.
        let env: TaskEnv = (0..125_000).map(|i| (format!("K{i}"), "v")).collect();
        assert_eq!(env.len(), 125_000);
        let err = env.check().unwrap_err().to_string();
        assert!(err.starts_with("env: at most 1024 entries"), "{err}");
        let big: TaskEnv = (0..10)
            .map(|i| (format!("K{i}"), "v".repeat(120_000)))
            .collect();
        let err = big.check().unwrap_err().to_string();
        assert!(err.contains("bytes of keys and values in all"), "{err}");
    }
}
