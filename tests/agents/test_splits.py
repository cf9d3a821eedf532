"""Measured batch splits (engine/agents/splits.py): the first batches run under each candidate
split, the faster one runs the rest and is remembered; every batch runs exactly once. The torch
thread setter is replaced by a recorder (this is about the choice, not about torch)."""

from __future__ import annotations

import contextlib
import time
from collections import Counter

import pytest

from engine.agents import splits

CURRENT = {"threads": 1}


@pytest.fixture(autouse=True)
def fake_threads(monkeypatch: pytest.MonkeyPatch):
    @contextlib.contextmanager
    def torch_threads(n: int):
        before, CURRENT["threads"] = CURRENT["threads"], n
        try:
            yield
        finally:
            CURRENT["threads"] = before

    monkeypatch.setattr(splits, "torch_threads", torch_threads)
    splits.forget()
    yield
    splits.forget()


def _work(per_thread_s: dict[int, float], ran: Counter) -> object:
    def fn(i: int) -> None:
        time.sleep(per_thread_s[CURRENT["threads"]])
        ran[i] += 1
    return fn


def test_one_batch_with_more_threads_wins_when_threads_speed_a_batch_up() -> None:
    ran: Counter = Counter()
    choice = splits.run_split(_work({1: 0.04, 2: 0.004}, ran), 12, 2, "cpu", "k", "t")
    assert choice.split == (1, 2) and "measured on the first 8 batches" in choice.how  # 2 warm-up + A B B A
    assert sorted(ran) == list(range(12)) and set(ran.values()) == {1}


def test_batches_at_once_win_when_threads_do_not_help() -> None:
    ran: Counter = Counter()
    choice = splits.run_split(_work({1: 0.02, 2: 0.02}, ran), 12, 2, "cpu", "k", "t")
    assert choice.split == (2, 1)
    assert sorted(ran) == list(range(12)) and set(ran.values()) == {1}


def test_the_choice_is_remembered_then_measured_again() -> None:
    ran: Counter = Counter()
    fn = _work({1: 0.02, 2: 0.002}, ran)
    first = splits.run_split(fn, 8, 2, "cpu", "same", "t")
    again = [splits.run_split(fn, 8, 2, "cpu", "same", "t") for _ in range(splits.REPROBE)]
    assert first.split == (1, 2) and all(c.how == "remembered from an earlier run" and c.split == (1, 2) for c in again)
    assert "measured" in splits.run_split(fn, 8, 2, "cpu", "same", "t").how
    other = splits.run_split(fn, 8, 2, "cpu", "another key", "t")
    assert "measured" in other.how
    assert set(ran.values()) == {splits.REPROBE + 3}  # every batch once per call


def test_no_key_or_no_choice_runs_the_default_without_measuring() -> None:
    ran: Counter = Counter()
    fn = _work({1: 0.0, 2: 0.0, 4: 0.0}, ran)
    assert splits.run_split(fn, 5, 2, "cpu", None, "t").split == (2, 1)
    assert splits.run_split(fn, 5, 4, "cuda:0", "k", "t").split == (1, 4)
    assert splits.run_split(fn, 1, 2, "cpu", "k", "t").split == (1, 2)
    assert ran == Counter({0: 3, 1: 2, 2: 2, 3: 2, 4: 2})
