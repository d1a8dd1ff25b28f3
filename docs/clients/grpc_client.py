"""A gRPC client for the Solti task API written in Python, built only from the .proto files.

It shows that a control plane in another language interoperates with the agent:

    pip install grpcio grpcio-tools
    python3 -m grpc_tools.protoc -I proto --python_out=/tmp/solti-py --grpc_python_out=/tmp/solti-py \
        solti/task/v1/types.proto solti/task/v1/api.proto
    cargo run -p agentd-grpc &
    PYTHONPATH=/tmp/solti-py python3 docs/clients/grpc_client.py 127.0.0.1:50052 [TOKEN]
"""

import sys

import grpc
from solti.task.v1 import api_pb2, api_pb2_grpc, types_pb2

target = sys.argv[1] if len(sys.argv) > 1 else "127.0.0.1:50052"
metadata = [("authorization", f"Bearer {sys.argv[2]}")] if len(sys.argv) > 2 else []
stub = api_pb2_grpc.TaskServiceStub(grpc.insecure_channel(target))

spec = types_pb2.CreateSpec(
    slot="py-demo",
    timeout_ms=10_000,
    restart=types_pb2.RESTART_STRATEGY_ON_FAILURE,
    admission=types_pb2.ADMISSION_STRATEGY_DROP_IF_RUNNING,
    max_retries=1,
    backoff=types_pb2.BackoffStrategy(jitter=types_pb2.JITTER_STRATEGY_NONE, first_ms=100, max_ms=100, factor=1.0),
    kind=types_pb2.TaskKind(
        subprocess=types_pb2.SubprocessTask(
            command=types_pb2.CommandMode(command="sh", args=["-c", "echo hello from python; exit 3"]),
            fail_on_non_zero=True,
        )
    ),
)
task_id = stub.SubmitTask(api_pb2.SubmitTaskRequest(spec=spec), metadata=metadata).task_id
print("SubmitTask ->", task_id)

for msg in stub.StreamTaskLogs(api_pb2.StreamTaskLogsRequest(task_id=task_id), metadata=metadata):
    kind = msg.WhichOneof("kind")
    event = getattr(msg, kind)
    if kind == "chunk":
        print(f"  chunk    attempt={event.attempt} {api_pb2.OutputStreamKind.Name(event.stream)} line={event.line!r}")
    elif kind == "run_started":
        print(f"  started  attempt={event.attempt}")
    elif kind == "run_finished":
        print(f"  finished attempt={event.attempt} exit_code={event.exit_code if event.HasField('exit_code') else None}")
    else:
        print(f"  lagged   skipped={event.skipped}")

task = stub.GetTaskStatus(api_pb2.GetTaskStatusRequest(task_id=task_id), metadata=metadata).task
print("GetTaskStatus ->", types_pb2.TaskStatus.Name(task.status.phase), "attempt", task.status.attempt, "error", repr(task.status.error))
runs = stub.ListTaskRuns(api_pb2.ListTaskRunsRequest(task_id=task_id), metadata=metadata).runs
print("ListTaskRuns ->", [(r.attempt, types_pb2.TaskStatus.Name(r.status), r.exit_code) for r in runs])
page = stub.ListTasks(api_pb2.ListTasksRequest(slot="py-demo", limit=10), metadata=metadata)
print("ListTasks ->", page.total, "task(s)")
try:
    stub.SubmitTask(api_pb2.SubmitTaskRequest(spec=types_pb2.CreateSpec(slot="x")), metadata=metadata)
except grpc.RpcError as err:
    print("SubmitTask (bad spec) ->", err.code().name, err.details())
try:
    list(stub.StreamTaskLogs(api_pb2.StreamTaskLogsRequest(task_id="tsk_unknown"), metadata=metadata))
except grpc.RpcError as err:
    print("StreamTaskLogs (unknown) ->", err.code().name, err.details())
stub.DeleteTask(api_pb2.DeleteTaskRequest(task_id=task_id), metadata=metadata)
print("DeleteTask -> OK; GetTaskStatus has task:", stub.GetTaskStatus(api_pb2.GetTaskStatusRequest(task_id=task_id), metadata=metadata).HasField("task"))
