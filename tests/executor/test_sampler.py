"""The process sampler (engine/metrics.py Sampler, engine/runs.py): every sample is a rate over a
real interval (no run starts with a 0 % point), a run shorter than the sampling period still gets
a sample as it ends, and a node's worker thread is measured from its own CPU clock."""

from __future__ import annotations

import hashlib
import os
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from executor_kit import Recorder
from pydantic import BaseModel

from engine.events import RunStatus
from engine.kinds import DataKind
from engine.metrics import Sampler
from engine.registry import Registry
from engine.resources import Capacity, ResourceDemand
from engine.results import ResultStore
from engine.runs import RunManager, RunOptions
from engine.spec import Agent, AgentSpec, PortSpec, RunContext
from engine.workflow import Workflow

_BLOCK = b"x" * (1 << 20)


def _burn(seconds: float) -> None:
    """``seconds`` of this thread's CPU, mostly with the GIL released (hashing a large buffer),
    as a torch op would: threads burning pure Python would starve every other thread of the GIL."""
    end = time.thread_time() + seconds
    while time.thread_time() < end:
        hashlib.sha256(_BLOCK).digest()


class _BusyParams(BaseModel):
    seconds: float = 0.2


class _Busy(Agent):
    """Keeps its thread on the CPU for ``seconds`` of CPU time."""

    def run(self, inputs: dict[str, Any], ctx: RunContext) -> dict[str, Any]:
        _burn(self.params.seconds)
        return {"out": 1}


def _manager(tmp_path: Path, hz: float) -> tuple[RunManager, Recorder]:
    registry = Registry()
    registry.register(AgentSpec(name="test.busy", version="1", category="testing", description="burns CPU",
                                outputs=(PortSpec("out", DataKind.ANY),), factory=_Busy, params=_BusyParams,
                                resources=ResourceDemand(cpu=1)))
    m = RunManager(registry, machine=Capacity(cpu=2, memory_mb=2048, gpus=()),
                   results=ResultStore(tmp_path / "results"), sample_hz=hz)
    rec = Recorder()
    m.bus.subscribe(rec)
    return m, rec


def _busy_run(m: RunManager, seconds: float) -> str:
    wf = Workflow.model_validate({"name": "busy", "nodes": [{"id": "busy", "agent": "test.busy",
                                                                  "params": {"seconds": seconds}}],
                                  "edges": [], "capacity": {"cpu": 1, "memory_mb": 512}})
    h = m.submit(wf, RunOptions(use_cache=False, predict=False))
    assert h.wait(30) == RunStatus.SUCCEEDED
    return h.run_id


def test_a_run_shorter_than_the_period_gets_one_real_sample_before_it_finishes(tmp_path: Path) -> None:
    m, rec = _manager(tmp_path, hz=0.5)  # a 2 s period: the run ends long before the first tick
    try:
        for _ in range(2):  # the second run starts from an idle sampler again
            run_id = _busy_run(m, 0.15)
            kinds = [e.kind for e in rec.of(run_id)]
            samples = rec.of(run_id, "MetricSampled")
            assert len(samples) == 1 and kinds.index("MetricSampled") < kinds.index("RunFinished")
            assert samples[0].cpu_percent > 20  # one thread busy for the whole run: ~100 %
            assert samples[0].rss_mb > 10
            finished = rec.of(run_id, "NodeFinished")  # the node's RSS, though no sample fell inside it
            assert finished and finished[0].metrics["peak_rss_mb"] > 10
    finally:
        m.shutdown(timeout=5)


def test_no_sample_of_a_run_is_a_baseline_reading_at_zero(tmp_path: Path) -> None:
    m, rec = _manager(tmp_path, hz=20)
    try:
        run_id = _busy_run(m, 0.6)
        samples = rec.of(run_id, "MetricSampled")
        assert len(samples) >= 4
        assert min(s.cpu_percent for s in samples) > 20, [s.cpu_percent for s in samples]
        per_node = [s.per_node["busy"]["cpu_percent"] for s in samples if s.per_node]
        assert per_node and max(per_node) > 50  # the node's worker thread, on its own clock
    finally:
        m.shutdown(timeout=5)


def test_read_needs_a_baseline_and_counts_a_thread_first_seen_from_its_start() -> None:
    ids: list[int] = []
    sampler = Sampler(lambda s: None, lambda: False, threads=lambda: list(ids))
    try:
        assert sampler.read() is None  # the first reading is only the baseline
        started, done = threading.Event(), threading.Event()

        def work() -> None:
            ids.append(threading.get_native_id())
            started.set()
            _burn(0.1)
            done.set()
            time.sleep(0.5)  # alive when read

        t = threading.Thread(target=work, daemon=True)
        t.start()
        assert done.wait(10)
        s = sampler.read()
        assert s is not None and s.thread_cpu_percent[ids[0]] > 5  # 0.1 s of CPU since the baseline
        sampler.prime()
        s = sampler.read()
        assert s is not None and s.thread_cpu_percent[ids[0]] < s.cpu_percent + 1  # idle since prime
        t.join()
    finally:
        sampler.stop()


class _BurnTagParams(BaseModel):
    seconds: float = 0.03  # CPU time per batch


class _BurnTag(Agent):
    """An itemwise agent that burns CPU on every batch (the engine runs its batches on a pool)."""

    def run(self, inputs: dict[str, Any], ctx: RunContext) -> dict[str, Any]:
        from engine.agents.batching import run_itemwise

        return run_itemwise(self, inputs, ctx)

    def run_batch(self, inputs: dict[str, Any], ctx: RunContext, start: int) -> dict[str, Any]:
        _burn(self.params.seconds)
        batch = inputs["texts"]
        return {"texts": {**batch, "texts": [t + "+" for t in batch["texts"]]}}


def test_a_nodes_batch_threads_count_as_its_cpu_and_a_fused_node_as_its_heads(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Batches on a batch pool: their threads are lent to the node's thread, so the node's CPU
    is theirs (its own thread only waits); a pool thread lent again in a later run is counted
    from its previous reading, not from its start; the fused node is not counted twice."""
    from engine.agents import splits

    monkeypatch.setattr(splits, "candidates", lambda threads, n, device: [(2, 1)])  # batches on the pool
    m, rec = _manager(tmp_path, hz=20)
    m.registry.register_module("engine.agents.testing")
    m.registry.register(AgentSpec(
        name="test.burn_tag", version="1", category="testing", description="burns CPU per batch",
        inputs=(PortSpec("texts", DataKind.TEXT_BATCH),), outputs=(PortSpec("texts", DataKind.TEXT_BATCH),),
        factory=_BurnTag, params=_BurnTagParams, resources=ResourceDemand(cpu=2), itemwise=True))
    batch = {"execution": {"batch_size": 8}}
    wf = Workflow.model_validate({
        "name": "pool", "capacity": {"cpu": 2, "memory_mb": 512}, "edges": [
            {"source": "texts", "target": "a"}, {"source": "a", "target": "b"}],
        "nodes": [{"id": "texts", "agent": "test.texts", "params": {"n": 64}},
                  {"id": "a", "agent": "test.burn_tag", "lifecycle": batch},
                  {"id": "b", "agent": "test.burn_tag", "lifecycle": batch}]})
    try:
        for _ in range(3):  # the pool's threads are lent again on later runs
            h = m.submit(wf, RunOptions(use_cache=False, predict=False))
            assert h.wait(30) == RunStatus.SUCCEEDED
            assert h.snapshot().nodes["b"]["fused_into"] == "a"
            samples = [s for s in rec.of(h.run_id, "MetricSampled") if s.per_node]
            assert samples and all("b" not in s.per_node for s in samples)
            assert max(s.per_node["a"]["cpu_percent"] for s in samples if "a" in s.per_node) > 50
            cpus = 100 * (os.cpu_count() or 1)
            for s in samples:  # each thread at most one CPU (a reused pool thread was 6x that)
                assert s.per_node["a"]["cpu_percent"] <= cpus + 15, [(x.cpu_percent, x.per_node) for x in samples]
    finally:
        m.shutdown(timeout=5)


def test_without_schedstat_per_thread_times_come_from_psutil(monkeypatch: pytest.MonkeyPatch) -> None:
    """Not Linux (no /proc/self/task/<id>/schedstat): the same per-thread rates, from psutil."""
    import builtins

    import engine.metrics as metrics

    real_open = builtins.open

    def no_schedstat(path, *a, **k):  # type: ignore[no-untyped-def]
        if str(path).endswith("/schedstat"):
            raise FileNotFoundError(path)
        return real_open(path, *a, **k)

    monkeypatch.setattr(builtins, "open", no_schedstat)
    monkeypatch.setattr(metrics.os.path, "exists", lambda p: not str(p).endswith("schedstat"))
    me = threading.get_native_id()
    sampler = Sampler(lambda s: None, lambda: False, threads=lambda: [me])
    try:
        assert sampler.read() is None
        _burn(0.2)
        s = sampler.read()
        assert s is not None and set(s.thread_cpu_percent) == {me} and s.thread_cpu_percent[me] > 30
    finally:
        sampler.stop()
