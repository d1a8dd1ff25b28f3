//! The process-wide local UTC offset and the RFC 3339 timer that reads it.
//!
//! Formatting a timestamp must be cheap and must not touch the C library's time-zone state
//! on every line, so the offset is read once ([`init_local_offset`]) and refreshed hourly by
//! the [`timezone_sync`](crate::timezone_sync) task; the timer only loads an atomic.

use std::{
    io,
    sync::atomic::{AtomicI32, Ordering},
};

use time::{OffsetDateTime, UtcOffset, format_description::well_known::Rfc3339};
use tracing_subscriber::fmt::{format::Writer, time::FormatTime};

use crate::{ObserveError, Timezone};

/// The local offset in whole seconds east of UTC; 0 until first read.
static LOCAL_OFFSET_SECS: AtomicI32 = AtomicI32::new(0);

/// Reads the host's current UTC offset, stores it for the log timer, and returns it.
///
/// Call it at the top of `main`, **before** the tokio runtime starts: the operating system's
/// time-zone state is only reliably readable while the process is single-threaded. Later
/// reads happen in the [`timezone_sync`](crate::timezone_sync) task (hourly, for daylight
/// saving changes); a failed later read keeps the last known offset.
///
/// ```
/// let offset = solti_observe::init_local_offset()?;
/// assert_eq!(solti_observe::local_offset(), offset);
/// # Ok::<(), solti_observe::ObserveError>(())
/// ```
///
/// # Errors
/// [`ObserveError::LocalOffset`] when the offset cannot be determined; the stored offset
/// then stays as it was (UTC at start-up).
pub fn init_local_offset() -> Result<UtcOffset, ObserveError> {
    refresh_local_offset()
}

/// The local offset the log timer currently uses (UTC until first read).
#[must_use]
pub fn local_offset() -> UtcOffset {
    // Only values produced by `UtcOffset::whole_seconds` are ever stored, so this cannot fail;
    // fall back to UTC rather than panic in the logging path.
    UtcOffset::from_whole_seconds(LOCAL_OFFSET_SECS.load(Ordering::Relaxed))
        .unwrap_or(UtcOffset::UTC)
}

/// Reads the offset from the system and stores it.
pub(crate) fn refresh_local_offset() -> Result<UtcOffset, ObserveError> {
    let offset = UtcOffset::current_local_offset().map_err(ObserveError::LocalOffset)?;
    store_local_offset(offset);
    Ok(offset)
}

/// Stores `offset` for the timer.
pub(crate) fn store_local_offset(offset: UtcOffset) {
    LOCAL_OFFSET_SECS.store(offset.whole_seconds(), Ordering::Relaxed);
}

/// Writes RFC 3339 timestamps (`2026-11-26T23:06:49.123456Z` or `…+02:00`) in the configured
/// zone.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Rfc3339Timer {
    zone: Timezone,
}

impl Rfc3339Timer {
    pub(crate) const fn new(zone: Timezone) -> Self {
        Self { zone }
    }

    pub(crate) fn now(self) -> OffsetDateTime {
        let now = OffsetDateTime::now_utc();
        match self.zone {
            Timezone::Utc => now,
            Timezone::Local => now.to_offset(local_offset()),
        }
    }
}

impl FormatTime for Rfc3339Timer {
    fn format_time(&self, w: &mut Writer<'_>) -> std::fmt::Result {
        self.now()
            .format_into(&mut FmtIo(w), &Rfc3339)
            .map(drop)
            .map_err(|_| std::fmt::Error)
    }
}

/// Lets `time` format straight into the line buffer, with no intermediate `String`.
struct FmtIo<'a, 'b>(&'a mut Writer<'b>);

impl io::Write for FmtIo<'_, '_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        // `time` writes whole ASCII/UTF-8 pieces, never a split character.
        let s = std::str::from_utf8(buf).map_err(io::Error::other)?;
        self.0.write_str(s).map_err(io::Error::other)?;
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use time::macros::offset;

    use super::*;

    /// Serialises the unit tests that store into the process-wide offset.
    pub(crate) static OFFSET_LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());

    #[test]
    fn local_timer_uses_the_stored_offset() {
        let _guard = OFFSET_LOCK.lock().unwrap();
        store_local_offset(offset!(+05:30));
        let t = Rfc3339Timer::new(Timezone::Local).now();
        assert_eq!(t.offset(), offset!(+05:30));
        assert_eq!(
            Rfc3339Timer::new(Timezone::Utc).now().offset(),
            UtcOffset::UTC
        );
        let mut s = String::new();
        Rfc3339Timer::new(Timezone::Local)
            .format_time(&mut Writer::new(&mut s))
            .unwrap();
        assert!(s.ends_with("+05:30"), "{s}");
        refresh_local_offset().unwrap();
    }

    #[test]
    fn offset_is_readable_from_a_multithreaded_process() {
        // Test harness threads are running; the read must still work (or the helper's
        // documentation would be wrong about later refreshes).
        let handles: Vec<_> = (0..2)
            .map(|_| std::thread::spawn(refresh_local_offset))
            .collect();
        for h in handles {
            h.join().unwrap().unwrap();
        }
    }
}
