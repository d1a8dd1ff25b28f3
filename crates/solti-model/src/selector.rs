//! Labels and runner selectors.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::ModelError;

/// Longest label key.
pub const MAX_LABEL_KEY_LEN: usize = 253;
/// Longest label value.
pub const MAX_LABEL_VALUE_LEN: usize = 1024;
/// Most labels (or selector expressions) on one object.
pub const MAX_LABELS: usize = 64;
/// Most values in one selector expression.
pub const MAX_SELECTOR_VALUES: usize = 64;

/// An ordered string map used to describe runners and to select them.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Labels(BTreeMap<String, String>);

impl Labels {
    /// An empty label set.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds or replaces a label (not validated until the spec is built).
    #[must_use]
    pub fn with(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.0.insert(key.into(), value.into());
        self
    }

    /// Adds or replaces a label; returns the previous value.
    pub fn insert(&mut self, key: impl Into<String>, value: impl Into<String>) -> Option<String> {
        self.0.insert(key.into(), value.into())
    }

    /// The value of `key`.
    #[must_use]
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }

    /// Whether `key` is present.
    #[must_use]
    pub fn contains_key(&self, key: &str) -> bool {
        self.0.contains_key(key)
    }

    /// Number of labels.
    #[must_use]
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are no labels.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Labels in key order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// Checks sizes: at most [`MAX_LABELS`] entries, keys 1..=253 chars, values ≤ 1024 chars.
    ///
    /// # Errors
    /// Names the first offending key.
    pub fn check(&self, field: &'static str) -> Result<(), ModelError> {
        if self.0.len() > MAX_LABELS {
            return Err(ModelError::invalid(
                field,
                format!("at most {MAX_LABELS} entries, got {}", self.0.len()),
            ));
        }
        for (k, v) in &self.0 {
            check_key(field, k)?;
            if v.len() > MAX_LABEL_VALUE_LEN {
                return Err(ModelError::invalid(
                    format!("{field}[{k}]"),
                    format!(
                        "value must be at most {MAX_LABEL_VALUE_LEN} bytes, got {}",
                        v.len()
                    ),
                ));
            }
        }
        Ok(())
    }
}

fn check_key(field: &str, k: &str) -> Result<(), ModelError> {
    if k.is_empty() || k.len() > MAX_LABEL_KEY_LEN || k.chars().any(char::is_control) {
        return Err(ModelError::invalid(
            field.to_owned(),
            format!(
                "keys must be 1..={MAX_LABEL_KEY_LEN} bytes without control characters, got {:?}",
                k.chars().take(32).collect::<String>()
            ),
        ));
    }
    Ok(())
}

impl<K: Into<String>, V: Into<String>> FromIterator<(K, V)> for Labels {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        Self(
            iter.into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        )
    }
}

/// Set-based selector operator.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub enum SelectorOperator {
    /// The label's value is one of `values`.
    In,
    /// The label is absent, or its value is none of `values`.
    NotIn,
    /// The label is present.
    Exists,
    /// The label is absent.
    DoesNotExist,
}

/// One set-based requirement on a runner's labels.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct SelectorRequirement {
    /// Label key.
    pub key: String,
    /// Operator.
    pub operator: SelectorOperator,
    /// Values for `In` / `NotIn`; must be empty for `Exists` / `DoesNotExist`.
    pub values: Vec<String>,
}

impl SelectorRequirement {
    /// Builds a requirement.
    pub fn new(
        key: impl Into<String>,
        operator: SelectorOperator,
        values: impl IntoIterator<Item = impl Into<String>>,
    ) -> Self {
        Self {
            key: key.into(),
            operator,
            values: values.into_iter().map(Into::into).collect(),
        }
    }

    /// Whether `labels` satisfy this requirement.
    #[must_use]
    pub fn matches(&self, labels: &Labels) -> bool {
        let value = labels.get(&self.key);
        match self.operator {
            SelectorOperator::In => value.is_some_and(|v| self.values.iter().any(|x| x == v)),
            SelectorOperator::NotIn => value.is_none_or(|v| !self.values.iter().any(|x| x == v)),
            SelectorOperator::Exists => value.is_some(),
            SelectorOperator::DoesNotExist => value.is_none(),
        }
    }
}

/// Selects runners by their labels: every `match_labels` pair must be equal and every
/// expression must hold (all ANDed). An empty selector matches every runner.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct RunnerSelector {
    /// Labels that must be present with these exact values.
    pub match_labels: Labels,
    /// Set-based requirements.
    pub match_expressions: Vec<SelectorRequirement>,
}

impl RunnerSelector {
    /// An empty selector (matches everything).
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds an equality requirement.
    #[must_use]
    pub fn with_label(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.match_labels.insert(key, value);
        self
    }

    /// Adds a set-based requirement.
    #[must_use]
    pub fn with_expression(mut self, req: SelectorRequirement) -> Self {
        self.match_expressions.push(req);
        self
    }

    /// Whether the selector has no requirement at all.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.match_labels.is_empty() && self.match_expressions.is_empty()
    }

    /// Whether a runner with `labels` satisfies this selector.
    #[must_use]
    pub fn matches(&self, labels: &Labels) -> bool {
        self.match_labels
            .iter()
            .all(|(k, v)| labels.get(k) == Some(v))
            && self.match_expressions.iter().all(|e| e.matches(labels))
    }

    /// Checks sizes and operator/value consistency.
    ///
    /// # Errors
    /// Names the offending expression by index.
    pub fn check(&self) -> Result<(), ModelError> {
        self.match_labels.check("runner_selector.match_labels")?;
        if self.match_expressions.len() > MAX_LABELS {
            return Err(ModelError::invalid(
                "runner_selector.match_expressions",
                format!(
                    "at most {MAX_LABELS} entries, got {}",
                    self.match_expressions.len()
                ),
            ));
        }
        for (i, e) in self.match_expressions.iter().enumerate() {
            let field = format!("runner_selector.match_expressions[{i}]");
            check_key(&field, &e.key)?;
            if e.values.len() > MAX_SELECTOR_VALUES {
                return Err(ModelError::invalid(
                    format!("{field}.values"),
                    format!(
                        "at most {MAX_SELECTOR_VALUES} entries, got {}",
                        e.values.len()
                    ),
                ));
            }
            for (j, v) in e.values.iter().enumerate() {
                if v.len() > MAX_LABEL_VALUE_LEN {
                    return Err(ModelError::invalid(
                        format!("{field}.values[{j}]"),
                        format!(
                            "must be at most {MAX_LABEL_VALUE_LEN} bytes, got {}",
                            v.len()
                        ),
                    ));
                }
            }
            match e.operator {
                SelectorOperator::In | SelectorOperator::NotIn if e.values.is_empty() => {
                    return Err(ModelError::invalid(
                        field,
                        "values must not be empty for In/NotIn",
                    ));
                }
                SelectorOperator::Exists | SelectorOperator::DoesNotExist
                    if !e.values.is_empty() =>
                {
                    return Err(ModelError::invalid(
                        field,
                        "values must be empty for Exists/DoesNotExist",
                    ));
                }
                _ => {}
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selector_operators() {
        let labels = Labels::new().with("arch", "x86_64").with("gpu", "yes");
        let s = |op, vals: &[&str]| {
            RunnerSelector::new().with_expression(SelectorRequirement::new(
                "arch",
                op,
                vals.iter().copied(),
            ))
        };
        assert!(s(SelectorOperator::In, &["x86_64", "arm"]).matches(&labels));
        assert!(!s(SelectorOperator::In, &["arm"]).matches(&labels));
        assert!(s(SelectorOperator::NotIn, &["arm"]).matches(&labels));
        assert!(!s(SelectorOperator::NotIn, &["x86_64"]).matches(&labels));
        assert!(s(SelectorOperator::Exists, &[]).matches(&labels));
        assert!(!s(SelectorOperator::DoesNotExist, &[]).matches(&labels));
        assert!(
            RunnerSelector::new()
                .with_label("gpu", "yes")
                .matches(&labels)
        );
        assert!(
            !RunnerSelector::new()
                .with_label("gpu", "no")
                .matches(&labels)
        );
        assert!(RunnerSelector::new().matches(&Labels::new()));
        // NotIn on a missing key holds.
        assert!(
            RunnerSelector::new()
                .with_expression(SelectorRequirement::new(
                    "zone",
                    SelectorOperator::NotIn,
                    ["a"]
                ))
                .matches(&labels)
        );
    }

    #[test]
    fn selector_check() {
        let bad = RunnerSelector::new().with_expression(SelectorRequirement::new(
            "a",
            SelectorOperator::In,
            Vec::<String>::new(),
        ));
        assert!(
            bad.check()
                .unwrap_err()
                .to_string()
                .starts_with("runner_selector.match_expressions[0]")
        );
    }
}
