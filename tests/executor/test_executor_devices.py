"""Device placement (CUDA first for `any`, simulated GPUs), the GPU probe seam, the sampler, `any` inputs."""

from __future__ import annotations

from pathlib import Path

from executor_kit import FakeGpu, Recorder, workflow
from sweep import assert_within, max_usage

from engine.events import RunStatus
from engine.resources import Capacity, GpuDevice
from engine.results import ResultStore
from engine.runs import RunManager, RunOptions


def test_any_device_prefers_the_gpu_and_falls_back_to_cpu(tmp_path: Path) -> None:
    gpu = FakeGpu()
    machine = Capacity(cpu=4, memory_mb=4096, gpus=(GpuDevice(index=0, memory_mb=1000, simulated=True),))
    m = RunManager(machine=machine, results=ResultStore(tmp_path), gpu=gpu, sample_hz=50)
    rec = Recorder()
    m.bus.subscribe(rec)
    try:
        nodes = [{"id": f"g{i}", "agent": "test.sleep", "params": {"seconds": 0.4},
                  "resources": {"device": "any", "gpu_memory_mb": 600}} for i in range(2)]
        h = m.submit(workflow(nodes), RunOptions(use_cache=False))
        assert h.wait(10) == RunStatus.SUCCEEDED
        devices = sorted(e.device for e in rec.of(h.run_id, "NodeStarted"))
        assert devices == ["cpu", "cuda:0"]  # 2 x 600 MB do not fit one 1000 MB GPU at once
        on_gpu = next(e for e in rec.of(h.run_id, "NodeFinished") if e.metrics["device"] == "cuda:0")
        assert on_gpu.metrics["peak_gpu_mb"] == 123.0 and gpu.resets == ["cuda:0"]
        assert_within(max_usage(rec.of(h.run_id)), {"cpu": 4, "memory_mb": 4096, "cuda:0.gpu_memory_mb": 1000})
        samples = rec.of(h.run_id, "MetricSampled")
        assert samples and samples[-1].gpu_memory_mb == {"cuda:0": 42.0}
        assert any(s.per_node for s in samples)  # running nodes were seen by the sampler
    finally:
        m.shutdown()


def test_any_start_condition_runs_after_the_first_input(manager) -> None:
    m, rec = manager
    wf = workflow([{"id": "fast", "agent": "test.source", "params": {"value": 1}},
                   {"id": "slow", "agent": "test.sleep", "params": {"seconds": 0.3}},
                   {"id": "first", "agent": "test.echo", "lifecycle": {"start": {"inputs": "any"}}}],
                  [("fast", "first"), ("slow", "first")])
    h = m.submit(wf, RunOptions(use_cache=False))
    assert h.wait(10) == RunStatus.SUCCEEDED
    order = [(e.kind, e.node_id) for e in rec.of(h.run_id) if e.kind in ("NodeStarted", "NodeFinished")]
    assert order.index(("NodeStarted", "first")) < order.index(("NodeFinished", "slow"))
    assert m.outputs(h.run_id, "first") == {"out": 1}


def test_node_that_never_fits_fails_with_a_clear_message(manager) -> None:
    m, rec = manager
    from engine.errors import WorkflowInvalidError

    wf = workflow([{"id": "huge", "agent": "test.sleep", "resources": {"memory_mb": 10**6}}])
    try:
        h = m.submit(wf, RunOptions(use_cache=False))
    except WorkflowInvalidError as exc:  # validation caught it first: fine, and named
        assert "huge" in str(exc)
        return
    assert h.wait(10) == RunStatus.FAILED
    assert "never fits" in rec.of(h.run_id, "NodeFailed")[0].message


def test_a_nodes_peak_gpu_memory_is_its_own_not_what_the_card_already_held() -> None:
    """torch's peak is a level for the whole process: the probe reports how far it rose above
    what was allocated when the node started (a cache or an earlier node's tensors kept on the
    card do not count). The counters are faked: the GPU reading is tests/agents/test_templates_gpu.py."""
    from types import SimpleNamespace

    from engine.metrics import TorchGpuProbe

    state = {"allocated": 300 * 2**20, "peak": 300 * 2**20, "initialised": False}

    def reset(device: str) -> None:
        if not state["initialised"]:
            raise RuntimeError("Invalid device argument")  # torch before the first allocation
        state["peak"] = state["allocated"]

    cuda = SimpleNamespace(memory_allocated=lambda d: state["allocated"], max_memory_allocated=lambda d: state["peak"],
                           reset_peak_memory_stats=reset)
    probe = TorchGpuProbe.__new__(TorchGpuProbe)
    probe._torch, probe._base = SimpleNamespace(cuda=cuda), {}
    probe.task_start("cuda:0")  # the reset fails: the peak so far is the level, and it is the base
    state["peak"] += 40 * 2**20  # the node's batch
    assert probe.task_peak_mb("cuda:0") == 40
    state["initialised"] = True
    probe.task_start("cuda:0")
    state["peak"] = state["allocated"] + 8 * 2**20
    assert probe.task_peak_mb("cuda:0") == 8
    assert probe.task_peak_mb("cpu") is None
