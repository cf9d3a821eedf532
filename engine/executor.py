"""The local executor: event-driven admission of ready nodes onto one shared resource ledger.

Design: there is no scheduler thread. Every state change (a run starts, a node ends, a cancel)
runs ``_dispatch_locked`` under the one executor lock, which walks each active run's ready heap
in policy priority order and admits every node whose demand fits, in every dimension, both the
machine ledger (shared by all runs: zero over-commit across runs) and the run's own ledger (its
per-run limit). Priority rules backfill (a later ready node that fits starts before an earlier
one that does not: list scheduling, as their plans assume); ``auto`` runs with a plan do not: its
search builds schedules that deliberately leave room for the next planned node, and greedy
backfilling undoes that (7-11 % longer on the sleeping-task benchmark even with exact durations).
The worker thread that finished a node runs the first newly admitted node itself, so the
common path has no thread hand-off; extra admitted nodes go to a queue served by worker threads
that are started on demand (daemon threads, so a hung agent never blocks exit).
Events are emitted under the lock, so their order matches the ledger (a sweep line over
NodeStarted / terminal events sees exactly the admitted set). Observers must be quick.

Threads and torch: ``RunContext.threads = max(1, round(demand.cpu))``. torch's intra-op thread
count (``torch.set_num_threads``) is process-global, not per thread: the executor never calls
it; an agent that wants it sets it itself, so concurrent torch agents share the last value set.
Hard per-agent thread limits need ``isolate=True`` (a process per node).

Timeouts are cooperative for in-thread nodes (``RunContext.deadline``; an agent that returns
after its deadline fails with AgentTimeoutError); isolated nodes are killed. An in-thread agent
that ignores cancel keeps its resources until it returns.
"""

from __future__ import annotations

import heapq
import threading
import time
from collections import deque
from collections.abc import Callable
from queue import SimpleQueue
from typing import Any

from engine import breaks, gcpolicy
from engine.agents.runtime import release_openmp_team
from engine.attempts import NodeRunner
from engine.backends import Backend
from engine.events import (
    Event,
    EventBus,
    NodeCancelled,
    NodeFailed,
    NodeFinished,
    NodeQueued,
    NodeRetried,
    NodeSkipped,
    NodeStarted,
    NodeStatus,
    NodeWaitingInputs,
    NodeWaitingResource,
    RunFinished,
    RunPaused,
    RunResumed,
    RunStatus,
)
from engine.fusion import ChainAborted, run_chain, unfuse
from engine.metrics import GpuProbe, NodeMetrics, rss_last_mb
from engine.resources import EPS, ResourceDemand, ResourceLedger
from engine.results import ResultStore, pinned_unreadable, summarize_outputs
from engine.runstate import (
    HELD_LOG,
    RETRIED_LOG,
    CancelFlag,
    NodeState,
    RunState,
    failure_text,
    held_together,
    paused_between,
)
from engine.workflow import BreakCondition

Item = tuple[RunState, NodeState]
_DONE = (NodeStatus.DONE, NodeStatus.CACHED)
_TERMINAL = frozenset(s for s in NodeStatus if s.is_terminal)
SHORT_S = 0.0005  # CPU-bound agents whose nodes measured under this run on the short lane (``_lane_locked``)
CPU_BOUND = 0.25  # share of a node's wall time on its thread's CPU above which it counts as CPU-bound
# (the CPU probe covers the agent call only, not the bookkeeping around it: a no-op node measures
# ~0.5-0.8 on a quiet machine, a 0.1 ms sleep ~0.1)


_new = object.__new__
_thread_time = time.thread_time


def _event(cls: type[Event], fields: dict[str, Any]) -> Any:
    """``cls(**fields)`` without the frozen dataclass ``__init__`` (one ``object.__setattr__`` per
    field: a measurable share of the per-node cost). ``fields`` must name every field;
    tests/executor/test_executor_events_fast.py checks the result equals the normal constructor.
    The per-node path inlines the same two lines (NodeQueued, NodeStarted, NodeFinished)."""
    ev = object.__new__(cls)
    ev.__dict__.update(fields)
    return ev


def _try_take(machine: ResourceLedger, own: ResourceLedger, need: dict[str, float]) -> bool:
    """Whether ``need`` fits both ledgers now, and if so take it from both (updating peaks).
    Keys ``own`` (the run's ledger) lacks fail the fit, keys the machine lacks pass."""
    m_used, m_total, r_used, r_total = machine.used, machine.total, own.used, own.total
    for key, amount in need.items():
        if key in r_total:
            if r_used[key] + amount > r_total[key] + EPS:
                return False
        elif amount > EPS:
            return False
        if key in m_total and m_used[key] + amount > m_total[key] + EPS:
            return False
    for ledger in (machine, own):
        used, peak = ledger.used, ledger.peak
        for key, amount in need.items():
            if key in used:
                v = used[key] = used[key] + amount
                if v > peak[key]:
                    peak[key] = v
    return True


class Executor:
    """Admits and runs the nodes of all active runs on one machine ledger."""

    def __init__(self, ledger: ResourceLedger, bus: EventBus, backend: Backend, results: ResultStore,
                 gpu: GpuProbe, max_threads: int = 64) -> None:
        self.lock = threading.Lock()
        self.ledger = ledger
        self.bus = bus
        self.backend = backend
        self.results = results
        self.gpu = gpu
        self.max_threads = max_threads
        self.active: dict[str, RunState] = {}
        self._by_priority: list[RunState] = []  # the active runs in admission order (``_order``)
        self.last_rss_mb: float | None = None
        self._needs: dict[tuple[int, str], tuple[ResourceDemand, dict[str, float]]] = {}
        self.runner = NodeRunner(bus, backend, results, gpu, lambda: self.last_rss_mb)
        self._queue: SimpleQueue[Item | None] = SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._idle = 0
        self._closed = False
        self._wall: dict[int, list[Any]] = {}  # id(agent spec) -> [spec, mean wall s, mean CPU s, short]
        self._lane: deque[Item] = deque()  # short nodes admitted for the lane's owner to run
        self._lane_owner: int | None = None  # thread ident of the worker running the lane
        self._threads_seen: dict[int, tuple[str, int]] = {}  # thread ident -> (name, native id)
        # called with the lock held as a run ends, before RunFinished (the manager's last sample)
        self.on_run_end: Callable[[RunState], None] | None = None

    # -- starting and finishing runs ------------------------------------------------------
    def start(self, run: RunState) -> None:
        """Queue every node of ``run`` and admit what fits (call after RunStarted was emitted)."""
        with self.lock:
            now = time.time()
            run.status, run.started_at = RunStatus.RUNNING, now
            self.active[run.id] = run
            self._order()
            gcpolicy.run_started()
            emit = self.bus.emit
            for ns in run.nodes.values():
                ns.queued_at = now
                if ns.idle:  # feeds only pinned nodes: nothing needs its outputs
                    self._end_locked(run, ns, NodeStatus.SKIPPED, now)
                elif not ns.preds:
                    self._make_ready_locked(run, ns, now)
                else:
                    ns.status = NodeStatus.WAITING_INPUTS
                    emit(NodeWaitingInputs(run_id=run.id, node_id=ns.id, waiting_for=tuple(ns.preds), time=now))
            fits: dict[int, bool] = {}  # nodes of one agent share one demand object
            for ns in run.nodes.values():
                key = id(ns.demand)
                if key not in fits:
                    fits[key] = self.fits_ever(run, ns.demand)
                if not fits[key] and not ns.status.is_terminal and not ns.cache_hit:
                    self._end_locked(run, ns, NodeStatus.FAILED, now, error=self._never_fits(run, ns))
            if not run.nodes:
                self._finish_run_locked(run, now)
            self.admit_locked()

    def admit_locked(self) -> None:
        """Admit what fits now and hand it to the workers (under the lock), after something other
        than a node's end changed what can start: a run started or resumed, a step, a cancel, a
        breakpoint's test, a change of settings (``engine.amend``), a retry."""
        self._hand_out(self._dispatch_locked(), keep=False)

    def fits_ever(self, run: RunState, demand: ResourceDemand) -> bool:
        """Whether ``demand`` fits the run's capacity and the machine when nothing else runs."""
        return run.ledger.could_ever_fit(demand) and any(
            all(a <= self.ledger.total[k] + EPS for k, a in ResourceLedger.needs(demand, d).items()
                if k in self.ledger.total)
            for d in run.ledger.candidate_devices(demand))

    @staticmethod
    def _never_fits(run: RunState, ns: NodeState) -> dict[str, str]:
        msg = (f"node {ns.id!r} needs {ns.demand.amounts()} on {ns.demand.device}, which never fits the run's "
               f"capacity ({run.capacity.describe()}); lower the node's `resources` or raise the capacity")
        return {"type": "CapacityError", "message": msg, "traceback": ""}

    def _make_ready_locked(self, run: RunState, ns: NodeState, now: float) -> None:
        ns.status, ns.ready_at = NodeStatus.QUEUED, now
        heapq.heappush(run.ready, (ns.prio, ns.id))
        self.bus.emit(_event(NodeQueued, {"run_id": run.id, "node_id": ns.id, "time": now}))

    def _finish_run_locked(self, run: RunState, now: float) -> None:
        statuses = {ns.status for ns in run.nodes.values() if not ns.idle}
        if run.cancel_requested:
            run.status = RunStatus.CANCELLED
        elif NodeStatus.FAILED in statuses:
            run.status = RunStatus.FAILED
        elif NodeStatus.CANCELLED in statuses or NodeStatus.SKIPPED in statuses:
            run.status = RunStatus.CANCELLED
        else:
            run.status = RunStatus.SUCCEEDED
        if run.status == RunStatus.FAILED and run.error is None:
            failed = [n.id for n in run.nodes.values() if n.status == NodeStatus.FAILED]
            run.error = f"{len(failed)} node(s) failed: {', '.join(failed[:5])}"
        run.finished_at = now
        run.version += 1
        if self.on_run_end is not None and run.id in self.active:
            self.on_run_end(run)
        if self.active.pop(run.id, None) is not None:
            self._order()
            gcpolicy.run_ended()
        self.bus.emit(RunFinished(run_id=run.id, status=run.status.value, error=run.error, time=now))
        run.finished.set()

    # -- admission ------------------------------------------------------------------------
    def _dispatch_locked(self) -> list[Item]:
        admitted: list[Item] = []
        machine = self.ledger
        m_used, m_total = machine.used, machine.total
        try_take, pop, now_f = _try_take, heapq.heappop, time.time
        for run in self._by_priority:  # admission never adds or ends a run
            ready = run.ready
            if not ready or run.cancel_requested or (run.paused and run.steps <= 0):
                continue
            cap = run.options.max_workers
            in_order = run.options.policy == "auto" and bool(run.plan)
            own = run.ledger
            r_used, r_total = own.used, own.total
            running, nodes, devices = run.running, run.nodes, run.devices
            kept: list[tuple[int, str]] = []
            while ready:
                if cap is not None and len(running) >= cap:
                    break
                free_cpu, r_free = m_total["cpu"] - m_used["cpu"], r_total["cpu"] - r_used["cpu"]
                if (free_cpu if free_cpu < r_free else r_free) + EPS < run.min_cpu:
                    break  # nothing of this run can fit until something ends
                entry = pop(ready)
                ns = nodes[entry[1]]
                if ns.status in _TERMINAL:
                    continue
                if run.breakpoints and entry[1] in run.breakpoints and not run.paused:  # pause before it
                    run.breakpoints.discard(entry[1])  # once: Step or Resume then starts it
                    condition = run.break_when.get(entry[1])
                    if condition is not None:  # tested off the lock: it may read a large table
                        self._test_break_later(run, ns, entry, condition)
                        continue
                    kept.append(entry)
                    self._pause_locked(run, entry[1])
                    break
                if ns.cache_hit:
                    ns.device = "pinned" if ns.pinned else "cache"
                else:
                    demand = ns.demand
                    hit = devices.get(id(demand))  # ``_options``' memo
                    for device, need in hit[1] if hit is not None and hit[0] is demand else self._options(run, demand):
                        if try_take(machine, own, need):
                            ns.device, ns.need = device, need
                            break
                    else:
                        kept.append(entry)
                        self._note_wait_locked(run, ns)
                        if in_order:
                            break  # follow the plan: no node overtakes a ready one that waits
                        continue
                now = now_f()
                if ns.wait_key is not None:
                    ns.wait_resource[ns.wait_key] = ns.wait_resource.get(ns.wait_key, 0.0) + now - ns.wait_since
                    ns.wait_key = None
                ns.admitted, ns.admitted_at = True, now
                if run.pause_spans:
                    ns.paused_s = paused_between(run, ns.ready_at or now, now)
                if ns.cancel_event is None:
                    ns.cancel_event = CancelFlag()
                running.add(ns.id)
                admitted.append((run, ns))
                if run.paused:  # a step: one admission, then paused again
                    run.steps -= 1
                    if run.steps <= 0:
                        break
            for entry in kept:
                heapq.heappush(ready, entry)
        return admitted

    def _options(self, run: RunState, demand: ResourceDemand) -> list[tuple[str, dict[str, float]]]:
        """(device, need) in the demand's device preference, memoised per run and demand object
        (nodes of one agent share one demand)."""
        hit = run.devices.get(id(demand))
        if hit is not None and hit[0] is demand:
            return hit[1]
        options = [(d, self._need(demand, d)) for d in run.ledger.candidate_devices(demand)]
        run.devices[id(demand)] = (demand, options)
        return options

    def _need(self, demand: ResourceDemand, device: str) -> dict[str, float]:
        """``ResourceLedger.needs`` memoised per demand object (nodes of one agent share one)."""
        hit = self._needs.get((id(demand), device))
        if hit is not None and hit[0] is demand:
            return hit[1]
        if len(self._needs) > 50_000:
            self._needs.clear()
        need = ResourceLedger.needs(demand, device)
        self._needs[(id(demand), device)] = (demand, need)
        return need

    def _note_wait_locked(self, run: RunState, ns: NodeState) -> None:
        key = self._blocking(run, ns.demand)
        if key is None or key == ns.wait_key:
            return
        now = time.time()
        if ns.wait_key is not None:
            ns.wait_resource[ns.wait_key] = ns.wait_resource.get(ns.wait_key, 0.0) + now - ns.wait_since
        ns.wait_key, ns.wait_since, ns.status = key, now, NodeStatus.WAITING_RESOURCE
        ns.holders = self._holders(run, key)
        run.version += 1
        self.bus.emit(NodeWaitingResource(run_id=run.id, node_id=ns.id, resource=key, held_by=ns.holders, time=now))

    def _blocking(self, run: RunState, demand: ResourceDemand) -> str | None:
        for device in run.ledger.candidate_devices(demand) or ["cpu"]:
            for key, amount in ResourceLedger.needs(demand, device).items():
                for led in (run.ledger, self.ledger):
                    if key in led.total and led.used[key] + amount > led.total[key] + EPS:
                        return key
        return None

    def _holders(self, run: RunState, key: str) -> tuple[str, ...]:
        out = []
        for other in self.active.values():
            for nid in other.running:
                holder = other.nodes[nid]
                if key in ResourceLedger.needs(holder.demand, holder.device or "cpu"):
                    out.append(nid if other is run else f"{other.id}:{nid}")
        return tuple(out[:20])

    # -- workers --------------------------------------------------------------------------
    def _hand_out(self, items: list[Item], keep: bool) -> Item | None:
        """Queue admitted items, keeping one for the calling worker when ``keep``; short nodes go
        to the short lane instead (see ``_lane_locked``). Returns the item the caller runs next."""
        mine = items.pop(0) if keep and items else None
        if keep:
            mine = self._lane_locked(mine, items)
        if mine is not None and not mine[1].cache_hit:
            self._start_locked(*mine)  # this thread runs it next: start it under the same lock hold
        if not items:
            return mine  # nothing for other workers (the common case on the short lane)
        for item in items:
            self._queue.put(item)
        want = len(items) - self._idle
        while want > 0 and len(self._threads) < self.max_threads and not self._closed:
            t = threading.Thread(target=self._worker, name=f"sg-worker-{len(self._threads)}", daemon=True)
            self._threads.append(t)
            self._idle += 1
            t.start()
            want -= 1
        return mine

    def _lane_locked(self, mine: Item | None, extras: list[Item]) -> Item | None:
        """The short lane: CPU-bound nodes whose agent measured under ``SHORT_S`` (``_is_short``)
        run one after another on one worker (the lane's owner) instead of in parallel. Under the
        GIL two threads running sub-millisecond Python nodes only contend for the lock and the GIL
        (about twice the CPU per node, measured in bench/executor_bench.py); a node that short
        gains nothing from a second core. Admission is unchanged (the ledger stays exact); a lane node waits at most
        for the short nodes ahead of it. The owner is always a worker between two of its nodes,
        so the lane is always drained. Moves short ``extras`` (and ``mine`` when it is short) to
        the lane; returns what the calling worker runs next."""
        owner, lane = self._lane_owner, self._lane
        if owner is None:
            if mine is None or not self._is_short(mine[1]):
                return mine  # no lane (the common case for nodes that take time)
            owner = self._lane_owner = me = threading.get_ident()
            short: bool | None = True
        else:
            me, short = threading.get_ident(), None
        if extras:
            extras[:] = [item for item in extras if not self._to_lane(item)]
        if mine is not None and (short if short is not None else self._is_short(mine[1])):
            lane.append(mine)
            mine = None
        if owner != me:
            return mine  # another worker runs the lane; this one runs a long node or goes idle
        if mine is not None:  # a long node: run it now if the lane is empty, else another worker does
            if not lane:
                self._lane_owner = None
                return mine
            extras.append(mine)
        if lane:
            return lane.popleft()
        self._lane_owner = None
        return None

    def _to_lane(self, item: Item) -> bool:
        if not self._is_short(item[1]):
            return False
        self._lane.append(item)
        return True

    def worker_native_ids(self) -> list[int]:
        """Native thread ids of the threads that ran nodes (for the sampler's per-thread CPU).
        Takes no lock (the sampler calls it with the lock held, as a run ends): copying the
        dict's values is one step under the GIL."""
        return [native for _, native in list(self._threads_seen.values())]

    def _whoami(self) -> tuple[str, int]:
        """(name, native id) of the calling thread, memoised per thread."""
        ident = threading.get_ident()
        who = self._threads_seen.get(ident)
        if who is None:
            who = self._threads_seen[ident] = (threading.current_thread().name, threading.get_native_id())
        return who

    def _is_short(self, ns: NodeState) -> bool:
        """Whether ``ns``'s agent is short and CPU-bound (mean wall under ``SHORT_S``, at least
        ``CPU_BOUND`` of it on the CPU): a node that sleeps or waits on I/O gains from running
        beside others even when short, so it never goes to the lane."""
        hit = self._wall.get(id(ns.spec))
        return (hit is not None and hit[3] and hit[0] is ns.spec and not ns.cache_hit
                and not ns.device.startswith("cuda") and not ns.isolate)

    def _note_wall(self, ns: NodeState, wall_s: float, cpu_s: float) -> None:
        """Running means of an agent's in-thread wall and thread-CPU time, and whether they make
        it short (what ``_is_short`` reads); one entry per agent, updated in place."""
        hit = self._wall.get(id(ns.spec))
        if hit is not None and hit[0] is ns.spec:
            if ns.isolate:
                return
            hit[1] = wall = 0.8 * hit[1] + 0.2 * wall_s
            hit[2] = cpu = 0.8 * hit[2] + 0.2 * cpu_s
            hit[3] = wall < SHORT_S and cpu >= CPU_BOUND * wall
            return
        if ns.isolate:
            return
        if len(self._wall) > 10_000:
            self._wall.clear()
        self._wall[id(ns.spec)] = [ns.spec, wall_s, cpu_s, wall_s < SHORT_S and cpu_s >= CPU_BOUND * wall_s]

    def _worker(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            with self.lock:
                self._idle -= 1
                run, ns = item
                if not ns.cache_hit and ns.status != NodeStatus.RUNNING and not self._start_locked(run, ns):
                    item = self._end_and_next(run, ns, NodeStatus.CANCELLED, reason=ns.reason or "cancelled")
            while item is not None:
                item = self._run_item(*item)
            # going idle: a node's torch code outside a torch_threads block (an agent's load, a
            # source generating data) ran at the thread's default count, and its OpenMP team
            # would outlive the node, slowing every multi-threaded node after it; once per idle
            # spell, not per node (a few microseconds with torch loaded, nothing without)
            release_openmp_team()
            with self.lock:
                self._idle += 1

    def close(self) -> None:
        with self.lock:
            self._closed = True
            threads = list(self._threads)
        for _ in threads:
            self._queue.put(None)
        for t in threads:
            t.join(timeout=2)

    # -- one node -------------------------------------------------------------------------
    def _start_locked(self, run: RunState, ns: NodeState) -> bool:
        """Mark ``ns`` running on this thread and emit NodeStarted; False if it was cancelled."""
        if (ns.cancel_event is not None and ns.cancel_event.is_set()) or ns.status in _TERMINAL:
            return False
        now = time.time()
        ns.status, ns.start, ns.attempts = NodeStatus.RUNNING, now, 1
        who = self._threads_seen.get(threading.get_ident())
        ns.worker, ns.native_id = who if who is not None else self._whoami()
        ns.threads = threads = max(1, round(ns.demand.cpu))
        ns.peak_rss_mb = self.last_rss_mb
        ns.mem_base_mb = ns.mem_peak_mb = rss_last_mb()
        run.version += 1
        ev = _new(NodeStarted)
        ev.__dict__.update({"run_id": run.id, "node_id": ns.id, "time": now, "device": ns.device, "attempt": 1,
                            "threads": threads, "demand": ns.demand_dict, "worker": ns.worker})
        self.bus.emit(ev)
        if ns.chain:
            if any(t.status in _TERMINAL for t in ns.chain):  # a fused node was cancelled before the chain began
                unfuse(ns)
            else:
                self._start_chain_locked(run, ns, now)
        return True

    def _start_chain_locked(self, run: RunState, head: NodeState, now: float) -> None:
        """Start the nodes fused into ``head`` with it: they run inside its admission (their own
        need is empty) on its worker (``engine.fusion``)."""
        for ns in head.chain:
            ns.admitted, ns.admitted_at, ns.need, ns.device = True, now, {}, head.device
            ns.ready_at = ns.ready_at or now
            if ns.cancel_event is None:
                ns.cancel_event = CancelFlag()
            run.running.add(ns.id)
            ns.status, ns.start, ns.attempts = NodeStatus.RUNNING, now, 1
            ns.worker, ns.native_id, ns.threads = head.worker, head.native_id, head.threads
            ns.peak_rss_mb = self.last_rss_mb
            ns.mem_base_mb, ns.mem_peak_mb = head.mem_base_mb, head.mem_peak_mb
            self.bus.emit(_event(NodeStarted, {
                "run_id": run.id, "node_id": ns.id, "time": now, "device": ns.device, "attempt": 1,
                "threads": ns.threads, "demand": ns.demand_dict, "worker": ns.worker}))

    def _unfuse_locked(self, run: RunState, head: NodeState, why: str) -> None:
        """A fused attempt stopped: the chain's other nodes go back to waiting for their inputs
        and every node runs on its own (a node cancelled meanwhile ends cancelled)."""
        tails = head.chain
        unfuse(head)
        now = time.time()
        self.runner.log(run, head, f"{why}; running the chain's nodes one by one")
        for ns in tails:
            ns.admitted, ns.need, ns.device, ns.start, ns.attempts = False, None, "", None, 0
            run.running.discard(ns.id)
            ns.status = NodeStatus.WAITING_INPUTS
            run.version += 1
            self.bus.emit(NodeWaitingInputs(run_id=run.id, node_id=ns.id, waiting_for=tuple(ns.preds), time=now))
        for ns in tails:
            if ns.cancel_event is not None and ns.cancel_event.is_set() and not ns.status.is_terminal:
                self._end_locked(run, ns, NodeStatus.CANCELLED, now, reason=ns.reason or "cancelled")

    def _run_item(self, run: RunState, ns: NodeState) -> Item | None:
        if ns.cache_hit:
            return self._run_cached(run, ns)
        if ns.status != NodeStatus.RUNNING:  # not started yet by the thread that admitted it
            with self.lock:
                if not self._start_locked(run, ns):
                    return self._end_and_next(run, ns, NodeStatus.CANCELLED, reason=ns.reason or "cancelled")
        if ns.device.startswith("cuda"):
            self.gpu.task_start(ns.device)
        if ns.chain:
            return self._run_chain(run, ns)
        runner = self.runner
        cpu0 = _thread_time()
        status, outputs, error, ctx, stats = runner.attempts(run, ns)
        cpu_s = _thread_time() - cpu0
        if status is NodeStatus.DONE:
            summary = summarize_outputs(outputs)
            if ns.cache_key and run.options.use_cache:
                runner.store(run, ns, outputs)
        else:
            summary = {}
        metrics = runner.metrics(ns, ctx, stats, cpu_s, outputs)
        with self.lock:
            self._note_wall(ns, metrics["wall_s"], cpu_s)
            ns.outputs = outputs
            self._end_locked(run, ns, status, time.time(), error=error, metrics=metrics, summary=summary)
            return self._hand_out(self._dispatch_locked(), keep=True)

    def _run_chain(self, run: RunState, head: NodeState) -> Item | None:
        """Run a fused chain (``engine.fusion``); on ChainAborted its nodes run one by one."""
        try:
            results, workers = run_chain(self.runner, self.backend.warm, run, head)  # type: ignore[attr-defined]
        except ChainAborted as exc:
            with self.lock:
                self._unfuse_locked(run, head, str(exc))
            return self._run_item(run, head)
        ends = []
        head.mem_peak_mb = max(ns.mem_peak_mb for ns in (head, *head.chain))  # the chain's memory: the head's
        for ns, res in zip([head, *head.chain], results, strict=True):
            if ns.cache_key and run.options.use_cache and res.outputs is not None:
                self.runner.store(run, ns, res.outputs)
            metrics = self.runner.metrics(ns, res.ctx, {}, res.cpu_s, res.outputs)
            # wall_s: the node's share of the chain (its batch time over the batches at once);
            # what the node held (the head: the chain's demand; the others: nothing)
            metrics.update(wall_s=res.busy_s / workers, items=res.items, held=ns.demand_dict,
                           fused_into=ns.fused_into, chain=[c.id for c in ns.chain])
            summary = res.summary if res.outputs is None else summarize_outputs(res.outputs)
            ends.append((ns, res.outputs, metrics, summary))
        held = sum(ns.output_bytes or 0 for ns in (head, *head.chain)) / 2**20  # the chain keeps them all
        ends[0][2]["memory_mb"] = max(ends[0][2]["memory_mb"] or 0.0, held)
        with self.lock:
            now = time.time()
            for ns, outputs, metrics, summary in ends:
                ns.outputs, ns.outputs_dropped = outputs, outputs is None
                self._end_locked(run, ns, NodeStatus.DONE, now, metrics=metrics, summary=summary)
            return self._hand_out(self._dispatch_locked(), keep=True)

    def _run_cached(self, run: RunState, ns: NodeState) -> Item | None:
        try:
            outputs = self.results.load(ns.cache_key or "")
        except Exception as exc:  # unreadable cache entry: compute the node instead
            if ns.pinned:  # its inputs were never computed: it cannot be computed here
                with self.lock:
                    return self._end_and_next(run, ns, NodeStatus.FAILED, error=pinned_unreadable(ns.id, exc))
            with self.lock:
                ns.cache_hit, ns.admitted, ns.device = False, False, ""
                run.running.discard(ns.id)
                self.runner.log(run, ns, f"cached result unreadable ({exc}); recomputing")
                heapq.heappush(run.ready, (ns.prio, ns.id))
                return self._hand_out(self._dispatch_locked(), keep=True)
        with self.lock:
            ns.outputs, ns.start = outputs, ns.admitted_at
            metrics = NodeMetrics(wait_inputs_s=(ns.ready_at or 0) - (ns.queued_at or 0), device=ns.device).to_dict()
            return self._end_and_next(run, ns, NodeStatus.CACHED, metrics=metrics,
                                      summary=summarize_outputs(outputs))

    # -- endings (under the lock) ----------------------------------------------------------
    def _end_and_next(self, run: RunState, ns: NodeState, status: NodeStatus, **kw: Any) -> Item | None:
        self._end_locked(run, ns, status, time.time(), **kw)
        return self._hand_out(self._dispatch_locked(), keep=True)

    def _end_locked(self, run: RunState, ns: NodeState, status: NodeStatus, now: float, *,
                    error: dict | None = None, metrics: dict | None = None, summary: dict | None = None,
                    reason: str = "", propagate: bool = True) -> None:
        if ns.admitted:
            ns.admitted = False
            ns.cancel_event = None  # its attempt is over: freed now, before it can reach an old GC generation
            run.running.discard(ns.id)
            if ns.device and not ns.cache_hit:
                need = ns.need if ns.need is not None else self._need(ns.demand, ns.device)
                m_used, r_used = self.ledger.used, run.ledger.used  # give ``need`` back (never below 0)
                for key, amount in need.items():
                    if key in m_used:
                        v = m_used[key] - amount
                        m_used[key] = v if v > 0.0 else 0.0
                    if key in r_used:
                        v = r_used[key] - amount
                        r_used[key] = v if v > 0.0 else 0.0
        if ns.status in _TERMINAL:
            return
        ns.status, ns.end, run.done, run.version = status, now, run.done + 1, run.version + 1
        ns.metrics = metrics = metrics or {}
        ns.output_summary = summary = summary or {}
        emit, rid = self.bus.emit, run.id
        if status in _DONE:
            ev = _new(NodeFinished)
            ev.__dict__.update({"run_id": rid, "node_id": ns.id, "time": now, "metrics": metrics,
                                "cached": status is NodeStatus.CACHED, "output_summary": summary})
            emit(ev)
            nodes, waiting = run.nodes, NodeStatus.WAITING_INPUTS
            for sid in ns.succs:  # release the successors: the last input makes one ready
                succ = nodes[sid]
                if succ.status is not waiting:
                    continue
                left = succ.unmet = succ.unmet - 1
                if left <= 0 or succ.lifecycle.start.inputs == "any":  # _make_ready_locked, inlined
                    succ.status, succ.ready_at = NodeStatus.QUEUED, now
                    heapq.heappush(run.ready, (succ.prio, sid))
                    ev = _new(NodeQueued)
                    ev.__dict__.update({"run_id": rid, "node_id": sid, "time": now})
                    emit(ev)
        elif status == NodeStatus.FAILED:
            ns.error = error or {"type": "Error", "message": "failed", "traceback": ""}
            emit(NodeFailed(run_id=rid, node_id=ns.id, error_type=ns.error["type"], message=ns.error["message"],
                            traceback=ns.error["traceback"], metrics=ns.metrics, time=now))
            if run.options.pause_on_failure and not run.cancel_requested:
                self._hold_failed_locked(run, ns, now)  # what follows it waits: fix it and retry it, or resume
            else:
                self._give_up_locked(run, ns, now)
        elif status == NodeStatus.CANCELLED:
            ns.reason = reason or ns.reason or "cancelled"
            emit(NodeCancelled(run_id=rid, node_id=ns.id, reason=ns.reason, metrics=ns.metrics, time=now))
            if propagate:
                self._skip_descendants_locked(run, ns, now, "was cancelled")
        elif status == NodeStatus.SKIPPED:
            emit(NodeSkipped(run_id=rid, node_id=ns.id, reason=ns.reason, time=now))
        if run.drop_consumed:
            self._drop_consumed_locked(run, ns)
        self._finish_if_done_locked(run, now)

    def _finish_if_done_locked(self, run: RunState, now: float) -> None:
        """End ``run`` once every node has ended, unless it holds a failed node for a retry."""
        if run.done >= len(run.nodes) and run.id in self.active and not run.held:
            self._finish_run_locked(run, now)

    def _give_up_locked(self, run: RunState, ns: NodeState, now: float) -> None:
        """A node failed for good: what follows it is skipped, and with ``fail_fast`` the rest of the run is cancelled."""
        self._skip_descendants_locked(run, ns, now, "failed")
        if run.options.fail_fast and not run.cancel_requested and run.fail_fast_by is None:
            run.fail_fast_by = ns.id
            self._cancel_pending_locked(run, f"fail_fast: node {ns.id!r} failed")

    def _hold_failed_locked(self, run: RunState, ns: NodeState, now: float) -> None:
        """``pause_on_failure``: the failed node's descendants keep waiting and the run pauses
        there (a debugger's break on exception), so its settings can be fixed (``engine.amend``)
        and it retried (``retry_node``); Resume gives up on it instead; a run that holds a failed
        node does not end on its own."""
        why = run.held[ns.id] = failure_text(ns.error)
        self.runner.log(run, ns, HELD_LOG)
        if not run.paused:
            self._pause_locked(run, why=why, failed=ns.id)
        else:
            run.version += 1

    def _release_held_locked(self, run: RunState, now: float) -> None:
        """Resume with failed nodes held: give up on them (what follows them is skipped) and end
        the run if nothing else is left."""
        held, run.held = list(run.held), {}
        for nid in held:
            self._give_up_locked(run, run.nodes[nid], now)
        self._finish_if_done_locked(run, now)

    def retry_node(self, run: RunState, node_id: str) -> bool:
        """Put a failed node the run holds (``pause_on_failure``) back with the ready nodes as a
        fresh start (its retries again); the run stays paused, so the next Step or Resume starts
        it. False when the run does not hold it."""
        with self.lock:
            if run.status.is_terminal or node_id not in run.held:
                return False
            del run.held[node_id]
            ns, now = run.nodes[node_id], time.time()
            error = ns.error or {}
            self.bus.emit(NodeRetried(run_id=run.id, node_id=node_id, attempt=ns.attempts, error_type=error.get("type", ""),
                                      message=error.get("message", ""), delay_s=0.0, by_hand=True, time=now))
            ns.error, ns.start, ns.end, ns.metrics, ns.output_summary = None, None, None, {}, {}
            ns.outputs, ns.progress, ns.attempts, ns.device, ns.need = None, (0, None), 0, "", None
            run.done -= 1
            self.runner.log(run, ns, RETRIED_LOG)
            self._make_ready_locked(run, ns, now)
            self.admit_locked()
            return True

    def _drop_consumed_locked(self, run: RunState, ended: NodeState) -> None:
        """Drop the outputs of ``ended``'s inputs (and its own, without successors) that are not
        kept (``execution.keep_outputs`` off) once every consumer has ended."""
        nodes = run.nodes
        for ns in (*(nodes[p] for p in ended.preds), ended):
            if (ns.outputs is not None and not ns.lifecycle.execution.keep_outputs
                    and ns.status.is_terminal and all(nodes[s].status.is_terminal for s in ns.succs)):
                ns.outputs, ns.outputs_dropped = None, True

    def _skip_descendants_locked(self, run: RunState, root: NodeState, now: float, how: str) -> None:
        stack = list(root.succs)
        while stack:
            succ = run.nodes[stack.pop()]
            if succ.status.is_terminal or succ.admitted:
                continue
            if succ.start_rule == "any" and any(
                    run.nodes[p].status in _DONE or not run.nodes[p].status.is_terminal for p in succ.preds):
                continue
            succ.reason = f"upstream node {root.id!r} {how}"
            self._end_locked(run, succ, NodeStatus.SKIPPED, now)
            stack.extend(succ.succs)

    def _cancel_pending_locked(self, run: RunState, reason: str) -> None:
        now = time.time()
        for ns in list(run.nodes.values()):
            if ns.status.is_terminal:
                continue
            ns.reason = reason
            if ns.admitted:
                ns.cancel_event.set()
            else:
                self._end_locked(run, ns, NodeStatus.CANCELLED, now, reason=reason, propagate=False)

    # -- cancel ---------------------------------------------------------------------------
    def cancel_run(self, run: RunState, reason: str = "run cancelled") -> None:
        with self.lock:
            if run.status.is_terminal:
                return
            run.cancel_requested = True
            run.held = {}  # failed nodes held for a retry: the run may end now
            self._cancel_pending_locked(run, reason)
            self._finish_if_done_locked(run, time.time())
            self.admit_locked()

    def _order(self) -> None:
        """The active runs as admission visits them: higher ``priority`` first, then the older run
        (each run takes what fits of its ready nodes before the next is looked at; a later run's
        smaller node may still start while a higher one's waits for room)."""
        self._by_priority = sorted(self.active.values(), key=lambda r: (-r.priority, r.started_at or 0.0))

    def set_priority(self, run: RunState, priority: int) -> bool:
        """Give ``run`` another priority (its next admissions follow it); False when it had ended."""
        with self.lock:
            if run.status.is_terminal:
                return False
            run.priority, run.version = int(priority), run.version + 1
            self._order()
            self.admit_locked()
            return True

    def pause_run(self, run: RunState) -> bool:
        """Admit no more of ``run``'s nodes (those running go on); False when it had ended or was
        paused already."""
        with self.lock:
            if run.status.is_terminal or run.paused:
                return False
            self._pause_locked(run)
            return True

    def _test_break_later(self, run: RunState, ns: NodeState, entry: tuple[int, str], condition: BreakCondition) -> None:
        """Test ``ns``'s breakpoint condition on a thread of its own, without the lock (a condition
        may read a table of a million rows: a second or so, while every other run goes on). The
        node waits out of the ready heap meanwhile; then it pauses the run, or goes back to be
        admitted."""
        inputs = self.runner.gather_inputs(run, ns)  # references to its parents' outputs, taken under the lock

        def test() -> None:
            try:
                verdict = breaks.check(condition, inputs)
            except Exception as exc:  # a bug in a test must not lose the node: pause there, and say why
                verdict = breaks.Verdict(True, f"cannot test {condition.describe()}: {type(exc).__name__}: {exc}")
            with self.lock:
                if ns.status.is_terminal or run.status.is_terminal:  # cancelled meanwhile
                    return
                self.runner.log(run, ns, f"breakpoint: {verdict.why}")
                heapq.heappush(run.ready, entry)
                if verdict.pause and not run.paused:
                    self._pause_locked(run, ns.id, verdict.why)
                self.admit_locked()

        threading.Thread(target=test, name=f"sg-break-{ns.id[:40]}", daemon=True).start()

    def _pause_locked(self, run: RunState, at: str | None = None, why: str | None = None,
                      failed: str | None = None) -> None:
        """Pause ``run`` (``at``: before this node, its breakpoint; ``why``: what its condition
        found, or ``failed``'s error: that node failed, ``pause_on_failure``)."""
        now = time.time()
        run.mark_paused(now, at, why, failed)
        ready = tuple(sorted({nid for _, nid in run.ready if not run.nodes[nid].status.is_terminal} | ({at} if at else set())))
        run.breakpoints.difference_update(held_together(at, ready))  # a component's first ones: one pause
        self.bus.emit(RunPaused(run_id=run.id, ready=ready, at=at, why=why, failed=failed, time=now))

    def resume_run(self, run: RunState, steps: int | None = None) -> bool:
        """Admit ``run``'s nodes again; ``steps``: only that many more, staying paused (Step).
        False when it had ended or was not paused."""
        with self.lock:
            if run.status.is_terminal or not run.paused:
                return False
            if steps is None:
                now = time.time()
                run.mark_resumed(now)
                self.bus.emit(RunResumed(run_id=run.id, time=now))
                if run.held:  # Resume with failed nodes held: go on without them
                    self._release_held_locked(run, now)
            else:
                run.mark_stepped(max(1, int(steps)))
            self.admit_locked()
            return True

    def cancel_node(self, run: RunState, node_id: str) -> None:
        with self.lock:
            ns = run.nodes[node_id]
            if ns.status.is_terminal:
                return
            ns.reason = "cancelled by request"
            if ns.admitted:
                ns.cancel_event.set()
            else:
                self._end_locked(run, ns, NodeStatus.CANCELLED, time.time(), reason=ns.reason)
                self.admit_locked()
