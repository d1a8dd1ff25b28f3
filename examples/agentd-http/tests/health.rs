//! End-to-end: `/healthz` and `/readyz` of the real `agentd-http`, on the API port and the
//! metrics port, without the token, through start-up and SIGTERM.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code")]

use std::{path::Path, time::Duration};

use agentd_kit::testing::AgentProcess;
use serde_json::{Value, json};

const TOKEN: &str = "s3cret-token-for-tests";

fn start(name: &str, extra: &[&str]) -> AgentProcess {
    let dir =
        std::env::temp_dir().join(format!("agentd-http-health-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    AgentProcess::start(Path::new(env!("CARGO_BIN_EXE_agentd-http")), &dir, extra).unwrap()
}

async fn get(client: &reqwest::Client, url: &str) -> (u16, Option<String>, Value) {
    let res = client.get(url).send().await.unwrap();
    let status = res.status().as_u16();
    let retry = res
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_owned());
    let body = res.json().await.unwrap_or(Value::Null);
    (status, retry, body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probes_on_both_ports_without_auth_then_503_on_shutdown() {
    let mut agent = start(
        "probes",
        &["--token", TOKEN, "--shutdown-grace-ms", "30000"],
    );
    let api = format!("http://{}", agent.api_addr());
    let metrics = agent.metrics_url().trim_end_matches("/metrics").to_owned();
    let client = reqwest::Client::new();

    for base in [&api, &metrics] {
        assert_eq!(
            get(&client, &format!("{base}/healthz")).await,
            (200, None, json!({"status": "ok"})),
            "{base}"
        );
        assert_eq!(
            get(&client, &format!("{base}/readyz")).await,
            (200, None, json!({"status": "ready"})),
            "{base}"
        );
    }
    // Nothing else is open: the API still wants the token.
    let (status, _, _) = get(&client, &format!("{api}/api/v1/tasks")).await;
    assert_eq!(status, 401);
    // A wrong method on a probe (or /metrics): 405 with `Allow` and the JSON error body.
    let wrong = [
        (&api, "POST", "/healthz"),
        (&api, "DELETE", "/readyz"),
        (&metrics, "POST", "/healthz"),
        (&metrics, "PUT", "/readyz"),
        (&metrics, "POST", "/metrics"),
    ];
    for (base, method, path) in wrong {
        let res = client
            .request(method.parse().unwrap(), format!("{base}{path}"))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 405, "{method} {base}{path}");
        let allow = res.headers()["allow"].to_str().unwrap().to_owned();
        assert!(allow.contains("GET"), "{method} {path}: Allow {allow}");
        assert_eq!(
            res.headers()["content-type"].to_str().unwrap(),
            "application/json",
            "{method} {path}"
        );
        let body: Value = res.json().await.unwrap();
        assert_eq!(body["error"], "MethodNotAllowed", "{method} {path}: {body}");
        assert!(
            body["message"].as_str().unwrap().contains(method),
            "{method} {path}: {body}"
        );
    }

    // A task that ignores SIGTERM keeps the agent in its shutdown (up to the kill grace),
    // during which the metrics port answers 503 on /readyz and 200 on /healthz.
    let res = client
        .post(format!("{api}/api/v1/tasks"))
        .bearer_auth(TOKEN)
        .json(&json!({"spec": {
            "slot": "stubborn",
            "kind": {"subprocess": {"command": {"command": "sh", "args": ["-c", "trap '' TERM; while :; do echo up; sleep 0.2; done"]}}},
            "timeoutMs": "60000",
            "restart": "RESTART_STRATEGY_NEVER",
            "admission": "ADMISSION_STRATEGY_DROP_IF_RUNNING"
        }}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let id = res.json::<Value>().await.unwrap()["taskId"]
        .as_str()
        .unwrap()
        .to_owned();
    // A line of output means the shell has set its trap (it prints after it): the task now
    // ignores SIGTERM, so the shutdown lasts at least the runner's kill grace (5 s).
    let mut logs = client
        .get(format!("{api}/api/v1/tasks/{id}/logs"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(logs.status(), 200);
    let mut seen = String::new();
    tokio::time::timeout(Duration::from_secs(30), async {
        while !seen.contains("\"line\":\"up\"") {
            let chunk = logs.chunk().await.unwrap().expect("the stream goes on");
            seen.push_str(&String::from_utf8_lossy(&chunk));
        }
    })
    .await
    .expect("the task printed within 30 s");
    drop(logs);
    agent.send_sigterm().unwrap();
    let mut saw_503 = None;
    for _ in 0..400 {
        match client.get(format!("{metrics}/readyz")).send().await {
            Ok(res) if res.status() == 503 => {
                let retry = res.headers().get("retry-after").cloned();
                saw_503 = Some((retry, res.json::<Value>().await.unwrap()));
                break;
            }
            Ok(_) => tokio::time::sleep(Duration::from_millis(25)).await,
            Err(e) => panic!("metrics port closed before /readyz said 503: {e}"),
        }
    }
    let (retry, body) = saw_503.expect("/readyz answered 503 during shutdown");
    assert!(retry.is_some());
    assert_eq!(body, json!({"status": "shutting down"}));
    let (status, _, _) = get(&client, &format!("{metrics}/healthz")).await;
    assert_eq!(status, 200);
    assert!(agent.wait_exit(Duration::from_secs(60)).unwrap().success());
}
