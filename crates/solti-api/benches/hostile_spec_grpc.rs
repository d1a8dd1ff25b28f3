//! Regression bench: hostile specs near the 4 MiB message limit are refused quickly on gRPC.
//!
//! Run with `cargo bench -p solti-api --features grpc --bench hostile_spec_grpc`.
//!
//! Each case sends one `SubmitTask` through the gRPC routes in process (the gate's browser
//! guard and message frame check, framing, protobuf decode, conversion, validation) and
//! measures the time until the `INVALID_ARGUMENT` is ready. Protobuf has no cheap structural pre-pass, so here the
//! decode is the cost and the conversion refuses by count before copying.
#![expect(clippy::unwrap_used, reason = "a benchmark aborts on setup failure")]

use std::{hint::black_box, sync::Arc, time::Duration};

use bytes::{BufMut as _, Bytes, BytesMut};
use criterion::Criterion;
use http_body_util::{BodyExt as _, Full};
use prost::Message as _;
use solti_api::{GrpcApi, SupervisorApiAdapter, pb};
use solti_core::{StateConfig, SupervisorApi};
use solti_runner::RunnerRouter;
use taskvisor::{ControllerConfig, SupervisorConfig};
use tonic::service::Routes;
use tower::ServiceExt as _;

fn request(env: usize, labels: usize) -> Bytes {
    let spec = pb::CreateSpec {
        slot: "hostile".into(),
        kind: Some(pb::TaskKind {
            kind: Some(pb::task_kind::Kind::Subprocess(pb::SubprocessTask {
                mode: Some(pb::subprocess_task::Mode::Command(pb::CommandMode {
                    command: "true".into(),
                    args: vec![],
                })),
                env: (0..env)
                    .map(|i| pb::KeyValue {
                        key: format!("K{i}"),
                        value: "v".into(),
                    })
                    .collect(),
                ..Default::default()
            })),
        }),
        timeout_ms: 1000,
        labels: (0..labels).map(|i| (format!("l{i}"), "v".into())).collect(),
        ..Default::default()
    };
    let msg = pb::SubmitTaskRequest { spec: Some(spec) }.encode_to_vec();
    assert!(
        msg.len() <= solti_api::grpc::MAX_MESSAGE_BYTES,
        "{}",
        msg.len()
    );
    let mut frame = BytesMut::with_capacity(msg.len() + 5);
    frame.put_u8(0);
    frame.put_u32(u32::try_from(msg.len()).unwrap());
    frame.put_slice(&msg);
    frame.freeze()
}

async fn submit(svc: &Routes, frame: Bytes) -> String {
    let req = http::Request::post("/solti.task.v1.TaskService/SubmitTask")
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(tonic::body::Body::new(Full::new(frame)))
        .unwrap();
    let res = svc.clone().oneshot(req).await.unwrap();
    if let Some(code) = res.headers().get("grpc-status") {
        return code.to_str().unwrap().to_owned();
    }
    let collected = res.into_body().collect().await.unwrap();
    collected
        .trailers()
        .and_then(|t| t.get("grpc-status"))
        .map_or_else(|| "missing".to_owned(), |v| v.to_str().unwrap().to_owned())
}

fn hostile(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let svc = rt.block_on(async {
        let sup = SupervisorApi::new(
            SupervisorConfig::default(),
            ControllerConfig::default(),
            vec![],
            RunnerRouter::new(),
            StateConfig::default(),
        )
        .await
        .unwrap();
        GrpcApi::new(Arc::new(SupervisorApiAdapter::new(Arc::new(sup))))
            .into_routes()
            .prepare()
    });
    let mut group = c.benchmark_group("hostile_spec_refused_grpc");
    group
        .sample_size(20)
        .measurement_time(Duration::from_secs(2))
        .warm_up_time(Duration::from_millis(500));
    for (name, frame) in [
        ("env_125k", request(125_000, 0)),
        ("labels_120k", request(0, 120_000)),
        ("env_300k", request(300_000, 0)),
    ] {
        // INVALID_ARGUMENT, never accepted.
        assert_eq!(rt.block_on(submit(&svc, frame.clone())), "3", "{name}");
        let mb = frame.len() as f64 / (1024.0 * 1024.0);
        group.bench_function(format!("{name} ({mb:.2} MiB)"), |b| {
            b.iter(|| rt.block_on(submit(&svc, black_box(frame.clone()))));
        });
    }
    group.finish();
}

fn main() {
    // What `criterion_group!`/`criterion_main!` expand to, without their undocumented `pub fn`.
    let mut c = Criterion::default().configure_from_args();
    hostile(&mut c);
    c.final_summary();
}
