//! Every metric name and label key this crate registers, in one place.
//!
//! The families the published Grafana dashboard ("Solti agent overview", soltiHQ/dashboards)
//! queries keep the original Solti SDK's names, types, labels and label values:
//! `solti_build_info`, `solti_runner_*`, `solti_sv_*`, `solti_ctrl_*`, `solti_api_*`,
//! `solti_discover_*` and the standard `process_*`. A few families of ours with no SDK
//! equivalent sit beside them (marked *ours* below).
//!
//! Counters end in `_total`, durations are histograms in seconds (`_seconds`). Label values
//! are bounded: runner names, outcome and reason labels, phases, route templates, HTTP
//! methods, HTTP status codes and gRPC code numbers. Task ids, slots, PIDs and free text
//! never become labels. Every known label value is created at 0 when the family is
//! registered, so a dashboard panel has a series before the first event.

// === build ===

/// Gauge: always 1, by `agent` (`agentd-http`, `agentd-grpc` or the embedder's name) and
/// `version`.
pub const BUILD_INFO: &str = "solti_build_info";

// === runner (MetricsBackend) ===

/// Counter: attempts started, by `runner`.
pub const RUNNER_TASKS_STARTED_TOTAL: &str = "solti_runner_tasks_started_total";
/// Counter: attempts ended, by `runner` and `outcome` (`success`, `failure`, `canceled`,
/// `timeout`).
pub const RUNNER_TASKS_COMPLETED_TOTAL: &str = "solti_runner_tasks_completed_total";
/// Histogram: attempt duration in seconds, by `runner` and `outcome`.
pub const RUNNER_TASK_DURATION_SECONDS: &str = "solti_runner_task_duration_seconds";
/// Counter: runner failures to build or start a task, by `runner` and `error` (`spawn`,
/// `spawn_timeout`, `not_found`, `script_write`, `cgroup`, `isolation`, `config`, `spec`).
pub const RUNNER_ERRORS_TOTAL: &str = "solti_runner_errors_total";
/// Gauge (*ours*): attempts currently running, by `runner` and `kind`.
pub const RUNNER_ATTEMPTS_IN_FLIGHT: &str = "solti_runner_attempts_in_flight";

// === supervision (taskvisor events; phases at scrape time) ===

/// Gauge: attempts in flight as seen from supervisor events (embedded tasks included).
pub const SV_TASKS_IN_FLIGHT: &str = "solti_sv_tasks_in_flight";
/// Counter: attempts started after the first one of a task (retries, periodic restarts).
pub const SV_TASK_RESTARTS_TOTAL: &str = "solti_sv_task_restarts_total";
/// Counter: delays scheduled before another attempt, by `source` (`failure` backoff or
/// `success` restart interval).
pub const SV_TASK_BACKOFF_COUNT_TOTAL: &str = "solti_sv_task_backoff_count_total";
/// Counter: tasks that left the supervisor, by `reason` (`completed`, `exhausted`, `fatal`,
/// `canceled`, `force_aborted`, `panicked`, `rejected`).
pub const SV_TASK_TERMINAL_TOTAL: &str = "solti_sv_task_terminal_total";
/// Counter: attempts that hit their timeout.
pub const SV_TASK_TIMEOUTS_TOTAL: &str = "solti_sv_task_timeouts_total";
/// Counter: supervisor events lost because a subscriber's queue was full.
pub const SV_SUBSCRIBER_OVERFLOW_TOTAL: &str = "solti_sv_subscriber_overflow_total";
/// Counter: subscriber callbacks that panicked.
pub const SV_SUBSCRIBER_PANICKED_TOTAL: &str = "solti_sv_subscriber_panicked_total";
/// Gauge: listed (non-embedded) tasks by `phase` (`pending`, `running`, `succeeded`,
/// `failed`, `timeout`, `canceled`, `exhausted`), read at scrape time.
pub const SV_TASKS_BY_PHASE: &str = "solti_sv_tasks_by_phase";
/// Counter (*ours*): attempts that failed (error, non-zero exit, panic).
pub const SV_ATTEMPT_FAILURES_TOTAL: &str = "solti_sv_attempt_failures_total";
/// Counter (*ours*): other supervisor diagnostics, by `event` (`runtime_failure`,
/// `grace_exceeded`, `ownership_capacity_retired`).
pub const SV_DIAGNOSTICS_TOTAL: &str = "solti_sv_diagnostics_total";

// === controller (submissions) ===

/// Counter: submissions the supervisor took to admission (every task it was asked to run).
pub const CTRL_SUBMISSIONS_TOTAL: &str = "solti_ctrl_submissions_total";
/// Counter: submissions refused before their task ran, by `reason` (`slot_busy`,
/// `slot_full`, `superseded`, `removed`, `shutting_down`, `add_failed`, `resource_limit`,
/// `other`).
pub const CTRL_REJECTIONS_TOTAL: &str = "solti_ctrl_rejections_total";

// === API ===

/// Counter: API requests answered, by `transport`, `method`, `path` (route template or gRPC
/// method path) and `status` (HTTP code, or the gRPC code number).
pub const API_REQUESTS_TOTAL: &str = "solti_api_requests_total";
/// Histogram: API request duration in seconds, by `transport`, `method` and `path`.
pub const API_REQUEST_DURATION_SECONDS: &str = "solti_api_request_duration_seconds";
/// Gauge: API requests whose response head is not ready yet, by `transport`. A log stream
/// counts until it is open, not for its lifetime.
pub const API_IN_FLIGHT_REQUESTS: &str = "solti_api_in_flight_requests";

// === discovery ===

/// Counter: sync (heartbeat) attempts to the control plane.
pub const DISCOVER_ATTEMPTS_TOTAL: &str = "solti_discover_attempts_total";
/// Counter: syncs by `outcome` (`success`, `failure`).
pub const DISCOVER_OUTCOMES_TOTAL: &str = "solti_discover_outcomes_total";
/// Counter: failed syncs, by `reason` (`transport`, `timeout`, `http_status`,
/// `grpc_status`, `rejected`, `unauthorized`, `encode`, `decode`).
pub const DISCOVER_FAILURES_TOTAL: &str = "solti_discover_failures_total";
/// Histogram: duration of successful syncs in seconds.
pub const DISCOVER_DURATION_SECONDS: &str = "solti_discover_duration_seconds";
/// Gauge: Unix time of the last successful sync (0 = never).
pub const DISCOVER_LAST_SUCCESS_TIMESTAMP_SECONDS: &str =
    "solti_discover_last_success_timestamp_seconds";
/// Histogram (*ours*): time waited (backoff / retry-after) before the next attempt, in
/// seconds.
pub const DISCOVER_HOLD_SECONDS: &str = "solti_discover_hold_seconds";

/// Prefix of the standard process families (`process_cpu_seconds_total`, …), registered by
/// [`register_process_metrics`](crate::register_process_metrics) under their usual names.
pub const PROCESS_PREFIX: &str = "process_";

// === label keys ===

/// Agent name on `solti_build_info`.
pub const LABEL_AGENT: &str = "agent";
/// Solti version on `solti_build_info`.
pub const LABEL_VERSION: &str = "version";
/// Runner name (`default`, `wasm`, …).
pub const LABEL_RUNNER: &str = "runner";
/// Task kind (`subprocess`, `embedded`, `wasm`, `container`).
pub const LABEL_KIND: &str = "kind";
/// Attempt or sync outcome.
pub const LABEL_OUTCOME: &str = "outcome";
/// Runner error label.
pub const LABEL_ERROR: &str = "error";
/// A short fixed reason label.
pub const LABEL_REASON: &str = "reason";
/// Backoff source (`success`, `failure`).
pub const LABEL_SOURCE: &str = "source";
/// Supervisor event kind.
pub const LABEL_EVENT: &str = "event";
/// Task phase.
pub const LABEL_PHASE: &str = "phase";
/// API transport (`http`, `grpc`).
pub const LABEL_TRANSPORT: &str = "transport";
/// HTTP method, or `POST` for gRPC.
pub const LABEL_METHOD: &str = "method";
/// Route template (`/api/v1/tasks/{id}`) or gRPC method path, never a concrete path.
pub const LABEL_PATH: &str = "path";
/// HTTP status code, or gRPC status code number.
pub const LABEL_STATUS: &str = "status";

/// The value used when a label value falls outside its bounded set.
pub const OTHER: &str = "other";

/// Every family name this crate registers under `solti_`, for tests and dashboards.
pub const ALL: [&str; 27] = [
    BUILD_INFO,
    RUNNER_TASKS_STARTED_TOTAL,
    RUNNER_TASKS_COMPLETED_TOTAL,
    RUNNER_TASK_DURATION_SECONDS,
    RUNNER_ERRORS_TOTAL,
    RUNNER_ATTEMPTS_IN_FLIGHT,
    SV_TASKS_IN_FLIGHT,
    SV_TASK_RESTARTS_TOTAL,
    SV_TASK_BACKOFF_COUNT_TOTAL,
    SV_TASK_TERMINAL_TOTAL,
    SV_TASK_TIMEOUTS_TOTAL,
    SV_SUBSCRIBER_OVERFLOW_TOTAL,
    SV_SUBSCRIBER_PANICKED_TOTAL,
    SV_TASKS_BY_PHASE,
    SV_ATTEMPT_FAILURES_TOTAL,
    SV_DIAGNOSTICS_TOTAL,
    CTRL_SUBMISSIONS_TOTAL,
    CTRL_REJECTIONS_TOTAL,
    API_REQUESTS_TOTAL,
    API_REQUEST_DURATION_SECONDS,
    API_IN_FLIGHT_REQUESTS,
    DISCOVER_ATTEMPTS_TOTAL,
    DISCOVER_OUTCOMES_TOTAL,
    DISCOVER_FAILURES_TOTAL,
    DISCOVER_DURATION_SECONDS,
    DISCOVER_LAST_SUCCESS_TIMESTAMP_SECONDS,
    DISCOVER_HOLD_SECONDS,
];
