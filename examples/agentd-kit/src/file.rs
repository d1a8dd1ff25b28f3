//! `--config agent.toml`: every flag as a snake_case key, under flags and `SOLTI_*`
//! variables, over the defaults; and `--print-config`.
//!
//! The command line is parsed first. Then, for every key of the file whose flag was given
//! neither on the command line nor through its variable, the value is checked with that
//! flag's own parser (so the file accepts exactly what the flag accepts, and an error names
//! the key) and appended to the command line, which is parsed again. A flag added to
//! [`Config`](crate::Config) is therefore a key of the file with no further code.

use std::{
    collections::BTreeMap,
    ffi::OsString,
    fmt::Write as _,
    path::{Path, PathBuf},
};

use anyhow::{Context as _, Result, bail};
use clap::{ArgMatches, Command, parser::ValueSource};

/// Largest configuration file read.
const MAX_FILE_BYTES: u64 = 1 << 20;

/// Keys the file may not set: they say where the file is and what to do with it.
const NOT_IN_FILE: [&str; 4] = ["config", "print_config", "help", "version"];

/// Keys that set one thing in two forms: when a flag or variable sets any key of a group,
/// the file's values for the whole group are ignored (the file's `token_file` never beats
/// `SOLTI_AGENT_TOKEN`, nor the file's `token` a `--token-file`).
const GROUPS: [&[&str]; 1] = [&["token", "token_file"]];

/// Keys whose value `--print-config` never shows.
const SECRET_KEYS: [&str; 1] = ["token"];

/// Where each effective value came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Source {
    /// The command line.
    Flag,
    /// A `SOLTI_*` variable.
    Env,
    /// The configuration file.
    File,
    /// The built-in default (or unset).
    Default,
}

impl Source {
    const fn as_str(self) -> &'static str {
        match self {
            Self::Flag => "flag",
            Self::Env => "env",
            Self::File => "file",
            Self::Default => "default",
        }
    }
}

/// The parsed configuration: the matches over command line, variables and file, and where
/// each key's value came from.
#[derive(Debug)]
pub(crate) struct Parsed {
    pub(crate) matches: ArgMatches,
    pub(crate) sources: BTreeMap<String, Source>,
}

/// The keys of the configuration file: every long flag but `--config`, `--print-config`,
/// `--help` and `--version`, with `-` as `_`.
pub(crate) fn keys(cmd: &Command) -> Vec<String> {
    cmd.get_arguments()
        .filter(|a| a.get_long().is_some())
        .map(|a| a.get_id().as_str().to_owned())
        .filter(|id| !NOT_IN_FILE.contains(&id.as_str()))
        .collect()
}

/// Parses `argv` with `cmd`, then merges the file named by `--config` / `SOLTI_CONFIG`.
///
/// # Errors
/// A clap error (also for `--help` and `--version`, which the caller prints), an unreadable
/// or malformed file, an unknown key or a bad value (naming the file and the key).
pub(crate) fn parse(cmd: &Command, argv: &[OsString]) -> Result<Parsed> {
    parse_with_env(cmd, argv, &[])
}

/// [`parse`], counting the keys in `env_given` as set by their variable even though the
/// environment no longer holds them (on reload: `SOLTI_AGENT_TOKEN` was removed from the
/// environment at start, and its value still overrides the file).
///
/// # Errors
/// As [`parse`].
pub(crate) fn parse_with_env(
    cmd: &Command,
    argv: &[OsString],
    env_given: &[&str],
) -> Result<Parsed> {
    let first = cmd.clone().try_get_matches_from(argv)?;
    let mut sources = BTreeMap::new();
    for key in keys(cmd) {
        let source = match first.value_source(&key) {
            Some(ValueSource::CommandLine) => Source::Flag,
            Some(ValueSource::EnvVariable) => Source::Env,
            _ if env_given.contains(&key.as_str()) => Source::Env,
            _ => Source::Default,
        };
        sources.insert(key, source);
    }
    // A flag or variable for one key of a group overrides the file for all of them.
    let overridden: Vec<&str> = GROUPS
        .iter()
        .filter(|group| {
            group
                .iter()
                .any(|k| sources.get(*k).is_some_and(|s| *s != Source::Default))
        })
        .flat_map(|group| group.iter().copied())
        .collect();
    let Some(path) = first.get_one::<PathBuf>("config").cloned() else {
        return Ok(Parsed {
            matches: first,
            sources,
        });
    };
    let table = read(&path)?;
    let mut extra: Vec<OsString> = Vec::new();
    for (key, value) in &table {
        let arg = cmd
            .get_arguments()
            .find(|a| a.get_id() == key.as_str() && a.get_long().is_some())
            .filter(|_| !NOT_IN_FILE.contains(&key.as_str()));
        let Some(arg) = arg else {
            bail!(
                "config file {}: unknown key `{key}` (the keys are the long flags with `_` for `-`; see --help)",
                path.display()
            );
        };
        let long = arg.get_long().unwrap_or_default();
        let takes_value = arg.get_action().takes_values();
        let values = values_of(value, takes_value)
            .map_err(|rule| anyhow::anyhow!("config file {}: `{key}`: {rule}", path.display()))?;
        // Checked with the flag's own parser, so the message names the key.
        if takes_value {
            let probe = Command::new("config").no_binary_name(true).arg(
                // The flag alone: same parser, none of its links to other flags.
                arg.clone()
                    .requires(clap::builder::Resettable::Reset)
                    .conflicts_with(clap::builder::Resettable::Reset)
                    .env(None)
                    .required(false)
                    .action(clap::ArgAction::Append),
            );
            for v in &values {
                probe
                    .clone()
                    .try_get_matches_from([format!("--{long}={v}")])
                    .map_err(|e| {
                        let text = e.to_string();
                        let text = text.trim().trim_start_matches("error: ");
                        let text = text.lines().next().unwrap_or_default().to_owned();
                        anyhow::anyhow!("config file {}: `{key}` = {v:?}: {text}", path.display())
                    })?;
            }
        }
        if sources.get(key.as_str()) != Some(&Source::Default) || overridden.contains(&key.as_str())
        {
            // A flag or a variable overrides the file.
            continue;
        }
        sources.insert(key.clone(), Source::File);
        if !takes_value {
            if values.first().is_some_and(|v| v == "true") {
                extra.push(format!("--{long}").into());
            }
            continue;
        }
        for v in values {
            extra.push(format!("--{long}={v}").into());
        }
    }
    let mut all = argv.to_vec();
    all.extend(extra);
    let matches = cmd
        .clone()
        .try_get_matches_from(&all)
        .with_context(|| format!("config file {}", path.display()))?;
    Ok(Parsed { matches, sources })
}

fn read(path: &Path) -> Result<toml::Table> {
    let meta = std::fs::metadata(path)
        .with_context(|| format!("--config / SOLTI_CONFIG: cannot read {}", path.display()))?;
    if meta.len() > MAX_FILE_BYTES {
        bail!(
            "config file {}: larger than {MAX_FILE_BYTES} bytes",
            path.display()
        );
    }
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("--config / SOLTI_CONFIG: cannot read {}", path.display()))?;
    text.parse::<toml::Table>()
        .map_err(|e| anyhow::anyhow!("config file {}: {e}", path.display()))
}

/// A TOML value as the flag's command-line values.
fn values_of(value: &toml::Value, takes_value: bool) -> Result<Vec<String>, String> {
    use toml::Value as V;
    if !takes_value {
        return match value {
            V::Boolean(b) => Ok(vec![b.to_string()]),
            other => Err(format!("expected true or false, got {}", other.type_str())),
        };
    }
    let scalar = |v: &V| match v {
        V::String(s) => Ok(s.clone()),
        V::Integer(i) => Ok(i.to_string()),
        V::Float(f) => Ok(f.to_string()),
        V::Boolean(b) => Ok(b.to_string()),
        other => Err(format!(
            "expected a string or a number, got {}",
            other.type_str()
        )),
    };
    match value {
        V::Array(items) => items.iter().map(scalar).collect(),
        V::Table(t) => t
            .iter()
            .map(|(k, v)| scalar(v).map(|v| format!("{k}={v}")))
            .collect(),
        other => scalar(other).map(|v| vec![v]),
    }
}

/// The effective configuration as TOML: every key, its value (secrets redacted, unset keys
/// commented out) and where it came from.
pub(crate) fn render(cmd: &Command, parsed: &Parsed) -> String {
    let mut out = String::from(
        "# Effective configuration (--print-config). Values from flags and SOLTI_* variables\n\
         # override the config file, which overrides the defaults.\n",
    );
    for key in keys(cmd) {
        let Some(arg) = cmd.get_arguments().find(|a| a.get_id() == key.as_str()) else {
            continue;
        };
        let source = parsed
            .sources
            .get(&key)
            .copied()
            .unwrap_or(Source::Default)
            .as_str();
        let value = if arg.get_action().takes_values() {
            let raw: Vec<String> = parsed
                .matches
                .get_raw(&key)
                .map(|vals| vals.map(|v| v.to_string_lossy().into_owned()).collect())
                .unwrap_or_default();
            if raw.is_empty() {
                let _ = writeln!(out, "# {key} = (unset)");
                continue;
            }
            if SECRET_KEYS.contains(&key.as_str()) {
                "\"<redacted>\"".to_owned()
            } else if arg.get_num_args().is_some_and(|n| n.max_values() > 1)
                || arg.get_value_delimiter().is_some()
            {
                let items: Vec<String> = raw.iter().map(|v| toml_scalar(v)).collect();
                format!("[{}]", items.join(", "))
            } else {
                toml_scalar(&raw[0])
            }
        } else {
            parsed.matches.get_flag(&key).to_string()
        };
        let _ = writeln!(out, "{key} = {value}  # {source}");
    }
    out
}

/// A number when the text is one (without leading zeros), a quoted string otherwise.
fn toml_scalar(raw: &str) -> String {
    match raw.parse::<i64>() {
        Ok(n) if n.to_string() == raw => raw.to_owned(),
        _ => toml::Value::String(raw.to_owned()).to_string(),
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write as _;

    use clap::FromArgMatches as _;

    use super::*;
    use crate::{Config, TransportKind};

    fn cmd() -> Command {
        crate::run::command(TransportKind::Http)
    }

    fn with_file(text: &str, args: &[&str]) -> Result<Parsed> {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(text.as_bytes()).unwrap();
        let mut argv: Vec<OsString> = vec!["agentd-http".into(), "--config".into()];
        argv.push(f.path().into());
        argv.extend(args.iter().map(OsString::from));
        parse(&cmd(), &argv)
    }

    #[test]
    fn file_values_under_flags() {
        let p = with_file(
            "heartbeat_ms = 5000\nmetrics_listen = \"off\"\nno_new_privs = true\n\
             task_memory_max = \"64M\"\nkeep_capabilities = [\"net_raw\"]\n\
             [metadata]\nrack = \"r1\"\n",
            &["--heartbeat-ms", "2000"],
        )
        .unwrap();
        let c = Config::from_arg_matches(&p.matches).unwrap();
        assert_eq!(c.heartbeat_ms, 2000);
        assert_eq!(p.sources["heartbeat_ms"], Source::Flag);
        assert_eq!(c.metrics_listen, "off");
        assert_eq!(p.sources["metrics_listen"], Source::File);
        assert!(c.no_new_privs);
        assert_eq!(c.task_memory_max, Some(64 << 20));
        assert_eq!(c.keep_capabilities, ["net_raw"]);
        assert_eq!(c.metadata, [("rack".to_owned(), "r1".to_owned())]);
        assert_eq!(p.sources["log_level"], Source::Default);
    }

    fn parse_file_with_env(text: &str, args: &[&str], env_given: &[&str]) -> Parsed {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(text.as_bytes()).unwrap();
        let mut argv: Vec<OsString> = vec!["agentd-http".into(), "--config".into()];
        argv.push(f.path().into());
        argv.extend(args.iter().map(OsString::from));
        parse_with_env(&cmd(), &argv, env_given).unwrap()
    }

    #[test]
    fn a_token_from_flag_or_env_keeps_the_files_token_keys_out() {
        let file = "token = \"from-file\"\ntoken_file = \"/etc/file-token\"\n";
        // The file alone: both keys (the agent then refuses the ambiguity).
        let p = parse_file_with_env(file, &[], &[]);
        assert_eq!(p.sources["token"], Source::File);
        assert_eq!(p.sources["token_file"], Source::File);
        // A --token-file flag: the file's token is ignored too.
        let p = parse_file_with_env(file, &["--token-file", "/run/flag-token"], &[]);
        let c = Config::from_arg_matches(&p.matches).unwrap();
        assert!(c.token.is_none(), "{c:?}");
        assert_eq!(c.token_file.unwrap().to_str(), Some("/run/flag-token"));
        // SOLTI_AGENT_TOKEN consumed at start (a reload): neither file key applies.
        let p = parse_file_with_env(file, &[], &["token"]);
        let c = Config::from_arg_matches(&p.matches).unwrap();
        assert!(c.token.is_none() && c.token_file.is_none(), "{c:?}");
        assert_eq!(p.sources["token"], Source::Env);
        assert_eq!(p.sources["token_file"], Source::Default);
        // Other keys of the file still apply.
        let p = parse_file_with_env("heartbeat_ms = 7000\ntoken = \"f\"\n", &[], &["token"]);
        let c = Config::from_arg_matches(&p.matches).unwrap();
        assert_eq!(c.heartbeat_ms, 7000);
        assert!(c.token.is_none());
    }

    #[test]
    fn unknown_keys_and_bad_values_name_the_key() {
        let err = format!("{:#}", with_file("memory_max = 1\n", &[]).unwrap_err());
        assert!(err.contains("unknown key `memory_max`"), "{err}");
        let err = format!("{:#}", with_file("config = \"x\"\n", &[]).unwrap_err());
        assert!(err.contains("unknown key `config`"), "{err}");
        let err = format!(
            "{:#}",
            with_file("heartbeat_ms = \"soon\"\n", &[]).unwrap_err()
        );
        assert!(err.contains("`heartbeat_ms` = \"soon\""), "{err}");
        let err = format!("{:#}", with_file("no_new_privs = 1\n", &[]).unwrap_err());
        assert!(
            err.contains("`no_new_privs`: expected true or false"),
            "{err}"
        );
        let err = format!(
            "{:#}",
            with_file("task_cpu_max = \"9/9\"\n", &[]).unwrap_err()
        );
        assert!(
            err.contains("`task_cpu_max`") && err.contains("period"),
            "{err}"
        );
        let err = format!(
            "{:#}",
            with_file("metadata = [\"novalue\"]\n", &[]).unwrap_err()
        );
        assert!(
            err.contains("`metadata`") && err.contains("KEY=VALUE"),
            "{err}"
        );
        let err = format!("{:#}", with_file("listen = [[1]]\n", &[]).unwrap_err());
        assert!(err.contains("`listen`"), "{err}");
        let err = format!("{:#}", with_file("not toml at all", &[]).unwrap_err());
        assert!(err.contains("config file"), "{err}");
    }

    #[test]
    fn print_config_redacts_and_round_trips() {
        let p = with_file("token = \"very-secret-token\"\nmax_running = 3\n", &[]).unwrap();
        let text = render(&cmd(), &p);
        assert!(!text.contains("very-secret-token"), "{text}");
        assert!(text.contains("token = \"<redacted>\"  # file"), "{text}");
        assert!(text.contains("max_running = 3  # file"), "{text}");
        // The output, minus the redacted secret, is a config file the agent accepts.
        let again: String = text
            .lines()
            .filter(|l| !l.starts_with("token ="))
            .map(|l| format!("{l}\n"))
            .collect();
        let p2 = with_file(&again, &[]).unwrap();
        assert_eq!(render(&cmd(), &p2).lines().count(), text.lines().count());
    }

    /// The example shipped with the systemd unit is a file the agent accepts.
    #[test]
    fn the_deploy_example_is_valid() {
        let text = include_str!("../../../docs/deploy/agent.toml");
        let p = with_file(text, &[]).unwrap();
        assert_eq!(p.sources["task_memory_max"], Source::File);
        let c = Config::from_arg_matches(&p.matches).unwrap();
        assert_eq!(c.task_memory_max, Some(512 << 20));
        let _ = c.backend_config().unwrap();
    }

    /// docs/configuration.md lists every key, with its flag, variable and default, and
    /// nothing else.
    #[test]
    fn the_doc_lists_every_key() {
        let doc = include_str!("../../../docs/configuration.md");
        let section = doc.split("## Keys").nth(1).unwrap();
        let mut documented = BTreeMap::new();
        for line in section.lines().filter(|l| l.starts_with("| `")) {
            let cells: Vec<&str> = line
                .split(" | ")
                .map(|c| c.trim_matches(['|', ' ']))
                .collect();
            let key = cells[0].trim_matches('`').to_owned();
            documented.insert(
                key,
                (
                    cells[1].to_owned(),
                    cells[2].to_owned(),
                    cells[3].to_owned(),
                ),
            );
        }
        let cmd = cmd();
        let keys = keys(&cmd);
        let missing: Vec<_> = keys
            .iter()
            .filter(|k| !documented.contains_key(*k))
            .collect();
        assert!(
            missing.is_empty(),
            "keys missing from docs/configuration.md: {missing:?}"
        );
        let extra: Vec<_> = documented.keys().filter(|k| !keys.contains(k)).collect();
        assert!(
            extra.is_empty(),
            "docs/configuration.md lists unknown keys: {extra:?}"
        );
        for arg in cmd
            .get_arguments()
            .filter(|a| keys.contains(&a.get_id().to_string()))
        {
            let key = arg.get_id().as_str();
            let (flag, env, default) = &documented[key];
            assert_eq!(*flag, format!("`--{}`", arg.get_long().unwrap()), "{key}");
            let want_env = arg.get_env().unwrap().to_string_lossy();
            assert!(want_env.starts_with("SOLTI_"), "{key} has no SOLTI_* twin");
            assert_eq!(*env, format!("`{want_env}`"), "{key}");
            if let Some(d) = arg.get_default_values().first() {
                let shown = format!("`{}`", toml_scalar(&d.to_string_lossy()));
                assert_eq!(*default, shown, "default of {key}");
            }
        }
        // Every flag, the two that are not keys included, has its SOLTI_* twin.
        for arg in cmd.get_arguments().filter(|a| a.get_long().is_some()) {
            let id = arg.get_id().as_str();
            if id == "help" || id == "version" {
                continue;
            }
            assert!(
                arg.get_env()
                    .is_some_and(|e| e.to_string_lossy().starts_with("SOLTI_")),
                "--{} has no SOLTI_* variable",
                arg.get_long().unwrap()
            );
        }
    }
}
