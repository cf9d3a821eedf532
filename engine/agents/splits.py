"""Measured batch splits: how a node's CPU allotment is shared between batches at once and torch
intra-op threads, chosen by timing the candidates on the node's first batches.

Which split wins depends on the model, the batch and the machine's state, and flips between
them: on 2 cores the lesion CNN ran fastest as 2 batches x 1 thread until its convolutions went
to oneDNN (channels-last weights), then as 1 batch x 2 threads on a quiet machine, while under
load 2 threads on one batch became 10x slower (bench/agents_bench.py). So the first batches of
a node (or fused chain) run under each candidate in turn, A B B A, after one untimed warm-up
round; each candidate's throughput is its better round; another split than the default (as
many batches at once as CPUs) wins only when it is ``MARGIN`` faster, and runs the rest. The
choice is remembered per key (agent(s), parameters, batch size, allotment, device) for
``REPROBE`` runs, then measured again. No batch is wasted: probe rounds are real batches.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Hashable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from engine.agents.runtime import torch_threads

REPROBE = 20  # runs that reuse a remembered split before it is measured again
MARGIN = 0.15  # another split replaces the default only when this much faster per batch
_lock = threading.Lock()
_memo: dict[Hashable, list] = {}  # key -> [(workers, threads), runs since measured]

Split = tuple[int, int]


def candidates(threads: int, n_batches: int, device: str) -> list[Split]:
    """The splits worth measuring for an allotment of ``threads`` CPUs: (batches at once,
    torch threads each) with every CPU used. CUDA: one batch with the whole allotment."""
    threads = max(1, threads)
    if device.startswith("cuda") or n_batches <= 1:
        return [(1, threads)]
    return [(w, threads // w) for w in range(min(threads, n_batches), 0, -1) if threads % w == 0]


@dataclass
class SplitChoice:
    split: Split
    how: str  # for the node's log


def run_split(fn: Callable[[int], None], count: int, threads: int, device: str, key: Hashable | None,
              name: str) -> SplitChoice:
    """Run ``fn(i)`` for every batch index ``i < count`` (each exactly once; ``fn`` keeps its own
    results), choosing the split by measurement when there is a choice and a ``key``. When one
    call raises, the batches not started yet are dropped and the error is raised."""
    options = candidates(threads, count, device)
    with _Pools(name) as pools:
        if len(options) == 1 or key is None:
            pools.run(fn, list(range(count)), options[0])
            return SplitChoice(options[0], "")
        with _lock:
            memo = _memo.get(key)
            if memo is not None and memo[1] < REPROBE:
                memo[1] += 1
                split = memo[0]
            else:
                split = None
        if split is not None:
            pools.run(fn, list(range(count)), split)
            return SplitChoice(split, "remembered from an earlier run")
        default = options[0]
        pools.warm(default[0])
        nxt = min(count, default[0])
        pools.run(fn, list(range(nxt)), default)  # warm-up (first-touch memory, caches): not timed
        best: dict[Split, float] = {}
        for option in [*options, *reversed(options)]:  # A B B A: drift hits both alike
            if nxt + option[0] > count:
                break
            pools.warm(option[0])  # thread start-up is not the split's cost
            began = time.perf_counter()
            pools.run(fn, list(range(nxt, nxt + option[0])), option)
            per_batch = (time.perf_counter() - began) / option[0]
            best[option] = min(best.get(option, float("inf")), per_batch)
            nxt += option[0]
        split = min(best, key=best.__getitem__) if best else default
        if default in best and best[split] > best[default] * (1 - MARGIN):
            split = default  # not clearly faster: one round each is a small sample
        with _lock:
            _memo[key] = [split, 0]
            if len(_memo) > 1000:
                _memo.pop(next(iter(_memo)))
        pools.run(fn, list(range(nxt, count)), split)
    measured = ", ".join(f"{w} x {t}: {1e3 * s:.1f} ms/batch" for (w, t), s in best.items())
    return SplitChoice(split, f"measured on the first {nxt} batches ({measured})")


class _Pools:
    """One thread pool per number of batches at once, kept for the whole node (rounds of the
    measurement and the rest reuse the same threads)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.pools: dict[int, ThreadPoolExecutor] = {}

    def __enter__(self) -> _Pools:
        return self

    def __exit__(self, *exc: object) -> None:
        for pool in self.pools.values():
            pool.shutdown(wait=True, cancel_futures=True)

    def _pool(self, workers: int) -> ThreadPoolExecutor:
        pool = self.pools.get(workers)
        if pool is None:
            pool = self.pools[workers] = ThreadPoolExecutor(workers, thread_name_prefix=self.name)
        return pool

    def warm(self, workers: int) -> None:
        if workers > 1:
            pool = self._pool(workers)
            for f in [pool.submit(time.sleep, 0) for _ in range(workers)]:
                f.result()

    def run(self, fn: Callable[[int], None], indices: list[int], split: Split) -> None:
        if not indices:
            return
        workers, per_batch = split
        with torch_threads(per_batch):
            if workers == 1 or len(indices) == 1:
                for i in indices:
                    fn(i)
                return
            pool = self._pool(workers)
            futures = [pool.submit(fn, i) for i in indices]
            try:
                for f in futures:
                    f.result()
            except BaseException:
                for f in futures:
                    f.cancel()
                raise


def forget() -> None:
    """Drop every remembered split (tests)."""
    with _lock:
        _memo.clear()
