//! Configuration validation: every rule names its field.

use std::time::Duration;

use solti_discover::{DiscoverConfig, DiscoverConfigBuilder, DiscoverError, DiscoveryTransport};
use solti_model::{AgentId, Token};

fn builder(agent: &str, cp: &str, transport: DiscoveryTransport, ms: u64) -> DiscoverConfigBuilder {
    DiscoverConfig::builder(AgentId::new("a-1"), "worker", agent, cp, transport, ms, 1)
}

fn ok() -> DiscoverConfigBuilder {
    builder(
        "this-host:8085",
        "http://podium:8082",
        DiscoveryTransport::Http,
        10_000,
    )
}

#[track_caller]
fn rejects(b: DiscoverConfigBuilder, field: &str, text: &str) {
    match b.build() {
        Err(DiscoverError::Config { field: f, reason }) => {
            assert_eq!(f, field, "{reason}");
            assert!(reason.contains(text), "{field}: {reason:?} lacks {text:?}");
        }
        other => panic!("expected a config error on {field}, got {other:?}"),
    }
}

#[test]
fn brief_example_builds_and_normalises() {
    let c = DiscoverConfig::builder(
        AgentId::new("worker-001"),
        "worker",
        "http://this-host:8085",
        "http://podium:8082",
        DiscoveryTransport::Http,
        10_000,
        1,
    )
    .build()
    .unwrap();
    assert_eq!(c.agent_endpoint(), "http://this-host:8085");
    assert_eq!(c.control_plane_endpoint(), "http://podium:8082");
    assert_eq!(c.heartbeat_interval_s(), 10);
    assert_eq!(c.connect_timeout(), Duration::from_secs(5));
    assert_eq!(c.request_timeout(), Duration::from_secs(5));

    let g = builder(
        "http://10.0.0.1:50052",
        "https://podium",
        DiscoveryTransport::Grpc,
        1_500,
    );
    // https needs TLS; over http the same builder works and normalises.
    rejects(g, "control_plane_endpoint", "with_tls");
    let g = builder(
        "http://10.0.0.1:50052",
        "http://podium",
        DiscoveryTransport::Grpc,
        1_500,
    )
    .build()
    .unwrap();
    assert_eq!(g.agent_endpoint(), "10.0.0.1:50052");
    assert_eq!(g.control_plane_endpoint(), "http://podium:80");
    assert_eq!(
        g.heartbeat_interval_s(),
        2,
        "1.5 s is advertised rounded up"
    );
    assert_eq!(g.request_timeout(), Duration::from_millis(750));
}

#[test]
fn every_rule_names_its_field() {
    let http = DiscoveryTransport::Http;
    rejects(
        DiscoverConfig::builder(AgentId::new("a"), "", "h:1", "http://p:1", http, 10_000, 1),
        "name",
        "1..=256",
    );
    rejects(
        DiscoverConfig::builder(
            AgentId::new("a"),
            "  ",
            "h:1",
            "http://p:1",
            http,
            10_000,
            1,
        ),
        "name",
        "blank",
    );
    rejects(
        builder("", "http://p:1", http, 10_000),
        "agent_endpoint",
        "must not be empty",
    );
    rejects(
        builder("this-host", "http://p:1", http, 10_000),
        "agent_endpoint",
        "needs a port",
    );
    rejects(
        builder("0.0.0.0:8085", "http://p:1", http, 10_000),
        "agent_endpoint",
        "unspecified",
    );
    rejects(
        builder("h:1", "", http, 10_000),
        "control_plane_endpoint",
        "must not be empty",
    );
    rejects(
        builder("h:1", "podium:8082", http, 10_000),
        "control_plane_endpoint",
        "http:// or https://",
    );
    rejects(
        builder("h:1", "http://podium:8082/x", http, 10_000),
        "control_plane_endpoint",
        "without path",
    );
    rejects(
        builder("h:1", "ftp://podium", http, 10_000),
        "control_plane_endpoint",
        "scheme",
    );
    rejects(
        builder("h:1", "http://p:1", http, 999),
        "heartbeat_ms",
        "at least 1000 ms",
    );
    rejects(
        builder("h:1", "http://p:1", http, 0),
        "heartbeat_ms",
        "at least 1000 ms",
    );
    rejects(
        DiscoverConfig::builder(AgentId::new("a"), "n", "h:1", "http://p:1", http, 10_000, 0),
        "api_version",
        ">= 1",
    );
    rejects(
        ok().with_connect_timeout(Duration::ZERO),
        "connect_timeout",
        "above zero",
    );
    rejects(
        ok().with_request_timeout(Duration::from_secs(10)),
        "request_timeout",
        "below the heartbeat interval",
    );
    rejects(
        ok().with_backoff(Duration::ZERO, Duration::from_secs(1)),
        "backoff",
        "0 < initial",
    );
    rejects(
        ok().with_backoff(Duration::from_secs(2), Duration::from_secs(1)),
        "backoff",
        "initial <= max",
    );
    rejects(
        ok().with_start_jitter(Duration::from_secs(11)),
        "start_jitter",
        "at most the interval",
    );
    rejects(ok().with_metadata("", "v"), "metadata key", "1..=256");
    rejects(
        ok().with_metadata("k", "a\nb"),
        "metadata value",
        "control characters",
    );
    rejects(ok().with_capabilities([""]), "capabilities", "1..=256");
}

#[test]
fn debug_never_shows_the_token() {
    let b = ok().with_token(Token::new("super-secret-1").unwrap());
    assert!(!format!("{b:?}").contains("super-secret-1"));
    let c = b.build().unwrap();
    let d = format!("{c:?}");
    assert!(
        !d.contains("super-secret-1") && d.contains("<redacted>"),
        "{d}"
    );
}

#[test]
fn sync_builds_an_embedded_task_spec() {
    let (_task, spec) = solti_discover::sync(ok().build().unwrap()).unwrap();
    assert_eq!(spec.slot().as_str(), "solti-discover");
    assert!(matches!(spec.kind(), solti_model::TaskKind::Embedded));
    assert_eq!(spec.restart(), solti_model::RestartPolicy::OnFailure);
    assert_eq!(spec.admission(), solti_model::AdmissionPolicy::Replace);
    assert!(spec.timeout_ms() >= 24 * 3600 * 1000);
}
