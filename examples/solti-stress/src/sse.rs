//! An incremental Server-Sent Events parser and the typed log events of wire contract §3.

use serde::Deserialize;

/// One item of an SSE stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum SseItem {
    /// A dispatched event: its `event:` name (`message` when absent) and its joined `data:`.
    Event { name: String, data: String },
    /// A comment line (`: keep-alive`), without the colon and one leading space.
    Comment(String),
}

/// Splits a byte stream into [`SseItem`]s. Feed it chunks as they arrive, in any split.
///
/// Lines end with `\n` or `\r\n` (a lone `\r` is not treated as a line end: the agent never
/// sends one). Fields other than `event` and `data` are ignored.
#[derive(Debug, Default)]
pub(crate) struct SseParser {
    buf: Vec<u8>,
    name: Option<String>,
    data: Option<String>,
}

/// Longest line the parser buffers before giving up on the stream.
const MAX_LINE: usize = 1 << 20;

impl SseParser {
    /// Consumes `chunk` and returns every item completed by it.
    ///
    /// # Errors
    /// When one line grows beyond 1 MiB without an end.
    pub(crate) fn feed(&mut self, chunk: &[u8]) -> Result<Vec<SseItem>, String> {
        self.buf.extend_from_slice(chunk);
        let mut out = Vec::new();
        let mut start = 0;
        while let Some(pos) = self.buf[start..].iter().position(|&b| b == b'\n') {
            let end = start + pos;
            let mut line = &self.buf[start..end];
            if line.last() == Some(&b'\r') {
                line = &line[..line.len() - 1];
            }
            let line = String::from_utf8_lossy(line).into_owned();
            self.line(&line, &mut out);
            start = end + 1;
        }
        self.buf.drain(..start);
        if self.buf.len() > MAX_LINE {
            return Err(format!("an SSE line is longer than {MAX_LINE} bytes"));
        }
        Ok(out)
    }

    fn line(&mut self, line: &str, out: &mut Vec<SseItem>) {
        if line.is_empty() {
            if let Some(data) = self.data.take() {
                let name = self.name.take().unwrap_or_else(|| "message".to_owned());
                out.push(SseItem::Event { name, data });
            }
            self.name = None;
            return;
        }
        if let Some(comment) = line.strip_prefix(':') {
            out.push(SseItem::Comment(
                comment.strip_prefix(' ').unwrap_or(comment).to_owned(),
            ));
            return;
        }
        let (field, value) = line.split_once(':').unwrap_or((line, ""));
        let value = value.strip_prefix(' ').unwrap_or(value);
        match field {
            "event" => self.name = Some(value.to_owned()),
            "data" => match &mut self.data {
                Some(d) => {
                    d.push('\n');
                    d.push_str(value);
                }
                None => self.data = Some(value.to_owned()),
            },
            _ => {}
        }
    }
}

/// The JSON of one log event (`data:` of wire contract §3).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(
    tag = "type",
    rename_all = "camelCase",
    rename_all_fields = "camelCase"
)]
pub(crate) enum LogEvent {
    /// An attempt started.
    RunStarted { attempt: u32 },
    /// One output line.
    Chunk {
        attempt: u32,
        stream: String,
        seq: u64,
        line: String,
    },
    /// An attempt ended.
    RunFinished {
        attempt: u32,
        #[serde(default)]
        exit_code: Option<i32>,
    },
    /// This subscriber fell behind and `skipped` events were dropped.
    Lagged { skipped: u64 },
}

impl LogEvent {
    /// Decodes the `data` of an event named `name`, checking that the name matches the type.
    ///
    /// # Errors
    /// When the JSON is not a log event or the name disagrees with its `type`.
    pub(crate) fn decode(name: &str, data: &str) -> Result<Self, String> {
        let ev: Self = serde_json::from_str(data)
            .map_err(|e| format!("event {name:?}: bad data {data:?}: {e}"))?;
        let expected = match ev {
            Self::RunStarted { .. } => "run-started",
            Self::Chunk { .. } => "chunk",
            Self::RunFinished { .. } => "run-finished",
            Self::Lagged { .. } => "lagged",
        };
        if name != expected {
            return Err(format!(
                "event named {name:?} carries a {expected:?} payload"
            ));
        }
        Ok(ev)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const STREAM: &str = "event: run-started\ndata: {\"type\":\"runStarted\",\"attempt\":1,\"startedAt\":1}\n\n\
                          : keep-alive\n\n\
                          event: chunk\r\ndata: {\"type\":\"chunk\",\"attempt\":1,\"stream\":\"stdout\",\"seq\":0,\"ts\":2,\"line\":\"hi\"}\r\n\r\n";

    fn expected() -> Vec<SseItem> {
        vec![
            SseItem::Event {
                name: "run-started".into(),
                data: "{\"type\":\"runStarted\",\"attempt\":1,\"startedAt\":1}".into(),
            },
            SseItem::Comment("keep-alive".into()),
            SseItem::Event {
                name: "chunk".into(),
                data: "{\"type\":\"chunk\",\"attempt\":1,\"stream\":\"stdout\",\"seq\":0,\"ts\":2,\"line\":\"hi\"}".into(),
            },
        ]
    }

    #[test]
    fn whole_stream_at_once() {
        let mut p = SseParser::default();
        assert_eq!(p.feed(STREAM.as_bytes()).unwrap(), expected());
    }

    #[test]
    fn every_split_gives_the_same_items() {
        let bytes = STREAM.as_bytes();
        for cut in 0..bytes.len() {
            let mut p = SseParser::default();
            let mut items = p.feed(&bytes[..cut]).unwrap();
            items.extend(p.feed(&bytes[cut..]).unwrap());
            assert_eq!(items, expected(), "cut at {cut}");
        }
        let mut p = SseParser::default();
        let items: Vec<_> = bytes.iter().flat_map(|b| p.feed(&[*b]).unwrap()).collect();
        assert_eq!(items, expected());
    }

    #[test]
    fn multi_line_data_and_default_name() {
        let mut p = SseParser::default();
        let items = p.feed(b"data: a\ndata: b\nid: 7\n\nevent: x\n\n").unwrap();
        assert_eq!(
            items,
            vec![SseItem::Event {
                name: "message".into(),
                data: "a\nb".into()
            }]
        );
    }

    #[test]
    fn typed_events() {
        let ev = LogEvent::decode(
            "chunk",
            r#"{"type":"chunk","attempt":2,"stream":"stderr","seq":5,"ts":1,"line":"x"}"#,
        );
        assert_eq!(
            ev.unwrap(),
            LogEvent::Chunk {
                attempt: 2,
                stream: "stderr".into(),
                seq: 5,
                line: "x".into()
            }
        );
        let ev = LogEvent::decode(
            "run-finished",
            r#"{"type":"runFinished","attempt":1,"finishedAt":3}"#,
        );
        assert_eq!(
            ev.unwrap(),
            LogEvent::RunFinished {
                attempt: 1,
                exit_code: None
            }
        );
        let ev = LogEvent::decode("lagged", r#"{"type":"lagged","skipped":42}"#);
        assert_eq!(ev.unwrap(), LogEvent::Lagged { skipped: 42 });
        assert!(LogEvent::decode("chunk", r#"{"type":"lagged","skipped":1}"#).is_err());
        assert!(LogEvent::decode("chunk", "not json").is_err());
    }

    #[test]
    fn endless_line_is_an_error() {
        let mut p = SseParser::default();
        assert!(p.feed(&vec![b'a'; MAX_LINE + 1]).is_err());
    }
}
