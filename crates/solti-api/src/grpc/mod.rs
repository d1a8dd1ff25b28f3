//! The gRPC binding: `solti.task.v1.TaskService` on tonic.

mod gate;
mod service;
mod shape;

use std::{fmt, future::Future, sync::Arc};

use solti_model::Token;
use tonic::service::Routes;

pub use gate::GrpcService;

/// Client-side helpers for `StreamTaskLogs`: the request for an
/// [`OutputQuery`](solti_core::OutputQuery) and the offset and event of each response.
pub use crate::convert::{
    event_from_pb as log_event_from_pb, log_query_to_pb as log_request_to_pb,
};

use crate::{
    ApiHandler, ApiObserver, HostPolicy, Listener, NoOpApiObserver, ServeConfig,
    pb::task_service_server::TaskServiceServer,
};

/// Largest gRPC message accepted or sent: 4 MiB (decode and encode limits). A larger
/// request fails with `RESOURCE_EXHAUSTED`.
pub const MAX_MESSAGE_BYTES: usize = 4 * 1024 * 1024;

/// Builds the gRPC service `solti.task.v1.TaskService`.
///
/// Unknown ids follow the proto: `GetTaskStatus` answers OK without `task`, `ListTaskRuns`
/// OK with no runs, `DeleteTask` OK, and `StreamTaskLogs` `NOT_FOUND`. With
/// [`with_auth`](Self::with_auth) every call must carry `authorization: Bearer <token>`
/// metadata, checked before the method runs.
///
/// ```no_run
/// # async fn demo(supervisor: solti_core::SupervisorApi) -> std::io::Result<()> {
/// use std::sync::Arc;
///
/// use solti_api::{GrpcApi, SupervisorApiAdapter, serve_grpc};
///
/// let handler = Arc::new(SupervisorApiAdapter::new(Arc::new(supervisor)));
/// let routes = GrpcApi::new(handler).into_routes();
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:50052").await?;
/// serve_grpc(listener, routes, std::future::pending()).await?;
/// # Ok(())
/// # }
/// ```
#[must_use]
pub struct GrpcApi<H> {
    handler: Arc<H>,
    auth: Option<Token>,
    observer: Arc<dyn ApiObserver>,
    host_policy: HostPolicy,
}

impl<H: ApiHandler> GrpcApi<H> {
    /// A service over `handler`, without auth and with a no-op observer.
    pub fn new(handler: Arc<H>) -> Self {
        Self {
            handler,
            auth: None,
            observer: Arc::new(NoOpApiObserver),
            host_policy: HostPolicy::default(),
        }
    }

    /// Which `:authority` / `Host` values are accepted; the `Origin`, `Sec-Fetch-Site` and
    /// `Content-Type: application/grpc` checks always apply (a refused call gets
    /// `PERMISSION_DENIED` or `INVALID_ARGUMENT` before auth and before the method runs).
    ///
    /// # Default
    /// [`HostPolicy::Loopback`].
    pub fn with_host_policy(mut self, policy: HostPolicy) -> Self {
        self.host_policy = policy;
        self
    }

    /// Requires `authorization: Bearer <token>` metadata on every call (constant-time check).
    ///
    /// # Default
    /// No auth.
    pub fn with_auth(mut self, token: Token) -> Self {
        self.auth = Some(token);
        self
    }

    /// Reports every call to `observer`.
    ///
    /// # Default
    /// [`NoOpApiObserver`].
    pub fn with_observer(mut self, observer: Arc<dyn ApiObserver>) -> Self {
        self.observer = observer;
        self
    }

    /// The service (auth, observation and the 4 MiB limits included), to add to a
    /// `tonic::transport::Server` or to [`Routes`] next to other services.
    #[must_use]
    pub fn into_service(self) -> GrpcService<H> {
        let server = TaskServiceServer::from_arc(Arc::new(service::TaskServiceImpl {
            handler: self.handler,
        }))
        .max_decoding_message_size(MAX_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_MESSAGE_BYTES);
        GrpcService::new(server, self.auth, self.observer, self.host_policy)
    }

    /// The service as [`Routes`], ready for [`serve_grpc`].
    #[must_use]
    pub fn into_routes(self) -> Routes {
        Routes::new(self.into_service())
    }
}

impl<H> fmt::Debug for GrpcApi<H> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GrpcApi")
            .field("auth", &self.auth.is_some())
            .finish_non_exhaustive()
    }
}

/// Serves `routes` (from [`GrpcApi::into_routes`], possibly with more services added) on
/// `listener` until `shutdown` completes, with the default [`ServeConfig`].
///
/// `listener` is a bound [`tokio::net::TcpListener`] (h2c) or, with the `tls` feature, a
/// [`TlsListener`](crate::TlsListener).
///
/// # Errors
/// As [`ServeConfig::serve`].
pub async fn serve_grpc<L: Listener>(
    listener: L,
    routes: Routes,
    shutdown: impl Future<Output = ()> + Send,
) -> std::io::Result<()> {
    ServeConfig::new()
        .serve(listener, routes.prepare(), shutdown)
        .await
}
