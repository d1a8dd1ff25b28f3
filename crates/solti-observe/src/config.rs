//! [`LoggerConfig`] and its choices.

use std::{fmt, str::FromStr};

/// How log lines are written.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum LogFormat {
    /// Human-readable lines: RFC 3339 timestamp, level, target, message, then `key=value`
    /// fields.
    #[default]
    Text,
    /// One JSON object per line (`timestamp`, `level`, `target`, the event's fields flattened
    /// next to `message`, and the current span).
    Json,
    /// Native systemd-journald entries (Linux only); the journal stamps the time itself.
    Journald,
}

impl LogFormat {
    /// The lowercase name: `text`, `json` or `journald`.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Text => "text",
            Self::Json => "json",
            Self::Journald => "journald",
        }
    }
}

impl FromStr for LogFormat {
    type Err = ParseChoiceError;
    /// Accepts `text`, `json` or `journald` (any case).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "text" => Ok(Self::Text),
            "json" => Ok(Self::Json),
            "journald" => Ok(Self::Journald),
            _ => Err(ParseChoiceError {
                what: "log format",
                value: s.to_owned(),
                expected: "text, json, journald",
            }),
        }
    }
}

impl fmt::Display for LogFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The zone of the timestamps in text and JSON lines.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Timezone {
    /// UTC, written with a `Z` suffix.
    #[default]
    Utc,
    /// The host's local offset (`+02:00`), as last read by [`init_local_offset`] or the
    /// [`timezone_sync`] task. Until one of them ran, the offset is UTC.
    ///
    /// [`init_local_offset`]: crate::init_local_offset
    /// [`timezone_sync`]: crate::timezone_sync
    Local,
}

impl FromStr for Timezone {
    type Err = ParseChoiceError;
    /// Accepts `utc` or `local` (any case).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "utc" => Ok(Self::Utc),
            "local" => Ok(Self::Local),
            _ => Err(ParseChoiceError {
                what: "timezone",
                value: s.to_owned(),
                expected: "utc, local",
            }),
        }
    }
}

/// Whether text lines carry ANSI colours.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ColorChoice {
    /// Colour only when the target ([`LogTarget`]) is a terminal. A writer handed to
    /// [`LoggerConfig::build_subscriber`] is never treated as a terminal.
    #[default]
    Auto,
    /// Always colour.
    Always,
    /// Never colour (for example when the binary honours `NO_COLOR`).
    Never,
}

/// Where text and JSON lines go.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum LogTarget {
    /// Standard error, keeping standard output free for program output.
    #[default]
    Stderr,
    /// Standard output.
    Stdout,
}

/// How [`init_logger`](crate::init_logger) sets up logging.
///
/// ```
/// use solti_observe::{LogFormat, LoggerConfig, Timezone};
///
/// let config = LoggerConfig::new()
///     .with_format(LogFormat::Json)
///     .with_level("info,solti_core=debug")
///     .with_timezone(Timezone::Local);
/// assert_eq!(config.level(), "info,solti_core=debug");
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[must_use]
pub struct LoggerConfig {
    format: LogFormat,
    level: String,
    timezone: Timezone,
    color: ColorChoice,
    target: LogTarget,
}

impl LoggerConfig {
    /// The defaults: text, `info`, UTC, colour on a terminal, standard error.
    pub fn new() -> Self {
        Self {
            format: LogFormat::Text,
            level: DEFAULT_LEVEL.to_owned(),
            timezone: Timezone::Utc,
            color: ColorChoice::Auto,
            target: LogTarget::Stderr,
        }
    }

    /// Sets the output format.
    ///
    /// # Default
    /// [`LogFormat::Text`].
    pub fn with_format(mut self, format: LogFormat) -> Self {
        self.format = format;
        self
    }

    /// Sets the level filter: an `EnvFilter` expression such as `info`, `warn,solti_core=debug`
    /// or `solti_exec[spawn]=trace`. It is checked when the logger is built.
    ///
    /// # Default
    /// `info`.
    pub fn with_level(mut self, level: impl Into<String>) -> Self {
        self.level = level.into();
        self
    }

    /// Sets the zone of the timestamps.
    ///
    /// # Default
    /// [`Timezone::Utc`].
    pub fn with_timezone(mut self, timezone: Timezone) -> Self {
        self.timezone = timezone;
        self
    }

    /// Sets when text lines are coloured.
    ///
    /// # Default
    /// [`ColorChoice::Auto`].
    pub fn with_color(mut self, color: ColorChoice) -> Self {
        self.color = color;
        self
    }

    /// Sets where lines are written.
    ///
    /// # Default
    /// [`LogTarget::Stderr`].
    pub fn with_target(mut self, target: LogTarget) -> Self {
        self.target = target;
        self
    }

    /// The output format.
    #[must_use]
    pub fn format(&self) -> LogFormat {
        self.format
    }
    /// The level filter expression.
    #[must_use]
    pub fn level(&self) -> &str {
        &self.level
    }
    /// The zone of the timestamps.
    #[must_use]
    pub fn timezone(&self) -> Timezone {
        self.timezone
    }
    /// When text lines are coloured.
    #[must_use]
    pub fn color(&self) -> ColorChoice {
        self.color
    }
    /// Where lines are written.
    #[must_use]
    pub fn target(&self) -> LogTarget {
        self.target
    }
}

impl Default for LoggerConfig {
    fn default() -> Self {
        Self::new()
    }
}

/// A [`LogFormat`] or [`Timezone`] name that is not one of the accepted values.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown {what} {value:?}: expected one of {expected}")]
pub struct ParseChoiceError {
    what: &'static str,
    value: String,
    expected: &'static str,
}

/// The level filter used when none is set.
pub const DEFAULT_LEVEL: &str = "info";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn choices_parse_case_insensitively() {
        assert_eq!("JSON".parse::<LogFormat>().unwrap(), LogFormat::Json);
        assert_eq!(
            " journald ".parse::<LogFormat>().unwrap(),
            LogFormat::Journald
        );
        assert_eq!("Local".parse::<Timezone>().unwrap(), Timezone::Local);
        let err = "yaml".parse::<LogFormat>().unwrap_err();
        assert_eq!(
            err.to_string(),
            "unknown log format \"yaml\": expected one of text, json, journald"
        );
    }

    #[test]
    fn defaults() {
        let c = LoggerConfig::default();
        assert_eq!(c.format(), LogFormat::Text);
        assert_eq!(c.level(), "info");
        assert_eq!(c.timezone(), Timezone::Utc);
        assert_eq!(c.color(), ColorChoice::Auto);
        assert_eq!(c.target(), LogTarget::Stderr);
    }
}
