//! Output for people (aligned tables, relative times, phase colours on a terminal) and for
//! scripts (one proto3-JSON object per line).

use std::io::{self, IsTerminal as _, Write as _};

use solti_api::pb;

use crate::{
    duration,
    error::{Error, Result},
};

/// Exit code after the reader of our output went away (as a SIGPIPE death would give).
const EXIT_PIPE: u8 = 141;

/// Whether colours are wanted on a stream: a terminal, and `NO_COLOR` unset or empty.
pub(crate) fn colour_on(is_terminal: bool) -> bool {
    is_terminal && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

/// Where our normal output goes.
#[derive(Debug)]
pub(crate) struct Out {
    pub(crate) colour: bool,
    pub(crate) err_colour: bool,
    pub(crate) err_tty: bool,
}

impl Out {
    pub(crate) fn new() -> Self {
        let err_tty = io::stderr().is_terminal();
        Self {
            colour: colour_on(io::stdout().is_terminal()),
            err_colour: colour_on(err_tty),
            err_tty,
        }
    }

    /// Writes one line to standard output.
    pub(crate) fn line(&self, text: &str) -> Result<()> {
        let mut out = io::stdout().lock();
        writeln!(out, "{text}")
            .and_then(|()| out.flush())
            .map_err(pipe)
    }

    /// Writes raw bytes and a newline to standard output or standard error.
    pub(crate) fn raw_line(&self, bytes: &[u8], to_stderr: bool) -> Result<()> {
        if to_stderr {
            let mut err = io::stderr().lock();
            err.write_all(bytes)
                .and_then(|()| err.write_all(b"\n"))
                .map_err(pipe)
        } else {
            let mut out = io::stdout().lock();
            out.write_all(bytes)
                .and_then(|()| out.write_all(b"\n"))
                .and_then(|()| out.flush())
                .map_err(pipe)
        }
    }

    /// A proto message as one line of proto3 JSON.
    pub(crate) fn json<T: serde::Serialize>(&self, value: &T) -> Result<()> {
        let text =
            serde_json::to_string(value).map_err(|e| Error::failed(format!("encode JSON: {e}")))?;
        self.line(&text)
    }

    /// A note for people on standard error (dim on a terminal).
    pub(crate) fn note(&self, text: &str) {
        if self.err_colour {
            eprintln!("\x1b[2m{text}\x1b[0m");
        } else {
            eprintln!("{text}");
        }
    }
}

#[allow(
    clippy::needless_pass_by_value,
    reason = "the shape `map_err` hands over"
)]
fn pipe(e: io::Error) -> Error {
    if e.kind() == io::ErrorKind::BrokenPipe {
        Error {
            code: EXIT_PIPE,
            message: String::new(),
        }
    } else {
        Error::failed(format!("write output: {e}"))
    }
}

/// The short lower-case name of a phase.
pub(crate) fn phase_name(phase: i32) -> &'static str {
    match pb::TaskStatus::try_from(phase) {
        Ok(pb::TaskStatus::Pending) => "pending",
        Ok(pb::TaskStatus::Running) => "running",
        Ok(pb::TaskStatus::Succeeded) => "succeeded",
        Ok(pb::TaskStatus::Failed) => "failed",
        Ok(pb::TaskStatus::Timeout) => "timeout",
        Ok(pb::TaskStatus::Canceled) => "canceled",
        Ok(pb::TaskStatus::Exhausted) => "exhausted",
        Ok(pb::TaskStatus::Unspecified) | Err(_) => "unknown",
    }
}

/// The ANSI colour of a phase.
fn phase_colour(phase: i32) -> &'static str {
    match pb::TaskStatus::try_from(phase) {
        Ok(pb::TaskStatus::Running) => "\x1b[36m",
        Ok(pb::TaskStatus::Succeeded) => "\x1b[32m",
        Ok(pb::TaskStatus::Failed | pb::TaskStatus::Timeout | pb::TaskStatus::Exhausted) => {
            "\x1b[31m"
        }
        Ok(pb::TaskStatus::Canceled) => "\x1b[33m",
        _ => "\x1b[2m",
    }
}

/// Whether a phase is terminal.
pub(crate) fn is_terminal_phase(phase: i32) -> bool {
    matches!(
        pb::TaskStatus::try_from(phase),
        Ok(pb::TaskStatus::Succeeded
            | pb::TaskStatus::Failed
            | pb::TaskStatus::Timeout
            | pb::TaskStatus::Canceled
            | pb::TaskStatus::Exhausted)
    )
}

/// One table cell: its text and an optional colour applied after padding.
#[derive(Debug)]
pub(crate) struct Cell {
    text: String,
    colour: Option<&'static str>,
}

impl Cell {
    pub(crate) fn plain(text: impl Into<String>) -> Self {
        Self {
            text: text.into(),
            colour: None,
        }
    }

    pub(crate) fn text(&self) -> &str {
        &self.text
    }

    /// The text with its colour codes.
    pub(crate) fn coloured(&self) -> String {
        match self.colour {
            Some(c) => format!("{c}{}\x1b[0m", self.text),
            None => self.text.clone(),
        }
    }

    pub(crate) fn phase(phase: i32) -> Self {
        Self {
            text: phase_name(phase).to_owned(),
            colour: Some(phase_colour(phase)),
        }
    }
}

/// Lays out rows under headers, columns separated by two spaces; the last column is not
/// padded.
pub(crate) fn table(headers: &[&str], rows: &[Vec<Cell>], colour: bool) -> Vec<String> {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.text.chars().count());
        }
    }
    let render = |cells: Vec<(&str, Option<&'static str>)>| {
        let mut line = String::new();
        let last = cells.len().saturating_sub(1);
        for (i, (text, col)) in cells.into_iter().enumerate() {
            let pad = if i == last {
                0
            } else {
                widths[i].saturating_sub(text.chars().count()) + 2
            };
            match col {
                Some(c) if colour => {
                    line.push_str(c);
                    line.push_str(text);
                    line.push_str("\x1b[0m");
                }
                _ => line.push_str(text),
            }
            line.extend(std::iter::repeat_n(' ', pad));
        }
        line.trim_end().to_owned()
    };
    let mut out = vec![render(
        headers
            .iter()
            .map(|h| (*h, colour.then_some("\x1b[1m")))
            .collect(),
    )];
    for row in rows {
        out.push(render(
            row.iter().map(|c| (c.text.as_str(), c.colour)).collect(),
        ));
    }
    out
}

/// Cuts `s` to at most `max` characters, ending with `…` when cut.
pub(crate) fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_owned();
    }
    let mut t: String = s.chars().take(max.saturating_sub(1)).collect();
    t.push('…');
    t
}

/// The shortest prefix length (at least `min`) that keeps every id distinct.
pub(crate) fn short_id_len(ids: &[&str], min: usize) -> usize {
    let mut sorted: Vec<&str> = ids.to_vec();
    sorted.sort_unstable();
    let mut len = min;
    for pair in sorted.windows(2) {
        let common = pair[0]
            .bytes()
            .zip(pair[1].bytes())
            .take_while(|(a, b)| a == b)
            .count();
        len = len.max(common + 1);
    }
    len
}

/// The command line of a task, shell-quoted for reading.
pub(crate) fn command_line(spec: Option<&pb::CreateSpec>) -> String {
    let Some(kind) = spec
        .and_then(|s| s.kind.as_ref())
        .and_then(|k| k.kind.as_ref())
    else {
        return String::new();
    };
    match kind {
        pb::task_kind::Kind::Subprocess(sub) => match &sub.mode {
            Some(pb::subprocess_task::Mode::Command(c)) => std::iter::once(&c.command)
                .chain(&c.args)
                .map(|w| quote(w))
                .collect::<Vec<_>>()
                .join(" "),
            Some(pb::subprocess_task::Mode::Script(s)) => {
                let runtime = match &s.runtime {
                    Some(pb::script_mode::Runtime::WellKnown(r)) => {
                        match pb::ScriptRuntime::try_from(*r) {
                            Ok(pb::ScriptRuntime::Bash) => "bash".to_owned(),
                            Ok(pb::ScriptRuntime::Python) => "python".to_owned(),
                            Ok(pb::ScriptRuntime::Node) => "node".to_owned(),
                            _ => "script".to_owned(),
                        }
                    }
                    Some(pb::script_mode::Runtime::Custom(c)) => c.command.clone(),
                    None => "script".to_owned(),
                };
                let mut words = vec![format!("<{runtime} script>")];
                words.extend(s.args.iter().map(|w| quote(w)));
                words.join(" ")
            }
            None => String::new(),
        },
        pb::task_kind::Kind::Wasm(w) => format!("<wasm {}>", w.module),
        pb::task_kind::Kind::Container(c) => format!("<container {}>", c.image),
    }
}

/// Quotes a word for a POSIX shell when it needs it.
fn quote(word: &str) -> String {
    if !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:,+@%".contains(c))
    {
        word.to_owned()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

/// A Unix-ms time as `2026-12-07 21:50:01 UTC (5m ago)`.
pub(crate) fn when(ms: i64, now: i64) -> String {
    format!("{} ({})", utc(ms), duration::ago(now, ms))
}

/// A Unix-ms time as `YYYY-MM-DD HH:MM:SS UTC`.
pub(crate) fn utc(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02} UTC",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_align() {
        let rows = vec![
            vec![Cell::plain("a"), Cell::phase(2), Cell::plain("x")],
            vec![Cell::plain("bbbb"), Cell::phase(3), Cell::plain("")],
        ];
        let lines = table(&["ID", "PHASE", "NOTE"], &rows, false);
        assert_eq!(lines[0], "ID    PHASE      NOTE");
        assert_eq!(lines[1], "a     running    x");
        assert_eq!(lines[2], "bbbb  succeeded");
        let coloured = table(&["ID", "PHASE"], &rows, true);
        assert!(coloured[1].contains("\x1b[36mrunning\x1b[0m"));
    }

    #[test]
    fn short_ids_stay_unique() {
        let ids = ["tsk_01AAAAAAAAAA1", "tsk_01AAAAAAAAAA2", "tsk_01B"];
        assert_eq!(short_id_len(&ids, 8), 17);
        assert_eq!(short_id_len(&["tsk_01A", "tsk_01B"], 10), 10);
    }

    #[test]
    fn times_and_words() {
        assert_eq!(utc(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(utc(1_795_736_984_216), "2026-11-26 23:49:44 UTC");
        assert_eq!(quote("hello world"), "'hello world'");
        assert_eq!(quote("it's"), r"'it'\''s'");
        assert_eq!(quote("-Fc"), "-Fc");
        assert_eq!(truncate("abcdef", 4), "abc…");
    }
}
