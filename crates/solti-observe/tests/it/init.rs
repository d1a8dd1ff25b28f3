//! Installing the global logger: once per process, with clear errors.

use std::path::Path;

use solti_observe::{JOURNALD_SOCKET, LogFormat, LoggerConfig, ObserveError, init_logger};

// The only test in this binary that installs the global subscriber; everything that must
// happen in order lives in it.
#[test]
fn init_checks_config_then_installs_once() {
    let err = init_logger(&LoggerConfig::new().with_level("info,solti=loud")).unwrap_err();
    assert!(
        matches!(err, ObserveError::InvalidFilter { ref filter, .. } if filter == "info,solti=loud"),
        "{err:?}"
    );
    assert!(
        err.to_string().contains("\"info,solti=loud\""),
        "the error names the expression: {err}"
    );

    init_logger(&LoggerConfig::new().with_level("warn")).unwrap();
    let err = init_logger(&LoggerConfig::new()).unwrap_err();
    assert!(
        matches!(err, ObserveError::AlreadyInitialized { .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("once per process"), "{err}");
}

#[test]
fn journald_without_its_socket_is_a_clear_error() {
    if Path::new(JOURNALD_SOCKET).exists() {
        eprintln!("skipped: this host runs journald");
        return;
    }
    // Config problems are reported before the once-per-process rule, so this holds whichever
    // test runs first.
    let err = init_logger(&LoggerConfig::new().with_format(LogFormat::Journald)).unwrap_err();
    assert!(
        matches!(err, ObserveError::JournaldUnavailable { .. }),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        "journald logging is not available: cannot send to the journald socket /run/systemd/journal/socket"
    );
    let built = LoggerConfig::new()
        .with_format(LogFormat::Journald)
        .build_subscriber(std::io::sink);
    assert!(matches!(
        built,
        Err(ObserveError::JournaldUnavailable { .. })
    ));
}
