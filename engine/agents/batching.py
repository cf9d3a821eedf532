"""Batch concurrency for torch agents: split a node's CPU allotment between batches run at once
and intra-op torch threads. On small CPUs two batches with one torch thread each beat one batch
with two threads (the benchmark in docs/agents-vision-tabular.md), so that is the default.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from engine.agents.runtime import batches, torch_threads
from engine.payloads import Joiner, cut_inputs, item_count
from engine.spec import Agent, RunContext

T = TypeVar("T")
U = TypeVar("U")


def plan_concurrency(threads: int, n_batches: int, device: str) -> tuple[int, int]:
    """(batches at once, torch threads each) for a CPU allotment of ``threads``.

    CUDA runs one batch at a time with the whole allotment (the GPU is the bottleneck).
    """
    if device.startswith("cuda") or n_batches <= 1:
        return 1, max(1, threads)
    workers = max(1, min(threads, n_batches))
    return workers, max(1, threads // workers)


def map_batches(
    fn: Callable[[slice], T], n: int, ctx: RunContext, device: str = "cpu"
) -> list[T]:
    """``fn`` on every batch slice of ``range(n)`` (``ctx.batch_size``), concurrently when the
    allotment allows; results in batch order. Checks cancellation and reports progress."""
    parts = list(batches(n, ctx.batch_size))
    workers, per_batch = plan_concurrency(ctx.threads, len(parts), device)
    done = 0
    lock = threading.Lock()

    def one(part: slice) -> T:
        nonlocal done
        ctx.check_cancelled()
        result = fn(part)
        with lock:
            done += part.stop - part.start
            ctx.progress(done, n)
        return result

    if len(parts) > 1:
        ctx.log(f"{len(parts)} batches, {workers} at once, {per_batch} torch thread(s) each")
    with torch_threads(per_batch):
        if workers == 1:
            return [one(part) for part in parts]
        return pool_map(one, parts, workers, f"sg-{ctx.node_id}")


def pool_map(fn: Callable[[U], T], items: list[U], workers: int, name: str) -> list[T]:
    """``fn`` on every item on ``workers`` threads, results in order. When one raises, the
    items not started yet are dropped (not run to the end first) and the error is raised."""
    pool = ThreadPoolExecutor(workers, thread_name_prefix=name)
    try:
        futures = [pool.submit(fn, item) for item in items]
        return [f.result() for f in futures]
    finally:
        pool.shutdown(wait=True, cancel_futures=True)



def run_itemwise(agent: Agent, inputs: dict[str, Any], ctx: RunContext, device: str = "cpu") -> dict[str, Any]:
    """``run`` of an itemwise agent: ``run_batch`` on every batch (``map_batches``), the batches
    joined as they come (``Joiner``), then ``finish``. A fused chain runs each stage the same way
    (``engine.fusion``), so fused and unfused runs give the same outputs."""
    spec = agent.spec
    n = item_count(spec, inputs)
    if ctx.max_items:
        n = min(n, ctx.max_items)
    if n == 0:  # no items: one empty batch keeps the outputs' shape
        outputs = agent.run_batch(cut_inputs(spec, inputs, slice(0, 0)), ctx, 0)
    else:
        index = {part.start: i for i, part in enumerate(batches(n, ctx.batch_size))}
        joiner = Joiner(spec, n, len(index))

        def one(part: slice) -> None:
            joiner.add(index[part.start], part, agent.run_batch(cut_inputs(spec, inputs, part), ctx, part.start))

        ctx.slot_source = joiner.slot
        try:
            map_batches(one, n, ctx, device)
        finally:
            ctx.slot_source = None
        outputs = joiner.result()
    agent.finish(inputs, outputs, ctx)
    return outputs
