//! The heartbeat loop: one attempt of the embedded task runs it until cancelled or until the
//! control plane refuses the credentials.
//!
//! Timing: the first Sync waits a random jitter, then beats sit on a fixed grid
//! (`first + k * interval`) so slow answers or a busy agent never make them drift. After a
//! retryable failure the loop retries on its backoff (or the server's `retry_after_s`),
//! off the grid; once a Sync succeeds again it returns to the next grid point.

use std::sync::{
    Arc,
    atomic::{AtomicBool, Ordering},
};

use taskvisor::{TaskContext, TaskError};
use tokio::time::Instant;
use tracing::{debug, error, info, warn};

use crate::{
    DiscoverConfig, DiscoverError,
    client::{Client, Failure},
    metrics::reason,
    payload::{HostInfo, Payload},
    schedule,
};

/// What every attempt of the task shares.
pub(crate) struct Shared {
    pub(crate) config: DiscoverConfig,
    pub(crate) host: HostInfo,
    /// The plaintext-token warning is logged once per task, not once per restart.
    warned_plaintext: AtomicBool,
}

impl Shared {
    pub(crate) fn new(config: DiscoverConfig, host: HostInfo) -> Self {
        Self {
            config,
            host,
            warned_plaintext: AtomicBool::new(false),
        }
    }

    fn warn_plaintext_token_once(&self) {
        let cfg = &self.config;
        if cfg.token.is_some()
            && !cfg.uses_tls()
            && !self.warned_plaintext.swap(true, Ordering::Relaxed)
        {
            warn!(
                control_plane = %cfg.control_plane,
                "the discovery bearer token is sent over plain http://; use https:// (with_tls) unless the network is trusted"
            );
        }
    }
}

/// One attempt of the heartbeat task.
pub(crate) async fn run(ctx: TaskContext, shared: Arc<Shared>) -> Result<(), TaskError> {
    let client = match Client::new(&shared.config) {
        Ok(client) => client,
        Err(e) => {
            error!(error = %e, "discovery heartbeat cannot start");
            return Err(TaskError::fatal_from(e));
        }
    };
    run_with(&ctx, &shared, client).await
}

/// The loop over an already-built client (the unit tests pass a scripted one).
pub(crate) async fn run_with(
    ctx: &TaskContext,
    shared: &Shared,
    mut client: Client,
) -> Result<(), TaskError> {
    let cfg = &shared.config;
    shared.warn_plaintext_token_once();
    let jitter = schedule::start_jitter(cfg.start_jitter, fastrand::f64());
    let anchor = Instant::now() + jitter;
    info!(
        control_plane = %cfg.control_plane,
        transport = cfg.transport.as_str(),
        agent_id = cfg.agent_id.as_str(),
        endpoint = %cfg.agent_endpoint,
        interval_ms = millis(cfg.interval),
        first_sync_in_ms = millis(jitter),
        "discovery heartbeat started"
    );
    let mut next = anchor;
    let mut failures: u32 = 0;
    let mut registered = false;
    loop {
        tokio::select! {
            biased;
            () = ctx.cancelled() => return Err(TaskError::Canceled),
            () = tokio::time::sleep_until(next) => {}
        }
        cfg.metrics.sync_attempt();
        let payload = Payload::now(cfg, &shared.host);
        let started = Instant::now();
        let outcome = tokio::select! {
            biased;
            () = ctx.cancelled() => return Err(TaskError::Canceled),
            r = tokio::time::timeout(cfg.request_timeout, client.sync(&payload)) => r.unwrap_or_else(|_| {
                Err(Failure::retry(reason::TIMEOUT, format!("no answer within {} ms", millis(cfg.request_timeout))))
            }),
        };
        let now = Instant::now();
        next = match outcome {
            Ok(reply) if reply.success => {
                cfg.metrics.sync_success(now - started);
                if !registered {
                    info!(control_plane = %cfg.control_plane, "registered with the control plane");
                } else if failures > 0 {
                    info!(control_plane = %cfg.control_plane, failed_attempts = failures, "discovery heartbeat recovered");
                } else {
                    debug!(rtt_ms = millis(now - started), "discovery sync accepted");
                }
                registered = true;
                failures = 0;
                schedule::next_on_grid(anchor, cfg.interval, now)
            }
            Ok(reply) => {
                failures = failures.saturating_add(1);
                cfg.metrics.sync_failure(reason::REJECTED);
                let delay = schedule::retry_after(reply.retry_after_s.into())
                    .unwrap_or_else(|| backoff(cfg, failures));
                warn!(
                    reason = %crate::client::shorten(&reply.reason),
                    retry_after_s = reply.retry_after_s,
                    retry_in_ms = millis(delay),
                    "control plane declined the discovery sync; retrying"
                );
                cfg.metrics.hold(delay);
                now + delay
            }
            Err(Failure::Retry {
                reason,
                detail,
                retry_after,
            }) => {
                failures = failures.saturating_add(1);
                cfg.metrics.sync_failure(reason);
                let delay = retry_after.unwrap_or_else(|| backoff(cfg, failures));
                // A control plane that is down for hours must not flood the log: the first
                // failure of a streak and every tenth are warnings, the rest debug.
                if failures == 1 || failures.is_multiple_of(10) {
                    warn!(control_plane = %cfg.control_plane, reason, %detail, failed_attempts = failures, retry_in_ms = millis(delay), "discovery sync failed; retrying");
                } else {
                    debug!(control_plane = %cfg.control_plane, reason, %detail, failed_attempts = failures, retry_in_ms = millis(delay), "discovery sync failed; retrying");
                }
                cfg.metrics.hold(delay);
                now + delay
            }
            Err(Failure::Permanent { reason, detail }) => {
                failures = failures.saturating_add(1);
                cfg.metrics.sync_failure(reason);
                error!(
                    control_plane = %cfg.control_plane,
                    reason,
                    %detail,
                    "control plane refused the discovery payload; retrying at the regular interval (check agent endpoint, api version and control plane version)"
                );
                schedule::next_on_grid(anchor, cfg.interval, now)
            }
            Err(Failure::Unauthorized { status, detail }) => {
                cfg.metrics.sync_failure(reason::UNAUTHORIZED);
                error!(
                    control_plane = %cfg.control_plane,
                    %status,
                    %detail,
                    "control plane refused the agent's credentials; discovery heartbeat stopped (fix the token or client certificate and restart the agent)"
                );
                return Err(TaskError::fatal_from(DiscoverError::Unauthorized {
                    status,
                    detail,
                }));
            }
        };
    }
}

fn backoff(cfg: &DiscoverConfig, failures: u32) -> std::time::Duration {
    schedule::backoff_delay(
        cfg.backoff_initial,
        cfg.backoff_max,
        failures,
        fastrand::f64(),
    )
}

fn millis(d: std::time::Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
#[cfg(feature = "http")]
#[path = "heartbeat_tests.rs"]
mod tests;
