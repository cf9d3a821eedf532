"""OpenMP thread teams (engine/agents/runtime.py): a thread that ran torch on several threads
gives its team back when its outermost block ends, so idle engine threads do not keep extra
OpenMP threads alive (with more of them than CPUs, GNU OpenMP stops spin-waiting in every team).
The team's threads are native threads Python does not list: they are the threads that appear
in /proc/self/task while the block's parallel work runs (other threads may come and go)."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest
import torch

from engine.agents import runtime
from engine.kinds import DataKind
from engine.registry import Registry
from engine.resources import Capacity, ResourceDemand
from engine.runs import RunManager, RunOptions
from engine.spec import Agent, AgentSpec, PortSpec, RunContext
from engine.workflow import Workflow

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


def _settled(team: set[str], wait_s: float = 2.0) -> set[str]:
    """The process's threads once ``team`` has gone, or after ``wait_s``: a released team's
    threads end on their own, a few milliseconds after the release returns (longer on a loaded
    machine)."""
    end = time.monotonic() + wait_s
    while team & _tids() and time.monotonic() < end:
        time.sleep(0.01)
    return _tids()


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
        seen["after_scope"] = _settled(seen["team"])

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
        seen["after"] = _settled(seen["team"], wait_s=0.5)  # given as long to go, it stays
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


_SEEN: dict = {}


class _TorchAtDefaultCount(Agent):
    """Runs torch on two threads without a torch_threads block, as an agent's load may."""

    def run(self, inputs: dict, ctx: RunContext) -> dict:
        torch.set_num_threads(2)
        _team_work(_SEEN)
        return {"out": 1}


@pytest.mark.parametrize("release", [True, False])
def test_the_executor_leaves_no_team_behind_a_node(monkeypatch: pytest.MonkeyPatch, release: bool) -> None:
    """A worker going idle releases its team; the control switches the release off."""
    if not release:
        import engine.executor

        monkeypatch.setattr(runtime, "release_openmp_team", lambda: False)
        monkeypatch.setattr(engine.executor, "release_openmp_team", lambda: False)
    registry = Registry()
    registry.register(AgentSpec(name="test.omp_default", version="1", category="testing", description="torch",
                                outputs=(PortSpec("out", DataKind.ANY),), factory=_TorchAtDefaultCount,
                                resources=ResourceDemand(cpu=1)))
    wf = Workflow.model_validate({"name": "omp", "nodes": [{"id": "a", "agent": "test.omp_default"}],
                                  "edges": [], "capacity": {"cpu": 2, "memory_mb": 1024}})
    manager = RunManager(registry, machine=Capacity(cpu=2, memory_mb=2048))
    try:
        _SEEN.clear()
        handle = manager.submit(wf, RunOptions(use_cache=False, predict=False))
        assert str(handle.wait(30)) in ("succeeded", "RunStatus.SUCCEEDED")
        assert _SEEN["team"]
        # the run ends before its worker leaves the node's scope: poll (the control waits 1 s)
        deadline = time.monotonic() + (3.0 if release else 1.0)
        while _SEEN["team"] & _tids() and time.monotonic() < deadline:
            time.sleep(0.01)
        assert bool(_SEEN["team"] & _tids()) is not release  # the worker thread lives on, idle
    finally:
        manager.shutdown(timeout=5)
        if not release:
            runtime._find_gomp().omp_pause_resource_all(1)  # in this thread only: the worker's team stays


def test_preparing_a_cnn_for_inference_starts_no_team() -> None:
    """The probe batch of ``SmallCnn.prepare_inference`` runs on one thread: loading a model in
    any thread (a Streamlit script, an engine worker) leaves no team behind."""
    from engine.agents.nets import SmallCnn

    def body(seen: dict) -> None:
        torch.set_num_threads(2)
        before = _tids()
        SmallCnn(1, 2).eval().prepare_inference()
        seen["new"] = _tids() - before

    assert _in_thread(body)["new"] == set()


def test_a_release_before_torch_is_loaded_does_not_stop_later_ones() -> None:
    """The executor releases after every node, torch or not: one before torch was imported must
    not record 'no libgomp' for good."""
    import subprocess
    import sys

    code = ("import sys; from engine.agents import runtime; assert 'torch' not in sys.modules; "
            "first = runtime.release_openmp_team(); import torch; print(first, runtime.release_openmp_team())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         cwd=Path(__file__).resolve().parents[2])
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["False", "True"]
