//! The gRPC binding: `solti.task.v1.TaskService` on tonic.

pub(crate) mod frame;
mod health;
mod service;
mod shape;

use std::{fmt, future::Future, sync::Arc};

use solti_model::Token;
use tonic::service::Routes;

/// Client-side helpers for `StreamTaskLogs`: the request for an
/// [`OutputQuery`](solti_core::OutputQuery) and the offset and event of each response.
pub use crate::convert::{
    event_from_pb as log_event_from_pb, log_query_to_pb as log_request_to_pb,
};

use crate::{
    ApiHandler, ApiObserver, Health, HostPolicy, Listener, NoOpApiObserver, ServeConfig,
    SharedToken, Transport, gate::GateLayer, pb::task_service_server::TaskServiceServer,
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
    auth: Option<SharedToken>,
    observer: Arc<dyn ApiObserver>,
    host_policy: HostPolicy,
    health: Health,
}

impl<H: ApiHandler> GrpcApi<H> {
    /// A service over `handler`, without auth and with a no-op observer.
    pub fn new(handler: Arc<H>) -> Self {
        Self {
            handler,
            auth: None,
            observer: Arc::new(NoOpApiObserver),
            host_policy: HostPolicy::default(),
            health: Health::ready(),
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

    /// Serves `grpc.health.v1.Health` from `health` in [`into_routes`](Self::into_routes):
    /// `SERVING` for the service names `""` and `solti.task.v1.TaskService` while ready,
    /// `NOT_SERVING` while starting or shutting down.
    ///
    /// # Default
    /// [`Health::ready`].
    pub fn with_health(mut self, health: Health) -> Self {
        self.health = health;
        self
    }

    /// Requires `authorization: Bearer <token>` metadata on every call (constant-time check).
    ///
    /// # Default
    /// No auth.
    pub fn with_auth(mut self, token: Token) -> Self {
        self.auth = Some(SharedToken::new(token));
        self
    }

    /// As [`with_auth`](Self::with_auth) with a token that can be replaced while serving.
    ///
    /// # Default
    /// No auth.
    pub fn with_shared_auth(mut self, token: SharedToken) -> Self {
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

    /// The task service as [`Routes`], ready for [`serve_grpc`], next to the standard
    /// services tools and probes expect: `grpc.health.v1.Health` (see
    /// [`with_health`](Self::with_health)) and server reflection (`grpc.reflection.v1` and
    /// `v1alpha`, describing `solti.task.v1` and the health service), so `grpcurl` and
    /// similar clients work without the `.proto` files.
    ///
    /// One gate (the same tower layer as the HTTP router's) sits in front of all of them:
    /// the browser defences, then the token, except for the unary health `Check` (a probe
    /// has none), while `Watch` and reflection streams need it like the task service; then
    /// the observer. Task service messages are limited to [`MAX_MESSAGE_BYTES`].
    #[must_use]
    pub fn into_routes(self) -> Routes {
        let task = TaskServiceServer::from_arc(Arc::new(service::TaskServiceImpl {
            handler: self.handler,
        }))
        .max_decoding_message_size(MAX_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_MESSAGE_BYTES);
        let mut routes = Routes::new(task).add_service(health::service(self.health));
        match reflection() {
            Ok((v1, v1alpha)) => routes = routes.add_service(v1).add_service(v1alpha),
            // The descriptor sets are generated with the code and checked by a test.
            Err(e) => tracing::error!(error = %e, "gRPC reflection disabled: bad descriptor set"),
        }
        let gate = GateLayer::new(Transport::Grpc, self.auth, self.observer, self.host_policy);
        Routes::from(routes.into_axum_router().layer(gate))
    }
}

/// The reflection services (v1 and v1alpha) over the task API's and the health service's
/// descriptor sets.
fn reflection() -> Result<
    (
        tonic_reflection::server::v1::ServerReflectionServer<
            impl tonic_reflection::server::v1::ServerReflection,
        >,
        tonic_reflection::server::v1alpha::ServerReflectionServer<
            impl tonic_reflection::server::v1alpha::ServerReflection,
        >,
    ),
    tonic_reflection::server::Error,
> {
    let builder = || {
        tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(crate::pb::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
    };
    Ok((builder().build_v1()?, builder().build_v1alpha()?))
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

#[cfg(test)]
mod tests {
    #[test]
    fn reflection_builds_from_the_committed_descriptor_sets() {
        assert!(super::reflection().is_ok());
    }
}
