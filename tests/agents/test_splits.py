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
    choice = splits.run_split(_work({1: 0.04, 2: 0.004}, ran), 12, 2, "cpu", "k")
    assert choice.split == (1, 2) and "measured on the first 8 batches" in choice.how  # 2 warm-up + A B B A
    assert sorted(ran) == list(range(12)) and set(ran.values()) == {1}


def test_batches_at_once_win_when_threads_do_not_help() -> None:
    ran: Counter = Counter()
    choice = splits.run_split(_work({1: 0.02, 2: 0.02}, ran), 12, 2, "cpu", "k")
    assert choice.split == (2, 1)
    assert sorted(ran) == list(range(12)) and set(ran.values()) == {1}


def test_the_choice_is_remembered_and_each_run_still_times_it() -> None:
    ran: Counter = Counter()
    fn = _work({1: 0.02, 2: 0.002}, ran)
    first = splits.run_split(fn, 8, 2, "cpu", "same")
    again = [splits.run_split(fn, 8, 2, "cpu", "same") for _ in range(4)]
    assert first.split == (1, 2)
    assert all(c.split == (1, 2) and c.how.startswith("remembered from earlier runs") for c in again)
    assert all((1, 2) in c.measured for c in again)  # the chosen split is timed on every run
    assert sum((2, 1) in c.measured for c in again) == 1  # and another one on every 3rd
    other = splits.run_split(fn, 8, 2, "cpu", "another key")
    assert "measured on the first" in other.how
    assert sorted(ran) == list(range(8)) and set(ran.values()) == {6}  # every batch once per call


def test_a_chosen_split_that_slows_down_is_replaced_on_the_next_run() -> None:
    ran: Counter = Counter()
    cost = {1: 0.02, 2: 0.002}  # two threads on one batch: 10x faster
    fn = _work(cost, ran)
    assert splits.run_split(fn, 12, 2, "cpu", "k").split == (1, 2)
    cost.update({1: 0.004, 2: 0.03})  # the machine's state changes: two threads now slow
    slowed = splits.run_split(fn, 12, 2, "cpu", "k")
    assert slowed.split == (1, 2) and "the next run uses 2 x 1" in slowed.how
    assert splits.run_split(fn, 12, 2, "cpu", "k").split == (2, 1)
    assert set(ran.values()) == {3}


def test_a_split_that_became_faster_is_found_by_exploring() -> None:
    ran: Counter = Counter()
    cost = {1: 0.004, 2: 0.03}
    fn = _work(cost, ran)
    assert splits.run_split(fn, 12, 2, "cpu", "k").split == (2, 1)
    cost.update({1: 0.02, 2: 0.001})  # now one batch on two threads is 5x faster per batch
    chosen = [splits.run_split(fn, 12, 2, "cpu", "k").split for _ in range(4 * splits.EXPLORE_EVERY)]
    assert chosen[0] == (2, 1) and chosen[-1] == (1, 2)
    assert chosen.index((1, 2)) >= splits.EXPLORE_EVERY  # found by an exploring run, not at once
    assert set(ran.values()) == {1 + 4 * splits.EXPLORE_EVERY}


def test_a_settled_choice_explores_less_and_less_often() -> None:
    ran: Counter = Counter()
    fn = _work({1: 0.002, 2: 0.004}, ran)  # 2 x 1: 1 ms per batch; 1 x 2: 4 ms
    choices = [splits.run_split(fn, 8, 2, "cpu", "k") for _ in range(31)]
    exploring = [i for i, c in enumerate(choices[1:], start=1) if (1, 2) in c.measured]
    assert {c.split for c in choices} == {(2, 1)}
    e = splits.EXPLORE_EVERY
    assert exploring == [e, 3 * e, 7 * e]  # intervals e, 2e, 4e (fixed every e: 10 of 30 runs)


def test_a_split_a_little_faster_wins_once_measured_over_runs() -> None:
    """Above the later runs' margin but below the first run's: chosen after an exploring run."""
    ran: Counter = Counter()
    cost = {1: 0.04, 2: 0.018}  # 2 x 1: 20 ms per batch; 1 x 2: 18 ms (10 % faster)
    fn = _work(cost, ran)
    chosen = [splits.run_split(fn, 12, 2, "cpu", "k").split for _ in range(2 * splits.EXPLORE_EVERY)]
    assert chosen[0] == (2, 1) and chosen[-1] == (1, 2)


def test_noise_below_the_margin_does_not_flip_the_choice() -> None:
    ran: Counter = Counter()
    cost = {1: 0.04, 2: 0.0202}  # 2 x 1: 20 ms per batch (+ pool dispatch); 1 x 2: 20.2 ms
    fn = _work(cost, ran)
    chosen = {splits.run_split(fn, 12, 2, "cpu", "k").split for _ in range(2 * splits.EXPLORE_EVERY)}
    assert chosen == {(2, 1)}


def test_runs_too_short_to_measure_keep_the_default() -> None:
    ran: Counter = Counter()
    fn = _work({1: 0.002, 2: 0.001}, ran)
    choices = [splits.run_split(fn, 2, 2, "cpu", "short") for _ in range(2 * splits.EXPLORE_EVERY)]
    assert {c.split for c in choices} == {(2, 1)} and not any(c.measured for c in choices)
    assert ran == Counter({0: 2 * splits.EXPLORE_EVERY, 1: 2 * splits.EXPLORE_EVERY})


def test_no_key_or_no_choice_runs_the_default_without_measuring() -> None:
    ran: Counter = Counter()
    fn = _work({1: 0.0, 2: 0.0, 4: 0.0}, ran)
    assert splits.run_split(fn, 5, 2, "cpu", None).split == (2, 1)
    assert splits.run_split(fn, 5, 4, "cuda:0", "k").split == (1, 4)
    assert splits.run_split(fn, 1, 2, "cpu", "k").split == (1, 2)
    assert ran == Counter({0: 3, 1: 2, 2: 2, 3: 2, 4: 2})


def test_batch_threads_are_reused_across_runs_but_never_shared_by_concurrent_nodes() -> None:
    import threading

    barrier = threading.Barrier(2)

    def run(record: set, meet: bool) -> None:
        def fn(i: int) -> None:
            if meet and i == 0:
                barrier.wait(timeout=10)  # both nodes are running batches at this moment
            record.add(threading.get_ident())
            time.sleep(0.002)
        splits.run_split(fn, 4, 2, "cpu", None)  # no key: the default, 2 batches at once

    a: set = set()
    b: set = set()
    threads = [threading.Thread(target=run, args=(rec, True)) for rec in (a, b)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(a) == len(b) == 2 and not a & b  # each node had its own two threads
    later: set = set()
    run(later, False)
    assert later in (a, b)  # a pool lent before, with the same threads


def test_a_forked_child_does_not_use_the_parents_idle_pools() -> None:
    import os

    splits.run_split(lambda i: None, 4, 2, "cpu", None)  # leaves a 2-thread pool idle
    assert splits._idle_pools.get(2)
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: run batches at once again; it must not hang on a dead pool
        import signal

        signal.alarm(20)  # a hang ends the child (and fails the test) instead of the test run
        try:
            ran: list[int] = []
            splits.run_split(ran.append, 4, 2, "cpu", None)
            os.write(write, b"ok" if sorted(ran) == [0, 1, 2, 3] else b"bad")
        finally:
            os._exit(0)
    os.close(write)
    _, status = os.waitpid(pid, 0)
    assert os.read(read, 2) == b"ok" and status == 0
