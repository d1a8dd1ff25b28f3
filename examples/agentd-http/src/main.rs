//! `agentd-http`: the Solti reference agent with the HTTP/JSON (+ SSE) task API.
//!
//! Run with `cargo run -p agentd-http` (API on 127.0.0.1:8085, metrics on 127.0.0.1:9090);
//! `cargo run -p agentd-http -- --help` lists every flag and its `SOLTI_*` environment twin.

fn main() -> anyhow::Result<()> {
    agentd_kit::main(agentd_kit::TransportKind::Http)
}
