"""The Ray backend on a local Ray: outputs, failure policy, retries, timeouts, cancel, capacity."""

from __future__ import annotations

import itertools
import threading
import time
import uuid
from typing import Any

import pytest

from engine.events import Event, NodeStatus, RunStatus
from engine.graphs import topological_order
from engine.registry import default_registry
from engine.spec import RunContext
from engine.workflow import Workflow

pytestmark = pytest.mark.ray

_TERMINAL = {"NodeFinished": NodeStatus.DONE, "NodeFailed": NodeStatus.FAILED,
             "NodeSkipped": NodeStatus.SKIPPED, "NodeCancelled": NodeStatus.CANCELLED}


def workflow(nodes: list[dict[str, Any]], edges: list[tuple[str, str]]) -> Workflow:
    return Workflow.model_validate({"name": "t", "nodes": nodes,
                                    "edges": [{"source": s, "target": t} for s, t in edges]})


def execute(backend: Any, wf: Workflow, run_id: str, cancel: threading.Event | None = None,
            on_event: Any = None, **kw: Any) -> tuple[RunStatus, dict[str, Any], list[Event]]:
    events: list[Event] = []

    def emit(event: Event) -> None:
        events.append(event)
        if on_event is not None:
            on_event(event)

    status, outputs = backend.execute(run_id, wf, default_registry(), emit, cancel or threading.Event(), **kw)
    return status, outputs, events


def cancel_on(kind: str, node_id: str, delay: float = 0.1) -> tuple[threading.Event, Any]:
    """A run's cancel event, and the ``on_event`` hook that sets it ``delay`` s after ``node_id``'s
    event ``kind`` (NodeQueued, NodeStarted...)."""
    cancel = threading.Event()

    def on_event(event: Event) -> None:
        if event.kind == kind and event.node_id == node_id:
            threading.Timer(delay, cancel.set).start()

    return cancel, on_event


def final_states(events: list[Event]) -> dict[str, NodeStatus]:
    states: dict[str, NodeStatus] = {}
    for e in events:
        if e.kind in _TERMINAL and e.node_id is not None:
            assert e.node_id not in states, f"{e.node_id} ended twice"
            states[e.node_id] = _TERMINAL[e.kind]
    return states


def direct_outputs(wf: Workflow) -> dict[str, dict[str, Any]]:
    """The reference: each agent called in this process, in topological order."""
    reg = default_registry()
    order = topological_order(wf.node_ids(), [(e.source, e.target) for e in wf.edges])
    assert order is not None
    outputs: dict[str, dict[str, Any]] = {}
    for node_id in order:
        node = wf.node(node_id)
        assert node is not None
        spec = reg.get(node.agent)
        inputs: dict[str, Any] = {}
        for e in wf.edges:
            if e.target == node_id:
                port = spec.input(e.target_port or spec.inputs[0].name)
                assert port is not None
                value = outputs[e.source][e.source_port or "out"]
                if port.multiple:
                    inputs.setdefault(port.name, []).append(value)
                else:
                    inputs[port.name] = value
        agent = spec.build(spec.parse_params(node.params))
        outputs[node_id] = agent.run(inputs, RunContext(node_id=node_id, run_id="direct", time_scale=0.01))
    return outputs


DIAMOND = workflow(
    [{"id": "src", "agent": "test.source", "params": {"value": {"x": [1, 2, 3]}}},
     {"id": "left", "agent": "test.echo"},
     {"id": "right", "agent": "sim.task", "params": {"duration_s": 0.5}},
     {"id": "join", "agent": "test.echo"}],
    [("src", "left"), ("src", "right"), ("left", "join"), ("right", "join")])


def test_diamond_gives_the_outputs_of_direct_calls_and_names_the_ray_node(backend: Any, ray_cluster: Any) -> None:
    status, outputs, events = execute(backend, DIAMOND, "diamond", time_scale=0.01)
    assert status == RunStatus.SUCCEEDED
    assert outputs == direct_outputs(DIAMOND)
    assert set(final_states(events).values()) == {NodeStatus.DONE}
    node_id = ray_cluster.get_runtime_context().get_node_id()
    started = [e for e in events if e.kind == "NodeStarted"]
    finished = [e for e in events if e.kind == "NodeFinished"]
    assert {e.node_id for e in started} == {e.node_id for e in finished} == set(DIAMOND.node_ids())
    for e in started:
        assert e.worker.startswith(node_id[:8] + "/")
    for e in finished:
        m = e.metrics
        assert m["ray_node_id"] == node_id and m["ray_worker_pid"] > 0 and m["attempts"] == 1
        assert {"wait_inputs_s", "wait_resource_s", "wall_s", "cpu_s", "peak_rss_mb", "memory_mb", "items",
                "device", "threads"} <= set(m)
        assert 0 <= m["memory_mb"] < m["peak_rss_mb"]  # the task's own, not its worker process's
    kinds = [e.kind for e in events]
    assert kinds[-1] == "RunFinished" and "RunStarted" not in kinds


def test_a_failing_node_skips_its_descendants_and_the_other_branch_finishes(backend: Any) -> None:
    wf = workflow(
        [{"id": "src", "agent": "test.source"},
         {"id": "bad", "agent": "test.fail", "params": {"message": "boom"}},
         {"id": "after_bad", "agent": "test.echo"},
         {"id": "after_after", "agent": "test.echo"},
         {"id": "good", "agent": "test.echo"},
         {"id": "after_good", "agent": "test.echo"}],
        [("src", "bad"), ("bad", "after_bad"), ("after_bad", "after_after"), ("src", "good"),
         ("good", "after_good")])
    status, outputs, events = execute(backend, wf, "fail")
    assert status == RunStatus.FAILED
    states = final_states(events)
    assert states == {"src": NodeStatus.DONE, "bad": NodeStatus.FAILED, "after_bad": NodeStatus.SKIPPED,
                      "after_after": NodeStatus.SKIPPED, "good": NodeStatus.DONE,
                      "after_good": NodeStatus.DONE}
    failed = next(e for e in events if e.kind == "NodeFailed")
    assert failed.error_type == "RuntimeError" and "boom" in failed.message and "'bad'" in failed.message
    assert "RuntimeError" in failed.traceback
    skipped = {e.node_id: e.reason for e in events if e.kind == "NodeSkipped"}
    assert skipped["after_bad"] == "upstream node 'bad' failed"
    assert outputs["after_good"] == {"out": 1} and "bad" not in outputs


def test_a_retry_succeeds_after_one_failure(backend: Any) -> None:
    wf = workflow([{"id": "src", "agent": "test.source", "params": {"value": 7}},
                   {"id": "flaky", "agent": "test.fail", "params": {"fail_times": 1},
                    "lifecycle": {"execution": {"retries": 1, "backoff_s": 0.01}}},
                   {"id": "after", "agent": "test.echo"}], [("src", "flaky"), ("flaky", "after")])
    status, outputs, events = execute(backend, wf, "retry")
    assert status == RunStatus.SUCCEEDED
    assert outputs["after"] == {"out": [7]}  # the child saw the second attempt's outputs
    events = [e for e in events if e.node_id == "flaky"]
    retried = [e for e in events if e.kind == "NodeRetried"]
    assert len(retried) == 1 and retried[0].attempt == 1 and retried[0].delay_s == pytest.approx(0.01)
    assert [e.attempt for e in events if e.kind == "NodeStarted"] == [1, 2]
    finished = next(e for e in events if e.kind == "NodeFinished")
    assert finished.metrics["attempts"] == 2


def test_fault_drills_run_in_the_ray_workers(backend: Any) -> None:
    """A drill's failed attempts are retried by the driver, its delay meets the node's timeout, and
    its extra memory is measured as the node's, as on the local backend."""
    wf = workflow([{"id": "src", "agent": "test.source", "params": {"value": 7}},
                   {"id": "flaky", "agent": "test.echo", "faults": {"fail_attempts": 1, "extra_memory_mb": 120},
                    "lifecycle": {"execution": {"retries": 1, "backoff_s": 0.01}}},
                   {"id": "slow", "agent": "test.echo", "faults": {"delay_s": 30},
                    "lifecycle": {"execution": {"timeout_s": 0.5}}}], [("src", "flaky"), ("src", "slow")])
    status, outputs, events = execute(backend, wf, "drill")
    assert status == RunStatus.FAILED
    retried = [e for e in events if e.kind == "NodeRetried" and e.node_id == "flaky"]
    assert [(e.attempt, e.error_type) for e in retried] == [(1, "InjectedFaultError")]
    finished = next(e for e in events if e.kind == "NodeFinished" and e.node_id == "flaky")
    assert finished.metrics["attempts"] == 2 and finished.metrics["memory_mb"] >= 100
    assert outputs["flaky"] == {"out": 7}
    failed = next(e for e in events if e.kind == "NodeFailed")
    assert failed.node_id == "slow" and failed.error_type == "AgentTimeoutError"


def test_an_isolated_node_past_its_memory_limit_is_stopped_on_ray_too(backend: Any) -> None:
    """Ray does not stop a task for its memory; an isolated node runs in a child of its worker,
    which is killed past the node's declared memory (as on the local backend), here by a drill."""
    isolated = {"execution": {"isolate": True}}
    wf = workflow([{"id": "src", "agent": "test.source", "params": {"value": 7}},
                   {"id": "greedy", "agent": "test.echo", "resources": {"memory_mb": 64}, "lifecycle": isolated,
                    "faults": {"extra_memory_mb": 400}},
                   {"id": "fits", "agent": "test.echo", "resources": {"memory_mb": 64}, "lifecycle": isolated},
                   {"id": "after", "agent": "test.echo"}], [("src", "greedy"), ("src", "fits"), ("greedy", "after")])
    status, outputs, events = execute(backend, wf, "memory")
    assert status == RunStatus.FAILED
    failed = next(e for e in events if e.kind == "NodeFailed")
    assert failed.node_id == "greedy" and failed.error_type == "MemoryLimitExceeded"
    assert "more than the" in failed.message and "memory_mb" in failed.message
    skipped = next(e for e in events if e.kind == "NodeSkipped")
    assert skipped.node_id == "after"
    fits = next(e for e in events if e.kind == "NodeFinished" and e.node_id == "fits")
    assert outputs["fits"] == {"out": 7} and fits.metrics["isolated"] and fits.metrics["memory_mb"] < 64


def test_a_long_node_s_progress_reaches_the_driver_while_it_runs(backend: Any) -> None:
    """Workers report ``ctx.progress`` to the run's board; the driver takes it a few times a second
    and emits NodeProgress while the node runs, as the local backend does."""
    wf = workflow([{"id": "slow", "agent": "test.sleep", "params": {"seconds": 2.0, "steps": 8}}], [])
    status, _, events = execute(backend, wf, "progress")
    assert status == RunStatus.SUCCEEDED
    kinds = [e.kind for e in events if e.node_id == "slow"]
    progress = [e for e in events if e.kind == "NodeProgress"]
    assert len(progress) >= 3, kinds  # not only at the end
    assert all(e.total == 8 for e in progress) and [e.done for e in progress] == sorted(e.done for e in progress)
    assert kinds.index("NodeStarted") < kinds.index("NodeProgress") < kinds.index("NodeFinished")
    assert progress[0].done < 8  # seen while it ran, not after


def test_a_timeout_is_recorded_as_a_failure(backend: Any) -> None:
    wf = workflow([{"id": "stuck", "agent": "test.hang", "lifecycle": {"execution": {"timeout_s": 0.3}}},
                   {"id": "free", "agent": "test.source"}], [])
    status, outputs, events = execute(backend, wf, "timeout")
    assert status == RunStatus.FAILED
    failed = next(e for e in events if e.kind == "NodeFailed")
    assert failed.node_id == "stuck" and failed.error_type == "AgentTimeoutError"
    assert "timed out" in failed.message and "0.3 s" in failed.message
    assert outputs == {"free": {"out": 1}}


def test_a_hang_that_ignores_cancel_is_killed_at_its_timeout(backend: Any) -> None:
    wf = workflow([{"id": "deaf", "agent": "test.hang", "params": {"ignore_cancel": True},
                    "lifecycle": {"execution": {"timeout_s": 0.2}}}], [])
    status, _, events = execute(backend, wf, "deaf")
    assert status == RunStatus.FAILED
    failed = next(e for e in events if e.kind == "NodeFailed")
    assert failed.error_type == "AgentTimeoutError"


def test_cancel_midway_leaves_every_node_terminal(backend: Any) -> None:
    wf = workflow([{"id": "a", "agent": "test.source"},
                   {"id": "hang", "agent": "test.hang"},
                   {"id": "after", "agent": "test.echo"},
                   {"id": "other", "agent": "sim.task", "params": {"duration_s": 3600}}],
                  [("a", "hang"), ("hang", "after")])
    cancel, on_event = cancel_on("NodeStarted", "hang", 0.2)

    status, _, events = execute(backend, wf, "cancel", cancel, on_event)
    assert status == RunStatus.CANCELLED
    states = final_states(events)
    assert set(states) == set(wf.node_ids())
    assert states["a"] == NodeStatus.DONE and states["hang"] == NodeStatus.CANCELLED
    assert states["other"] == NodeStatus.CANCELLED and states["after"] == NodeStatus.CANCELLED
    assert events[-1].kind == "RunFinished" and events[-1].status == "cancelled"


def test_cancel_reaches_tasks_submitted_ahead_of_their_inputs(backend: Any) -> None:
    nodes = [{"id": "slow", "agent": "test.sleep", "params": {"seconds": 0.45}}]
    nodes += [{"id": f"c{i}", "agent": "test.echo"} for i in range(3)]
    wf = workflow(nodes, [("slow", "c0"), ("c0", "c1"), ("c1", "c2")])
    cancel, on_event = cancel_on("NodeQueued", "slow")

    status, outputs, events = execute(backend, wf, "cancel-early", cancel, on_event)
    assert status == RunStatus.CANCELLED and outputs == {}
    assert final_states(events) == dict.fromkeys(wf.node_ids(), NodeStatus.CANCELLED)


@pytest.fixture
def ray_cancels(backend: Any, monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    """The ``force`` flag of every ``ray.cancel`` call the backend makes during the test."""
    calls: list[bool] = []
    real = backend.ray.cancel

    def spy(ref: Any, *, force: bool = False, recursive: bool = True) -> Any:
        calls.append(force)
        return real(ref, force=force, recursive=recursive)

    monkeypatch.setattr(backend.ray, "cancel", spy)
    return calls


def test_cancel_is_cooperative_without_ray_cancel(backend: Any, ray_cancels: list[bool]) -> None:
    """Running, queued and early-submitted tasks all stop through the cancel board: ``ray.cancel``
    (which can race a task's reply and abort the driver in Ray 2.60) is kept for kills."""
    nodes = [{"id": "slow", "agent": "test.sleep", "params": {"seconds": 0.45}},
             {"id": "hang", "agent": "test.hang"}]
    nodes += [{"id": f"c{i}", "agent": "test.echo"} for i in range(3)]
    wf = workflow(nodes, [("slow", "c0"), ("c0", "c1"), ("c1", "c2")])
    cancel, on_event = cancel_on("NodeStarted", "hang")

    status, _, events = execute(backend, wf, "cooperative", cancel, on_event)
    assert status == RunStatus.CANCELLED
    assert final_states(events) == dict.fromkeys(wf.node_ids(), NodeStatus.CANCELLED)
    assert ray_cancels == []


def test_a_task_that_ignores_the_board_is_killed_after_the_grace(backend: Any, ray_cancels: list[bool]) -> None:
    from engine.backends.ray_run import CANCEL_GRACE_S

    wf = workflow([{"id": "deaf", "agent": "test.hang", "params": {"ignore_cancel": True}}], [])
    cancel = threading.Event()
    started: list[float] = []

    def on_event(event: Event) -> None:
        if event.kind == "NodeStarted":
            started.append(time.monotonic())
            threading.Timer(0.1, cancel.set).start()

    status, _, events = execute(backend, wf, "deaf-cancel", cancel, on_event)
    assert status == RunStatus.CANCELLED and final_states(events) == {"deaf": NodeStatus.CANCELLED}
    assert ray_cancels == [True]  # one kill, no cooperative ray.cancel
    assert time.monotonic() - started[0] >= 0.1 + CANCEL_GRACE_S


def test_a_node_cancelled_while_waiting_for_inputs_never_runs(backend: Any, ray_cancels: list[bool]) -> None:
    """Its parent succeeds after the cancel, so Ray starts the task: the worker reads the board
    first and the sink writes nothing, while its uncancelled sibling does write."""
    from engine.settings import data_dir

    tag = uuid.uuid4().hex[:8]
    table = {"columns": {"x": [1, 2]}, "ids": ["a", "b"]}
    wf = workflow([{"id": "src", "agent": "test.source", "params": {"value": table}},
                   {"id": "slow", "agent": "test.sleep", "params": {"seconds": 0.4}},
                   {"id": "dropped", "agent": "flow.sink_csv", "params": {"filename": f"dropped-{tag}.csv"}},
                   {"id": "kept", "agent": "flow.sink_csv", "params": {"filename": f"kept-{tag}.csv"}}],
                  [("src", "slow"), ("slow", "dropped"), ("slow", "kept")])
    wanted: set[str] = set()

    def on_event(event: Event) -> None:
        if event.kind == "NodeQueued" and event.node_id == "slow":
            threading.Timer(0.1, wanted.add, ("dropped",)).start()

    status, outputs, events = execute(backend, wf, f"cancel-waiting-{tag}", on_event=on_event,
                                      cancel_node=lambda: set(wanted))
    states = final_states(events)
    assert states == {"src": NodeStatus.DONE, "slow": NodeStatus.DONE, "dropped": NodeStatus.CANCELLED,
                      "kept": NodeStatus.DONE}
    assert status == RunStatus.CANCELLED and "dropped" not in outputs
    outputs_dir = data_dir() / "outputs"
    assert (outputs_dir / f"kept-{tag}.csv").is_file()
    assert not (outputs_dir / f"dropped-{tag}.csv").exists()
    assert ray_cancels == []


def test_cancelling_one_node_skips_its_descendants_only(backend: Any) -> None:
    wf = workflow([{"id": "hang", "agent": "test.hang"}, {"id": "after", "agent": "test.echo"},
                   {"id": "free", "agent": "test.source"}], [("hang", "after")])
    wanted: set[str] = set()

    def on_event(event: Event) -> None:
        if event.kind == "NodeStarted" and event.node_id == "hang":
            wanted.add("hang")

    status, _, events = execute(backend, wf, "cancel-node", on_event=on_event, cancel_node=lambda: set(wanted))
    states = final_states(events)
    assert states == {"hang": NodeStatus.CANCELLED, "after": NodeStatus.SKIPPED, "free": NodeStatus.DONE}
    assert status == RunStatus.CANCELLED


def test_a_demand_no_ray_node_can_hold_fails_at_once(backend: Any) -> None:
    wf = workflow([{"id": "big", "agent": "test.source", "resources": {"custom": {"GPU_SIM": 2}}},
                   {"id": "after", "agent": "test.echo"}], [("big", "after")])
    status, _, events = execute(backend, wf, "infeasible")
    assert status == RunStatus.FAILED
    failed = next(e for e in events if e.kind == "NodeFailed")
    assert failed.error_type == "CapacityError" and "GPU_SIM" in failed.message
    assert final_states(events)["after"] == NodeStatus.SKIPPED
    issues = backend.validate(wf, default_registry())
    assert [(i.code, i.node) for i in issues] == [("capacity_exceeded", "big")]
    assert "GPU_SIM 2 (largest Ray node: 1)" in issues[0].message


def test_nodes_holding_the_simulated_gpu_never_overlap(backend: Any) -> None:
    nodes = [{"id": f"g{i}", "agent": "test.sleep", "params": {"seconds": 0.2},
              "resources": {"cpu": 0.5, "custom": {"GPU_SIM": 1}}} for i in range(3)]
    status, _, events = execute(backend, workflow(nodes, []), "gpu-sim")
    assert status == RunStatus.SUCCEEDED
    starts = {e.node_id: e.time for e in events if e.kind == "NodeStarted"}
    spans = sorted((starts[e.node_id], starts[e.node_id] + e.metrics["wall_s"])
                   for e in events if e.kind == "NodeFinished")
    assert len(spans) == 3
    for (_, end), (start, _) in itertools.pairwise(spans):
        assert start >= end - 1e-3


def test_capacity_is_read_from_the_cluster(backend: Any) -> None:
    cap = backend.capacity()
    assert cap.cpu == 2 and cap.custom == {"GPU_SIM": 1} and cap.gpus == ()
    assert cap.memory_mb and cap.memory_mb > 0
    nodes = backend.node_capacities()
    assert len(nodes) == 1 and nodes[0].cpu == 2 and nodes[0].custom == {"GPU_SIM": 1}


@pytest.mark.gpu
def test_a_gpu_share_runs_on_a_ray_gpu(backend: Any) -> None:
    if not backend.capacity().gpus:
        pytest.skip("the Ray cluster has no GPU")
    wf = workflow([{"id": "g", "agent": "test.source",
                    "resources": {"device": "cuda", "gpu_memory_mb": 1024}}], [])
    status, _, events = execute(backend, wf, "gpu")
    assert status == RunStatus.SUCCEEDED
    assert next(e for e in events if e.kind == "NodeStarted").device == "cuda:0"
