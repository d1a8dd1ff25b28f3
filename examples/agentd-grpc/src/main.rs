//! `agentd-grpc`: the Solti reference agent with the gRPC task API.
//!
//! Run with `cargo run -p agentd-grpc` (API on 127.0.0.1:50052, metrics on 127.0.0.1:9090);
//! `cargo run -p agentd-grpc -- --help` lists every flag and its `SOLTI_*` environment twin.

fn main() -> anyhow::Result<()> {
    agentd_kit::main(agentd_kit::TransportKind::Grpc)
}
