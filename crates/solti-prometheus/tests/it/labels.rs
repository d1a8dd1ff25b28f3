//! Label values stay bounded whatever callers pass.

use std::time::Duration;

use prometheus::Registry;
use solti_prometheus::{ApiMetrics, encode_text, names};

use crate::exposition::{parse, value};

#[test]
fn api_labels_are_bounded() {
    let registry = Registry::new();
    let api = ApiMetrics::new(&registry).unwrap();
    for i in 0..500 {
        let method = format!("M{i}");
        let status = format!("{}", 100 + i);
        api.request_started("http", &method, "/x");
        api.request_finished("http", &method, "/x", &status, Duration::from_millis(1));
    }
    api.request_finished("websocket", "GET", "/x", "200", Duration::ZERO);
    api.request_finished("http", "GET /evil\"label", "/x", "2 00", Duration::ZERO);
    let scrape = parse(&encode_text(&registry).unwrap());
    let series: Vec<_> = scrape
        .samples
        .iter()
        .filter(|s| s.metric == names::API_REQUESTS_TOTAL)
        .collect();
    let methods: std::collections::BTreeSet<_> = series
        .iter()
        .filter_map(|s| s.labels.get("method"))
        .collect();
    let statuses: std::collections::BTreeSet<_> = series
        .iter()
        .filter_map(|s| s.labels.get("status"))
        .collect();
    assert!(methods.len() <= 33, "{} methods", methods.len());
    assert!(statuses.len() <= 65, "{} statuses", statuses.len());
    assert!(methods.contains(&"other") && statuses.contains(&"other"));
    let transports: std::collections::BTreeSet<_> = series
        .iter()
        .filter_map(|s| s.labels.get("transport"))
        .collect();
    assert_eq!(
        transports.into_iter().collect::<Vec<_>>(),
        ["http", "other"]
    );
    let total: f64 = series
        .iter()
        .map(|s| {
            if let prometheus_parse::Value::Counter(v) = s.value {
                v
            } else {
                0.0
            }
        })
        .sum();
    assert_eq!(total, 502.0, "nothing is lost, only folded into `other`");
    let in_flight = value(
        &scrape,
        names::API_IN_FLIGHT_REQUESTS,
        &[("transport", "http")],
    );
    assert_eq!(in_flight, 0.0);
}
