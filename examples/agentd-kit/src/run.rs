//! Assembly of one running agent from the Solti crates.

use std::{sync::Arc, time::Duration};

use anyhow::{Context as _, Result};
use solti_api::{Health, SharedToken, TlsListener};
use solti_core::SupervisorApi;
use solti_model::{AgentId, Token};
use solti_observe::{LifecycleLogger, LogFormat, LoggerConfig, Timezone};
use solti_prometheus::SoltiMetrics;
use solti_runner::RunnerRouter;
use taskvisor::{ControllerConfig, SupervisorConfig};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::{
    Config, ListenAddr, LogFormatArg, LogTimezoneArg, Signals, TransportKind,
    load_or_create_agent_id, serve,
};

/// Runs an agent until SIGTERM / ctrl-c, then shuts down gracefully: stop accepting, cancel
/// every task, kill and reap every child, exit.
///
/// Tasks of the built-in subprocess runner get a clean environment (the agent's `PATH`,
/// `HOME`, `LANG` and `TZ`, then their own `env`) unless `--inherit-env` is set, and never
/// the agent's `SOLTI_*` variables (the API token among them), whichever entry point started
/// the agent. With `--task-user` they run as that user and group. The agent process is
/// marked non-dumpable, so a task running as the agent's own user cannot read its memory or
/// `/proc/<pid>/environ` either.
///
/// # Errors
/// Configuration errors (each names the flag), and start-up failures (ports, files).
pub async fn run(config: Config, transport: TransportKind) -> Result<()> {
    run_with(config, transport, |_| Ok(())).await
}

/// [`run`] with extra runners: `runners` is called once, before the supervisor starts, with
/// the router that already holds the built-in subprocess runner `default` (which carries no
/// labels). Register your own runners there.
///
/// Runners are tried in registration order, and a spec is routed to the first runner that
/// supports its kind and carries every one of its `labels` (and matches its
/// `runnerSelector`). A spec without labels therefore still goes to `default`; give your
/// runner labels (say `engine=wasm`) and have clients select it with the same labels in the
/// spec.
///
/// ```no_run
/// use agentd_kit::{Config, TransportKind};
/// use clap::Parser as _;
/// use solti_model::Labels;
///
/// # async fn demo(my_runner: impl solti_runner::Runner) -> anyhow::Result<()> {
/// let config = Config::parse();
/// agentd_kit::run_with(config, TransportKind::Http, |router| {
///     router.register_with_labels(my_runner, Labels::new().with("engine", "mine"))?;
///     Ok(())
/// })
/// .await
/// # }
/// ```
///
/// # Errors
/// As [`run`], and whatever `runners` returns (the agent does not start then).
pub async fn run_with<F>(config: Config, transport: TransportKind, runners: F) -> Result<()>
where
    F: FnOnce(&mut RunnerRouter) -> Result<()>,
{
    let started = std::time::Instant::now();
    let logger = LoggerConfig::new()
        .with_format(match config.log_format {
            LogFormatArg::Text => LogFormat::Text,
            LogFormatArg::Json => LogFormat::Json,
            LogFormatArg::Journald => LogFormat::Journald,
        })
        .with_level(config.log_level.clone())
        .with_timezone(match config.log_timezone {
            LogTimezoneArg::Local => Timezone::Local,
            LogTimezoneArg::Utc => Timezone::Utc,
        });
    solti_observe::init_logger(&logger).context("--log-format/--log-level")?;
    // Before any listener or config derives a limit from it.
    if let Some((before, after)) = crate::listen::raise_nofile_limit()
        && after > before
    {
        tracing::info!(
            before,
            after,
            "raised the open-file limit (RLIMIT_NOFILE soft) to its hard limit"
        );
    }
    // Installed before anything is announced, so SIGTERM during start-up is graceful too.
    let signals = Signals::install().context("install signal handlers")?;
    // SIGHUP reloads; without a handler its default action would kill the agent.
    let hangup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        .context("install the SIGHUP handler")?;
    // `/readyz` and gRPC health answer "starting" until the listeners are bound and the
    // supervisor runs, and "shutting down" from the first signal on.
    let health = Health::new();

    protect_agent_memory();
    let token = load_token(&config)?;
    let task_identity = config.task_identity()?;
    let listen = config.listen_addr(transport);
    if let ListenAddr::Tcp(addr) = &listen {
        config.check_safe_listen(*addr, "task API")?;
    }
    config.check_cleartext(&listen)?;
    let listen_mode = crate::listen::parse_mode(&config.listen_mode)?;
    let metrics_addr = config.metrics_addr()?;
    if let Some(addr) = metrics_addr
        && !addr.ip().is_loopback()
        && !config.insecure_allow_unauthenticated
    {
        anyhow::bail!(
            "refusing to serve metrics on non-loopback address {addr}: /metrics has no \
             authentication; keep it on loopback (scrape through a local Prometheus agent or a \
             proxy), turn it off with --metrics-listen off, or pass \
             --insecure-allow-unauthenticated if anyone who can reach this port may read the \
             agent's metrics"
        );
    }
    if matches!(listen, ListenAddr::Unix(_))
        && config.control_plane.is_some()
        && config.advertise.is_none()
    {
        anyhow::bail!(
            "--control-plane with --listen unix:…: the control plane cannot reach a Unix \
             socket; set --advertise to an address that forwards to it"
        );
    }
    let server_tls = server_tls(&config)?;
    let state = config.state_config()?;

    // Metrics first, so the runner and supervisor report into them from the start.
    // `agent` is how the published Grafana dashboard lists and selects agents.
    let registry = prometheus::Registry::new();
    let metrics = SoltiMetrics::builder()
        .agent(transport.binary_name())
        .version(env!("CARGO_PKG_VERSION"))
        .build(&registry)
        .context("metrics registry")?;

    let mut router = RunnerRouter::new();
    router.set_metrics(metrics.runner());
    let mut exec = config.backend_config()?.inherit_env(config.inherit_env);
    if let Some(id) = &task_identity {
        exec = exec.run_as(id.uid, id.gid);
    }
    solti_exec::register_subprocess_runner_with_backend(&mut router, "default", exec).context(
        "subprocess runner (--task-user, --task-group, --cgroup-parent, --task-*-max, \
             --rlimit-*, capabilities)",
    )?;
    match &task_identity {
        Some(id) => tracing::info!(user = %id.user, uid = id.uid, gid = id.gid,
            "tasks run as another user; they cannot write the cgroup files that bound them"),
        None if nix::unistd::geteuid().is_root() => tracing::warn!(
            "the agent runs as root and tasks run as root too: a task can lift its own limits, leave \
             its cgroup and outlive DELETE; set --task-user (SOLTI_TASK_USER) to run them as an \
             unprivileged user"
        ),
        None => {}
    }
    runners(&mut router).context("register extra runners")?;
    for name in router.names() {
        metrics.runner().register_runner(name);
    }
    let capabilities = crate::discovery::capabilities(&router);

    // Every listener is bound before anything runs: a port or socket path that is taken
    // stops the start-up before the supervisor (and the tasks recovered from the durable
    // store) exist. Connections wait in the backlog until the accept loops run.
    let (api_listener, api_addr, socket_file) = match &listen {
        ListenAddr::Tcp(addr) => {
            let l = TcpListener::bind(addr)
                .await
                .with_context(|| format!("--listen: cannot bind {addr}"))?;
            let bound = l.local_addr().context("API listener address")?;
            (serve::ApiListener::Plain(l), Some(bound), None)
        }
        ListenAddr::Unix(path) => {
            // Dropped on an early error return: the socket file goes with it.
            let (l, file) = crate::listen::bind_unix(path, listen_mode)?;
            (serve::ApiListener::Unix(l), None, Some(file))
        }
    };
    let metrics_listener = match metrics_addr {
        Some(addr) => Some(
            TcpListener::bind(addr)
                .await
                .with_context(|| format!("--metrics-listen: cannot bind {addr}"))?,
        ),
        None => None,
    };
    let mut serve_config = solti_api::ServeConfig::new();
    if let Some(max) = config.max_connections {
        serve_config = serve_config.max_connections(max);
    }
    tracing::info!(
        max_connections = serve_config.connection_limit(),
        "API connection limit"
    );

    // After everything that can refuse to start, so a failed start leaves no new id file.
    let agent_id = match &config.agent_id {
        Some(id) => AgentId::try_new(id).context("--agent-id")?,
        None => load_or_create_agent_id(&config.state_dir())?,
    };

    // The metrics port (with `/healthz` and `/readyz`) is served by the agent itself, not
    // as a supervisor task, so it keeps answering (`/readyz` 503) while the supervisor
    // starts and shuts down; it stops after that. Dropping the guard (an early error
    // return) stops it too.
    let metrics_stop = CancellationToken::new();
    let _metrics_guard = metrics_stop.clone().drop_guard();
    let (metrics_url, metrics_server) = match metrics_listener {
        Some(listener) => {
            let local = listener.local_addr().context("metrics listener address")?;
            let url = format!("http://{local}/metrics");
            let host = solti_api::HostPolicy::for_listen_addr(local);
            let stop = metrics_stop.clone();
            let server = tokio::spawn(crate::metrics::serve(
                listener,
                registry.clone(),
                host,
                health.clone(),
                async move { stop.cancelled().await },
            ));
            (url, Some(server))
        }
        None => ("off".to_owned(), None),
    };

    let grace = Duration::from_millis(config.shutdown_grace_ms);
    let opened = crate::state::open(&config, transport, &state)?;
    let disk = opened.disk;
    // The internal tasks (the sweep, the timezone sync, and the allocator trim and discovery
    // when enabled) each take a running place: the bound covers tasks on top of them.
    let internal =
        2 + usize::from(config.malloc_trim_ms > 0) + usize::from(config.control_plane.is_some());
    let max_running = config.max_running().and_then(|n| n.checked_add(internal));
    let supervisor = match SupervisorApi::with_store(
        SupervisorConfig::default()
            .with_grace(grace)
            .with_max_concurrent(max_running),
        ControllerConfig::default(),
        vec![Arc::new(LifecycleLogger::new()), metrics.lifecycle()],
        router,
        state,
        opened.store,
    )
    .await
    {
        Ok(supervisor) => supervisor,
        Err(e) => {
            if let Some(disk) = &disk {
                disk.close();
            }
            return Err(e).context("start the supervisor");
        }
    };

    // From here on the supervisor runs (perhaps with recovered tasks): a failure stops it
    // in order (tasks stopped and kept for the next start, the store closed) before
    // returning the error.
    let internal_tasks = start_internal_tasks(
        &config,
        &supervisor,
        &metrics,
        transport,
        &capabilities,
        &agent_id,
        api_addr,
        token.clone(),
        started,
    )
    .await;
    let control_plane = match internal_tasks {
        Ok(control_plane) => control_plane,
        Err(e) => {
            tracing::error!(
                error = format!("{e:#}"),
                "start-up failed; stopping the supervisor"
            );
            stop_after_failed_start(&supervisor, disk.as_deref()).await;
            return Err(e);
        }
    };

    let scheme = match (transport, server_tls.is_some()) {
        (TransportKind::Http, false) => "http",
        (TransportKind::Http, true) => "https",
        (TransportKind::Grpc, false) => "grpc",
        (TransportKind::Grpc, true) => "grpcs",
    };
    // Listeners bound (connections wait in their backlog until the accept loop runs), the
    // supervisor running: ready.
    health.set_ready();
    // The one start-up line, on stdout (logs go to stderr), parsed by tests and scripts.
    let api_url = match (&api_addr, &socket_file) {
        (Some(addr), _) => format!("{scheme}://{addr}"),
        (None, Some(file)) => format!("unix:{}", file.path().display()),
        (None, None) => "none".to_owned(),
    };
    println!(
        "{} ready: api={api_url} metrics={metrics_url} control-plane={control_plane} agent-id={agent_id}",
        transport.binary_name()
    );

    let notifier = crate::notify::notifier();
    notifier.send(&format!(
        "READY=1\nSTATUS=serving {api_url}, metrics {metrics_url}"
    ));
    let watchdog_stop = CancellationToken::new();
    let _watchdog_guard = watchdog_stop.clone().drop_guard();
    let watchdog = notifier
        .watchdog_interval()
        .map(|every| tokio::spawn(crate::notify::watchdog(every, watchdog_stop.clone())));

    let shutdown = CancellationToken::new();
    let signals = tokio::spawn(signals.shutdown_on_signal(shutdown.clone()));

    // On shutdown the server stops accepting at once and drains open connections while the
    // tasks are cancelled: a client streaming a task's log then sees its last lines, the
    // `run-finished` and the end of the stream. The drain outlasts the supervisor's
    // shutdown (its grace, then at most SHUTDOWN_SLACK for the last outcomes).
    let drain = grace + solti_core::SHUTDOWN_SLACK + Duration::from_secs(1);
    let token = token.map(SharedToken::new);
    // TLS goes over TCP only (a Unix socket with --tls-cert is refused at start).
    let (api_listener, tls_reloader) = match (api_listener, &server_tls) {
        (serve::ApiListener::Plain(tcp), Some(tls)) => {
            let listener = TlsListener::new(tcp, tls);
            let reloader = listener.reloader();
            (serve::ApiListener::Tls(listener), Some(reloader))
        }
        (listener, _) => (listener, None),
    };
    let reload_stop = CancellationToken::new();
    let _reload_guard = reload_stop.clone().drop_guard();
    let reloader = tokio::spawn(crate::reload::on_hangup(
        hangup,
        crate::reload::Reloadable {
            config: config.clone(),
            token: token.clone(),
            tls: tls_reloader,
        },
        reload_stop.clone(),
    ));
    let server = serve::api(
        transport,
        api_listener,
        serve_config,
        Arc::new(supervisor.clone()),
        token,
        metrics.api(),
        health.clone(),
        shutdown.clone(),
        drain,
    );
    let mut server = std::pin::pin!(server);
    let ended_early = tokio::select! {
        served = &mut server => Some(served),
        () = shutdown.cancelled() => None,
    };
    // Whatever ended the server (a signal or an error), stop everything in order.
    health.set_shutting_down();
    notifier.send("STOPPING=1\nSTATUS=shutting down: stopping tasks");
    shutdown.cancel();
    tracing::info!("shutting down: no new connections; cancelling tasks and reaping children");
    if let Some(disk) = &disk {
        // The tasks stopped now are stored as they were: the next start resumes them.
        disk.freeze();
    }
    let (stopped, served) = match ended_early {
        Some(served) => (supervisor.shutdown().await, served),
        None => tokio::join!(supervisor.shutdown(), server),
    };
    metrics_stop.cancel();
    if let Some(server) = metrics_server {
        match server.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "metrics server failed"),
            Err(e) => tracing::warn!(error = %e, "metrics server task failed"),
        }
    }
    reload_stop.cancel();
    let _ = reloader.await;
    watchdog_stop.cancel();
    if let Some(watchdog) = watchdog {
        let _ = watchdog.await;
    }
    signals.abort();
    let _ = signals.await;
    if let Some(disk) = &disk {
        disk.close();
    }
    if let Some(file) = socket_file {
        // Only if the path still names the socket this agent bound.
        file.remove();
    }
    served?;
    stopped.context("supervisor shutdown")?;
    tracing::info!("agent stopped");
    Ok(())
}

/// The agent's own supervised tasks (allocator trim, timezone sync, discovery) and the
/// phase metrics; returns the control plane's URL for the ready line (`none` without one).
#[expect(
    clippy::too_many_arguments,
    reason = "the pieces of one agent, passed once from `run_with`"
)]
async fn start_internal_tasks(
    config: &Config,
    supervisor: &SupervisorApi,
    metrics: &SoltiMetrics,
    transport: TransportKind,
    capabilities: &[String],
    agent_id: &AgentId,
    api_addr: Option<std::net::SocketAddr>,
    token: Option<Token>,
    started: std::time::Instant,
) -> Result<String> {
    let phases = supervisor.clone();
    metrics
        .register_phase_counts(move || phases.phase_counts())
        .context("phase metrics")?;

    if config.malloc_trim_ms > 0 {
        let every = config.malloc_trim_ms;
        let (task, spec) = crate::trim::periodic(Duration::from_millis(every));
        supervisor
            .submit_with_task(task, &spec)
            .await
            .context("start the allocator trim")?;
    }

    if config.log_timezone == LogTimezoneArg::Local {
        // Re-reads the local offset hourly, so log timestamps follow daylight saving.
        let (task, spec) = solti_observe::timezone_sync();
        supervisor
            .submit_with_task(task, &spec)
            .await
            .context("start the timezone sync")?;
    }

    let Some(cp) = &config.control_plane else {
        return Ok("none".to_owned());
    };
    let advertise = match api_addr {
        Some(addr) => config.advertise(transport, addr),
        None => config.advertise.clone().unwrap_or_default(),
    };
    let discover = crate::discovery::config(
        config,
        capabilities,
        transport,
        agent_id,
        &advertise,
        token,
        metrics,
        started,
    )?;
    let (task, spec) = solti_discover::sync(discover).context("--control-plane")?;
    supervisor
        .submit_with_task(task, &spec)
        .await
        .context("start discovery")?;
    Ok(cp.clone())
}

/// Stops a supervisor whose start-up could not finish, as a shutdown would: the durable
/// store keeps the stopped tasks as they were (the next start resumes them) and is closed.
async fn stop_after_failed_start(supervisor: &SupervisorApi, disk: Option<&solti_core::DiskStore>) {
    if let Some(disk) = disk {
        disk.freeze();
    }
    if let Err(e) = supervisor.shutdown().await {
        tracing::warn!(error = %e, "supervisor shutdown after a failed start");
    }
    if let Some(disk) = disk {
        disk.close();
    }
}

pub(crate) fn load_token(config: &Config) -> Result<Option<Token>> {
    match (&config.token, &config.token_file) {
        (Some(t), _) => Token::new(t.expose())
            .map(Some)
            .context("--token / SOLTI_AGENT_TOKEN"),
        (None, Some(path)) => Token::from_file(path)
            .map(Some)
            .context("--token-file / SOLTI_AGENT_TOKEN_FILE"),
        (None, None) => Ok(None),
    }
}

pub(crate) fn server_tls(config: &Config) -> Result<Option<solti_tls::ServerTlsConfig>> {
    let (Some(cert), Some(key)) = (&config.tls_cert, &config.tls_key) else {
        return Ok(None);
    };
    let mut builder = solti_tls::ServerTlsConfig::builder()
        .cert_pem_file(cert)
        .key_pem_file(key);
    if let Some(ca) = &config.tls_client_ca {
        builder = builder.require_client_ca_pem_file(ca);
    }
    builder
        .build()
        .map(Some)
        .context("--tls-cert / --tls-key / --tls-client-ca")
}

/// The whole `main` of a reference agent: parse flags (named after the binary), read the
/// local time offset while still single-threaded, start the runtime and [`run`].
///
/// # Errors
/// As [`run`].
pub fn main(transport: TransportKind) -> Result<()> {
    main_with(transport, |_| Ok(()))
}

/// [`main`] with extra runners, registered as in [`run_with`]: the `main` of an agent that
/// embeds its own runners next to the subprocess runner.
///
/// ```no_run
/// use solti_model::Labels;
///
/// # fn demo(my_runner: impl solti_runner::Runner) -> anyhow::Result<()> {
/// agentd_kit::main_with(agentd_kit::TransportKind::Http, |router| {
///     router.register_with_labels(my_runner, Labels::new().with("engine", "mine"))?;
///     Ok(())
/// })
/// # }
/// ```
///
/// # Errors
/// As [`run_with`].
pub fn main_with<F>(transport: TransportKind, runners: F) -> Result<()>
where
    F: FnOnce(&mut RunnerRouter) -> Result<()>,
{
    use clap::FromArgMatches as _;

    let cmd = command(transport);
    let argv: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let parsed = match crate::file::parse(&cmd, &argv) {
        Ok(parsed) => parsed,
        // --help, --version and usage errors print as clap prints them.
        Err(e) => match e.downcast::<clap::Error>() {
            Ok(clap_error) => clap_error.exit(),
            Err(other) => return Err(other),
        },
    };
    let matches = &parsed.matches;
    let rendered = crate::file::render(&cmd, &parsed);
    if matches.get_flag("print_config") {
        print!("{rendered}");
        return Ok(());
    }
    let mut config = Config::from_arg_matches(matches)?;
    pick_token_source(&mut config, matches)?;
    // The token taken from SOLTI_AGENT_TOKEN (about to be removed from the environment):
    // reloads keep it over the file's token keys, as at start.
    let env_token = (matches.value_source("token") == Some(clap::parser::ValueSource::EnvVariable))
        .then(|| config.token.clone())
        .flatten();
    crate::reload::set_origin(crate::reload::Origin {
        cmd,
        argv,
        rendered,
        env_token,
    });
    scrub_secret_env();
    crate::notify::take_from_env();
    // The local UTC offset can only be read reliably before other threads exist.
    let _ = solti_observe::init_local_offset();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("start the tokio runtime")?;
    runtime.block_on(run_with(config, transport, runners))
}

/// The command line of the agent serving `transport`: [`Config`]'s flags, named after the
/// binary.
pub(crate) fn command(transport: TransportKind) -> clap::Command {
    use clap::CommandFactory as _;
    Config::command()
        .name(transport.binary_name())
        .bin_name(transport.binary_name())
        .about(match transport {
            TransportKind::Http => {
                "Solti agent: runs supervised tasks, serves the HTTP/JSON task API with SSE logs"
            }
            TransportKind::Grpc => {
                "Solti agent: runs supervised tasks, serves the gRPC task API (solti.task.v1)"
            }
        })
}

/// Removes the token from the process environment when it came through it (its value
/// already lives in `Config`), so nothing the agent starts later inherits it. Only `main_with`
/// can do this (before any thread exists); tasks never receive `SOLTI_*` variables either way
/// (solti-exec filters them).
fn scrub_secret_env() {
    #[expect(
        unsafe_code,
        reason = "remove_var is unsafe only because of concurrent readers; none exist yet"
    )]
    // SAFETY: called from `main` before the tokio runtime or any other thread starts, so no
    // other thread can be reading or writing the environment at the same time.
    unsafe {
        std::env::remove_var("SOLTI_AGENT_TOKEN");
    }
}

/// The original environment and command line stay readable in /proc/<pid>/environ and
/// cmdline, and a same-user process could ptrace the agent: mark the agent non-dumpable so
/// tasks running as the same (non-root) user cannot read its secrets that way. Unlike
/// removing variables, this is safe with other threads running, so every entry point
/// (`run`, `run_with`, `main_with`) does it.
fn protect_agent_memory() {
    #[cfg(target_os = "linux")]
    #[expect(unsafe_code, reason = "FFI call to prctl")]
    // SAFETY: PR_SET_DUMPABLE takes plain integers and changes only this process's flag.
    unsafe {
        libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0);
    }
}

/// `--token` and `--token-file` name the same secret: a flag beats an environment variable;
/// two flags, or two variables, are ambiguous and refused.
pub(crate) fn pick_token_source(config: &mut Config, matches: &clap::ArgMatches) -> Result<()> {
    use clap::parser::ValueSource::CommandLine;

    if config.token.is_none() || config.token_file.is_none() {
        return Ok(());
    }
    match (
        matches.value_source("token"),
        matches.value_source("token_file"),
    ) {
        (Some(CommandLine), Some(CommandLine)) => {
            anyhow::bail!("--token and --token-file both given: pass one of them")
        }
        (Some(CommandLine), _) => config.token_file = None,
        (_, Some(CommandLine)) => config.token = None,
        _ => anyhow::bail!(
            "SOLTI_AGENT_TOKEN and SOLTI_AGENT_TOKEN_FILE are both set: set one of them"
        ),
    }
    Ok(())
}
