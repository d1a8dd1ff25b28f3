//! A minimal agent serving the task API, for trying the routes by hand.
//!
//! Run with `cargo run -p solti-api --features http,grpc --example serve`, then e.g.
//! `curl -s localhost:8085/api/v1/tasks`. HTTP listens on 127.0.0.1:8085, gRPC on
//! 127.0.0.1:50052; set `SOLTI_AGENT_TOKEN` (the variable the reference agents read) to
//! require a bearer token. Ctrl-C stops it.

use std::sync::Arc;

use solti_api::{GrpcApi, HttpApi, SupervisorApiAdapter, serve_grpc, serve_http};
use solti_core::{StateConfig, SupervisorApi};
use solti_model::Token;
use solti_runner::RunnerRouter;
use taskvisor::{ControllerConfig, SupervisorConfig};
use tokio_util::sync::CancellationToken;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut router = RunnerRouter::new();
    // Tasks start from a clean environment (PATH, HOME, LANG, TZ and their own env), and
    // solti-exec never hands them `SOLTI_*` variables, so `SOLTI_TOKEN` stays with the agent.
    solti_exec::subprocess::register_subprocess_runner(&mut router, "default")?;
    let supervisor = Arc::new(
        SupervisorApi::new(
            SupervisorConfig::default(),
            ControllerConfig::default(),
            vec![],
            router,
            StateConfig::default(),
        )
        .await?,
    );
    let handler = Arc::new(SupervisorApiAdapter::new(Arc::clone(&supervisor)));
    let mut http = HttpApi::new(Arc::clone(&handler));
    let mut grpc = GrpcApi::new(handler);
    if std::env::var_os("SOLTI_AGENT_TOKEN").is_some() {
        let token = Token::from_env("SOLTI_AGENT_TOKEN")?;
        http = http.with_auth(token.clone());
        grpc = grpc.with_auth(token);
    }

    let stop = CancellationToken::new();
    let signal = {
        let stop = stop.clone();
        tokio::spawn(async move {
            let _ = tokio::signal::ctrl_c().await;
            stop.cancel();
        })
    };
    let http_listener = tokio::net::TcpListener::bind("127.0.0.1:8085").await?;
    let grpc_listener = tokio::net::TcpListener::bind("127.0.0.1:50052").await?;
    println!("HTTP on http://127.0.0.1:8085, gRPC on 127.0.0.1:50052");
    let (a, b) = tokio::join!(
        serve_http(http_listener, http.router(), stop.clone().cancelled_owned()),
        serve_grpc(
            grpc_listener,
            grpc.into_routes(),
            stop.clone().cancelled_owned()
        ),
    );
    a?;
    b?;
    signal.abort();
    supervisor.shutdown().await?;
    Ok(())
}
