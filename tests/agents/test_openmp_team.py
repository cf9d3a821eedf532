"""OpenMP thread teams (engine/agents/runtime.py): a thread that ran torch on several threads
gives its team back when its outermost block ends, so idle engine threads do not keep extra
OpenMP threads alive (with more of them than CPUs, GNU OpenMP stops spin-waiting in every team).
The team's threads are native threads Python does not list: they are the threads that appear
in /proc/self/task while the block's parallel work runs (other threads may come and go)."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest
import torch

from engine.agents import runtime

pytestmark = pytest.mark.skipif(not Path("/proc/self/task").is_dir() or runtime._find_gomp() is False,
                                reason="needs Linux and torch built with GNU OpenMP")


def _tids() -> set[str]:
    return set(os.listdir("/proc/self/task"))


def _work() -> None:
    a = torch.randn(256, 256)
    for _ in range(4):
        a = torch.tanh(a @ a)  # parallel regions: the calling thread's team starts


def _in_thread(body) -> dict:
    seen: dict = {}
    t = threading.Thread(target=body, args=(seen,))
    t.start()
    t.join()
    return seen


def _team_work(seen: dict) -> None:
    """Inside a torch_threads(2) block: the threads the parallel work started."""
    before = _tids()
    _work()
    seen["team"] = _tids() - before


def test_the_team_is_released_when_the_outermost_block_ends() -> None:
    def body(seen: dict) -> None:
        with runtime.openmp_scope():
            with runtime.torch_threads(2):
                _team_work(seen)
            seen["after_inner"] = _tids()  # a nested block keeps the team
        seen["after_scope"] = _tids()

    seen = _in_thread(body)
    assert seen["team"]  # the parallel work started the team's thread(s)
    assert seen["team"] <= seen["after_inner"]
    assert not seen["team"] & seen["after_scope"]


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
            _team_work(seen)
        seen["after"] = _tids()
        runtime._find_gomp().omp_pause_resource_all(1)  # leave no team behind for other tests

    seen = _in_thread(body)
    assert seen["team"] and seen["team"] <= seen["after"]


def test_an_unchanged_thread_count_is_not_set_again(monkeypatch: pytest.MonkeyPatch) -> None:
    """Setting torch's thread count also resizes torch's own thread pool: skip it when equal."""
    calls: list[int] = []
    real = torch.set_num_threads

    def counting(n: int) -> None:
        calls.append(n)
        real(n)

    def body(seen: dict) -> None:
        with runtime.torch_threads(2), runtime.torch_threads(2):  # already 2: no set, no restore
            seen["inner"] = list(calls)
        seen["after"] = list(calls)

    before = torch.get_num_threads()
    monkeypatch.setattr(torch, "set_num_threads", counting)
    real(1)
    try:
        seen = _in_thread(body)
    finally:
        real(before)
    assert seen["inner"] == [2] and seen["after"] == [2, 1]
