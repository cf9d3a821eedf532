"""A node's own memory (``memory_mb``, engine/metrics.py): how far the process's RSS rose above its
level when the node started, and at least what its outputs hold; not the whole process's RSS. Before, every in-thread node recorded
the process's RSS (a threshold node "used" the 400 MB that torch and the loaded models hold), and
the right-sizing advice told people to raise every node's memory to that."""

from __future__ import annotations

import mmap
from pathlib import Path
from typing import Any

import pytest
import torch
from executor_kit import Recorder
from pydantic import BaseModel

from engine.estimates import Estimates, node_memory_mb
from engine.events import RunStatus
from engine.kinds import DataKind
from engine.metrics import memory_growth_mb, own_memory_mb, rss_now_mb
from engine.registry import Registry
from engine.resources import Capacity, ResourceDemand
from engine.results import ResultStore
from engine.runs import RunManager, RunOptions
from engine.spec import Agent, AgentSpec, PortSpec, RunContext
from engine.workflow import Workflow

MB = 2**20


class _StepsParams(BaseModel):
    mb_per_step: int = 40
    steps: int = 3
    keep_mb: int = 0


def _mapped(mb: int) -> mmap.mmap:
    """``mb`` MB of fresh anonymous memory, every page touched: RSS grows by it whatever the heap
    holds (malloc may serve even a large block from heap an earlier test freed and glibc kept,
    and then RSS does not move: the lower bound the module doc describes). Closing it unmaps it."""
    block = mmap.mmap(-1, mb * MB)
    for i in range(0, mb * MB, 4096):
        block[i] = 1
    return block


class _Steps(Agent):
    """Maps ``steps`` blocks of ``mb_per_step`` MB, reporting progress after each (as a batch loop
    does), then unmaps them all before it returns: its peak is only seen at the reports. Returns a
    tensor of ``keep_mb`` MB."""

    def run(self, inputs: dict[str, Any], ctx: RunContext) -> dict[str, Any]:
        held = []
        for i in range(self.params.steps):
            held.append(_mapped(self.params.mb_per_step))
            ctx.progress(i + 1, self.params.steps)
        for block in held:
            block.close()
        return {"out": torch.zeros(self.params.keep_mb * MB // 4)}


class _HoldParams(BaseModel):
    mb: int = 48
    seconds: float = 0.5


class _Hold(Agent):
    """Maps ``mb`` MB, holds it for ``seconds`` without reporting progress, unmaps it."""

    def run(self, inputs: dict[str, Any], ctx: RunContext) -> dict[str, Any]:
        block = _mapped(self.params.mb)
        ctx.wait(self.params.seconds)
        block.close()
        return {"out": 1}


class _Tiny(Agent):
    def run(self, inputs: dict[str, Any], ctx: RunContext) -> dict[str, Any]:
        return {"out": 1}


def _manager(tmp_path: Path, hz: float = 0.2) -> tuple[RunManager, Recorder]:
    registry = Registry()
    for name, factory, params in (("test.steps", _Steps, _StepsParams), ("test.tiny", _Tiny, None),
                                  ("test.hold", _Hold, _HoldParams)):
        registry.register(AgentSpec(name=name, version="1", category="testing", description=name,
                                    outputs=(PortSpec("out", DataKind.ANY),), factory=factory,
                                    **({"params": params} if params else {}), resources=ResourceDemand(cpu=1)))
    m = RunManager(registry, machine=Capacity(cpu=2, memory_mb=4096, gpus=()),
                   results=ResultStore(tmp_path / "results"), sample_hz=hz)
    rec = Recorder()
    m.bus.subscribe(rec)
    return m, rec


def _run(m: RunManager, rec: Recorder, nodes: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    wf = Workflow.model_validate({"name": "mem", "nodes": nodes, "edges": [],
                                  "capacity": {"cpu": 1, "memory_mb": 2048}})
    h = m.submit(wf, RunOptions(use_cache=False, predict=False))
    assert h.wait(30) == RunStatus.SUCCEEDED
    return {e.node_id: e.metrics for e in rec.of(h.run_id, "NodeFinished")}


def test_rss_now_mb_is_the_process_rss() -> None:
    import psutil

    assert abs(rss_now_mb() - psutil.Process().memory_info().rss / MB) < 4
    before = rss_now_mb()
    block = _mapped(64)
    assert 63 <= rss_now_mb() - before <= 70
    block.close()


def test_a_node_is_at_least_what_its_outputs_hold() -> None:
    """In a warm process a node may reuse memory an earlier node freed, so RSS does not rise: the
    outputs it returns still count."""
    assert memory_growth_mb(500.0, 500.0, 24 * MB) == 24.0
    assert memory_growth_mb(500.0, 530.0, 24 * MB) == 30.0
    assert memory_growth_mb(500.0, 490.0, 0) == 0.0  # RSS fell meanwhile (another node freed memory)
    assert memory_growth_mb(None, 530.0, 0) is None  # never started


def test_a_small_node_in_a_big_process_records_its_own_memory_not_the_process(tmp_path: Path) -> None:
    m, rec = _manager(tmp_path)
    ballast = torch.ones(200 * MB // 4)  # what loaded models and earlier runs hold in a server
    try:
        metrics = _run(m, rec, [{"id": "tiny", "agent": "test.tiny"}])["tiny"]
    finally:
        m.shutdown(timeout=5)
    assert metrics["peak_rss_mb"] > 200  # the process, as before
    assert metrics["memory_mb"] is not None and metrics["memory_mb"] < 5, metrics["memory_mb"]
    del ballast


def test_a_peak_between_sampler_ticks_is_read_at_the_progress_reports(tmp_path: Path) -> None:
    m, rec = _manager(tmp_path, hz=0.2)  # a 5 s period: no tick falls inside the node
    try:
        metrics = _run(m, rec, [{"id": "steps", "agent": "test.steps", "params": {"mb_per_step": 40, "steps": 3}},
                                {"id": "keeps", "agent": "test.steps",
                                 "params": {"mb_per_step": 1, "steps": 1, "keep_mb": 20}}])
    finally:
        m.shutdown(timeout=5)
    own = metrics["steps"]["memory_mb"]
    assert 115 <= own <= 135, own  # 3 x 40 MB held at the last report, all freed before the node ended
    assert metrics["keeps"]["memory_mb"] >= 20  # what it returned, even where the heap had room for it


def test_memory_held_for_a_while_is_read_by_the_sampler(tmp_path: Path) -> None:
    m, rec = _manager(tmp_path, hz=20)
    try:  # it reports no progress and frees its 48 MB before it ends: only the sampler sees it
        metrics = _run(m, rec, [{"id": "hold", "agent": "test.hold", "params": {"mb": 48, "seconds": 0.5}}])
    finally:
        m.shutdown(timeout=5)
    assert 46 <= metrics["hold"]["memory_mb"] <= 64, metrics["hold"]["memory_mb"]


def _record(node: str, metrics: dict[str, Any], peak_rss: float = 400.0) -> dict[str, Any]:
    return {"node_id": node, "status": "done", "wall_s": 0.1, "cached": False, "peak_rss_mb": peak_rss,
            "metrics": metrics}


@pytest.mark.parametrize(("metrics", "expected"), [
    ({"memory_mb": 12.5}, 12.5),  # measured on its own
    ({"memory_mb": 90.0, "isolated": True}, 90.0),  # isolated: its process's growth, recorded as its own
    ({}, None),  # recorded before memory_mb: the 400 MB is the process's, not the node's
    ({"isolated": True}, 400.0),  # ...unless it ran in its own process
    ({"memory_mb": 30.0, "chain": ["b"]}, None),  # a fused chain's first node holds the chain's memory
    ({"memory_mb": None, "fused_into": "a"}, None),
])
def test_what_the_estimates_learn_memory_from(metrics: dict[str, Any], expected: float | None) -> None:
    assert node_memory_mb(_record("n", metrics)) == expected


def test_display_shows_the_chain_head_but_not_the_process() -> None:
    assert own_memory_mb({"memory_mb": 30.0, "chain": ["b"]}, 400.0) == 30.0
    assert own_memory_mb({}, 400.0) is None


def test_right_sizing_no_longer_asks_for_the_process_size(tmp_path: Path) -> None:
    """Three real runs of a tiny node in a process holding 200 MB: the estimates learn a few MB
    and the advice does not tell anyone to raise its 64 MB declaration."""
    from engine.rightsizing import advise

    m, rec = _manager(tmp_path)
    ballast = torch.ones(200 * MB // 4)
    node = {"id": "tiny", "agent": "test.tiny", "resources": {"memory_mb": 64}}
    try:
        runs = []
        for i in range(3):
            metrics = _run(m, rec, [node])["tiny"]
            runs.append({"summary": {"id": f"r{i}"}, "workflow": {"nodes": [node], "edges": []},
                         "nodes": [_record("tiny", metrics, metrics["peak_rss_mb"])]})
        registry = m.registry
    finally:
        m.shutdown(timeout=5)
    del ballast
    assert all(r["nodes"][0]["peak_rss_mb"] > 200 for r in runs)
    est = Estimates.from_runs(runs)
    wf = Workflow.model_validate({"name": "mem", "nodes": [node], "edges": [],
                                  "capacity": {"cpu": 1, "memory_mb": 2048}})
    assert est.peak_memory_mb(wf.nodes[0]) < 5
    assert not [a for a in advise(wf, registry, Capacity(cpu=2, memory_mb=4096), est) if a.suggested > 64]


@pytest.mark.parametrize(("fresh_after_s", "reads"), [(0.0, 30), (60.0, 0)])
def test_only_nodes_that_ran_a_while_pay_for_a_fresh_reading(tmp_path: Path, monkeypatch, fresh_after_s, reads) -> None:
    """A fresh RSS reading at every node's start and end cost the executor 3 us a node on 10,000
    no-op nodes (18.8 -> 24.7 us): the count starts from the latest reading, and a node gets a
    fresh one at its end only when it ran ``FRESH_READ_S`` or returned ``FRESH_READ_BYTES``."""
    import engine.attempts as attempts

    calls = []
    real = attempts.rss_now_mb
    monkeypatch.setattr(attempts, "rss_now_mb", lambda: calls.append(1) or real())
    monkeypatch.setattr(attempts, "FRESH_READ_S", fresh_after_s)
    m, rec = _manager(tmp_path)
    try:
        metrics = _run(m, rec, [{"id": f"t{i}", "agent": "test.tiny"} for i in range(30)])
    finally:
        m.shutdown(timeout=5)
    assert len(calls) == reads
    assert all(0 <= mm["memory_mb"] < 5 for mm in metrics.values())


def test_an_agents_first_run_in_the_process_is_marked_cold(tmp_path: Path) -> None:
    m, rec = _manager(tmp_path)
    try:
        first = _run(m, rec, [{"id": "a", "agent": "test.tiny"}])["a"]
        again = _run(m, rec, [{"id": "a", "agent": "test.tiny"}, {"id": "s", "agent": "test.steps",
                                                                  "params": {"mb_per_step": 1, "steps": 1}}])
    finally:
        m.shutdown(timeout=5)
    assert first["cold"] is True  # imports and first model loads happen on an agent's first run
    assert again["a"]["cold"] is False and again["s"]["cold"] is True


def test_memory_estimates_use_warm_runs_where_there_are_any() -> None:
    """The breast-cancer source measured 120 MB on its first run in a server (sklearn's import)
    and 16 MB after: the advice must not be to reserve the import for every run."""
    node = {"id": "n", "agent": "test.tiny"}

    def run(i: int, mb: float, cold: bool) -> dict[str, Any]:
        return {"summary": {"id": f"r{i}"}, "workflow": {"nodes": [node], "edges": []},
                "nodes": [_record("n", {"memory_mb": mb, "cold": cold})]}

    warm_after_cold = Estimates.from_runs([run(0, 120.0, True), run(1, 16.0, False), run(2, 17.0, False)])
    assert warm_after_cold.peak_memory_mb(node) == pytest.approx(17.0, abs=0.1)
    cli_only = Estimates.from_runs([run(i, 120.0 + i, True) for i in range(3)])  # each run its own process
    assert cli_only.peak_memory_mb(node) >= 120.0
