//! SIGHUP: re-read the configuration file and the token file, reload the TLS certificate
//! and the log level, and leave everything else (running tasks above all) as it is. A changed setting that
//! needs a restart (a listen address, isolation, retention, …) is logged as ignored.

use std::{collections::BTreeMap, ffi::OsString, sync::OnceLock};

use anyhow::{Context as _, Result};
use clap::FromArgMatches as _;
use solti_api::{SharedToken, TlsReloader};
use tokio::signal::unix::Signal;
use tokio_util::sync::CancellationToken;

use crate::Config;

/// How the agent was configured: the command and the arguments `main` parsed, and the
/// effective configuration then (as `--print-config` renders it).
#[derive(Debug)]
pub(crate) struct Origin {
    pub(crate) cmd: clap::Command,
    pub(crate) argv: Vec<OsString>,
    pub(crate) rendered: String,
    /// The token `SOLTI_AGENT_TOKEN` gave at start (removed from the environment since):
    /// flags and variables override the file, on reload as at start.
    pub(crate) env_token: Option<crate::Secret>,
}

static ORIGIN: OnceLock<Origin> = OnceLock::new();

/// Records how `main` configured the agent, for reloads.
pub(crate) fn set_origin(origin: Origin) {
    let _ = ORIGIN.set(origin);
}

/// Keys a reload applies without a restart.
const RELOADABLE: [&str; 6] = [
    "token",
    "token_file",
    "tls_cert",
    "tls_key",
    "tls_client_ca",
    "log_level",
];

/// What a reload can change in the running agent.
#[derive(Debug)]
pub(crate) struct Reloadable {
    /// The configuration the agent runs with (updated by each successful reload).
    pub(crate) config: Config,
    /// The API token, when the agent started with one.
    pub(crate) token: Option<SharedToken>,
    /// The API listener's TLS, when the agent started with TLS.
    pub(crate) tls: Option<TlsReloader>,
}

/// Reloads on every SIGHUP until `stop` is cancelled.
pub(crate) async fn on_hangup(mut hangup: Signal, mut state: Reloadable, stop: CancellationToken) {
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            got = hangup.recv() => if got.is_none() { return },
        }
        tracing::info!(
            signal = "SIGHUP",
            "reloading configuration, token, TLS certificate and log level"
        );
        crate::notify::notifier().send("RELOADING=1\nSTATUS=reloading");
        match reload(&mut state) {
            Ok(()) => tracing::info!("reload done; running tasks untouched"),
            Err(e) => tracing::error!(
                error = format!("{e:#}"),
                "reload failed; keeping the previous configuration"
            ),
        }
        crate::notify::notifier().send("READY=1\nSTATUS=serving (reloaded)");
    }
}

fn reload(state: &mut Reloadable) -> Result<()> {
    let new = match ORIGIN.get() {
        Some(origin) => {
            let env_given: &[&str] = if origin.env_token.is_some() {
                &["token"]
            } else {
                &[]
            };
            let parsed = crate::file::parse_with_env(&origin.cmd, &origin.argv, env_given)?;
            log_ignored(&origin.rendered, &crate::file::render(&origin.cmd, &parsed));
            let mut new = Config::from_arg_matches(&parsed.matches)?;
            // The same choice between --token and --token-file as at start.
            crate::run::pick_token_source(&mut new, &parsed.matches)?;
            // SOLTI_AGENT_TOKEN was removed from the environment at start: its value still
            // beats the file (the file's token keys were left out above).
            if new.token.is_none() && new.token_file.is_none() {
                new.token.clone_from(&origin.env_token);
            }
            new
        }
        // Embedded through `run_with`: no command line to re-read; reload the files.
        None => state.config.clone(),
    };
    let mut new = new;
    if state.config.tls_client_ca.is_some() && new.tls_client_ca.is_none() {
        // Client certificates may be the only auth of a non-loopback listener.
        tracing::warn!(
            "tls_client_ca was removed; turning client-certificate auth off needs a restart \
             (ignored: the previous CA stays)"
        );
        new.tls_client_ca.clone_from(&state.config.tls_client_ca);
    }
    if let Some(shared) = &state.token {
        match crate::run::load_token(&new)? {
            Some(token) => shared.replace(token),
            None => tracing::warn!(
                "the new configuration has no token; turning auth off needs a restart (ignored)"
            ),
        }
    } else if new.has_auth() && new.tls_client_ca.is_none() {
        tracing::warn!("a token was configured; turning auth on needs a restart (ignored)");
    }
    if let Some(reloader) = &state.tls {
        match crate::run::server_tls(&new)? {
            Some(tls) => reloader.reload(&tls),
            None => tracing::warn!(
                "TLS was removed from the configuration; that needs a restart (ignored)"
            ),
        }
    } else if new.tls_cert.is_some() {
        tracing::warn!("TLS was configured; turning it on needs a restart (ignored)");
    }
    if new.log_level != state.config.log_level {
        match solti_observe::set_log_level(&new.log_level) {
            Ok(true) => tracing::info!(level = %new.log_level, "log level changed"),
            Ok(false) => tracing::warn!("no logger of ours is installed; log level unchanged"),
            Err(e) => return Err(e).context("--log-level / SOLTI_LOG_LEVEL"),
        }
    }
    state.config = new;
    Ok(())
}

/// Logs every key whose value changed but needs a restart.
fn log_ignored(before: &str, after: &str) {
    let values = |text: &str| -> BTreeMap<String, String> {
        text.lines()
            .filter_map(|l| {
                let l = l.strip_prefix("# ").unwrap_or(l);
                let (key, rest) = l.split_once(" = ")?;
                // Drop the source comment: a value moving from flag to file is no change.
                let value = rest.rsplit_once("  # ").map_or(rest, |(v, _)| v);
                Some((key.to_owned(), value.to_owned()))
            })
            .collect()
    };
    let (old, new) = (values(before), values(after));
    for (key, value) in &new {
        if RELOADABLE.contains(&key.as_str()) || old.get(key) == Some(value) {
            continue;
        }
        tracing::warn!(
            key = %key,
            "configuration key changed; it takes effect at the next restart (ignored now)"
        );
    }
}
