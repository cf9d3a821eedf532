"""Admission order: priority rules backfill; `auto` follows its plan's order (no overtaking)."""

from __future__ import annotations

from pathlib import Path

import pytest
from executor_kit import Recorder, sleep, workflow

from engine.resources import Capacity
from engine.results import ResultStore
from engine.runs import RunManager, RunOptions


def _starts(tmp_path: Path, policy: str, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    # a fixed plan order: hold (1 CPU), then big (2 CPU: must wait for hold), then small (1 CPU)
    order = ["hold", "big", "small"]
    monkeypatch.setattr(RunManager, "_plan", lambda self, wf, opts, cap: ({"makespan": 1.0, "nodes": []}, order))
    m = RunManager(machine=Capacity(cpu=2, memory_mb=4096, gpus=()), results=ResultStore(tmp_path / "r"))
    rec = Recorder()
    m.bus.subscribe(rec)
    try:
        wf = workflow([sleep("hold", 0.1, cpu=1), sleep("big", 0.01, cpu=2), sleep("small", 0.01, cpu=1)])
        h = m.submit(wf, RunOptions(policy=policy, use_cache=False))
        h.wait(30)
        return [e.node_id for e in rec.of(h.run_id, "NodeStarted")]
    finally:
        m.shutdown()


def test_priority_rule_backfills_past_a_waiting_node(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    starts = _starts(tmp_path, "critical_path", monkeypatch)
    assert sorted(starts) == ["big", "hold", "small"]
    assert starts.index("small") < starts.index("big")  # small fits beside hold: it does not wait


def test_auto_admits_in_its_plan_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    starts = _starts(tmp_path, "auto", monkeypatch)
    assert sorted(starts) == ["big", "hold", "small"]
    assert starts.index("big") < starts.index("small")  # small waits its turn behind big
