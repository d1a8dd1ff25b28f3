//! A pass over a `SubmitTask` / `ApplyTask` message that refuses oversized lists before
//! prost decodes them (decoding 125,000 env entries or a 120,000-entry label map allocates
//! every one of them first: tens to hundreds of milliseconds).
//!
//! It walks the protobuf wire format along the schema of `CreateSpec`, counting the entries
//! of every list and map, and allocates nothing per element. Anything it does not
//! understand (a group, a truncated field) is left to prost, which reports it.

use solti_model::{MAX_ARGS, MAX_ENV_ENTRIES, MAX_LABELS, MAX_SELECTOR_VALUES};

use crate::ApiError;

/// The messages of the request that hold lists, or lead to one.
#[derive(Clone, Copy)]
enum Msg {
    Request,
    Spec,
    Kind,
    Subprocess,
    Wasm,
    Container,
    Command,
    Script,
    Selector,
    Requirement,
}

/// What field `field` of `msg` is: a message to walk into, and/or a list with a limit and
/// its wire name.
fn field_of(msg: Msg, field: u64) -> (Option<Msg>, Option<(usize, &'static str)>) {
    use Msg::*;
    match (msg, field) {
        (Request, 1) => (Some(Spec), None),
        (Spec, 2) => (Some(Kind), None),
        (Spec, 8) => (None, Some((MAX_LABELS, "labels"))),
        (Spec, 10) => (Some(Selector), None),
        (Kind, 1) => (Some(Subprocess), None),
        (Kind, 2) => (Some(Wasm), None),
        (Kind, 3) => (Some(Container), None),
        (Subprocess, 1) => (Some(Command), None),
        (Subprocess, 2) => (Some(Script), None),
        (Subprocess, 3) | (Wasm, 3) | (Container, 4) => (None, Some((MAX_ENV_ENTRIES, "env"))),
        (Command, 2) | (Script, 4) | (Wasm, 2) | (Container, 3) => (None, Some((MAX_ARGS, "args"))),
        (Container, 2) => (None, Some((MAX_ARGS, "command"))),
        (Selector, 1) => (None, Some((MAX_LABELS, "matchLabels"))),
        (Selector, 2) => (Some(Requirement), Some((MAX_LABELS, "matchExpressions"))),
        (Requirement, 3) => (None, Some((MAX_SELECTOR_VALUES, "values"))),
        _ => (None, None),
    }
}

/// The wire name of a message field that leads to a list.
fn name_of(msg: Msg, field: u64) -> &'static str {
    use Msg::*;
    match (msg, field) {
        (Request, 1) => "spec",
        (Spec, 2) => "kind",
        (Spec, 10) => "runnerSelector",
        (Kind, 1) => "subprocess",
        (Kind, 2) => "wasm",
        (Kind, 3) => "container",
        (Subprocess, 1) => "command",
        (Subprocess, 2) => "script",
        _ => "?",
    }
}

/// Refuses `message` (a `SubmitTaskRequest` or `ApplyTaskRequest`) when a list in it holds
/// more entries than its field allows.
pub(crate) fn check(message: &[u8]) -> Result<(), ApiError> {
    walk(message, Msg::Request, "", 0)
}

/// Most nesting followed (the schema is five deep).
const MAX_DEPTH: usize = 8;

fn walk(buf: &[u8], msg: Msg, path: &str, depth: usize) -> Result<(), ApiError> {
    if depth > MAX_DEPTH {
        return Ok(());
    }
    // Entries per list field of this message (field numbers of the schema are below 16).
    let mut counts = [0usize; 16];
    let mut pos = 0;
    while pos < buf.len() {
        let Some((key, after)) = varint(buf, pos) else {
            return Ok(());
        };
        pos = after;
        let field = key >> 3;
        let len = match key & 7 {
            0 => match varint(buf, pos) {
                Some((_, after)) => after - pos,
                None => return Ok(()),
            },
            1 => 8,
            5 => 4,
            2 => match varint(buf, pos) {
                Some((n, after)) => {
                    pos = after;
                    match usize::try_from(n) {
                        Ok(n) => n,
                        Err(_) => return Ok(()),
                    }
                }
                None => return Ok(()),
            },
            _ => return Ok(()), // groups: left to prost
        };
        let Some(body) = pos.checked_add(len).and_then(|end| buf.get(pos..end)) else {
            return Ok(());
        };
        pos += len;
        let (child, list) = field_of(msg, field);
        let index = usize::try_from(field)
            .ok()
            .and_then(|f| counts.get_mut(f))
            .map(|c| {
                *c += 1;
                *c - 1
            });
        if let Some(child) = child {
            let mut child_path = join(path, name_of(msg, field), list.map(|(_, n)| n));
            if list.is_some()
                && let Some(i) = index
            {
                child_path.push_str(&format!("[{i}]"));
            }
            walk(body, child, &child_path, depth + 1)?;
        }
    }
    for (field, &n) in counts.iter().enumerate() {
        if let (_, Some((limit, name))) = field_of(msg, field as u64)
            && n > limit
        {
            return Err(ApiError::invalid(
                join(path, name, None),
                format!("at most {limit} entries, got {n}"),
            ));
        }
    }
    Ok(())
}

fn join(path: &str, name: &str, list_name: Option<&str>) -> String {
    let name = list_name.unwrap_or(name);
    if path.is_empty() {
        name.to_owned()
    } else {
        format!("{path}.{name}")
    }
}

/// A base-128 varint at `pos`: its value and the position after it.
fn varint(buf: &[u8], mut pos: usize) -> Option<(u64, usize)> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let b = *buf.get(pos)?;
        pos += 1;
        value |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Some((value, pos));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use prost::Message as _;

    use super::*;
    use crate::pb;

    fn spec(env: usize, labels: usize, args: usize, values: usize) -> Vec<u8> {
        let spec = pb::CreateSpec {
            slot: "x".into(),
            kind: Some(pb::TaskKind {
                kind: Some(pb::task_kind::Kind::Subprocess(pb::SubprocessTask {
                    mode: Some(pb::subprocess_task::Mode::Command(pb::CommandMode {
                        command: "true".into(),
                        args: (0..args).map(|i| i.to_string()).collect(),
                    })),
                    env: (0..env)
                        .map(|i| pb::KeyValue {
                            key: format!("K{i}"),
                            value: "v".into(),
                        })
                        .collect(),
                    ..Default::default()
                })),
            }),
            labels: (0..labels).map(|i| (format!("l{i}"), "v".into())).collect(),
            runner_selector: Some(pb::RunnerSelector {
                match_labels: std::collections::HashMap::new(),
                match_expressions: vec![
                    pb::SelectorRequirement {
                        key: "a".into(),
                        operator: 3,
                        values: vec![],
                    },
                    pb::SelectorRequirement {
                        key: "k".into(),
                        operator: 1,
                        values: (0..values).map(|i| i.to_string()).collect(),
                    },
                ],
            }),
            ..Default::default()
        };
        pb::SubmitTaskRequest { spec: Some(spec) }.encode_to_vec()
    }

    fn msg(bytes: &[u8]) -> Option<String> {
        check(bytes).err().map(|e| e.to_string())
    }

    #[test]
    fn names_the_list_and_counts() {
        assert_eq!(msg(&spec(1024, 64, 4096, 64)), None);
        assert_eq!(
            msg(&spec(1025, 0, 0, 1)).unwrap(),
            "spec.kind.subprocess.env: at most 1024 entries, got 1025"
        );
        assert_eq!(
            msg(&spec(0, 65, 0, 1)).unwrap(),
            "spec.labels: at most 64 entries, got 65"
        );
        assert_eq!(
            msg(&spec(0, 0, 4097, 1)).unwrap(),
            "spec.kind.subprocess.command.args: at most 4096 entries, got 4097"
        );
        assert_eq!(
            msg(&spec(0, 0, 0, 65)).unwrap(),
            "spec.runnerSelector.matchExpressions[1].values: at most 64 entries, got 65"
        );
    }

    #[test]
    fn garbage_is_left_to_prost() {
        for bad in [&[0xffu8; 12][..], &[0x0a, 0x10, 0x01], &[0x0b], b""] {
            assert_eq!(msg(bad), None);
        }
    }
}
