//! A pass over a JSON body that refuses oversized lists before they are decoded.
//!
//! Decoding a 4 MiB body into 125,000 env entries or 250,000 labels allocates every one of
//! them before validation can count them (tens to hundreds of milliseconds per request).
//! This scan only looks at structure: it skips strings with `memchr`, counts the entries of
//! every array and object, and refuses the body as soon as a container that closes is over
//! its limit, naming the field in its wire path (`spec.kind.subprocess.env`). It allocates
//! one small entry per nesting level and nothing per element.
//!
//! Malformed JSON is left to the decoder, which reports it precisely.

use solti_model::{MAX_ARGS, MAX_ENV_ENTRIES, MAX_LABELS, MAX_SELECTOR_VALUES};

use crate::ApiError;

/// Entries allowed in any array or object of a request whose key has no tighter limit (no
/// field of the API holds more: `args` has the largest limit).
pub(crate) const MAX_JSON_ENTRIES: usize = MAX_ARGS;

/// The most entries the container under `key` may hold.
fn limit_for(key: &[u8]) -> usize {
    match key {
        b"env" => MAX_ENV_ENTRIES,
        b"labels" | b"matchLabels" | b"match_labels" | b"matchExpressions"
        | b"match_expressions" => MAX_LABELS,
        b"values" => MAX_SELECTOR_VALUES,
        _ => MAX_JSON_ENTRIES,
    }
}

/// Where a container sits in its parent.
#[derive(Clone, Copy)]
enum Segment {
    /// The value of this key (byte range of the key inside the body).
    Key(usize, usize),
    /// The n-th element of an array.
    Index(usize),
    /// The top-level value.
    Root,
}

struct Level {
    at: Segment,
    object: bool,
    /// Commas seen at this level.
    commas: usize,
    /// Whether anything but whitespace was seen at this level (so entries = commas + 1).
    items: bool,
    /// The limit of this container.
    limit: usize,
}

/// Refuses `body` when an array or object in it holds more entries than its field allows.
pub(crate) fn check(body: &[u8]) -> Result<(), ApiError> {
    let mut stack: Vec<Level> = Vec::with_capacity(16);
    // The most recent key read at the current object level, and whether the next string is
    // a key.
    let mut last_key: Option<(usize, usize)> = None;
    let mut expect_key = false;
    let mut i = 0;
    while i < body.len() {
        let b = body[i];
        match b {
            b'"' => {
                let start = i + 1;
                let Some(end) = string_end(body, start) else {
                    return Ok(()); // unterminated: the decoder says so
                };
                if expect_key {
                    last_key = Some((start, end));
                    expect_key = false;
                }
                if let Some(top) = stack.last_mut() {
                    top.items = true;
                }
                i = end + 1;
            }
            b'{' | b'[' => {
                let at = match stack.last_mut() {
                    None => Segment::Root,
                    Some(parent) => {
                        parent.items = true;
                        if parent.object {
                            last_key.map_or(Segment::Root, |(s, e)| Segment::Key(s, e))
                        } else {
                            Segment::Index(parent.commas)
                        }
                    }
                };
                let limit = match at {
                    Segment::Key(s, e) => limit_for(&body[s..e]),
                    _ => MAX_JSON_ENTRIES,
                };
                let object = b == b'{';
                stack.push(Level {
                    at,
                    object,
                    commas: 0,
                    items: false,
                    limit,
                });
                expect_key = object;
                i += 1;
            }
            b',' => {
                if let Some(top) = stack.last_mut() {
                    top.commas += 1;
                    expect_key = top.object;
                }
                i += 1;
            }
            b'}' | b']' => {
                let Some(top) = stack.last() else {
                    return Ok(());
                };
                let entries = top.commas + usize::from(top.items);
                if entries > top.limit {
                    return Err(ApiError::invalid(
                        path(body, &stack),
                        format!("at most {} entries, got {entries}", top.limit),
                    ));
                }
                stack.pop();
                // Back in the parent object, the next string after a comma is a key again;
                // until then, nothing.
                expect_key = false;
                i += 1;
            }
            b' ' | b'\t' | b'\r' | b'\n' | b':' => i += 1,
            _ => {
                if let Some(top) = stack.last_mut() {
                    top.items = true;
                }
                i += 1;
            }
        }
    }
    Ok(())
}

/// The index of the closing quote of the string whose content starts at `start`.
fn string_end(body: &[u8], mut from: usize) -> Option<usize> {
    loop {
        let at = from + memchr::memchr2(b'"', b'\\', body.get(from..)?)?;
        if body[at] == b'"' {
            return Some(at);
        }
        from = at + 2; // skip the escaped character
    }
}

/// The wire path of the innermost container (`spec.kind.subprocess.env`,
/// `spec.runnerSelector.matchExpressions[0].values`).
fn path(body: &[u8], stack: &[Level]) -> String {
    let mut out = String::new();
    for level in stack {
        match level.at {
            Segment::Root => {}
            Segment::Key(s, e) => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.extend(String::from_utf8_lossy(&body[s..e]).chars().take(64));
            }
            Segment::Index(n) => {
                out.push('[');
                out.push_str(&n.to_string());
                out.push(']');
            }
        }
    }
    if out.is_empty() {
        "body".to_owned()
    } else {
        out
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn msg(v: &serde_json::Value) -> Option<String> {
        check(v.to_string().as_bytes()).err().map(|e| e.to_string())
    }

    #[test]
    fn names_the_field_and_counts() {
        let env: Vec<_> = (0..1025)
            .map(|i| json!({"key": format!("K{i}"), "value": "v,]}"}))
            .collect();
        let body =
            json!({"spec": {"kind": {"subprocess": {"command": {"command": "x"}, "env": env}}}});
        assert_eq!(
            msg(&body).unwrap(),
            "spec.kind.subprocess.env: at most 1024 entries, got 1025"
        );
        let labels: serde_json::Map<_, _> =
            (0..65).map(|i| (format!("k{i}"), json!("v"))).collect();
        assert_eq!(
            msg(&json!({"spec": {"labels": labels}})).unwrap(),
            "spec.labels: at most 64 entries, got 65"
        );
        let values: Vec<_> = (0..65).map(|i| i.to_string()).collect();
        let body = json!({"spec": {"runnerSelector": {"matchExpressions": [
            {"key": "a", "operator": "SELECTOR_OPERATOR_EXISTS"},
            {"key": "k", "operator": "SELECTOR_OPERATOR_IN", "values": values}
        ]}}});
        assert_eq!(
            msg(&body).unwrap(),
            "spec.runnerSelector.matchExpressions[1].values: at most 64 entries, got 65"
        );
        let args: Vec<_> = (0..4097).map(|i| i.to_string()).collect();
        assert_eq!(
            msg(&json!({"spec": {"kind": {"subprocess": {"command": {"args": args}}}}})).unwrap(),
            "spec.kind.subprocess.command.args: at most 4096 entries, got 4097"
        );
        let many = vec![1; 4097];
        assert_eq!(
            msg(&json!(many)).unwrap(),
            "body: at most 4096 entries, got 4097"
        );
    }

    #[test]
    fn within_limits_and_tricky_strings_pass() {
        let env: Vec<_> = (0..1024)
            .map(|i| json!({"key": format!("K{i}"), "value": "\"[{,"}))
            .collect();
        let body = json!({"spec": {"kind": {"subprocess": {"env": env, "command": {"args": ["a\\", "]"]}}}, "labels": {"env": "x"}}});
        assert_eq!(msg(&body), None);
        assert_eq!(msg(&json!({})), None);
        assert_eq!(msg(&json!([])), None);
        // Malformed input is left to the decoder.
        for bad in [&b"{\"a"[..], b"]]]", b"{\"a\":\"\\", b"", b"\"x\\\""] {
            assert!(check(bad).is_ok());
        }
    }
}
