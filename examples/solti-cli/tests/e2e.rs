//! End-to-end: the real `solti` binary against the real `agentd-http` and `agentd-grpc`
//! binaries on loopback, with and without a token, with mTLS, and with bad input for every
//! flag.
//!
//! The agents are found next to this test's target directory (`cargo build -p agentd-http -p
//! agentd-grpc` first, or run `cargo test --workspace`, which builds them), or in
//! `SOLTI_CLI_TEST_AGENT_DIR` (e.g. a release build).
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code")]

use std::{
    io::Write as _,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use agentd_kit::testing::AgentProcess;
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair,
};
use serde_json::Value;

// === harness ===

fn agent_binary(name: &str) -> PathBuf {
    let dir = std::env::var_os("SOLTI_CLI_TEST_AGENT_DIR").map_or_else(
        || {
            // target/<profile>/deps/e2e-… → target/<profile>
            let exe = std::env::current_exe().unwrap();
            exe.parent().unwrap().parent().unwrap().to_path_buf()
        },
        PathBuf::from,
    );
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} not found: build it with `cargo build -p {name}` or set SOLTI_CLI_TEST_AGENT_DIR",
        path.display()
    );
    path
}

fn scratch(name: &str) -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix(&format!("solti-cli-e2e-{name}-"))
        .tempdir()
        .unwrap()
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Transport {
    Http,
    Grpc,
}

impl Transport {
    fn binary(self) -> &'static str {
        match self {
            Self::Http => "agentd-http",
            Self::Grpc => "agentd-grpc",
        }
    }

    fn scheme(self, tls: bool) -> &'static str {
        match (self, tls) {
            (Self::Http, false) => "http",
            (Self::Http, true) => "https",
            (Self::Grpc, false) => "grpc",
            (Self::Grpc, true) => "grpcs",
        }
    }
}

struct Agent {
    process: AgentProcess,
    addr: String,
    _dir: tempfile::TempDir,
}

fn start(transport: Transport, tls: bool, extra: &[&str]) -> Agent {
    let dir = scratch(transport.binary());
    let process =
        AgentProcess::start(&agent_binary(transport.binary()), dir.path(), extra).unwrap();
    let addr = format!("{}://{}", transport.scheme(tls), process.api_addr());
    Agent {
        process,
        addr,
        _dir: dir,
    }
}

/// What one `solti` run did.
#[derive(Debug)]
struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    #[track_caller]
    fn ok(&self) -> &Self {
        assert_eq!(self.code, 0, "{self:?}");
        self
    }

    #[track_caller]
    fn fails(&self, code: i32, needle: &str) -> &Self {
        assert_eq!(self.code, code, "{self:?}");
        assert!(
            self.stderr.contains(needle),
            "wanted {needle:?} in {self:?}"
        );
        // One line naming what to fix.
        assert_eq!(self.stderr.trim_end().lines().count(), 1, "{self:?}");
        self
    }

    fn json_lines(&self) -> Vec<Value> {
        self.stdout
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l:?}: {e}")))
            .collect()
    }
}

/// Runs `solti` with only the given `SOLTI_*` variables, feeding `stdin`; kills it after 60 s
/// (a hang is a failure, not a wait).
fn solti_with(args: &[&str], env: &[(&str, &str)], stdin: Option<&str>) -> Run {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_solti"));
    cmd.args(args)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .envs(env.iter().copied())
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    if let Some(input) = stdin {
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
    }
    let pid = child.id();
    let deadline = Instant::now() + Duration::from_secs(60);
    let watchdog = std::thread::spawn(move || {
        while Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
            if !agentd_kit::testing::process_alive(i32::try_from(pid).unwrap()) {
                return false;
            }
        }
        let _ = Command::new("kill").arg(pid.to_string()).status();
        true
    });
    let out = child.wait_with_output().unwrap();
    assert!(!watchdog.join().unwrap(), "solti {args:?} hung");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn solti(addr: &str, args: &[&str]) -> Run {
    solti_with(args, &[("SOLTI_ADDR", addr)], None)
}

/// Whether the agent keeps output history (wire contract §5): a finished task's output is
/// readable.
fn has_history(addr: &str) -> bool {
    let id = solti(addr, &["run", "--wait", "--", "echo", "probe-history"])
        .ok()
        .stdout
        .trim()
        .to_owned();
    solti(addr, &["logs", &id]).stdout.contains("probe-history")
}

// === every command, both transports ===

fn every_command(transport: Transport) {
    let agent = start(transport, false, &[]);
    let addr = agent.addr.as_str();
    let history = has_history(addr);

    let health = solti(addr, &["health"]);
    health.ok();
    assert!(health.stdout.contains(addr), "{health:?}");

    // run: prints the id.
    let hello = solti(
        addr,
        &["run", "--slot", "hello", "--", "echo", "hello world"],
    );
    let hello_id = hello.ok().stdout.trim().to_owned();
    assert!(hello_id.starts_with("tsk_"), "{hello:?}");
    assert_eq!(solti(addr, &["wait", &hello_id]).code, 0);

    // --wait: the task's exit code; 124 for a timeout; 1 for a failure without a code.
    solti(addr, &["run", "--wait", "--", "sh", "-c", "exit 3"]).fails(3, "exited with code 3");
    solti(
        addr,
        &["run", "--wait", "--timeout", "300ms", "--", "sleep", "5"],
    )
    .fails(124, "timeout");
    assert_eq!(solti(addr, &["run", "--wait", "--", "true"]).code, 0);

    // --follow: the output, live, and the exit code.
    let follow = solti(
        addr,
        &[
            "run",
            "--follow",
            "--",
            "sh",
            "-c",
            "echo one; sleep 1; echo two >&2; echo three",
        ],
    );
    follow.ok();
    assert!(follow.stdout.contains("three"), "{follow:?}");
    assert!(follow.stderr.contains("two"), "{follow:?}");
    if history {
        assert_eq!(follow.stdout, "one\nthree\n", "{follow:?}");
    }

    // A busy slot under drop-if-running is reported, not silently dropped.
    let sleeper = solti(addr, &["run", "--slot", "busy", "--", "sleep", "30"]);
    let sleeper_id = sleeper.ok().stdout.trim().to_owned();
    solti(addr, &["run", "--slot", "busy", "--", "true"]).fails(1, "was not started");

    // ls: table, JSON lines, filters.
    let ls = solti(addr, &["ls"]);
    ls.ok();
    assert!(ls.stdout.starts_with("ID "), "{ls:?}");
    assert!(ls.stdout.contains(&hello_id[4..14]), "{ls:?}");
    assert!(ls.stdout.lines().all(|l| l.chars().count() <= 80), "{ls:?}");
    let all = solti(addr, &["ls", "-o", "json"]).json_lines();
    assert!(all.len() >= 6, "{all:?}");
    assert!(all.iter().all(|t| t["metadata"]["id"].is_string()));
    let failed = solti(addr, &["ls", "--phase", "failed", "-o", "json"]).json_lines();
    assert!(!failed.is_empty());
    assert!(
        failed
            .iter()
            .all(|t| t["status"]["phase"] == "TASK_STATUS_FAILED"),
        "{failed:?}"
    );
    let slot = solti(addr, &["ls", "--slot", "hello", "-o", "json"]).json_lines();
    assert_eq!(slot.len(), 1);
    assert_eq!(slot[0]["metadata"]["id"], hello_id.as_str());
    assert_eq!(
        solti(addr, &["ls", "--limit", "2", "-o", "json"])
            .json_lines()
            .len(),
        2
    );

    // get: by a unique prefix, as text and JSON.
    let get = solti(addr, &["get", &hello_id[..20]]);
    get.ok();
    assert!(get.stdout.contains("succeeded"), "{get:?}");
    assert!(get.stdout.contains("echo 'hello world'"), "{get:?}");
    let got = solti(addr, &["get", &hello_id[4..20], "-o", "json"]).json_lines();
    assert_eq!(got[0]["spec"]["slot"], "hello");
    solti(addr, &["get", "tsk_01ZZZZZZZZZZZZZZZZZZZZZZZZ"]).fails(1, "no task");
    solti(addr, &["get", "zz"]).fails(1, "no task");

    // runs.
    let runs = solti(addr, &["runs", &hello_id]);
    runs.ok();
    assert!(runs.stdout.starts_with("ATTEMPT"), "{runs:?}");
    let runs = solti(addr, &["runs", &hello_id, "-o", "json"]).json_lines();
    assert_eq!(runs[0]["status"], "TASK_STATUS_SUCCEEDED");
    solti(addr, &["runs", "tsk_01ZZZZZZZZZZZZZZZZZZZZZZZZ"]).fails(1, "no task");

    // logs of a finished task: its retained output, then the command ends.
    let logs = solti(addr, &["logs", &hello_id]);
    logs.ok();
    let logs_f = solti(addr, &["logs", "-f", &hello_id]);
    logs_f.ok();
    if history {
        assert_eq!(logs.stdout, "hello world\n", "{logs:?}");
        assert_eq!(logs_f.stdout, "hello world\n", "{logs_f:?}");
        let json = solti(addr, &["logs", &hello_id, "-o", "json"]).json_lines();
        assert!(json.iter().any(|e| e.get("chunk").is_some()), "{json:?}");
        let tail = solti(
            addr,
            &["run", "--wait", "--", "sh", "-c", "echo a; echo b; echo c"],
        );
        let tail_id = tail.ok().stdout.trim().to_owned();
        assert_eq!(
            solti(addr, &["logs", "--tail", "1", &tail_id]).stdout,
            "c\n"
        );
        assert_eq!(
            solti(addr, &["logs", "--tail", "all", &tail_id]).stdout,
            "a\nb\nc\n"
        );
        assert_eq!(
            solti(addr, &["logs", "--since", "10m", &tail_id]).stdout,
            "a\nb\nc\n"
        );
    }
    solti(addr, &["logs", "tsk_01ZZZZZZZZZZZZZZZZZZZZZZZZ"]).fails(1, "no task");

    // apply: a proto3-JSON CreateSpec from a file and from stdin.
    let spec = r#"{"slot":"applied","kind":{"subprocess":{"command":{"command":"echo","args":["applied"]}}},
        "timeoutMs":"30000","restart":"RESTART_STRATEGY_NEVER","admission":"ADMISSION_STRATEGY_REPLACE"}"#;
    let dir = scratch("apply");
    let file = dir.path().join("spec.json");
    std::fs::write(&file, spec).unwrap();
    let applied = solti(addr, &["apply", "-f", file.to_str().unwrap()]);
    let applied_id = applied.ok().stdout.trim().to_owned();
    assert!(applied_id.starts_with("tsk_"), "{applied:?}");
    let stdin = solti_with(&["apply", "-f", "-"], &[("SOLTI_ADDR", addr)], Some(spec));
    assert!(stdin.ok().stdout.starts_with("tsk_"));
    // The agent's own validation message comes through.
    let invalid = r#"{"slot":"x","kind":{"subprocess":{"command":{"command":"true"}}},"timeoutMs":"0",
        "restart":"RESTART_STRATEGY_NEVER","admission":"ADMISSION_STRATEGY_REPLACE"}"#;
    solti_with(
        &["apply", "-f", "-"],
        &[("SOLTI_ADDR", addr)],
        Some(invalid),
    )
    .fails(1, "spec.timeoutMs");

    // cancel keeps the task (on an agent that has cancel); rm forgets it.
    let cancel = solti(addr, &["cancel", &sleeper_id]);
    if cancel.code == 0 {
        assert!(cancel.stdout.contains("canceled"), "{cancel:?}");
        let got = solti(addr, &["get", &sleeper_id, "-o", "json"]).json_lines();
        assert_eq!(got[0]["status"]["phase"], "TASK_STATUS_CANCELED");
        // `wait` on a cancelled task: 1.
        solti(addr, &["wait", &sleeper_id]).fails(1, "canceled");
    } else {
        cancel.fails(1, "solti rm");
    }
    solti(addr, &["rm", &sleeper_id]).ok();
    solti(addr, &["get", &sleeper_id]).fails(1, "no task");
    solti(addr, &["cancel", "tsk_01ZZZZZZZZZZZZZZZZZZZZZZZZ"]).fails(1, "");

    // The other transport's address is named in the error.
    let other = match transport {
        Transport::Http => addr.replacen("http://", "grpc://", 1),
        Transport::Grpc => addr.replacen("grpc://", "http://", 1),
    };
    let wrong = solti(&other, &["ls"]);
    assert_eq!(wrong.code, 1, "{wrong:?}");
    assert!(
        wrong.stderr.contains("use --addr"),
        "wrong transport not named: {wrong:?}"
    );
    drop(agent);
}

#[test]
fn every_command_over_http() {
    every_command(Transport::Http);
}

#[test]
fn every_command_over_grpc() {
    every_command(Transport::Grpc);
}

// === token ===

fn token(transport: Transport) {
    let dir = scratch("token");
    let agent_token = dir.path().join("agent-token");
    std::fs::write(&agent_token, "s3cret-token\n").unwrap();
    let agent = start(
        transport,
        false,
        &["--token-file", agent_token.to_str().unwrap()],
    );
    let addr = agent.addr.as_str();
    solti(addr, &["ls"]).fails(1, "requires a token");
    solti_with(
        &["ls"],
        &[("SOLTI_ADDR", addr), ("SOLTI_TOKEN", "wrong")],
        None,
    )
    .fails(1, "token rejected");
    solti_with(
        &["ls"],
        &[("SOLTI_ADDR", addr), ("SOLTI_TOKEN", "s3cret-token")],
        None,
    )
    .ok();
    let file = dir.path().join("client-token");
    std::fs::write(&file, "  s3cret-token  \n").unwrap();
    solti(addr, &["--token-file", file.to_str().unwrap(), "ls"]).ok();
    solti_with(
        &["run", "--wait", "--", "true"],
        &[
            ("SOLTI_ADDR", addr),
            ("SOLTI_TOKEN_FILE", file.to_str().unwrap()),
        ],
        None,
    )
    .ok();
    // The file wins over the variable.
    solti_with(
        &["ls"],
        &[
            ("SOLTI_ADDR", addr),
            ("SOLTI_TOKEN_FILE", file.to_str().unwrap()),
            ("SOLTI_TOKEN", "wrong"),
        ],
        None,
    )
    .ok();
    // The token never shows up in what solti prints.
    let run = solti_with(
        &["ls"],
        &[("SOLTI_ADDR", addr), ("SOLTI_TOKEN", "wrong")],
        None,
    );
    assert!(!run.stderr.contains("wrong") && !run.stdout.contains("wrong"));
    drop(agent);
}

#[test]
fn token_over_http() {
    token(Transport::Http);
}

#[test]
fn token_over_grpc() {
    token(Transport::Grpc);
}

// === TLS ===

type Ca = CertifiedIssuer<'static, KeyPair>;

fn ca(name: &str) -> Ca {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.distinguished_name.push(DnType::CommonName, name);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap()
}

fn leaf(
    dir: &Path,
    name: &str,
    issuer: &Ca,
    sans: &[&str],
    usage: ExtendedKeyUsagePurpose,
) -> (String, String) {
    let key = KeyPair::generate().unwrap();
    let mut params =
        CertificateParams::new(sans.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>()).unwrap();
    params.distinguished_name.push(DnType::CommonName, sans[0]);
    params.extended_key_usages = vec![usage];
    let cert = dir.join(format!("{name}.crt"));
    let key_path = dir.join(format!("{name}.key"));
    std::fs::write(&cert, params.signed_by(&key, issuer).unwrap().pem()).unwrap();
    std::fs::write(&key_path, key.serialize_pem()).unwrap();
    (
        cert.to_str().unwrap().to_owned(),
        key_path.to_str().unwrap().to_owned(),
    )
}

fn tls(transport: Transport) {
    let dir = scratch("tls");
    let d = dir.path();
    let main = ca("solti test ca");
    let other = ca("other ca");
    let ca_file = d.join("ca.crt");
    std::fs::write(&ca_file, main.pem()).unwrap();
    let other_file = d.join("other.crt");
    std::fs::write(&other_file, other.pem()).unwrap();
    let ca_path = ca_file.to_str().unwrap();
    let (server_cert, server_key) = leaf(
        d,
        "server",
        &main,
        &["localhost", "127.0.0.1"],
        ExtendedKeyUsagePurpose::ServerAuth,
    );
    let (client_cert, client_key) = leaf(
        d,
        "client",
        &main,
        &["operator"],
        ExtendedKeyUsagePurpose::ClientAuth,
    );
    let agent = start(
        transport,
        true,
        &[
            "--tls-cert",
            &server_cert,
            "--tls-key",
            &server_key,
            "--tls-client-ca",
            ca_path,
        ],
    );
    let addr = agent.addr.as_str();
    let mtls = [
        "--ca",
        ca_path,
        "--cert",
        &client_cert,
        "--key",
        &client_key,
    ];
    let with = |args: &[&str]| {
        let mut all: Vec<&str> = mtls.to_vec();
        all.extend_from_slice(args);
        solti(addr, &all)
    };
    with(&["health"]).ok();
    let id = with(&["run", "--wait", "--", "echo", "over tls"])
        .ok()
        .stdout
        .trim()
        .to_owned();
    let got = with(&["get", &id, "-o", "json"]).json_lines();
    assert_eq!(got[0]["status"]["phase"], "TASK_STATUS_SUCCEEDED");
    with(&["logs", &id]).ok();
    // Environment twins.
    solti_with(
        &["ls"],
        &[
            ("SOLTI_ADDR", addr),
            ("SOLTI_CA", ca_path),
            ("SOLTI_CERT", &client_cert),
            ("SOLTI_KEY", &client_key),
        ],
        None,
    )
    .ok();
    // Without a client certificate the agent refuses the handshake.
    let no_cert = solti(addr, &["--ca", ca_path, "ls"]);
    assert_eq!(no_cert.code, 1, "{no_cert:?}");
    assert_eq!(no_cert.stderr.trim_end().lines().count(), 1, "{no_cert:?}");
    // A CA that did not sign the agent's certificate.
    solti(
        addr,
        &[
            "--ca",
            other_file.to_str().unwrap(),
            "--cert",
            &client_cert,
            "--key",
            &client_key,
            "ls",
        ],
    )
    .fails(1, "TLS handshake");
    // No --ca at all: a usage error before connecting.
    solti(addr, &["ls"]).fails(2, "--ca");
    // Plain text to a TLS agent fails with the address.
    let plain = addr
        .replacen("https://", "http://", 1)
        .replacen("grpcs://", "grpc://", 1);
    let r = solti(&plain, &["ls"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stderr.contains(&plain), "{r:?}");
    drop(agent);
}

#[test]
fn mtls_over_https() {
    tls(Transport::Http);
}

#[test]
fn mtls_over_grpcs() {
    tls(Transport::Grpc);
}

// === bad input, no agent needed ===

#[test]
fn bad_input_names_the_flag() {
    let addr = "http://127.0.0.1:1";
    let dir = scratch("bad");
    let bad_json = dir.path().join("bad.json");
    std::fs::write(&bad_json, "{ not json").unwrap();
    let not_spec = dir.path().join("not-spec.json");
    std::fs::write(&not_spec, r#"{"timeoutMs": "soon"}"#).unwrap();
    let not_pem = dir.path().join("not-pem.txt");
    std::fs::write(&not_pem, "not a certificate").unwrap();
    let not_pem = not_pem.to_str().unwrap();
    let empty_token = dir.path().join("empty-token");
    std::fs::write(&empty_token, "\n").unwrap();
    let cases: &[(&[&str], &str)] = &[
        (&["--addr", "127.0.0.1:8085", "ls"], "--addr"),
        (&["--addr", "ftp://x:1", "ls"], "--addr"),
        (&["--addr", "http://x:0", "ls"], "--addr"),
        (&["--connect-timeout", "5", "ls"], "--connect-timeout"),
        (&["--connect-timeout", "0s", "ls"], "--connect-timeout"),
        (&["--output", "yaml", "ls"], "--output"),
        (
            &["--token-file", "/nonexistent/token", "ls"],
            "--token-file",
        ),
        (
            &["--token-file", empty_token.to_str().unwrap(), "ls"],
            "--token-file",
        ),
        (&["--ca", not_pem, "ls"], "--ca"),
        (
            &[
                "--addr",
                "https://127.0.0.1:1",
                "--ca",
                "/nonexistent.crt",
                "ls",
            ],
            "--ca",
        ),
        (
            &[
                "--addr",
                "https://127.0.0.1:1",
                "--ca",
                not_pem,
                "--cert",
                "/x",
                "ls",
            ],
            "--cert",
        ),
        (&["run", "--timeout", "30", "--", "x"], "--timeout"),
        (&["run", "--timeout", "0s", "--", "x"], "--timeout"),
        (&["run", "--timeout", "400d", "--", "x"], "--timeout"),
        (&["run", "--retries", "0", "--", "x"], "--retries"),
        (&["run", "--retries=-1", "--", "x"], "--retries"),
        (&["run", "--backoff", "5s..1s", "--", "x"], "--backoff"),
        (&["run", "--backoff", "soon", "--", "x"], "--backoff"),
        (&["run", "--jitter", "lots", "--", "x"], "--jitter"),
        (&["run", "--restart", "sometimes", "--", "x"], "--restart"),
        (&["run", "--admission", "maybe", "--", "x"], "--admission"),
        (
            &["run", "--restart-interval", "5s", "--", "x"],
            "--restart-interval",
        ),
        (&["run", "--env", "NOVALUE", "--", "x"], "--env"),
        (&["run", "--label", "=v", "--", "x"], "--label"),
        (
            &["run", "--selector", "arch in x86", "--", "x"],
            "--selector",
        ),
        (&["run", "--slot", "has space", "--", "x"], "--slot"),
        (&["run", "--script", "/nonexistent.sh"], "--script"),
        (&["run", "--script", not_pem], "--runtime"),
        (&["run", "--runtime", "bash", "--", "x"], "--script"),
        (&["run", "--slot", "x"], "no command"),
        (&["apply", "-f", "/nonexistent.json"], "-f"),
        (&["apply", "-f", bad_json.to_str().unwrap()], "not JSON"),
        (
            &["apply", "-f", not_spec.to_str().unwrap()],
            "not a CreateSpec",
        ),
        (&["ls", "--limit", "0"], "--limit"),
        (&["ls", "--limit", "1001"], "--limit"),
        (&["ls", "--phase", "done"], "--phase"),
        (&["logs", "--tail", "some", "tsk_x"], "--tail"),
        (&["logs", "--since", "yesterday", "tsk_x"], "--since"),
        (&["get", "../etc/passwd"], "ID"),
        (&["completions", "tcsh"], "tcsh"),
        (&["frobnicate"], "frobnicate"),
    ];
    for (args, needle) in cases {
        let run = solti(addr, args);
        assert_eq!(run.code, 2, "{args:?}: {run:?}");
        assert!(
            run.stderr.contains(needle),
            "{args:?}: wanted {needle:?} in {run:?}"
        );
        assert!(!run.stderr.contains("panicked"), "{args:?}: {run:?}");
    }
    // A cleartext token to a remote address is refused before anything is sent.
    solti_with(
        &["ls"],
        &[
            ("SOLTI_ADDR", "http://192.0.2.1:8085"),
            ("SOLTI_TOKEN", "t"),
        ],
        None,
    )
    .fails(2, "cleartext");
    // An unreachable agent: exit 1 with the address; under --wait 125.
    solti(addr, &["ls"]).fails(1, "cannot reach the agent at http://127.0.0.1:1");
    solti(addr, &["run", "--wait", "--", "true"]).fails(125, "http://127.0.0.1:1");
    solti("grpc://127.0.0.1:1", &["health"]).fails(1, "grpc://127.0.0.1:1");
    solti("unix:/nonexistent/solti.sock", &["ls"]).fails(1, "unix:/nonexistent/solti.sock");
}

#[test]
fn help_and_completions() {
    let help = solti_with(&["--help"], &[], None);
    help.ok();
    for needle in [
        "Exit codes",
        "124",
        "SOLTI_ADDR",
        "SOLTI_TOKEN_FILE",
        "run",
        "logs",
    ] {
        assert!(help.stdout.contains(needle), "{needle}: {help:?}");
    }
    for shell in ["bash", "zsh", "fish"] {
        let out = solti_with(&["completions", shell], &[], None);
        out.ok();
        assert!(out.stdout.contains("solti"), "{shell}");
    }
}

// === Unix socket ===

/// Forwards every connection on a Unix socket to `tcp` (a stand-in for an agent listening on
/// a Unix socket itself), until the test ends.
fn unix_forwarder(socket: &Path, tcp: String) {
    let listener = std::os::unix::net::UnixListener::bind(socket).unwrap();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(unix) = conn else { break };
            let Ok(tcp) = std::net::TcpStream::connect(&tcp) else {
                break;
            };
            let (mut unix_r, mut tcp_w) = (unix.try_clone().unwrap(), tcp.try_clone().unwrap());
            let (mut tcp_r, mut unix_w) = (tcp, unix);
            std::thread::spawn(move || {
                let _ = std::io::copy(&mut unix_r, &mut tcp_w);
                let _ = tcp_w.shutdown(std::net::Shutdown::Write);
            });
            std::thread::spawn(move || {
                let _ = std::io::copy(&mut tcp_r, &mut unix_w);
                let _ = unix_w.shutdown(std::net::Shutdown::Write);
            });
        }
    });
}

/// An agent started on `--listen unix:PATH` (agents that have it), killed on drop.
struct UnixAgent(std::process::Child);

impl Drop for UnixAgent {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `transport`'s agent on a Unix socket of its own when it supports
/// `--listen unix:PATH`; otherwise on TCP with a Unix-socket forwarder in front (the client
/// side is the same either way).
fn unix_agent(transport: Transport, dir: &Path) -> (Box<dyn std::any::Any>, PathBuf) {
    use std::io::BufRead as _;
    let socket = dir.join("agent.sock");
    let binary = agent_binary(transport.binary());
    let help = Command::new(&binary).arg("--help").output().unwrap();
    if String::from_utf8_lossy(&help.stdout).contains("unix:") {
        let mut child = Command::new(&binary)
            .arg("--listen")
            .arg(format!("unix:{}", socket.display()))
            .args(["--metrics-listen", "off", "--state-dir"])
            .arg(dir.join("state"))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let guard = UnixAgent(child);
        let ready = std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            .any(|l| l.contains(" ready: "));
        assert!(ready, "the agent on a Unix socket did not start");
        eprintln!(
            "{}: the agent listens on {} itself",
            transport.binary(),
            socket.display()
        );
        (Box::new(guard), socket)
    } else {
        let agent = start(transport, false, &[]);
        unix_forwarder(&socket, agent.process.api_addr());
        eprintln!(
            "{}: no --listen unix: in this agent; a forwarder serves {}",
            transport.binary(),
            socket.display()
        );
        (Box::new(agent), socket)
    }
}

#[test]
fn over_a_unix_socket() {
    for transport in [Transport::Http, Transport::Grpc] {
        let dir = scratch("unix");
        let (_agent, socket) = unix_agent(transport, dir.path());
        let addr = match transport {
            Transport::Http => format!("unix:{}", socket.display()),
            Transport::Grpc => format!("grpc+unix:{}", socket.display()),
        };
        solti(&addr, &["health"]).ok();
        let id = solti(&addr, &["run", "--wait", "--", "echo", "over unix"])
            .ok()
            .stdout
            .trim()
            .to_owned();
        let got = solti(&addr, &["get", &id, "-o", "json"]).json_lines();
        assert_eq!(got[0]["status"]["phase"], "TASK_STATUS_SUCCEEDED");
        solti(&addr, &["ls"]).ok();
        solti(&addr, &["logs", &id]).ok();
        solti(&addr, &["rm", &id]).ok();
    }
}
