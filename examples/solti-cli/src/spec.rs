//! Building a `CreateSpec` from `solti run` flags. Every enum is set explicitly (the agents
//! refuse `*_UNSPECIFIED`).

use std::collections::HashMap;

use base64::Engine as _;
use solti_api::pb;

use crate::{
    cli::{Admission, Jitter, Restart, RunArgs, Runtime},
    duration,
    error::{Error, Result},
};

/// The largest script body the agents accept (decoded).
const MAX_SCRIPT: u64 = 2 << 20;
/// The longest slot the agents accept.
const MAX_SLOT: usize = 64;
/// The length a derived slot is cut to (on a word boundary), so it stays readable.
const DERIVED_SLOT: usize = 32;

/// The spec of `solti run`.
pub(crate) fn from_run(args: &RunArgs) -> Result<pb::CreateSpec> {
    let timeout_ms = duration::parse_agent_ms(&args.timeout)
        .map_err(|e| Error::usage(format!("--timeout {e}")))?;
    let restart_interval_ms = args
        .restart_interval
        .as_deref()
        .map(|d| {
            duration::parse_agent_ms(d).map_err(|e| Error::usage(format!("--restart-interval {e}")))
        })
        .transpose()?;
    if restart_interval_ms.is_some() && args.restart != Restart::Always {
        return Err(Error::usage(
            "--restart-interval: only with --restart always",
        ));
    }
    if args.retries == Some(0) {
        return Err(Error::usage(
            "--retries 0: give 1 or more (or --restart never for no retries)",
        ));
    }
    let (first_ms, max_ms) = parse_backoff(&args.backoff)?;
    let env = args
        .env
        .iter()
        .map(|kv| {
            let (key, value) = key_value(kv, "--env")?;
            Ok(pb::KeyValue { key, value })
        })
        .collect::<Result<Vec<_>>>()?;
    let labels = args
        .labels
        .iter()
        .map(|kv| key_value(kv, "--label"))
        .collect::<Result<HashMap<_, _>>>()?;
    let mut selector = pb::RunnerSelector::default();
    for expr in &args.selectors {
        parse_selector(expr, &mut selector)?;
    }
    let mode = match &args.script {
        Some(path) => {
            let runtime = match args.runtime {
                Some(r) => r,
                None => runtime_from_extension(path)?,
            };
            let meta = std::fs::metadata(path)
                .map_err(|e| Error::usage(format!("--script {}: {e}", path.display())))?;
            if meta.len() > MAX_SCRIPT {
                return Err(Error::usage(format!(
                    "--script {}: {} bytes, the agents accept at most {MAX_SCRIPT}",
                    path.display(),
                    meta.len()
                )));
            }
            let body = std::fs::read(path)
                .map_err(|e| Error::usage(format!("--script {}: {e}", path.display())))?;
            let well_known = match runtime {
                Runtime::Bash => pb::ScriptRuntime::Bash,
                Runtime::Python => pb::ScriptRuntime::Python,
                Runtime::Node => pb::ScriptRuntime::Node,
            };
            pb::subprocess_task::Mode::Script(pb::ScriptMode {
                runtime: Some(pb::script_mode::Runtime::WellKnown(well_known as i32)),
                body: base64::engine::general_purpose::STANDARD.encode(body),
                args: args.command.clone(),
            })
        }
        None => {
            let Some((program, rest)) = args.command.split_first() else {
                return Err(Error::usage(
                    "no command: give it after `--`, e.g. solti run -- echo hello (or use --script FILE)",
                ));
            };
            if program.is_empty() {
                return Err(Error::usage("the command after `--` is empty"));
            }
            pb::subprocess_task::Mode::Command(pb::CommandMode {
                command: program.clone(),
                args: rest.to_vec(),
            })
        }
    };
    let slot = match &args.slot {
        Some(slot) => {
            check_slot(slot)?;
            slot.clone()
        }
        None => derive_slot(args),
    };
    Ok(pb::CreateSpec {
        slot,
        kind: Some(pb::TaskKind {
            kind: Some(pb::task_kind::Kind::Subprocess(pb::SubprocessTask {
                mode: Some(mode),
                env,
                cwd: args.cwd.clone(),
                fail_on_non_zero: true,
            })),
        }),
        timeout_ms,
        restart: match args.restart {
            Restart::Never => pb::RestartStrategy::Never,
            Restart::OnFailure => pb::RestartStrategy::OnFailure,
            Restart::Always => pb::RestartStrategy::Always,
        } as i32,
        restart_interval_ms,
        backoff: Some(pb::BackoffStrategy {
            jitter: match args.jitter {
                Jitter::None => pb::JitterStrategy::None,
                Jitter::Full => pb::JitterStrategy::Full,
                Jitter::Equal => pb::JitterStrategy::Equal,
                Jitter::Decorrelated => pb::JitterStrategy::Decorrelated,
            } as i32,
            first_ms,
            max_ms,
            factor: 2.0,
        }),
        admission: match args.admission {
            Admission::DropIfRunning => pb::AdmissionStrategy::DropIfRunning,
            Admission::Replace => pb::AdmissionStrategy::Replace,
            Admission::Queue => pb::AdmissionStrategy::Queue,
        } as i32,
        labels,
        max_retries: args.retries,
        runner_selector: (!selector.match_labels.is_empty()
            || !selector.match_expressions.is_empty())
        .then_some(selector),
    })
}

/// `1s..30s` or `1s` (the maximum is then at least 30s, as the agents' default).
fn parse_backoff(s: &str) -> Result<(u64, u64)> {
    let bad = |e: String| Error::usage(format!("--backoff {e} (write FIRST..MAX, e.g. 1s..30s)"));
    let (first, max) = match s.split_once("..") {
        Some((f, m)) => (
            duration::parse_agent_ms(f).map_err(bad)?,
            Some(duration::parse_agent_ms(m).map_err(bad)?),
        ),
        None => (duration::parse_agent_ms(s).map_err(bad)?, None),
    };
    let max = max.unwrap_or(first.max(30_000));
    if max < first {
        return Err(Error::usage(format!(
            "--backoff {s:?}: the maximum is shorter than the first delay"
        )));
    }
    Ok((first, max))
}

fn key_value(kv: &str, flag: &str) -> Result<(String, String)> {
    match kv.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_owned(), v.to_owned())),
        _ => Err(Error::usage(format!(
            "{flag} {kv:?}: expected KEY=VALUE with a non-empty KEY"
        ))),
    }
}

/// Adds one selector expression to `selector`.
fn parse_selector(expr: &str, selector: &mut pb::RunnerSelector) -> Result<()> {
    let bad = |why: &str| {
        Error::usage(format!(
            "--selector {expr:?}: {why}; write `KEY in (A,B)`, `KEY notin (A,B)`, `KEY`, `!KEY` or `KEY=VALUE`"
        ))
    };
    let e = expr.trim();
    let valid_key = |k: &str| {
        !k.is_empty()
            && k.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '/'))
    };
    let requirement =
        |key: &str, op: pb::SelectorOperator, values: Vec<String>| pb::SelectorRequirement {
            key: key.to_owned(),
            operator: op as i32,
            values,
        };
    for (word, op) in [
        (" notin ", pb::SelectorOperator::NotIn),
        (" in ", pb::SelectorOperator::In),
    ] {
        if let Some((key, list)) = e.split_once(word) {
            let key = key.trim();
            if !valid_key(key) {
                return Err(bad("bad key"));
            }
            let list = list
                .trim()
                .strip_prefix('(')
                .and_then(|l| l.strip_suffix(')'))
                .ok_or_else(|| bad("the values go in parentheses"))?;
            let values: Vec<String> = list
                .split(',')
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
                .collect();
            if values.is_empty() {
                return Err(bad("at least one value is needed"));
            }
            selector
                .match_expressions
                .push(requirement(key, op, values));
            return Ok(());
        }
    }
    if let Some((key, value)) = e.split_once('=') {
        let key = key.trim();
        if !valid_key(key) {
            return Err(bad("bad key"));
        }
        selector
            .match_labels
            .insert(key.to_owned(), value.trim().to_owned());
        return Ok(());
    }
    if let Some(key) = e.strip_prefix('!') {
        let key = key.trim();
        if !valid_key(key) {
            return Err(bad("bad key"));
        }
        selector.match_expressions.push(requirement(
            key,
            pb::SelectorOperator::DoesNotExist,
            Vec::new(),
        ));
        return Ok(());
    }
    if !valid_key(e) {
        return Err(bad("not understood"));
    }
    selector
        .match_expressions
        .push(requirement(e, pb::SelectorOperator::Exists, Vec::new()));
    Ok(())
}

fn runtime_from_extension(path: &std::path::Path) -> Result<Runtime> {
    match path.extension().and_then(|e| e.to_str()) {
        Some("sh" | "bash") => Ok(Runtime::Bash),
        Some("py") => Ok(Runtime::Python),
        Some("js" | "mjs" | "cjs") => Ok(Runtime::Node),
        _ => Err(Error::usage(format!(
            "--runtime: required for {} (bash, python or node; the extension does not say)",
            path.display()
        ))),
    }
}

/// Slots are 1 to 64 characters of `[A-Za-z0-9._-]`.
fn check_slot(slot: &str) -> Result<()> {
    if slot.is_empty() || slot.len() > MAX_SLOT {
        return Err(Error::usage(format!(
            "--slot {slot:?}: must be 1 to {MAX_SLOT} characters"
        )));
    }
    if let Some(c) = slot
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        return Err(Error::usage(format!(
            "--slot {slot:?}: {c:?} is not allowed (letters, digits, '.', '_', '-')"
        )));
    }
    Ok(())
}

/// A readable slot from the command: its words joined by `-`, lower case, characters a slot
/// cannot hold dropped, cut on a word boundary (`sh -c 'exit 3'` → `sh-c-exit-3`).
pub(crate) fn derive_slot(args: &RunArgs) -> String {
    let mut words: Vec<String> = Vec::new();
    if let Some(script) = &args.script {
        words.push(
            script
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
        );
    }
    let mut iter = args.command.iter();
    if args.script.is_none()
        && let Some(program) = iter.next()
    {
        // The program's file name, not its path.
        words.push(program.rsplit('/').next().unwrap_or(program).to_owned());
    }
    words.extend(iter.cloned());
    let mut slot = String::new();
    for word in words
        .iter()
        .flat_map(|w| w.split(|c: char| !c.is_ascii_alphanumeric() && c != '.' && c != '_'))
    {
        let word: String = word
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_'))
            .collect::<String>()
            .trim_matches('.')
            .to_ascii_lowercase();
        if word.is_empty() {
            continue;
        }
        let extra = usize::from(!slot.is_empty()) + word.len();
        if slot.len() + extra > DERIVED_SLOT {
            if slot.is_empty() {
                slot = word.chars().take(DERIVED_SLOT).collect();
            }
            break;
        }
        if !slot.is_empty() {
            slot.push('-');
        }
        slot.push_str(&word);
    }
    if slot.is_empty() {
        "task".to_owned()
    } else {
        slot
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser as _;

    use super::*;
    use crate::cli::{Cli, Command};

    fn run(args: &[&str]) -> RunArgs {
        let mut argv = vec!["solti", "run"];
        argv.extend_from_slice(args);
        match Cli::try_parse_from(argv).unwrap().command {
            Command::Run(r) => r,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn slots_are_derived_readably() {
        assert_eq!(
            derive_slot(&run(&["--", "sh", "-c", "exit 3"])),
            "sh-c-exit-3"
        );
        assert_eq!(
            derive_slot(&run(&["--", "/usr/bin/pg_dump", "-Fc", "app"])),
            "pg_dump-fc-app"
        );
        assert_eq!(
            derive_slot(&run(&[
                "--",
                "sh",
                "-c",
                "for i in 1 2 3; do echo tick $i; sleep 1; done"
            ])),
            "sh-c-for-i-in-1-2-3-do-echo-tick"
        );
        assert_eq!(derive_slot(&run(&["--", "///"])), "task");
        let long = "x".repeat(100);
        assert_eq!(derive_slot(&run(&["--", &long])).len(), DERIVED_SLOT);
    }

    #[test]
    fn every_enum_is_explicit() {
        let spec = from_run(&run(&["--", "true"])).unwrap();
        assert_eq!(spec.restart, pb::RestartStrategy::Never as i32);
        assert_eq!(spec.admission, pb::AdmissionStrategy::DropIfRunning as i32);
        let backoff = spec.backoff.unwrap();
        assert_eq!(backoff.jitter, pb::JitterStrategy::Full as i32);
        assert_eq!((backoff.first_ms, backoff.max_ms), (1000, 30_000));
        assert_eq!(spec.timeout_ms, 86_400_000);
        assert!(spec.runner_selector.is_none());
    }

    #[test]
    fn flags_map_to_fields() {
        let spec = from_run(&run(&[
            "--slot",
            "web",
            "--restart",
            "on-failure",
            "--retries",
            "3",
            "--timeout",
            "30s",
            "--backoff",
            "500ms..5s",
            "--jitter",
            "none",
            "--admission",
            "queue",
            "--env",
            "A=1",
            "--env",
            "B=x=y",
            "--cwd",
            "/tmp",
            "--label",
            "zone=eu",
            "--selector",
            "arch in (x86_64, arm64)",
            "--selector",
            "!gpu",
            "--selector",
            "ssd",
            "--",
            "echo",
            "hi",
        ]))
        .unwrap();
        assert_eq!(spec.slot, "web");
        assert_eq!(spec.max_retries, Some(3));
        assert_eq!(spec.timeout_ms, 30_000);
        let b = spec.backoff.unwrap();
        assert_eq!((b.first_ms, b.max_ms), (500, 5000));
        assert_eq!(spec.labels.get("zone").map(String::as_str), Some("eu"));
        let sel = spec.runner_selector.unwrap();
        assert_eq!(sel.match_expressions.len(), 3);
        assert_eq!(sel.match_expressions[0].values, ["x86_64", "arm64"]);
        let Some(pb::task_kind::Kind::Subprocess(sub)) = spec.kind.unwrap().kind else {
            panic!("subprocess")
        };
        assert_eq!(sub.env[1].value, "x=y");
        assert_eq!(sub.cwd.as_deref(), Some("/tmp"));
    }

    #[test]
    fn bad_values_name_their_flag() {
        for (args, flag) in [
            (&["--timeout", "30", "--", "x"][..], "--timeout"),
            (&["--timeout", "0s", "--", "x"], "--timeout"),
            (&["--retries", "0", "--", "x"], "--retries"),
            (&["--backoff", "5s..1s", "--", "x"], "--backoff"),
            (&["--backoff", "fast", "--", "x"], "--backoff"),
            (&["--env", "NOEQUALS", "--", "x"], "--env"),
            (&["--label", "=v", "--", "x"], "--label"),
            (&["--selector", "a in b", "--", "x"], "--selector"),
            (&["--slot", "a b", "--", "x"], "--slot"),
            (
                &["--restart-interval", "5s", "--", "x"],
                "--restart-interval",
            ),
            (&["--script", "/nonexistent.sh"], "--script"),
            (&["--script", "/nonexistent/script"], "--runtime"),
        ] {
            let err = from_run(&run(args)).unwrap_err();
            assert!(err.message.starts_with(flag), "{args:?}: {}", err.message);
            assert_eq!(err.code, crate::error::EXIT_USAGE);
        }
        assert!(
            from_run(&run(&["--slot", "x"]))
                .unwrap_err()
                .message
                .contains("no command")
        );
    }
}
