"""Operator fusion: a chain of itemwise agents runs batch by batch on one worker.

Stage by stage, preprocess -> classify runs every batch through preprocess, joins them, then
every batch through classify: each batch leaves the cache between the two and the joined
intermediate is written once more. Fused, each batch goes through the whole chain before the
next (as Dask fuses linear chains of tasks and Flink chains operators): measured 1.1-1.2x faster
on the two-stage image pipeline (bench/agents_bench.py, bench/stage_split_bench.py).

A chain is a path A -> B -> ... of itemwise agents (``AgentSpec.itemwise``) where each node's
only consumer is the next and that consumer's only producer is the node before it, all with the
same batch size and device preference, none isolated, with a timeout or an exit rule, cached,
with a fault drill, or starting on ``any`` input. The head is admitted once for the chain, holding the largest CPU
demand of its nodes and the sum of their memory (batches of different stages are in flight at
once); the other nodes hold nothing of their own and start and end with the head. Every node
keeps its events, outputs, cache entry and metrics (``wall_s`` is the node's share of the
chain: its batch time divided by the batches at once).

A node of the chain that does not keep its outputs (``execution.keep_outputs`` off) and needs
them nowhere whole is *streamed*: its batches go to the next node and are never joined
(``_streamed``); its summary describes them, and the next node's ``finish`` gets its payloads
without per-item fields (``payloads.without_items``).

If any stage raises, or a node of the chain is cancelled, the fused attempt is dropped and the
nodes run one by one as usual (``Executor._unfuse_locked``), so retries, errors and cancels keep
their normal meaning.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from engine.agents.runtime import batches
from engine.agents.splits import run_split
from engine.attempts import NodeRunner
from engine.backends.local import WarmPool
from engine.errors import RunCancelledError
from engine.payloads import Joiner, cut_inputs, item_count, without_items
from engine.resources import ResourceDemand
from engine.results import summarize_outputs
from engine.runstate import NodeState, RunState
from engine.spec import Agent, RunContext

ZERO = ResourceDemand(cpu=0, memory_mb=0)


def _fusable(ns: NodeState) -> bool:
    ex, stop = ns.lifecycle.execution, ns.lifecycle.exit
    return (ns.spec.itemwise and not ex.isolate and not ns.cache_hit and not ns.idle and ex.timeout_s is None
            and ex.batch_size is not None and stop.max_items is None and stop.time_limit_s is None
            and ns.start_rule == "all" and not ns.spec.simulated and ns.faults is None)


def _linked(a: NodeState, b: NodeState) -> bool:
    return (a.succs == [b.id] and b.preds == [a.id] and _fusable(a) and _fusable(b)
            and a.lifecycle.execution.batch_size == b.lifecycle.execution.batch_size
            and a.demand.device == b.demand.device
            and not any(p.multiple for p in b.spec.inputs))


def chain_demand(nodes: list[NodeState]) -> ResourceDemand:
    """What a fused chain holds: the largest CPU of its nodes (one allotment runs every stage)
    and the sum of each memory and custom resource (stages of different batches overlap)."""
    custom: dict[str, float] = {}
    for ns in nodes:
        for key, amount in ns.demand.custom.items():
            custom[key] = custom.get(key, 0.0) + amount
    return ResourceDemand(
        cpu=max(ns.demand.cpu for ns in nodes), memory_mb=sum(ns.demand.memory_mb for ns in nodes),
        gpu_memory_mb=sum(ns.demand.gpu_memory_mb for ns in nodes), device=nodes[0].demand.device,
        custom=custom)


def fuse_chains(run: RunState, fits_ever: Callable[[ResourceDemand], bool]) -> None:
    """Find the run's fusable chains and mark them (head: ``chain`` and the chain's demand;
    others: ``fused_into``). A chain whose demand could never fit is left unfused."""
    nodes = run.nodes
    nxt = {a.id: nodes[a.succs[0]] for a in nodes.values()  # a chain stops before a breakpoint: it pauses there
           if len(a.succs) == 1 and a.succs[0] not in run.breakpoints and _linked(a, nodes[a.succs[0]])}
    tails = {b.id for b in nxt.values()}
    for head_id in nxt:
        if head_id in tails:
            continue
        chain = [nodes[head_id]]
        while chain[-1].id in nxt:
            chain.append(nxt[chain[-1].id])
        demand = chain_demand(chain)
        if not fits_ever(demand):
            continue
        head = chain[0]
        head.own_demand = head.demand
        head.chain, head.demand, head.demand_dict = tuple(chain[1:]), demand, demand.model_dump()
        zero = ZERO.model_copy(update={"device": head.demand.device}).model_dump()
        for ns in chain[1:]:
            ns.fused_into, ns.demand_dict = head.id, zero


def unfuse(head: NodeState) -> None:
    """Undo ``fuse_chains`` for one chain: its nodes run one by one again (the head keeps the
    chain's demand for the attempt under way)."""
    for ns in head.chain:
        ns.fused_into, ns.demand_dict = None, ns.demand.model_dump()
    head.chain = ()


class ChainAborted(Exception):
    """The fused attempt stopped (a stage raised or a node was cancelled); run the nodes one by one."""

    def __init__(self, node_id: str, cause: BaseException, failed: bool = True) -> None:
        super().__init__(f"fused run stopped at node {node_id!r}: {type(cause).__name__}: {cause}")
        self.node_id = node_id
        self.failed = failed  # False when a cancel stopped it (no agent is suspect)


@dataclass
class _Stage:
    ns: NodeState
    agent: Agent
    key: tuple[str, str, str, str]
    ctx: RunContext
    joiner: Joiner | None = None
    busy: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)
    done: int = 0


@dataclass
class StageResult:
    """One node's share of a fused run."""

    outputs: dict[str, Any] | None  # None: not kept (``_streamed``)
    busy_s: float  # sum over batches of this stage's wall time
    cpu_s: float  # sum over batches of this stage's thread CPU time
    items: int
    ctx: RunContext
    summary: dict[str, Any] | None = None  # set when ``outputs`` is None


def _streamed(run: RunState, st: _Stage, last: bool) -> bool:
    """Whether a stage's batches go only to the next stage, never joined: its node does not keep
    its outputs, nothing needs them whole (no cache entry to write, not the chain's last node)
    and its agent has no ``finish`` of its own (``finish`` gets the joined outputs). Saves
    writing the whole intermediate to memory: on the two-stage image pipeline the engine went
    from 0.82 to 0.90 of the two-thread hand loop (paired rounds, bench/agents_bench.py)."""
    ns = st.ns
    return (not last and not ns.lifecycle.execution.keep_outputs
            and not (ns.cache_key and run.options.use_cache) and type(st.agent).finish is Agent.finish)


def run_chain(runner: NodeRunner, warm: WarmPool, run: RunState, head: NodeState) -> tuple[list[StageResult], int]:
    """Run the chain of ``head`` batch by batch; returns each node's result (head first) and the
    batches at once. Raises ChainAborted when a stage raises or a node is cancelled."""
    nodes = [head, *head.chain]
    stages: list[_Stage] = []
    try:
        for ns in nodes:
            ctx = runner.context(run, ns)
            key = (ns.spec.name, ns.spec.version, ns.params_json, ctx.device)
            stages.append(_Stage(ns, warm.checkout(key, ns.spec, ns.params, _footprint(ns)), key, ctx))
    except BaseException as exc:
        _give_back(warm, stages, None)
        raise ChainAborted(nodes[len(stages)].id, exc) from exc
    try:
        inputs = runner.gather_inputs(run, head)
        n = item_count(head.spec, inputs)
        parts = list(batches(n, head.lifecycle.execution.batch_size))
        streamed = [_streamed(run, st, k == len(stages) - 1) for k, st in enumerate(stages)]
        first: dict[int, dict[str, Any]] = {}  # streamed stage -> its first batch's outputs
        for k, st in enumerate(stages):
            if not streamed[k]:
                st.joiner = Joiner(st.ns.spec, n, len(parts))
                st.ctx.slot_source = st.joiner.slot
            st.busy, st.cpu = [0.0] * len(parts), [0.0] * len(parts)
        progress = threading.Lock()

        def one(i: int) -> None:
            part = parts[i]
            batch = cut_inputs(head.spec, inputs, part)
            out: dict[str, Any] = {}
            for k, st in enumerate(stages):
                if any(s.ns.cancel_event is not None and s.ns.cancel_event.is_set() for s in stages):
                    raise ChainAborted(st.ns.id, RuntimeError("a node of the chain was cancelled"), failed=False)
                if k:
                    batch = runner.gather_inputs(run, st.ns, {stages[k - 1].ns.id: out})
                t0, c0 = time.perf_counter(), time.thread_time()
                try:
                    out = st.agent.run_batch(batch, st.ctx, part.start)
                    if st.joiner is not None:
                        st.joiner.add(i, part, out)
                    elif i == 0:
                        first[k] = out
                except RunCancelledError as exc:  # the agent saw a cancel: nothing is wrong with it
                    raise ChainAborted(st.ns.id, exc, failed=False) from exc
                except BaseException as exc:
                    raise ChainAborted(st.ns.id, exc) from exc
                st.busy[i], st.cpu[i] = time.perf_counter() - t0, time.thread_time() - c0
                with progress:
                    st.done += part.stop - part.start
                    st.ctx.progress(st.done, n)

        device = stages[0].ctx.device
        key = ("chain", tuple((ns.spec.name, ns.spec.version, ns.params_json) for ns in nodes),
               head.lifecycle.execution.batch_size, head.threads, device)
        choice = run_split(one, len(parts), head.threads, device, key)
        workers, per_batch = choice.split
        names = " -> ".join(ns.id for ns in nodes)
        for st in stages:
            st.ctx.log(f"fused {names}: {len(parts)} batches, each through the whole chain; {workers} at once, "
                       f"{per_batch} torch thread(s) each" + (f"; split {choice.how}" if choice.how else ""))
        results: list[StageResult] = []
        stage_inputs = inputs
        upstream: dict[str, Any] | None = None  # the previous stage's outputs (or their shared fields)
        for k, st in enumerate(stages):
            if k:
                stage_inputs = runner.gather_inputs(run, st.ns, {stages[k - 1].ns.id: upstream or {}})
            if streamed[k] and parts:
                upstream = without_items(st.ns.spec, first[k])
                st.ctx.log(f"outputs not kept (keep_outputs off): {len(parts)} batches went straight to "
                           f"{stages[k + 1].ns.id}")
                summary = summarize_outputs(upstream)
                for described in summary.values():
                    described["not_kept"] = f"{n} items, passed on batch by batch (keep_outputs off)"
                results.append(StageResult(None, sum(st.busy), sum(st.cpu), n, st.ctx, summary))
                continue
            if parts:
                assert st.joiner is not None
                outputs = st.joiner.result()
            else:  # no items: one empty batch keeps the outputs' shape
                outputs = st.agent.run_batch(cut_inputs(st.ns.spec, stage_inputs, slice(0, 0)), st.ctx, 0)
            try:
                st.agent.finish(stage_inputs, outputs, st.ctx)
            except BaseException as exc:
                raise ChainAborted(st.ns.id, exc) from exc
            upstream = outputs
            results.append(StageResult(outputs, sum(st.busy), sum(st.cpu), n, st.ctx))
    except ChainAborted as exc:
        _give_back(warm, stages, exc.node_id if exc.failed else None)
        raise
    except BaseException as exc:  # cutting or joining payloads
        _give_back(warm, stages, head.id)
        raise ChainAborted(head.id, exc) from exc
    _give_back(warm, stages, None)
    return results, workers


def _footprint(ns: NodeState) -> float:
    return (ns.own_demand or ns.demand).memory_mb


def _give_back(warm: WarmPool, stages: list[_Stage], failed_id: str | None) -> None:
    """Return the stages' agents to the warm pool; the one that raised is dropped (it may be in
    a bad state)."""
    for st in stages:
        if st.ns.id == failed_id:
            warm.discard(st.agent, _footprint(st.ns))
        else:
            warm.checkin(st.key, st.agent, _footprint(st.ns))
