"""Finished runs' outputs in memory stay within ``keep_outputs_mb`` (engine/runs.py): older runs
lose their in-memory outputs first, the newest finished run always keeps its own, and released
outputs that the result cache holds are read back from it."""

from __future__ import annotations

from pathlib import Path

from executor_kit import MACHINE, workflow

from engine.results import ResultStore
from engine.runs import RunManager, RunOptions

N = 20_000  # test.texts: ~0.7 MB of texts and ids per run


def _texts(n: int = N):
    return workflow([{"id": "src", "agent": "test.texts", "params": {"n": n}}])


def _run(m: RunManager, options: RunOptions) -> str:
    handle = m.submit(_texts(), options)
    assert str(handle.wait(30)) in ("succeeded", "RunStatus.SUCCEEDED")
    return handle.run_id


def test_older_runs_release_their_outputs_beyond_the_budget(tmp_path: Path) -> None:
    m = RunManager(machine=MACHINE, results=ResultStore(tmp_path / "results"), keep_outputs_mb=1)
    try:
        options = RunOptions(use_cache=False, predict=False)
        first, second, third = (_run(m, options) for _ in range(3))
        assert m.outputs(first, "src") is None and m.snapshot(first).outputs_released
        kept = m.outputs(second, "src")  # the newest finished run when the third was submitted
        assert kept is not None and len(kept["texts"]["texts"]) == N
        assert not m.snapshot(second).outputs_released
        assert m.outputs(third, "src") is not None
        assert m.snapshot(first).nodes["src"]["output_summary"]  # the summary stays
    finally:
        m.shutdown(timeout=5)


def test_a_large_budget_keeps_everything(tmp_path: Path) -> None:
    m = RunManager(machine=MACHINE, results=ResultStore(tmp_path / "results"), keep_outputs_mb=100)
    try:
        runs = [_run(m, RunOptions(use_cache=False, predict=False)) for _ in range(3)]
        assert all(m.outputs(r, "src") is not None and not m.snapshot(r).outputs_released for r in runs)
    finally:
        m.shutdown(timeout=5)


def test_released_outputs_are_read_back_from_the_result_cache(tmp_path: Path) -> None:
    m = RunManager(machine=MACHINE, results=ResultStore(tmp_path / "results"), keep_outputs_mb=1)
    try:
        cached = _run(m, RunOptions(predict=False))  # stores its result in the cache
        original = m.outputs(cached, "src")
        other = workflow([{"id": "src", "agent": "test.texts", "params": {"n": N + 1}}])
        for _ in range(2):
            m.submit(other, RunOptions(use_cache=False, predict=False)).wait(30)
        assert m.snapshot(cached).outputs_released
        assert m.outputs(cached, "src") == original
    finally:
        m.shutdown(timeout=5)
