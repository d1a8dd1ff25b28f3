//! `grpc.health.v1.Health` over a [`Health`], and gRPC server reflection.

use std::pin::Pin;

use futures_util::Stream;
use tonic::{Request, Response, Status};
use tonic_health::pb::{
    HealthCheckRequest, HealthCheckResponse, health_check_response::ServingStatus,
    health_server::HealthServer,
};

use crate::{Health, Readiness, pb::task_service_server::SERVICE_NAME};

/// The service names the health service knows: the whole server (`""`) and the task API.
const KNOWN: [&str; 2] = ["", SERVICE_NAME];

/// The health service answering from `health`.
pub(super) fn service(health: Health) -> HealthServer<HealthService> {
    HealthServer::new(HealthService { health })
}

/// `Check` answers `SERVING` while ready, `NOT_SERVING` while starting or shutting down, and
/// `NOT_FOUND` for another service name. `Watch` sends the current status and every change,
/// and ends after `NOT_SERVING` for the shutdown, so it never holds the server's drain.
#[derive(Debug)]
pub(super) struct HealthService {
    health: Health,
}

fn status_of(known: bool, readiness: Readiness) -> ServingStatus {
    match (known, readiness) {
        (false, _) => ServingStatus::ServiceUnknown,
        (true, Readiness::Ready) => ServingStatus::Serving,
        (true, _) => ServingStatus::NotServing,
    }
}

fn response(status: ServingStatus) -> HealthCheckResponse {
    HealthCheckResponse {
        status: status as i32,
    }
}

type WatchStream = Pin<Box<dyn Stream<Item = Result<HealthCheckResponse, Status>> + Send>>;

#[tonic::async_trait]
impl tonic_health::pb::health_server::Health for HealthService {
    async fn check(
        &self,
        req: Request<HealthCheckRequest>,
    ) -> Result<Response<HealthCheckResponse>, Status> {
        let service = req.into_inner().service;
        if !KNOWN.contains(&service.as_str()) {
            return Err(Status::not_found(format!(
                "service {:?} is not known to this server",
                service.chars().take(128).collect::<String>()
            )));
        }
        Ok(Response::new(response(status_of(
            true,
            self.health.readiness(),
        ))))
    }

    type WatchStream = WatchStream;

    async fn watch(
        &self,
        req: Request<HealthCheckRequest>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        let known = KNOWN.contains(&req.into_inner().service.as_str());
        let rx = self.health.subscribe();
        // State: the receiver, and the last status sent (None before the first message).
        let stream = futures_util::stream::unfold(
            Some((rx, None::<ServingStatus>)),
            move |state| async move {
                let (mut rx, last) = state?;
                loop {
                    let readiness = *rx.borrow_and_update();
                    let status = status_of(known, readiness);
                    // The shutdown's status is the last message.
                    let ending = readiness == Readiness::ShuttingDown;
                    if last != Some(status) {
                        let next = (!ending).then_some((rx, Some(status)));
                        return Some((Ok(response(status)), next));
                    }
                    if ending || rx.changed().await.is_err() {
                        return None;
                    }
                }
            },
        );
        Ok(Response::new(Box::pin(stream)))
    }
}

#[cfg(test)]
mod tests {
    use futures_util::StreamExt as _;
    use tonic_health::pb::health_server::Health as _;

    use super::*;

    fn req(service: &str) -> Request<HealthCheckRequest> {
        Request::new(HealthCheckRequest {
            service: service.to_owned(),
        })
    }

    #[tokio::test]
    async fn check_follows_readiness() {
        let health = Health::new();
        let svc = HealthService {
            health: health.clone(),
        };
        for name in KNOWN {
            let res = svc.check(req(name)).await.unwrap().into_inner();
            assert_eq!(res.status, ServingStatus::NotServing as i32);
        }
        health.set_ready();
        let res = svc.check(req(SERVICE_NAME)).await.unwrap().into_inner();
        assert_eq!(res.status, ServingStatus::Serving as i32);
        let err = svc.check(req("nope.Service")).await.unwrap_err();
        assert_eq!(err.code(), tonic::Code::NotFound);
        health.set_shutting_down();
        let res = svc.check(req("")).await.unwrap().into_inner();
        assert_eq!(res.status, ServingStatus::NotServing as i32);
    }

    #[tokio::test]
    async fn watch_sends_changes_and_ends_on_shutdown() {
        let health = Health::new();
        let svc = HealthService {
            health: health.clone(),
        };
        let mut stream = svc.watch(req("")).await.unwrap().into_inner();
        let first = stream.next().await.unwrap().unwrap();
        assert_eq!(first.status, ServingStatus::NotServing as i32);
        health.set_ready();
        let next = stream.next().await.unwrap().unwrap();
        assert_eq!(next.status, ServingStatus::Serving as i32);
        health.set_shutting_down();
        let last = stream.next().await.unwrap().unwrap();
        assert_eq!(last.status, ServingStatus::NotServing as i32);
        assert!(stream.next().await.is_none());

        // Unknown service: SERVICE_UNKNOWN, then the end at shutdown.
        let health = Health::ready();
        let svc = HealthService {
            health: health.clone(),
        };
        let mut stream = svc.watch(req("x.Y")).await.unwrap().into_inner();
        let first = stream.next().await.unwrap().unwrap();
        assert_eq!(first.status, ServingStatus::ServiceUnknown as i32);
        health.set_shutting_down();
        assert!(stream.next().await.is_none());

        // Watch opened after shutdown: one NOT_SERVING, then the end.
        let mut stream = svc.watch(req("")).await.unwrap().into_inner();
        let only = stream.next().await.unwrap().unwrap();
        assert_eq!(only.status, ServingStatus::NotServing as i32);
        assert!(stream.next().await.is_none());
    }
}
