"""Fewer full collections while runs execute (engine/gcpolicy.py): the generation-2 threshold is
raised while any run is active and put back when the last one ends."""

from __future__ import annotations

import gc
import time

from executor_kit import sleep, workflow

from engine import gcpolicy
from engine.runs import RunOptions

OPTIONS = RunOptions(use_cache=False, predict=False)


def _wait_running(handle, node: str) -> None:
    deadline = time.time() + 20
    while handle.snapshot().nodes[node]["status"] != "running" and time.time() < deadline:
        time.sleep(0.005)


def test_the_threshold_is_raised_while_runs_are_active_and_restored_after(manager) -> None:
    m, _ = manager
    before = gc.get_threshold()
    first = m.submit(workflow([sleep("a", 0.4)]), OPTIONS)
    _wait_running(first, "a")
    raised = gc.get_threshold()
    assert raised == (before[0], before[1], before[2] * gcpolicy.FACTOR)
    second = m.submit(workflow([sleep("b", 0.05)]), OPTIONS)
    assert second.wait(20) == "succeeded"
    assert gc.get_threshold() == raised  # another run is still active
    assert first.wait(20) == "succeeded"
    assert gc.get_threshold() == before and gcpolicy.active_runs() == 0


def test_a_threshold_changed_by_someone_else_meanwhile_is_left_alone(manager) -> None:
    m, _ = manager
    before = gc.get_threshold()
    handle = m.submit(workflow([sleep("a", 0.2)]), OPTIONS)
    _wait_running(handle, "a")
    try:
        gc.set_threshold(1234, 11, 12)
        assert handle.wait(20) == "succeeded"
        assert gc.get_threshold() == (1234, 11, 12)
    finally:
        gc.set_threshold(*before)
