//! The recorders behind the `solti-api` and `solti-discover` observer traits.

use std::{sync::Arc, time::Duration};

use prometheus::Registry;
use solti_api::{ApiObserver, Transport, UNMATCHED_ROUTE};
use solti_discover::DiscoverMetrics;
use solti_prometheus::{SoltiMetrics, encode_text, names};

use crate::exposition::{parse, value};

#[test]
fn trait_objects_record_into_the_registry() {
    let registry = Registry::new();
    let metrics = SoltiMetrics::new(&registry).unwrap();
    let api: Arc<dyn ApiObserver> = metrics.api();
    api.request_started(
        Transport::Grpc,
        "SubmitTask",
        "/solti.task.v1.TaskService/SubmitTask",
    );
    api.request_finished(
        Transport::Grpc,
        "SubmitTask",
        "/solti.task.v1.TaskService/SubmitTask",
        "0",
        Duration::from_millis(1),
    );
    api.request_started(Transport::Http, "GET", UNMATCHED_ROUTE);
    api.request_finished(
        Transport::Http,
        "GET",
        UNMATCHED_ROUTE,
        "404",
        Duration::ZERO,
    );
    let discovery: Arc<dyn DiscoverMetrics> = metrics.discovery();
    discovery.sync_attempt();
    discovery.sync_failure("unauthorized");
    discovery.hold(Duration::from_secs(30));

    let s = parse(&encode_text(&registry).unwrap());
    let grpc = [
        ("transport", "grpc"),
        ("method", "SubmitTask"),
        ("path", "/solti.task.v1.TaskService/SubmitTask"),
        ("status", "0"),
    ];
    assert_eq!(value(&s, names::API_REQUESTS_TOTAL, &grpc), 1.0);
    let unmatched = [
        ("transport", "http"),
        ("method", "GET"),
        ("path", "unmatched"),
        ("status", "404"),
    ];
    assert_eq!(value(&s, names::API_REQUESTS_TOTAL, &unmatched), 1.0);
    assert_eq!(value(&s, names::DISCOVER_ATTEMPTS_TOTAL, &[]), 1.0);
    assert_eq!(
        value(
            &s,
            names::DISCOVER_OUTCOMES_TOTAL,
            &[("outcome", "failure")]
        ),
        1.0
    );
    assert_eq!(
        value(
            &s,
            names::DISCOVER_FAILURES_TOTAL,
            &[("reason", "unauthorized")]
        ),
        1.0
    );
    assert_eq!(
        value(&s, &format!("{}_sum", names::DISCOVER_HOLD_SECONDS), &[]),
        30.0
    );
}
