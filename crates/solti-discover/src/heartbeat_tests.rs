//! Paused-clock tests of the loop over a scripted transport. Real sockets cannot be used
//! with a paused clock: Tokio auto-advances time whenever the runtime waits on I/O, which
//! fires request timeouts spuriously. The socket-level behaviour is covered by `tests/it`.

use std::{sync::Mutex, time::Duration};

use solti_model::{AgentId, Token};
use taskvisor::{TaskContext, TaskError};
use tokio::{task::JoinHandle, time::Instant};

use super::*;
use crate::{
    DiscoverConfigBuilder, DiscoverMetrics, DiscoveryTransport,
    client::fake::{FakeClient, Step},
    payload::Reply,
};

#[derive(Default)]
struct Recorder(Mutex<Vec<String>>);

impl Recorder {
    fn events(&self) -> Vec<String> {
        self.0.lock().unwrap().clone()
    }
}

impl DiscoverMetrics for Recorder {
    fn sync_attempt(&self) {
        self.0.lock().unwrap().push("attempt".to_owned());
    }
    fn sync_success(&self, _: Duration) {
        self.0.lock().unwrap().push("success".to_owned());
    }
    fn sync_failure(&self, reason: &'static str) {
        self.0.lock().unwrap().push(format!("failure:{reason}"));
    }
    fn hold(&self, d: Duration) {
        self.0
            .lock()
            .unwrap()
            .push(format!("hold:{}", d.as_millis()));
    }
}

const SEC: Duration = Duration::from_secs(1);

fn builder(interval_ms: u64) -> DiscoverConfigBuilder {
    DiscoverConfig::builder(
        AgentId::new("agent-1"),
        "agent",
        "10.0.0.5:8085",
        "http://podium:8082",
        DiscoveryTransport::Http,
        interval_ms,
        3,
    )
}

struct Running {
    fake: FakeClient,
    cancel: Cancel,
    handle: JoinHandle<Result<(), TaskError>>,
    t0: Instant,
}

/// Cancels the loop's context (a clone shares the signal).
struct Cancel(TaskContext);

impl Cancel {
    fn cancel(&self) {
        self.0.cancellation_token().cancel();
    }
}

fn start(config: DiscoverConfig, script: impl IntoIterator<Item = Step>) -> Running {
    let fake = FakeClient::new(script);
    let ctx = TaskContext::detached();
    let cancel = Cancel(ctx.clone());
    let host = HostInfo {
        os: "TestOS 1".to_owned(),
        platform: "linux",
        arch: "x86_64",
    };
    let shared = Shared::new(config, host);
    let client = Client::Fake(fake.clone());
    let t0 = Instant::now();
    let handle = tokio::spawn(async move { run_with(&ctx, &shared, client).await });
    Running {
        fake,
        cancel,
        handle,
        t0,
    }
}

fn offsets(r: &Running) -> Vec<Duration> {
    r.fake.calls().iter().map(|(at, _)| *at - r.t0).collect()
}

fn gaps(r: &Running) -> Vec<Duration> {
    let calls = r.fake.calls();
    calls.windows(2).map(|w| w[1].0 - w[0].0).collect()
}

fn retry(reason: &'static str) -> Step {
    (Duration::ZERO, Err(Failure::retry(reason, "boom")))
}

#[tokio::test(start_paused = true)]
async fn first_sync_is_jittered_then_beats_keep_a_fixed_cadence() {
    for _ in 0..5 {
        // Every answer takes 3 s: a sleep-after-answer loop would drift to 13 s gaps.
        let slow = (0..20).map(|_| (3 * SEC, Ok(Reply::accepted())));
        let r = start(builder(10_000).build().unwrap(), slow);
        tokio::time::sleep(105 * SEC).await;
        let first = offsets(&r)[0];
        assert!(first < 10 * SEC, "first sync at {first:?}");
        let gaps = gaps(&r);
        assert!(gaps.len() >= 9, "{gaps:?}");
        assert!(gaps.iter().all(|g| *g == 10 * SEC), "{gaps:?}");
        r.cancel.cancel();
        assert!(matches!(r.handle.await.unwrap(), Err(TaskError::Canceled)));
    }
}

#[tokio::test(start_paused = true)]
async fn payload_is_truthful() {
    let config = builder(2_500)
        .with_start_jitter(Duration::ZERO)
        .with_metadata("zone", "eu-1")
        .with_capabilities(["subprocess", "logs"])
        .build()
        .unwrap();
    let r = start(config, []);
    tokio::time::sleep(Duration::from_millis(5_100)).await;
    let calls = r.fake.calls();
    assert_eq!(calls.len(), 3);
    let p = &calls[2].1;
    assert_eq!(p.id, "agent-1");
    assert_eq!(p.endpoint, "http://10.0.0.5:8085");
    assert_eq!(p.endpoint_type, DiscoveryTransport::Http);
    assert_eq!(p.heartbeat_interval_s, 3, "2.5 s is advertised rounded up");
    assert_eq!(p.uptime_seconds, 5);
    assert_eq!(
        (p.os.as_str(), p.platform.as_str(), p.arch.as_str()),
        ("TestOS 1", "linux", "x86_64")
    );
    assert_eq!(p.api_version, 3);
    assert_eq!(p.metadata.get("zone").map(String::as_str), Some("eu-1"));
    assert_eq!(p.capabilities, ["subprocess", "logs"]);
    assert!(p.ts > 1_600_000_000);
    r.cancel.cancel();
}

#[tokio::test(start_paused = true)]
async fn retryable_failures_back_off_then_return_to_the_grid() {
    let metrics = Arc::new(Recorder::default());
    let config = builder(10_000)
        .with_start_jitter(Duration::ZERO)
        .with_backoff(SEC, 8 * SEC)
        .with_metrics(metrics.clone())
        .build()
        .unwrap();
    // Beat at 0 fails, retries fail twice more, then the control plane is back.
    let r = start(
        config,
        [retry("http_status"), retry("transport"), retry("timeout")],
    );
    tokio::time::sleep(35 * SEC).await;
    let at = offsets(&r);
    let g = gaps(&r);
    assert!((500..=1000).contains(&g[0].as_millis()), "{g:?}");
    assert!((1000..=2000).contains(&g[1].as_millis()), "{g:?}");
    assert!((2000..=4000).contains(&g[2].as_millis()), "{g:?}");
    // After the success at ~3.5..7 s, the next beats sit on the original grid.
    assert_eq!(at[4], 10 * SEC, "{at:?}");
    assert_eq!(at[5], 20 * SEC, "{at:?}");
    let events = metrics.events();
    assert_eq!(
        events.iter().filter(|e| e.starts_with("hold:")).count(),
        3,
        "{events:?}"
    );
    assert_eq!(&events[..2], ["attempt", "failure:http_status"]);
    assert!(
        events.contains(&"failure:transport".to_owned())
            && events.contains(&"failure:timeout".to_owned())
    );
    assert_eq!(
        events.iter().filter(|e| *e == "success").count(),
        4,
        "{events:?}"
    );
    r.cancel.cancel();
}

#[tokio::test(start_paused = true)]
async fn declined_sync_honours_retry_after_with_clamp() {
    let declined = |s| {
        (
            Duration::ZERO,
            Ok(Reply {
                success: false,
                reason: "busy".to_owned(),
                retry_after_s: s,
            }),
        )
    };
    let metrics = Arc::new(Recorder::default());
    let config = builder(10_000)
        .with_start_jitter(Duration::ZERO)
        .with_metrics(metrics.clone())
        .build()
        .unwrap();
    let r = start(config, [declined(30), declined(1_000_000), declined(0)]);
    tokio::time::sleep(Duration::from_secs(3_700)).await;
    let at = offsets(&r);
    assert_eq!(at[1], 30 * SEC, "{at:?}");
    assert_eq!(at[2], 3_630 * SEC, "clamped to one hour: {at:?}");
    // retry_after_s = 0: normal backoff; the third failure in a row draws from [2, 4] s.
    let g = at[3] - at[2];
    assert!(g >= 2 * SEC && g <= 4 * SEC, "{g:?}");
    let events = metrics.events();
    assert!(
        events.contains(&"hold:30000".to_owned()) && events.contains(&"hold:3600000".to_owned()),
        "{events:?}"
    );
    assert_eq!(
        events.iter().filter(|e| *e == "failure:rejected").count(),
        3
    );
    r.cancel.cancel();
}

#[tokio::test(start_paused = true)]
async fn server_retry_after_header_wins_over_backoff() {
    let step = (
        Duration::ZERO,
        Err(Failure::Retry {
            reason: "http_status",
            detail: "503".to_owned(),
            retry_after: Some(7 * SEC),
        }),
    );
    let r = start(
        builder(10_000)
            .with_start_jitter(Duration::ZERO)
            .build()
            .unwrap(),
        [step],
    );
    tokio::time::sleep(8 * SEC).await;
    assert_eq!(offsets(&r), [Duration::ZERO, 7 * SEC]);
    r.cancel.cancel();
}

#[tokio::test(start_paused = true)]
async fn permanent_failure_waits_the_regular_interval() {
    let step = (
        Duration::ZERO,
        Err(Failure::Permanent {
            reason: "http_status",
            detail: "HTTP 404".to_owned(),
        }),
    );
    let r = start(
        builder(10_000)
            .with_start_jitter(Duration::ZERO)
            .build()
            .unwrap(),
        [step],
    );
    tokio::time::sleep(25 * SEC).await;
    assert_eq!(offsets(&r), [Duration::ZERO, 10 * SEC, 20 * SEC]);
    r.cancel.cancel();
}

#[tokio::test(start_paused = true)]
async fn refused_credentials_stop_with_a_fatal_error() {
    let metrics = Arc::new(Recorder::default());
    let config = builder(10_000)
        .with_start_jitter(Duration::ZERO)
        .with_token(Token::new("secret-xyz").unwrap())
        .with_metrics(metrics.clone())
        .build()
        .unwrap();
    let step = (
        Duration::ZERO,
        Err(Failure::Unauthorized {
            status: "HTTP 401".to_owned(),
            detail: "bad token".to_owned(),
        }),
    );
    let r = start(config, [step]);
    let result = r.handle.await.unwrap();
    let Err(TaskError::Fatal {
        source: Some(source),
        ..
    }) = result
    else {
        panic!("{result:?}")
    };
    let err = source.downcast_ref::<DiscoverError>().unwrap();
    assert!(matches!(err, DiscoverError::Unauthorized { status, .. } if status == "HTTP 401"));
    assert!(!err.to_string().contains("secret-xyz"));
    assert_eq!(r.fake.calls().len(), 1);
    assert_eq!(metrics.events(), ["attempt", "failure:unauthorized"]);
}

#[tokio::test(start_paused = true)]
async fn a_hanging_control_plane_hits_the_request_timeout() {
    let metrics = Arc::new(Recorder::default());
    let config = builder(10_000)
        .with_start_jitter(Duration::ZERO)
        .with_request_timeout(2 * SEC)
        .with_metrics(metrics.clone())
        .build()
        .unwrap();
    let r = start(
        config,
        [(Duration::from_secs(3_600), Ok(Reply::accepted()))],
    );
    tokio::time::sleep(4 * SEC).await;
    let at = offsets(&r);
    assert_eq!(at.len(), 2, "{at:?}");
    assert!(
        at[1] >= Duration::from_millis(2_500) && at[1] <= 3 * SEC,
        "{at:?}"
    );
    assert_eq!(&metrics.events()[..2], ["attempt", "failure:timeout"]);
    r.cancel.cancel();
}

#[tokio::test(start_paused = true)]
async fn cancellation_is_prompt_while_waiting_and_in_flight() {
    // While waiting for the next beat.
    let r = start(builder(60_000).build().unwrap(), []);
    tokio::time::sleep(SEC).await;
    let before = Instant::now();
    r.cancel.cancel();
    assert!(matches!(r.handle.await.unwrap(), Err(TaskError::Canceled)));
    assert_eq!(Instant::now(), before);

    // While a Sync is in flight.
    let r = start(
        builder(60_000)
            .with_start_jitter(Duration::ZERO)
            .build()
            .unwrap(),
        [(3_600 * SEC, Ok(Reply::accepted()))],
    );
    tokio::time::sleep(SEC).await;
    assert_eq!(r.fake.calls().len(), 1);
    let before = Instant::now();
    r.cancel.cancel();
    assert!(matches!(r.handle.await.unwrap(), Err(TaskError::Canceled)));
    assert_eq!(Instant::now(), before);
}

/// Collects every event's level and fields as text, on the current thread.
#[derive(Default)]
struct LogCapture(Mutex<Vec<(tracing::Level, String)>>);

impl tracing::Subscriber for LogCapture {
    fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(1)
    }
    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, event: &tracing::Event<'_>) {
        struct Text(String);
        impl tracing::field::Visit for Text {
            fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
                self.0.push_str(&format!("{}={value:?} ", field.name()));
            }
        }
        let mut text = Text(String::new());
        event.record(&mut text);
        self.0
            .lock()
            .unwrap()
            .push((*event.metadata().level(), text.0));
    }
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}

#[tokio::test(start_paused = true)]
async fn plaintext_token_is_warned_once_and_never_logged() {
    let capture = Arc::new(LogCapture::default());
    let _guard = tracing::dispatcher::set_default(&tracing::Dispatch::from(Arc::clone(&capture)));
    // With exactly one live dispatcher, tracing-core computes the interest of a callsite
    // first hit on another thread (another test of this binary, without a subscriber) from
    // that thread's default only, caches "never" and our capture misses the event. A
    // second live dispatcher makes it ask every dispatcher, ours included.
    let _second = tracing::Dispatch::new(tracing::subscriber::NoSubscriber::default());
    tracing::callsite::rebuild_interest_cache();
    let config = builder(10_000)
        .with_start_jitter(Duration::ZERO)
        .with_token(Token::new("top-secret-77").unwrap())
        .build()
        .unwrap();
    let shared = Shared::new(config, HostInfo::detect());
    // Two attempts of the same task (as after a restart): failures of every kind, then a stop.
    for _ in 0..2 {
        let fake = FakeClient::new([
            retry("transport"),
            (
                Duration::ZERO,
                Err(Failure::Permanent {
                    reason: "http_status",
                    detail: "HTTP 400".to_owned(),
                }),
            ),
            (
                Duration::ZERO,
                Err(Failure::Unauthorized {
                    status: "HTTP 401".to_owned(),
                    detail: "no".to_owned(),
                }),
            ),
        ]);
        let ctx = TaskContext::detached();
        let result = run_with(&ctx, &shared, Client::Fake(fake)).await;
        assert!(matches!(result, Err(TaskError::Fatal { .. })));
    }
    let logs = capture.0.lock().unwrap().clone();
    let warnings = logs
        .iter()
        .filter(|(l, t)| *l == tracing::Level::WARN && t.contains("plain http://"))
        .count();
    assert_eq!(warnings, 1, "{logs:#?}");
    assert!(
        logs.iter().all(|(_, t)| !t.contains("top-secret-77")),
        "{logs:#?}"
    );
    assert!(
        logs.iter()
            .any(|(l, t)| *l == tracing::Level::ERROR && t.contains("credentials")),
        "{logs:#?}"
    );
}
