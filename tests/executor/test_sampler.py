"""The process sampler (engine/metrics.py Sampler, engine/runs.py): every sample is a rate over a
real interval (no run starts with a 0 % point), a run shorter than the sampling period still gets
a sample as it ends, and a node's worker thread is measured from its own CPU clock."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

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


def _burn(seconds: float) -> None:
    end = time.thread_time() + seconds
    x = 0
    while time.thread_time() < end:
        x += 1


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
