#!/usr/bin/env python3
"""A gRPC client of a Solti agent that has no .proto files: everything it knows about the
API comes from the agent's server reflection.

    python3 -m venv venv && venv/bin/pip install grpcio grpcio-health-checking grpcio-reflection
    venv/bin/python docs/clients/grpc_reflection_client.py 127.0.0.1:50052 [token]

It checks grpc.health.v1 (no token needed), lists the services over reflection (v1 and
v1alpha), loads the descriptors of solti.task.v1.TaskService from the agent, and then
submits a task, cancels it and reads it back with messages built from those descriptors.
"""

import sys

import grpc
from google.protobuf import descriptor_pool, json_format
from google.protobuf.message_factory import GetMessageClass
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2 as alpha_pb2
from grpc_reflection.v1alpha import reflection_pb2_grpc as alpha_grpc
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
    ProtoReflectionDescriptorDatabase,
)

SERVICE = "solti.task.v1.TaskService"


class BearerToken(
    grpc.UnaryUnaryClientInterceptor,
    grpc.UnaryStreamClientInterceptor,
    grpc.StreamUnaryClientInterceptor,
    grpc.StreamStreamClientInterceptor,
):
    """Adds `authorization: Bearer <token>` to every call on the channel."""

    def __init__(self, token: str) -> None:
        self._header = ("authorization", f"Bearer {token}")

    def _with_token(self, details):
        metadata = list(details.metadata or []) + [self._header]
        return details._replace(metadata=metadata)

    def intercept_unary_unary(self, continuation, details, request):
        return continuation(self._with_token(details), request)

    def intercept_unary_stream(self, continuation, details, request):
        return continuation(self._with_token(details), request)

    def intercept_stream_unary(self, continuation, details, requests):
        return continuation(self._with_token(details), requests)

    def intercept_stream_stream(self, continuation, details, requests):
        return continuation(self._with_token(details), requests)


def main() -> None:
    target = sys.argv[1] if len(sys.argv) > 1 else "127.0.0.1:50052"
    token = sys.argv[2] if len(sys.argv) > 2 else None
    channel = grpc.insecure_channel(target)
    if token:
        # Reflection and health Watch need the token like the task RPCs (only health Check
        # answers without it): send it on every call.
        channel = grpc.intercept_channel(channel, BearerToken(token))

    # 1. Health: the whole server ("") and the task service.
    health = health_pb2_grpc.HealthStub(channel)
    for name in ("", SERVICE):
        res = health.Check(health_pb2.HealthCheckRequest(service=name), timeout=5)
        print(f"health {name!r}: {health_pb2.HealthCheckResponse.ServingStatus.Name(res.status)}")

    # 2. Reflection v1alpha, by hand: the service list.
    stub = alpha_grpc.ServerReflectionStub(channel)
    req = alpha_pb2.ServerReflectionRequest(list_services="")
    for res in stub.ServerReflectionInfo(iter([req]), timeout=5):
        names = sorted(s.name for s in res.list_services_response.service)
        print("v1alpha services:", ", ".join(names))


    # 3. Reflection v1: grpcio-reflection ships only the v1alpha messages, which are the
    # same on the wire as v1's, so they serve for the v1 method path too.
    v1 = channel.stream_stream(
        "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
        request_serializer=alpha_pb2.ServerReflectionRequest.SerializeToString,
        response_deserializer=alpha_pb2.ServerReflectionResponse.FromString,
    )
    for res in v1(iter([req]), timeout=5):
        names = sorted(s.name for s in res.list_services_response.service)
        print("v1 services:     ", ", ".join(names))

    # The schema of the task API, through grpcio's reflection descriptor database.
    pool = descriptor_pool.DescriptorPool(ProtoReflectionDescriptorDatabase(channel))
    service = pool.FindServiceByName(SERVICE)
    print("TaskService methods:", ", ".join(m.name for m in service.methods))

    def call(method: str, body: dict):
        m = service.FindMethodByName(method)
        req_cls = GetMessageClass(m.input_type)
        res_cls = GetMessageClass(m.output_type)
        rpc = channel.unary_unary(
            f"/{SERVICE}/{method}",
            request_serializer=lambda msg: msg.SerializeToString(),
            response_deserializer=res_cls.FromString,
        )
        res = rpc(json_format.ParseDict(body, req_cls()), timeout=30)
        return json_format.MessageToDict(res)

    # 4. Submit a long task, cancel it, read it back: all from the reflected schema.
    spec = {
        "slot": "reflected",
        "timeoutMs": "60000",
        "restart": "RESTART_STRATEGY_NEVER",
        "admission": "ADMISSION_STRATEGY_REPLACE",
        "kind": {"subprocess": {"command": {"command": "sleep", "args": ["300"]}}},
    }
    task_id = call("SubmitTask", {"spec": spec})["taskId"]
    print("SubmitTask ->", task_id)
    cancelled = call("CancelTask", {"taskId": task_id})["task"]["status"]
    print("CancelTask ->", cancelled["phase"], repr(cancelled.get("error")))
    kept = call("GetTaskStatus", {"taskId": task_id})["task"]["status"]
    print("GetTaskStatus ->", kept["phase"])
    runs = call("ListTaskRuns", {"taskId": task_id}).get("runs", [])
    print("ListTaskRuns ->", [(r["attempt"], r["status"]) for r in runs])
    try:
        call("CancelTask", {"taskId": "tsk_unknown"})
    except grpc.RpcError as e:
        print("CancelTask (unknown) ->", e.code().name, e.details())


if __name__ == "__main__":
    main()
