//! One client over either transport, speaking the generated `solti_api::pb` types.

use http::HeaderValue;
use solti_api::pb::{self, stream_task_logs_response::Kind};

use crate::{
    conn::Connector,
    error::{Error, Result},
    grpc::{GrpcClient, GrpcLogStream},
    http::{HttpClient, SseStream},
    target::Api,
};

/// How much of a task's retained output to send first.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Tail {
    /// The last N lines.
    Lines(u32),
    /// Everything retained.
    All,
}

/// What a log stream should carry.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct LogOptions {
    pub(crate) tail: Option<Tail>,
    pub(crate) follow: bool,
    pub(crate) since_ms: Option<i64>,
}

impl LogOptions {
    /// Whether these options need the agent's output history.
    pub(crate) fn wants_history(&self) -> bool {
        self.tail.is_some() || self.since_ms.is_some() || !self.follow
    }
}

/// One event of a log stream.
#[derive(Clone, Debug)]
pub(crate) struct LogEvent {
    pub(crate) kind: Kind,
    /// The event's offset when the agent numbers events (output history), else `None`.
    pub(crate) offset: Option<u64>,
}

impl LogEvent {
    pub(crate) fn from_grpc(msg: pb::StreamTaskLogsResponse) -> Option<Self> {
        Some(Self {
            kind: msg.kind?,
            offset: Some(msg.offset),
        })
    }

    /// The event as the proto message (for `--output json`).
    pub(crate) fn to_proto(&self) -> pb::StreamTaskLogsResponse {
        pb::StreamTaskLogsResponse {
            kind: Some(self.kind.clone()),
            offset: self.offset.unwrap_or_default(),
        }
    }
}

/// What the health check found.
#[derive(Clone, Debug)]
pub(crate) enum Readiness {
    Ready(String),
    NotReady(String),
    /// The agent has no health endpoint, but its task API answered.
    NoHealthEndpoint,
}

/// "no task ID" as an error.
pub(crate) fn not_found(id: &str) -> Error {
    Error::failed(format!("no task {id} on the agent"))
}

/// A client of one agent.
#[derive(Debug)]
pub(crate) enum Client {
    Http(Box<HttpClient>),
    Grpc(Box<GrpcClient>),
}

/// A log stream over either transport.
#[derive(Debug)]
pub(crate) enum LogStream {
    Http(SseStream),
    Grpc(GrpcLogStream),
}

impl LogStream {
    pub(crate) async fn next(&mut self) -> Result<Option<LogEvent>> {
        match self {
            Self::Http(s) => s.next().await,
            Self::Grpc(s) => s.next().await,
        }
    }
}

/// The pages a prefix search reads.
const PAGE: u32 = 1000;

impl Client {
    /// Connects (gRPC at once; HTTP on the first request).
    pub(crate) async fn connect(conn: Connector, auth: Option<HeaderValue>) -> Result<Self> {
        Ok(match conn.target().api {
            Api::Http => Self::Http(Box::new(HttpClient::new(conn, auth))),
            Api::Grpc => Self::Grpc(Box::new(GrpcClient::connect(&conn, auth).await?)),
        })
    }

    pub(crate) async fn submit(&mut self, spec: pb::CreateSpec, apply: bool) -> Result<String> {
        match self {
            Self::Http(c) => c.submit(spec, apply).await,
            Self::Grpc(c) => c.submit(spec, apply).await,
        }
    }

    pub(crate) async fn get(&mut self, id: &str) -> Result<Option<pb::TaskData>> {
        match self {
            Self::Http(c) => c.get(id).await,
            Self::Grpc(c) => c.get(id).await,
        }
    }

    /// The task, or a "no task" error.
    pub(crate) async fn task(&mut self, id: &str) -> Result<pb::TaskData> {
        self.get(id).await?.ok_or_else(|| not_found(id))
    }

    pub(crate) async fn list(
        &mut self,
        slot: Option<&str>,
        phase: Option<pb::TaskStatus>,
        limit: u32,
        offset: u32,
    ) -> Result<pb::ListTasksResponse> {
        match self {
            Self::Http(c) => c.list(slot, phase, limit, offset).await,
            Self::Grpc(c) => c.list(slot, phase, limit, offset).await,
        }
    }

    pub(crate) async fn runs(&mut self, id: &str) -> Result<Vec<pb::TaskRunInfo>> {
        match self {
            Self::Http(c) => c.runs(id).await,
            Self::Grpc(c) => c.runs(id).await,
        }
    }

    pub(crate) async fn delete(&mut self, id: &str) -> Result<()> {
        match self {
            Self::Http(c) => c.delete(id).await,
            Self::Grpc(c) => c.delete(id).await,
        }
    }

    pub(crate) async fn cancel(&mut self, id: &str) -> Result<pb::TaskData> {
        match self {
            Self::Http(c) => c.cancel(id).await,
            Self::Grpc(c) => c.cancel(id).await,
        }
    }

    pub(crate) async fn logs(&mut self, id: &str, opts: &LogOptions) -> Result<LogStream> {
        Ok(match self {
            Self::Http(c) => LogStream::Http(c.logs(id, opts).await?),
            Self::Grpc(c) => LogStream::Grpc(c.logs(id, opts).await?),
        })
    }

    pub(crate) async fn readiness(&mut self) -> Result<Readiness> {
        match self {
            Self::Http(c) => c.readiness().await,
            Self::Grpc(c) => c.readiness().await,
        }
    }

    /// Resolves what the user typed to one task id: a full id as is; otherwise a unique
    /// prefix of an id (with or without the `tsk_` part).
    pub(crate) async fn resolve(&mut self, typed: &str) -> Result<String> {
        check_id(typed)?;
        if looks_complete(typed) {
            return Ok(typed.to_owned());
        }
        let wanted = typed.to_ascii_uppercase();
        let mut matches = Vec::new();
        let mut offset = 0;
        loop {
            let page = self.list(None, None, PAGE, offset).await?;
            let n = u32::try_from(page.tasks.len()).unwrap_or(u32::MAX);
            for task in page.tasks {
                let id = task.metadata.map(|m| m.id).unwrap_or_default();
                let bare = id.strip_prefix("tsk_").unwrap_or(&id);
                if id.to_ascii_uppercase().starts_with(&wanted)
                    || bare.to_ascii_uppercase().starts_with(&wanted)
                {
                    matches.push(id);
                }
            }
            offset = offset.saturating_add(n);
            if n == 0 || offset >= page.total || matches.len() > 1 {
                break;
            }
        }
        match matches.len() {
            0 => Err(not_found(typed)),
            1 => Ok(matches.swap_remove(0)),
            _ => Err(Error::usage(format!(
                "ID {typed:?} is ambiguous: it starts {}; type more characters",
                matches.join(", ")
            ))),
        }
    }
}

/// Task ids are `[A-Za-z0-9._-]`, at most 256 characters: refuse anything else before it
/// becomes part of a URL.
pub(crate) fn check_id(id: &str) -> Result<()> {
    if id.is_empty() || id.len() > 256 {
        return Err(Error::usage("ID: must be 1 to 256 characters"));
    }
    if let Some(c) = id
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        return Err(Error::usage(format!(
            "ID {id:?}: {c:?} cannot be part of a task id (letters, digits, '.', '_', '-')"
        )));
    }
    Ok(())
}

/// A whole agent-generated id: `tsk_` and a 26-character ULID.
fn looks_complete(id: &str) -> bool {
    id.strip_prefix("tsk_").is_some_and(|u| u.len() == 26)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_checked_before_use() {
        assert!(check_id("tsk_01M8D47PMRNVQA2NDHK78NN4KE").is_ok());
        assert!(check_id("01m8").is_ok());
        assert!(check_id("../etc").is_err());
        assert!(check_id("a b").is_err());
        assert!(check_id("").is_err());
        assert!(looks_complete("tsk_01M8D47PMRNVQA2NDHK78NN4KE"));
        assert!(!looks_complete("tsk_01M8"));
    }
}
