"""Measured batch splits: how a node's CPU allotment is shared between batches at once and torch
intra-op threads, chosen by timing the candidates on the node's own batches, run after run.

Which split wins depends on the model, the batch and the machine's state, and flips between
them: on 2 cores the lesion CNN ran fastest as 2 batches x 1 thread until its convolutions went
to oneDNN (channels-last weights), then as 1 batch x 2 threads on a quiet machine, while under
load 2 threads on one batch became 2-10x slower, for seconds or minutes at a time
(bench/agents_bench.py). So:

- The first run of a key (agent(s), parameters, batch size, allotment, device) runs its first
  batches under each candidate in turn, A B B A, after one untimed warm-up round; each
  candidate's estimate is its better round.
- Later runs use the chosen split and time it (all but its first round); the chosen split's
  estimate is smoothed (``SMOOTH``), so one that slows down is replaced within a run or two by
  a faster estimate.
- Now and then a run also runs two rounds of another candidate in the middle of the run and
  times the second (the first pays for the change of split), which replaces that candidate's
  estimate: after ``EXPLORE_EVERY`` runs, then at doubling intervals
  (up to ``EXPLORE_MAX``) while the choice stands, again after ``EXPLORE_EVERY`` once it
  changes. So a split that became faster is found, and a settled choice costs little: an
  exploring run under the slower split of the lesion CNN costs ~6-10 ms of a 50 ms run.
- Another split than the current one wins only when its estimate is ``MARGIN`` faster
  (``PROBE_MARGIN`` after the first run's single rounds): on 2 CPUs one batch on two threads
  was often 5-10 % faster than two batches at once, so a 15 % margin kept the slower split.

No batch is wasted: measured rounds are real batches, each run exactly once.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Hashable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from engine.agents.runtime import end_lend, lend_thread, openmp_scope, release_openmp_team, torch_threads

EXPLORE_EVERY = 3  # runs before a remembered split's first exploring run (and after a change)
EXPLORE_MAX = 48  # the longest interval between exploring runs
MARGIN = 0.05  # another split replaces the current one only when this much faster per batch
PROBE_MARGIN = 0.15  # the same on the first run, decided on one round per candidate
SMOOTH = 0.5  # weight of the newest measurement in a split's estimate
MAX_KEYS = 1000
_lock = threading.Lock()

Split = tuple[int, int]


@dataclass
class _Memory:
    split: Split  # the current choice
    estimate: dict[Split, float]  # seconds per batch, smoothed
    runs: int = 0
    explored: int = 0  # explorations so far (they cycle through the other candidates)
    interval: int = EXPLORE_EVERY  # runs between exploring runs
    next_explore: int = EXPLORE_EVERY  # the run that explores next

    def learn(self, split: Split, explore: Split | None, measured: dict[Split, float]) -> Split:
        """Take in a run of ``split`` (that explored ``explore``, if it could) and choose the
        next run's split; the exploring interval doubles while the choice stands."""
        if split in measured:
            old = self.estimate.get(split)
            self.estimate[split] = measured[split] if old is None else (
                SMOOTH * measured[split] + (1 - SMOOTH) * old)
        explored = explore is not None and explore in measured
        if explored:
            self.explored += 1
            self.estimate[explore] = measured[explore]  # the old one may be long stale
        self.split = _better(self.split, self.estimate)
        if self.split != split:
            self.interval = EXPLORE_EVERY
        elif explored:
            self.interval = min(EXPLORE_MAX, 2 * self.interval)
        if self.split != split or explored:
            self.next_explore = self.runs + self.interval
        return self.split


_memo: dict[Hashable, _Memory] = {}


CUDA_AT_ONCE = 1  # batches at once on a GPU (the declared GPU memory holds one batch's)


def candidates(threads: int, n_batches: int, device: str) -> list[Split]:
    """The splits worth measuring for an allotment of ``threads`` CPUs: (batches at once,
    torch threads each) with every CPU used. CUDA: at most ``CUDA_AT_ONCE`` batches at once (one:
    a batch's kernels queue on the device's stream either way, and each batch in flight holds
    its own GPU memory)."""
    threads = max(1, threads)
    most = min(threads, n_batches, CUDA_AT_ONCE if device.startswith("cuda") else threads)
    if most <= 1:
        return [(1, threads)]
    return [(w, threads // w) for w in range(most, 0, -1) if threads % w == 0]


@dataclass
class SplitChoice:
    split: Split
    how: str  # for the node's log
    measured: dict[Split, float] = field(default_factory=dict)  # this run's seconds per batch


def run_split(fn: Callable[[int], None], count: int, threads: int, device: str, key: Hashable | None) -> SplitChoice:
    """Run ``fn(i)`` for every batch index ``i < count`` (each exactly once; ``fn`` keeps its own
    results), choosing the split by measurement when there is a choice and a ``key``. When one
    call raises, the batches not started yet are dropped and the error is raised."""
    options = candidates(threads, count, device)
    with openmp_scope(), _Pools() as pools:
        if len(options) == 1 or key is None:
            pools.run(fn, range(count), options[0])
            return SplitChoice(options[0], "")
        with _lock:
            memory = _memo.get(key)
            if memory is not None:
                memory.runs += 1
                split, runs, explored, due = memory.split, memory.runs, memory.explored, memory.next_explore
        if memory is None:
            return _probe(pools, fn, count, options, key)
        others = [o for o in options if o != split]
        explore = others[explored % len(others)] if others and runs >= due else None
        with torch_threads(split[1]):  # one setting for the run's rounds (exploring ones change it)
            measured = _run_remembered(pools, fn, count, split, explore)
        with _lock:
            memory = _memo.get(key)  # None if forgotten meanwhile
            nxt = memory.learn(split, explore, measured) if memory is not None else split
    how = "remembered from earlier runs"
    if measured:
        how += f" (this run: {_describe(measured)})"
    if nxt != split:
        how += f"; the next run uses {nxt[0]} x {nxt[1]}"
    return SplitChoice(split, how, measured)


def _better(current: Split, estimate: dict[Split, float], margin: float = MARGIN) -> Split:
    """The split with the lowest estimate, unless it is not ``margin`` faster than ``current``."""
    if not estimate:
        return current
    best = min(estimate, key=estimate.__getitem__)
    if current in estimate and estimate[best] > estimate[current] * (1 - margin):
        return current
    return best


def _timed(pools: _Pools, fn: Callable[[int], None], indices: range, split: Split) -> float:
    """Seconds per batch of running ``indices`` under ``split`` (thread start-up not counted)."""
    pools.warm(split[0])
    began = time.perf_counter()
    pools.run(fn, indices, split)
    return (time.perf_counter() - began) / max(1, len(indices))


def _probe(pools: _Pools, fn: Callable[[int], None], count: int, options: list[Split], key: Hashable) -> SplitChoice:
    """First run of a key: warm-up round, then A B B A over the candidates, then the winner."""
    default = options[0]
    nxt = min(count, default[0])
    pools.warm(default[0])
    pools.run(fn, range(nxt), default)  # warm-up (first-touch memory, caches): not timed
    best: dict[Split, float] = {}
    for option in [*options, *reversed(options)]:  # A B B A: drift hits both alike
        if nxt + option[0] > count:
            break
        best[option] = min(best.get(option, float("inf")), _timed(pools, fn, range(nxt, nxt + option[0]), option))
        nxt += option[0]
    split = _better(default, best, PROBE_MARGIN)  # one round each is a small sample
    with _lock:
        _memo[key] = _Memory(split, dict(best))
        if len(_memo) > MAX_KEYS:
            _memo.pop(next(iter(_memo)))
    pools.run(fn, range(nxt, count), split)
    return SplitChoice(split, f"measured on the first {nxt} batches ({_describe(best)})", best)


def _describe(measured: dict[Split, float]) -> str:
    """Seconds per batch by split, for the node's log: ``2 x 1: 3.6 ms/batch, ...``."""
    return ", ".join(f"{w} x {t}: {1e3 * s:.1f} ms/batch" for (w, t), s in measured.items())


def _run_remembered(pools: _Pools, fn: Callable[[int], None], count: int, split: Split,
                    explore: Split | None) -> dict[Split, float]:
    """Run every batch under ``split``, timing all but its first round; with ``explore``, two
    rounds of that split in the middle, the second timed (when the batches allow): the first
    round after a change of split pays for the change (thread teams started, caches filled).
    Seconds per batch measured."""
    w = split[0]
    if count < 2 * w:  # no round to time after the warm one
        pools.run(fn, range(count), split)
        return {}
    pools.run(fn, range(w), split)  # first round: cold caches, not timed
    e = explore[0] if explore is not None else 0
    if explore is None or count - 2 * e < 3 * w:
        return {split: _timed(pools, fn, range(w, count), split)}
    middle = w + (count - 2 * e - w) // (2 * w) * w  # whole rounds of `split` before and after
    before = _timed(pools, fn, range(w, middle), split) * (middle - w)
    pools.run(fn, range(middle, middle + e), explore)  # the change of split: not timed
    explored = _timed(pools, fn, range(middle + e, middle + 2 * e), explore)
    after = _timed(pools, fn, range(middle + 2 * e, count), split) * (count - middle - 2 * e)
    return {split: (before + after) / (count - w - 2 * e), explore: explored}


class _Pools:
    """The batch thread pools of one node: one per number of batches at once, lent from a
    process-wide free list for the node's whole run and given back after it, so the threads
    stay warm between runs (a fresh thread starts with torch's and oneDNN's per-thread state and
    a malloc arena to fill, which a one-round exploration of the split would pay for). A pool is
    lent to one node at a time, so concurrent nodes never share threads; each batch sets its
    thread's torch threads (torch reads the count per thread)."""

    def __init__(self) -> None:
        self.pools: dict[int, ThreadPoolExecutor] = {}
        self.owner = threading.get_native_id()  # the node's thread: its pool threads are lent to it
        self.helpers: set[int] = set()

    def __enter__(self) -> _Pools:
        return self

    def __exit__(self, *exc: object) -> None:
        for helper in self.helpers:
            end_lend(helper)
        self.helpers.clear()
        with _pools_lock:
            for workers, pool in self.pools.items():
                idle = _idle_pools.setdefault(workers, [])
                if len(idle) < MAX_IDLE_POOLS:
                    idle.append(pool)
                    pool = None
                if pool is not None:
                    pool.shutdown(wait=False, cancel_futures=True)
        self.pools.clear()

    def _pool(self, workers: int) -> ThreadPoolExecutor:
        pool = self.pools.get(workers)
        if pool is None:
            with _pools_lock:
                idle = _idle_pools.get(workers)
                pool = idle.pop() if idle else None
            if pool is None:
                pool = ThreadPoolExecutor(workers, thread_name_prefix=f"sg-batch-{workers}")
            self.pools[workers] = pool
        return pool

    def warm(self, workers: int) -> None:
        if workers > 1:
            pool = self._pool(workers)
            for f in [pool.submit(time.sleep, 0) for _ in range(workers)]:
                f.result()

    def run(self, fn: Callable[[int], None], indices: range, split: Split) -> None:
        if not indices:
            return
        workers, per_batch = split
        with torch_threads(per_batch):
            if workers == 1 or len(indices) == 1:
                for i in indices:
                    fn(i)
                return
            pool = self._pool(workers)
            # this thread's OpenMP team (from rounds of one batch on several threads) would go on
            # spin-waiting after its last region on a CPU the pool needs, and count against the
            # CPUs while idle (runtime.release_openmp_team)
            release_openmp_team()
            futures = [pool.submit(_in_pool, fn, i, per_batch, self) for i in indices]
            try:
                for f in futures:
                    f.result()
            except BaseException:
                for f in futures:
                    f.cancel()
                raise


MAX_IDLE_POOLS = 4  # idle pools kept per size (more are shut down)
_pools_lock = threading.Lock()
_idle_pools: dict[int, list[ThreadPoolExecutor]] = {}


def _forget_pools_in_child() -> None:
    """A forked child has none of the parent's threads: its idle pools would take work and
    never run it."""
    global _pools_lock
    _pools_lock = threading.Lock()
    _idle_pools.clear()


os.register_at_fork(after_in_child=_forget_pools_in_child)


def _in_pool(fn: Callable[[int], None], i: int, per_batch: int, pools: _Pools) -> None:
    """One batch on a pool thread with ``per_batch`` torch threads; a multi-threaded batch
    gives its OpenMP team back after it (the thread outlives the node). The thread is lent to
    the node's thread until the node gives its pools back (``runtime.lend_thread``)."""
    import torch

    me = threading.get_native_id()
    if me not in pools.helpers:
        pools.helpers.add(me)
        lend_thread(me, pools.owner)

    if torch.get_num_threads() != per_batch:
        torch.set_num_threads(per_batch)
    if per_batch == 1:
        fn(i)
        return
    with torch_threads(per_batch):
        fn(i)


def forget() -> None:
    """Drop every remembered split (tests)."""
    with _lock:
        _memo.clear()
