#![doc = include_str!("../README.md")]
//!
//! # Code map
//! - `cli`: the clap definition (flags, `SOLTI_*` twins, exit codes in `--help`).
//! - `target`: `--addr` forms; `conn`: TCP, TLS (solti-tls) and Unix sockets.
//! - `http`: the HTTP/JSON binding with the pbjson `serde` impls of `solti_api::pb`, SSE;
//!   `grpc`: solti-api's generated tonic client over one HTTP/2 connection, health checks.
//! - `client`: one facade over both; `commands`: the subcommands; `spec`: `run` flags to a
//!   `CreateSpec`; `render`: tables, colours, JSON lines; `duration`: human durations.
#![forbid(unsafe_code)]

mod cli;
mod client;
mod commands;
mod conn;
mod duration;
mod error;
mod grpc;
mod http;
mod render;
mod spec;
mod target;

use std::{path::Path, process::ExitCode, time::Duration};

use ::http::HeaderValue;
use clap::{CommandFactory as _, Parser as _};

use crate::{
    cli::{Cli, Command, Global},
    client::Client,
    commands::Ctx,
    conn::Connector,
    error::{EXIT_FAILED, EXIT_WAIT_ERROR, Error, Result},
    render::Out,
    target::{Api, Target},
};

/// The largest token file read.
const MAX_TOKEN_FILE: u64 = 64 << 10;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return clap_error(&e),
    };
    // `wait` and `run --wait/--follow` pass the task's exit code through: solti's own
    // failures then use 125 so they cannot be mistaken for it.
    let passes_code = matches!(
        &cli.command,
        Command::Wait(_)
            | Command::Run(cli::RunArgs { wait: true, .. } | cli::RunArgs { follow: true, .. })
    );
    let code = match run(cli) {
        Ok(code) => code,
        Err(e) => {
            if !e.message.is_empty() {
                eprintln!("solti: {e}");
            }
            if passes_code && e.code == EXIT_FAILED {
                EXIT_WAIT_ERROR
            } else {
                e.code
            }
        }
    };
    ExitCode::from(code)
}

/// Help and version as clap prints them; usage errors as one line (`solti: …`, exit 2).
fn clap_error(e: &clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    if matches!(
        e.kind(),
        ErrorKind::DisplayHelp
            | ErrorKind::DisplayVersion
            | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
    ) {
        let _ = e.print();
        return ExitCode::from(if e.use_stderr() { error::EXIT_USAGE } else { 0 });
    }
    let rendered = e.render().to_string();
    let line = rendered
        .lines()
        .map(str::trim)
        .filter(|l| {
            !l.is_empty() && !l.starts_with("Usage:") && !l.starts_with("For more information")
        })
        .collect::<Vec<_>>()
        .join(" ");
    eprintln!("solti: {}", line.strip_prefix("error: ").unwrap_or(&line));
    ExitCode::from(error::EXIT_USAGE)
}

fn run(cli: Cli) -> Result<u8> {
    if let Command::Completions { shell } = cli.command {
        clap_complete::generate(shell, &mut Cli::command(), "solti", &mut std::io::stdout());
        return Ok(error::EXIT_OK);
    }
    // Everything that can be checked locally is checked before anything is sent.
    let target = Target::parse(&cli.global.addr).map_err(Error::usage)?;
    let connect_timeout = duration::parse(&cli.global.connect_timeout)
        .map_err(|e| Error::usage(format!("--connect-timeout {e}")))?;
    if connect_timeout.is_zero() {
        return Err(Error::usage("--connect-timeout: must be more than 0"));
    }
    let auth = token(&cli.global, &target)?;
    let tls = tls_config(&cli.global, &target)?;
    let run_spec = match &cli.command {
        Command::Run(args) => Some(spec::from_run(args)?),
        _ => None,
    };
    let apply_spec = match &cli.command {
        Command::Apply(args) => Some(commands::read_spec(&args.file)?),
        _ => None,
    };
    let log_options = match &cli.command {
        Command::Logs(args) => Some(commands::log_options(args)?),
        _ => None,
    };
    match &cli.command {
        Command::Get(a)
        | Command::Runs(a)
        | Command::Cancel(a)
        | Command::Rm(a)
        | Command::Wait(a) => {
            client::check_id(&a.id)?;
        }
        Command::Logs(args) => client::check_id(&args.id)?,
        _ => {}
    }
    let connector = Connector::new(
        target.clone(),
        tls,
        cli.global.server_name.as_deref(),
        connect_timeout.min(Duration::from_secs(3600)),
    )?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::failed(format!("start the async runtime: {e}")))?;
    let output = cli.global.output;
    runtime.block_on(async move {
        let client = Client::connect(connector, auth).await?;
        let mut ctx = Ctx {
            client,
            output,
            out: Out::new(),
        };
        match &cli.command {
            Command::Run(args) => {
                let spec = run_spec.ok_or_else(|| Error::failed("no spec"))?;
                commands::run(&mut ctx, args, spec).await
            }
            Command::Apply(args) => {
                let spec = apply_spec.ok_or_else(|| Error::failed("no spec"))?;
                commands::apply(&mut ctx, args, spec).await
            }
            Command::Ls(args) => commands::ls(&mut ctx, args).await,
            Command::Get(a) => commands::get(&mut ctx, &a.id).await,
            Command::Runs(a) => commands::runs(&mut ctx, &a.id).await,
            Command::Logs(args) => {
                let opts = log_options.ok_or_else(|| Error::failed("no options"))?;
                commands::logs(&mut ctx, &args.id, &opts).await
            }
            Command::Cancel(a) => commands::cancel(&mut ctx, &a.id).await,
            Command::Rm(a) => commands::rm(&mut ctx, &a.id).await,
            Command::Wait(a) => commands::wait(&mut ctx, &a.id).await,
            Command::Health => commands::health(&mut ctx, &target.original).await,
            Command::Completions { .. } => Ok(error::EXIT_OK),
        }
    })
}

/// The `Authorization` value from `--token-file` / `SOLTI_TOKEN_FILE` / `SOLTI_TOKEN`.
fn token(global: &Global, target: &Target) -> Result<Option<HeaderValue>> {
    let (token, source) = match &global.token_file {
        Some(path) => (read_token_file(path)?, "--token-file"),
        None => match std::env::var("SOLTI_TOKEN") {
            Ok(t) => (t.trim().to_owned(), "SOLTI_TOKEN"),
            Err(std::env::VarError::NotPresent) => return Ok(None),
            Err(std::env::VarError::NotUnicode(_)) => {
                return Err(Error::usage("SOLTI_TOKEN: not valid UTF-8"));
            }
        },
    };
    if token.is_empty() {
        return Err(Error::usage(format!("{source}: the token is empty")));
    }
    if !target.tls && !target.is_local() && !global.insecure_cleartext_token {
        return Err(Error::usage(format!(
            "refusing to send the token in cleartext to {target}: use https:// or grpcs:// (or --insecure-cleartext-token)"
        )));
    }
    let mut value = HeaderValue::from_str(&format!("Bearer {token}")).map_err(|_| {
        Error::usage(format!(
            "{source}: the token has characters that cannot travel in a header"
        ))
    })?;
    value.set_sensitive(true);
    Ok(Some(value))
}

fn read_token_file(path: &Path) -> Result<String> {
    use std::io::Read as _;
    let shown = path.display();
    let mut text = String::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(MAX_TOKEN_FILE + 1).read_to_string(&mut text))
        .map_err(|e| Error::usage(format!("--token-file {shown}: {e}")))?;
    if text.len() as u64 > MAX_TOKEN_FILE {
        return Err(Error::usage(format!(
            "--token-file {shown}: over {MAX_TOKEN_FILE} bytes: not a token file"
        )));
    }
    Ok(text.lines().next().unwrap_or("").trim().to_owned())
}

/// The TLS client configuration for `https://` / `grpcs://` from `--ca`, `--cert`, `--key`.
fn tls_config(global: &Global, target: &Target) -> Result<Option<solti_tls::ClientTlsConfig>> {
    if !target.tls {
        if let Some(flag) = [
            (global.ca.is_some(), "--ca"),
            (global.cert.is_some(), "--cert"),
            (global.key.is_some(), "--key"),
        ]
        .iter()
        .find_map(|(set, flag)| set.then_some(flag))
        {
            return Err(Error::usage(format!(
                "{flag}: only for https:// or grpcs:// addresses (--addr is {target})"
            )));
        }
        return Ok(None);
    }
    let Some(ca) = &global.ca else {
        return Err(Error::usage(format!(
            "--ca: required for {target}: give the PEM CA that signed the agent's certificate"
        )));
    };
    let mut builder = solti_tls::ClientTlsConfig::builder().ca_pem_file(ca);
    match (&global.cert, &global.key) {
        (Some(cert), Some(key)) => {
            builder = builder.client_cert_pem_file(cert).client_key_pem_file(key);
        }
        (None, None) => {}
        (Some(_), None) => return Err(Error::usage("--cert: needs --key")),
        (None, Some(_)) => return Err(Error::usage("--key: needs --cert")),
    }
    builder = match target.api {
        Api::Http => builder.with_alpn(["http/1.1"]),
        Api::Grpc => builder.with_alpn(["h2"]),
    };
    builder
        .build()
        .map(Some)
        .map_err(|e| Error::usage(format!("TLS (--ca, --cert, --key): {e}")))
}
