"""Batches of torch agents: run them concurrently within a node's CPU allotment (the split
between batches at once and torch threads is measured: ``engine.agents.splits``), join an
itemwise agent's batches (``run_itemwise``).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable
from typing import Any, TypeVar

from engine.agents.runtime import batches
from engine.agents.splits import run_split
from engine.payloads import Joiner, cut_inputs, item_count
from engine.spec import Agent, RunContext

T = TypeVar("T")


def map_batches(
    fn: Callable[[slice], T], n: int, ctx: RunContext, device: str = "cpu", key: Hashable | None = None
) -> list[T]:
    """``fn`` on every batch slice of ``range(n)`` (``ctx.batch_size``), concurrently when the
    allotment allows; results in batch order. Checks cancellation and reports progress. With a
    ``key`` the split of the allotment between batches at once and torch threads is measured
    on the first batches (``splits.run_split``); without one, as many batches at once as CPUs."""
    parts = list(batches(n, ctx.batch_size))
    results: list[Any] = [None] * len(parts)
    done = 0
    lock = threading.Lock()

    def one(i: int) -> None:
        nonlocal done
        ctx.check_cancelled()
        part = parts[i]
        results[i] = fn(part)
        with lock:
            done += part.stop - part.start
            ctx.progress(done, n)

    choice = run_split(one, len(parts), ctx.threads, device, key)
    if len(parts) > 1:
        workers, per_batch = choice.split
        ctx.log(f"{len(parts)} batches, {workers} at once, {per_batch} torch thread(s) each"
                + (f"; split {choice.how}" if choice.how else ""))
    return results


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
        key = ("itemwise", spec.name, spec.version, agent.params.model_dump_json(), ctx.batch_size, ctx.threads, device)
        try:
            map_batches(one, n, ctx, device, key)
        finally:
            ctx.slot_source = None
        outputs = joiner.result()
    agent.finish(inputs, outputs, ctx)
    return outputs
