//! Every metric name and label key this crate registers, in one place.
//!
//! All names start with `solti_`, counters end in `_total`, durations are histograms in
//! seconds (`_seconds`). Label values are bounded: runner names, task kinds, outcome and
//! reason labels, phases, route templates, HTTP methods and status codes. Task ids, slots,
//! PIDs and free text never become labels. The `process_*` families of
//! [`register_process_metrics`](crate::register_process_metrics) keep Prometheus' standard
//! names.

// === runner (MetricsBackend) ===

/// Counter: attempts started, by `runner` and `kind`.
pub const RUNNER_ATTEMPTS_STARTED_TOTAL: &str = "solti_runner_attempts_started_total";
/// Counter: attempts ended, by `runner`, `kind` and `outcome` (`success`, `failure`,
/// `timeout`, `canceled`).
pub const RUNNER_ATTEMPTS_COMPLETED_TOTAL: &str = "solti_runner_attempts_completed_total";
/// Histogram: attempt duration in seconds, by `runner`, `kind` and `outcome`.
pub const RUNNER_ATTEMPT_DURATION_SECONDS: &str = "solti_runner_attempt_duration_seconds";
/// Gauge: attempts currently running, by `runner` and `kind`.
pub const RUNNER_ATTEMPTS_IN_FLIGHT: &str = "solti_runner_attempts_in_flight";
/// Counter: runner build/start failures, by `runner` and `reason`.
pub const RUNNER_ERRORS_TOTAL: &str = "solti_runner_errors_total";

// === supervisor lifecycle (taskvisor events) ===

/// Gauge: attempts in flight as seen from supervisor events (all kinds, embedded included).
pub const SUPERVISOR_ATTEMPTS_IN_FLIGHT: &str = "solti_supervisor_attempts_in_flight";
/// Counter: attempts started after the first one of a task (retries and periodic restarts).
pub const SUPERVISOR_RESTARTS_TOTAL: &str = "solti_supervisor_restarts_total";
/// Counter: delays scheduled before another attempt, by `source` (`failure` backoff or
/// `success` restart interval).
pub const SUPERVISOR_BACKOFFS_TOTAL: &str = "solti_supervisor_backoffs_total";
/// Counter: attempts that hit their timeout.
pub const SUPERVISOR_ATTEMPT_TIMEOUTS_TOTAL: &str = "solti_supervisor_attempt_timeouts_total";
/// Counter: attempts that failed (error, non-zero exit, panic).
pub const SUPERVISOR_ATTEMPT_FAILURES_TOTAL: &str = "solti_supervisor_attempt_failures_total";
/// Counter: tasks that reached a terminal outcome, by `outcome` (`completed`, `failed`,
/// `fatal`, `canceled`, `force_aborted`, `panicked`, `rejected`).
pub const SUPERVISOR_TASKS_FINISHED_TOTAL: &str = "solti_supervisor_tasks_finished_total";
/// Counter: submissions refused before running, by `reason` (`slot_busy`, `queue_full`,
/// `superseded_by_replace`, `resource_limit`, …).
pub const SUPERVISOR_REJECTIONS_TOTAL: &str = "solti_supervisor_rejections_total";
/// Counter: lifecycle events a subscriber lost because its queue was full, by `subscriber`.
pub const SUPERVISOR_EVENTS_DROPPED_TOTAL: &str = "solti_supervisor_events_dropped_total";
/// Counter: supervisor diagnostics, by `event` (`runtime_failure`, `subscriber_panicked`,
/// `grace_exceeded`, `ownership_capacity_retired`).
pub const SUPERVISOR_DIAGNOSTICS_TOTAL: &str = "solti_supervisor_diagnostics_total";

// === task state (read at scrape time) ===

/// Gauge: listed (non-embedded) tasks by `phase`; every phase is always present.
pub const TASKS: &str = "solti_tasks";

// === API ===

/// Counter: API requests answered, by `transport`, `method`, `route` and `status`.
pub const API_REQUESTS_TOTAL: &str = "solti_api_requests_total";
/// Histogram: API request duration in seconds, by `transport`, `method` and `route`.
pub const API_REQUEST_DURATION_SECONDS: &str = "solti_api_request_duration_seconds";
/// Gauge: API requests whose response head is not ready yet, by `transport`, `method` and
/// `route`. A log stream counts until it is open, not for its lifetime.
pub const API_REQUESTS_IN_FLIGHT: &str = "solti_api_requests_in_flight";

// === discovery ===

/// Counter: heartbeat/sync attempts to the control plane.
pub const DISCOVER_SYNC_ATTEMPTS_TOTAL: &str = "solti_discover_sync_attempts_total";
/// Counter: successful syncs.
pub const DISCOVER_SYNC_SUCCESSES_TOTAL: &str = "solti_discover_sync_successes_total";
/// Counter: failed syncs, by `reason` (`transport`, `timeout`, `http_status`, `grpc_status`,
/// `rejected`, `unauthorized`, `encode`, `decode`).
pub const DISCOVER_SYNC_FAILURES_TOTAL: &str = "solti_discover_sync_failures_total";
/// Histogram: duration of successful syncs in seconds.
pub const DISCOVER_SYNC_DURATION_SECONDS: &str = "solti_discover_sync_duration_seconds";
/// Histogram: time waited (backoff / retry-after) before the next attempt, in seconds.
pub const DISCOVER_HOLD_SECONDS: &str = "solti_discover_hold_seconds";
/// Gauge: Unix time of the last successful sync (0 = never).
pub const DISCOVER_LAST_SUCCESS_TIMESTAMP_SECONDS: &str =
    "solti_discover_last_success_timestamp_seconds";

// === build ===

/// Gauge: always 1, by `version` of the Solti SDK.
pub const BUILD_INFO: &str = "solti_build_info";

/// Prefix of the standard process families (`process_cpu_seconds_total`, …), registered by
/// [`register_process_metrics`](crate::register_process_metrics) under their usual names.
pub const PROCESS_PREFIX: &str = "process_";

// === label keys ===

/// Runner name (`default`, `wasm`, …).
pub const LABEL_RUNNER: &str = "runner";
/// Task kind (`subprocess`, `embedded`, `wasm`, `container`).
pub const LABEL_KIND: &str = "kind";
/// Attempt or task outcome.
pub const LABEL_OUTCOME: &str = "outcome";
/// A short fixed reason label.
pub const LABEL_REASON: &str = "reason";
/// Backoff source (`success`, `failure`).
pub const LABEL_SOURCE: &str = "source";
/// Subscriber name.
pub const LABEL_SUBSCRIBER: &str = "subscriber";
/// Supervisor event kind.
pub const LABEL_EVENT: &str = "event";
/// Task phase (`pending`, `running`, `succeeded`, `failed`, `timeout`, `canceled`, `exhausted`).
pub const LABEL_PHASE: &str = "phase";
/// API transport (`http`, `grpc`).
pub const LABEL_TRANSPORT: &str = "transport";
/// HTTP method or gRPC method name.
pub const LABEL_METHOD: &str = "method";
/// Route template (`/api/v1/tasks/{id}`), never a concrete path.
pub const LABEL_ROUTE: &str = "route";
/// HTTP status code or gRPC code name.
pub const LABEL_STATUS: &str = "status";
/// SDK version.
pub const LABEL_VERSION: &str = "version";

/// The value used when a label value falls outside its bounded set.
pub const OTHER: &str = "other";

/// Every family name this crate registers under `solti_`, for tests and dashboards.
pub const ALL: [&str; 25] = [
    RUNNER_ATTEMPTS_STARTED_TOTAL,
    RUNNER_ATTEMPTS_COMPLETED_TOTAL,
    RUNNER_ATTEMPT_DURATION_SECONDS,
    RUNNER_ATTEMPTS_IN_FLIGHT,
    RUNNER_ERRORS_TOTAL,
    SUPERVISOR_ATTEMPTS_IN_FLIGHT,
    SUPERVISOR_RESTARTS_TOTAL,
    SUPERVISOR_BACKOFFS_TOTAL,
    SUPERVISOR_ATTEMPT_TIMEOUTS_TOTAL,
    SUPERVISOR_ATTEMPT_FAILURES_TOTAL,
    SUPERVISOR_TASKS_FINISHED_TOTAL,
    SUPERVISOR_REJECTIONS_TOTAL,
    SUPERVISOR_EVENTS_DROPPED_TOTAL,
    SUPERVISOR_DIAGNOSTICS_TOTAL,
    TASKS,
    API_REQUESTS_TOTAL,
    API_REQUEST_DURATION_SECONDS,
    API_REQUESTS_IN_FLIGHT,
    DISCOVER_SYNC_ATTEMPTS_TOTAL,
    DISCOVER_SYNC_SUCCESSES_TOTAL,
    DISCOVER_SYNC_FAILURES_TOTAL,
    DISCOVER_SYNC_DURATION_SECONDS,
    DISCOVER_HOLD_SECONDS,
    DISCOVER_LAST_SUCCESS_TIMESTAMP_SECONDS,
    BUILD_INFO,
];
