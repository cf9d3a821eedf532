"""OpenMP thread teams (engine/agents/runtime.py): a thread that ran torch on several threads
gives its team back when its outermost block ends, so idle engine threads do not keep extra
OpenMP threads alive (with more of them than CPUs, GNU OpenMP stops spin-waiting in every team).
Counted in /proc/self/task: the team's threads are native threads Python does not list."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest
import torch

from engine.agents import runtime

pytestmark = pytest.mark.skipif(not Path("/proc/self/task").is_dir() or runtime._find_gomp() is False,
                                reason="needs Linux and torch built with GNU OpenMP")


def _native_threads() -> int:
    return len(os.listdir("/proc/self/task"))


def _work() -> None:
    a = torch.randn(256, 256)
    for _ in range(4):
        a = torch.tanh(a @ a)  # parallel regions: the calling thread's team starts


@pytest.fixture(autouse=True, scope="module")
def torch_started() -> None:
    """Torch starts one helper thread of its own on first use: let that happen before counting."""
    def warm() -> None:
        with runtime.torch_threads(2):
            _work()

    t = threading.Thread(target=warm)
    t.start()
    t.join()


def _in_thread(body) -> dict:
    seen: dict = {}

    def run() -> None:
        seen["start"] = _native_threads()
        body(seen)

    t = threading.Thread(target=run)
    t.start()
    t.join()
    return seen


def test_the_team_is_released_when_the_outermost_block_ends() -> None:
    def body(seen: dict) -> None:
        with runtime.openmp_scope():
            with runtime.torch_threads(2):
                _work()
                seen["inner"] = _native_threads()
            seen["after_inner"] = _native_threads()  # a nested block keeps the team
        seen["after_scope"] = _native_threads()

    seen = _in_thread(body)
    assert seen["inner"] > seen["start"]  # the team's extra thread is alive
    assert seen["after_inner"] == seen["inner"]
    assert seen["after_scope"] == seen["start"]


def test_a_single_threaded_block_leaves_nothing_to_release(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []
    monkeypatch.setattr(runtime, "release_openmp_team", lambda: calls.append(1) or True)

    def body(seen: dict) -> None:
        with runtime.torch_threads(1):
            _work()
        with runtime.torch_threads(2):
            _work()

    _in_thread(body)
    assert calls == [1]


def test_without_release_the_team_outlives_the_block(monkeypatch: pytest.MonkeyPatch) -> None:
    """The mechanism's control: with the release switched off the thread keeps its team."""
    monkeypatch.setattr(runtime, "release_openmp_team", lambda: False)

    def body(seen: dict) -> None:
        with runtime.torch_threads(2):
            _work()
        seen["after"] = _native_threads()

    seen = _in_thread(body)
    assert seen["after"] > seen["start"]
