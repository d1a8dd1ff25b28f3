//! Shared wiring of the reference agents `agentd-http` and `agentd-grpc`: configuration
//! (flags with `SOLTI_*` environment twins), the stable agent id, the safe-by-default listen
//! check, signal handling and the assembly of the Solti crates into one running agent.
//!
//! The binaries are thin: each calls [`main`] with its transport. An agent that embeds its
//! own runners next to the subprocess runner calls [`main_with`] (or [`run_with`]) and
//! registers them on the [`RunnerRouter`](solti_runner::RunnerRouter) it is handed.

mod config;
mod discovery;
mod file;
mod identity;
mod listen;
mod metrics;
mod notify;
mod reload;
mod run;
mod serve;
mod signals;
mod state;
pub mod testing;
mod trim;

pub use config::{
    Config, CpuMax, DialectArg, LogFormatArg, LogTimezoneArg, PodiumTransportArg, Secret,
    StateBackendArg, TaskIdentity, TransportKind,
};
pub use identity::load_or_create_agent_id;
pub use listen::{ListenAddr, SocketFile, bind_unix, parse_mode};
pub use run::{main, main_with, run, run_with};
pub use signals::Signals;
