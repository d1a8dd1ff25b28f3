//! Building the `tracing` subscriber and installing it once per process.

use std::{
    io::IsTerminal,
    sync::{
        OnceLock,
        atomic::{AtomicBool, Ordering},
    },
};

use tracing::Subscriber;
use tracing_subscriber::{
    EnvFilter, Layer, Registry,
    fmt::{MakeWriter, writer::BoxMakeWriter},
    layer::{Layered, SubscriberExt},
    reload,
    util::SubscriberInitExt,
};

use crate::{
    ColorChoice, LogFormat, LogTarget, LoggerConfig, ObserveError, clock::Rfc3339Timer, journald,
};

/// A type-erased subscriber, as built by [`LoggerConfig::build_subscriber`].
pub type BoxSubscriber = Box<dyn Subscriber + Send + Sync + 'static>;

/// Set once the first `init_logger` call got as far as installing.
static INSTALLED: AtomicBool = AtomicBool::new(false);

/// The level filter of the installed logger, for [`set_log_level`].
static LEVEL: OnceLock<reload::Handle<EnvFilter, Registry>> = OnceLock::new();

/// The filter layer, replaceable while the logger runs.
type Filter = reload::Layer<EnvFilter, Registry>;

/// Replaces the level filter of the logger [`init_logger`] installed (say, on SIGHUP), with
/// the same syntax as [`LoggerConfig::with_level`]. Returns `false` when no logger was
/// installed by this crate (nothing changes then).
///
/// # Errors
/// [`ObserveError::InvalidFilter`] when `level` does not parse; the filter stays as it was.
pub fn set_log_level(level: &str) -> Result<bool, ObserveError> {
    let filter = parse_filter(level)?;
    Ok(LEVEL
        .get()
        .is_some_and(|handle| handle.reload(filter).is_ok()))
}

/// Installs the process-wide `tracing` subscriber described by `config`, and routes records of
/// the `log` crate (used by some dependencies) into it.
///
/// Call it once, from a binary's `main` (libraries never install a subscriber). Call
/// [`init_local_offset`](crate::init_local_offset) first when using
/// [`Timezone::Local`](crate::Timezone::Local).
///
/// ```no_run
/// use solti_observe::{LogFormat, LoggerConfig, init_logger};
///
/// init_logger(&LoggerConfig::new().with_format(LogFormat::Json).with_level("info"))?;
/// tracing::info!(port = 8085, "listening");
/// # Ok::<(), solti_observe::ObserveError>(())
/// ```
///
/// # Errors
/// - [`ObserveError::InvalidFilter`]: the `level` expression does not parse;
/// - [`ObserveError::JournaldUnavailable`] / [`ObserveError::JournaldUnsupported`]: journald
///   was chosen but cannot be used here;
/// - [`ObserveError::AlreadyInitialized`]: a logger is already installed (a second call).
///
/// The configuration is checked before the once-per-process rule, so a bad configuration is
/// reported as such even after a successful call.
pub fn init_logger(config: &LoggerConfig) -> Result<(), ObserveError> {
    let (subscriber, handle) = match config.target() {
        LogTarget::Stderr => config.build(std::io::stderr, std::io::stderr().is_terminal())?,
        LogTarget::Stdout => config.build(std::io::stdout, std::io::stdout().is_terminal())?,
    };
    if INSTALLED.swap(true, Ordering::SeqCst) {
        return Err(ObserveError::AlreadyInitialized { source: None });
    }
    let _ = LEVEL.set(handle);
    subscriber
        .try_init()
        .map_err(|e| ObserveError::AlreadyInitialized { source: Some(e) })
}

impl LoggerConfig {
    /// Builds the subscriber this configuration describes, writing to `writer` instead of
    /// the configured [`LogTarget`], without installing it. Use it in tests (with
    /// `tracing::subscriber::with_default`) or to add the lines to a subscriber of your own.
    ///
    /// [`ColorChoice::Auto`] means no colour here: the writer is not known to be a terminal.
    /// With [`LogFormat::Journald`] the writer is unused.
    ///
    /// ```
    /// use std::sync::{Arc, Mutex};
    ///
    /// use solti_observe::{LogFormat, LoggerConfig};
    ///
    /// #[derive(Clone, Default)]
    /// struct Buf(Arc<Mutex<Vec<u8>>>);
    /// impl std::io::Write for Buf {
    ///     fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
    ///         self.0.lock().unwrap().extend_from_slice(b);
    ///         Ok(b.len())
    ///     }
    ///     fn flush(&mut self) -> std::io::Result<()> {
    ///         Ok(())
    ///     }
    /// }
    ///
    /// let buf = Buf::default();
    /// let sink = buf.clone();
    /// let subscriber = LoggerConfig::new()
    ///     .with_format(LogFormat::Json)
    ///     .build_subscriber(move || sink.clone())?;
    /// tracing::subscriber::with_default(subscriber, || tracing::info!(attempt = 2, "retrying"));
    /// let line = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
    /// assert!(line.contains(r#""attempt":2"#));
    /// # Ok::<(), solti_observe::ObserveError>(())
    /// ```
    ///
    /// # Errors
    /// As [`init_logger`], except [`ObserveError::AlreadyInitialized`].
    pub fn build_subscriber<W>(&self, writer: W) -> Result<BoxSubscriber, ObserveError>
    where
        W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
    {
        self.build(writer, false).map(|(subscriber, _)| subscriber)
    }

    fn build<W>(
        &self,
        writer: W,
        is_terminal: bool,
    ) -> Result<(BoxSubscriber, reload::Handle<EnvFilter, Registry>), ObserveError>
    where
        W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
    {
        let (filter, handle) = reload::Layer::new(parse_filter(self.level())?);
        let ansi = match self.color() {
            ColorChoice::Always => true,
            ColorChoice::Never => false,
            ColorChoice::Auto => is_terminal,
        };
        let timer = Rfc3339Timer::new(self.timezone());
        let writer = BoxMakeWriter::new(writer);
        let layer: Box<dyn Layer<Layered<Filter, Registry>> + Send + Sync> = match self.format() {
            LogFormat::Text => tracing_subscriber::fmt::layer()
                .with_timer(timer)
                .with_ansi(ansi)
                .with_writer(writer)
                .boxed(),
            LogFormat::Json => tracing_subscriber::fmt::layer()
                .json()
                .with_timer(timer)
                .flatten_event(true)
                .with_current_span(true)
                .with_span_list(false)
                .with_writer(writer)
                .boxed(),
            LogFormat::Journald => journald::layer()?.boxed(),
        };
        Ok((
            Box::new(Registry::default().with(filter).with(layer)),
            handle,
        ))
    }
}

/// Parses a level filter, naming the expression on failure.
pub(crate) fn parse_filter(level: &str) -> Result<EnvFilter, ObserveError> {
    if level.trim().is_empty() {
        return Err(ObserveError::InvalidFilter {
            filter: level.to_owned(),
            source: None,
        });
    }
    EnvFilter::builder()
        .parse(level)
        .map_err(|e| ObserveError::InvalidFilter {
            filter: level.to_owned(),
            source: Some(e),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_log_level_checks_the_expression() {
        let err = set_log_level("info,solti_core=loud").unwrap_err();
        assert!(matches!(err, ObserveError::InvalidFilter { .. }), "{err:?}");
        set_log_level("debug").unwrap();
    }

    #[test]
    fn filters_are_checked() {
        parse_filter("info").unwrap();
        parse_filter("warn,solti_core=debug,taskvisor=off").unwrap();
        for bad in ["", "  ", "info,solti_core=loud", "[{"] {
            let err = parse_filter(bad).unwrap_err();
            assert!(
                matches!(err, ObserveError::InvalidFilter { .. }),
                "{bad:?}: {err:?}"
            );
            assert!(err.to_string().contains("field `level`"), "{err}");
        }
    }
}
