"""One run on Ray, driven from the caller's thread: dispatch ready nodes as Ray tasks, follow them
with ``ray.wait``, and apply the lifecycle rules (retries with backoff, timeouts, cancel, failure
policy) exactly as the local executor does, emitting the same events.

The ``ray`` module is handed in by ``engine.backends.ray`` (the only module that imports it).
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from typing import Any, Literal

from engine import breaks
from engine.backends.ray_nodes import RayNode, RunSettings, worker_label
from engine.backends.ray_worker import gather_inputs, timeout_error
from engine.errors import AmendError
from engine.events import (
    Event,
    NodeCancelled,
    NodeFailed,
    NodeFinished,
    NodeLog,
    NodeProgress,
    NodeQueued,
    NodeRetried,
    NodeSkipped,
    NodeStarted,
    NodeStatus,
    NodeWaitingInputs,
    RunFinished,
    RunStatus,
)
from engine.results import pinned_unreadable, summarize_outputs
from engine.runstate import HELD_LOG, RETRIED_LOG, failure_text, held_together

TICK_S = 0.1  # how often cancel requests are polled while nothing finishes
PROGRESS_S = 0.25  # how often the driver takes the running nodes' progress from the board
CANCEL_GRACE_S = 2.0  # a cooperative cancel that is not honoured by then is forced (kills the worker)
TIMEOUT_GRACE_S = 0.5  # the worker reports its own timeout first; the driver kills it after this
_DONE = (NodeStatus.DONE, NodeStatus.CACHED)
_WAITING = (NodeStatus.PENDING, NodeStatus.WAITING_INPUTS, NodeStatus.QUEUED)  # not handed to Ray: may still change


class Gate:
    """Whether a Ray run hands its ready nodes to Ray: open, or paused with some steps granted
    (``RunManager.pause``, ``step``, ``resume``). Thread-safe: the run manager sets it, the
    driver's loop reads it."""

    def __init__(self, paused: bool = False, rank: dict[str, int] | None = None) -> None:
        self._lock = threading.Lock()
        self.paused, self.steps = paused, 0
        self.rank = dict(rank or {})  # node -> its place in the policy's order: steps go first to first

    def pause(self) -> bool:
        """Hold the ready nodes; False when paused already."""
        with self._lock:
            was, self.paused, self.steps = self.paused, True, 0
            return not was

    def resume(self) -> bool:
        """Hand every ready node to Ray again; False when it was not paused."""
        with self._lock:
            was, self.paused, self.steps = self.paused, False, 0
            return was

    def step(self, nodes: int = 1) -> bool:
        """Let ``nodes`` more ready nodes go while staying paused; False when it was not paused."""
        with self._lock:
            if self.paused:
                self.steps += max(1, int(nodes))
            return self.paused

    def take(self) -> bool:
        """Whether one ready node may go now (a step it uses is spent)."""
        with self._lock:
            if not self.paused:
                return True
            if self.steps > 0:
                self.steps -= 1
                return True
            return False


class RayRun:
    """Executes the nodes of one run on Ray; ``run()`` returns (status, outputs by node and port)."""

    def __init__(self, ray: Any, remotes: Callable[[RayNode], Any], nodes: dict[str, RayNode],
                 settings: RunSettings, emit: Callable[[Event], None], cancel_event: threading.Event,
                 cancel_node: Callable[[], set[str]] | None, board: tuple[Any, list[str]],
                 gate: Gate | None = None, on_break: Callable[[str, str | None], Any] | None = None,
                 on_fail: Callable[[str, str], Any] | None = None) -> None:
        self.on_break = on_break  # pauses the run at a node's breakpoint, saying why (the run manager's pause)
        self.on_fail = on_fail  # pause on failure: pauses the run at a failed node it holds, with the error
        self.held: dict[str, dict[str, str]] = {}  # failed nodes held for a retry (``on_fail`` given): their error
        self.gate = gate or Gate()  # paused: ready nodes wait here, or in their worker (the board)
        self.posted_paused = False  # what the board was last told
        self.progress_ref: Any = None  # the board's answer about progress, on its way
        self.progress_at = 0.0  # monotonic time it was last asked
        self.ray, self.remotes, self.nodes, self.s = ray, remotes, nodes, settings
        self.emit, self.cancel_event, self.cancel_node = emit, cancel_event, cancel_node
        self.board, self.board_address = board  # the cancel board actor, and [name, namespace]
        self.to_post: list[str] = []  # cancelled nodes not yet written to the board
        self.inflight: dict[Any, RayNode] = {}  # every submitted task, by what ray.wait follows
        self.watch: dict[Any, RayNode] = {}  # the in-flight tasks whose inputs are ready (may end now)
        self.ready: list[RayNode] = []
        self.delayed: list[tuple[float, RayNode]] = []
        self.cancel_requested = False
        self.fail_fast_by: str | None = None
        self.seen_node_cancels: set[str] = set()
        self.remaining = len(nodes)  # nodes not yet terminal
        self.unsubmitted = len(nodes)  # nodes neither submitted nor ended (the driver must react)
        self.discarded: list[Any] = []  # refs that will hold errors nobody reads (drained at the end)
        self.pinned: dict[str, str] = {}  # pinned nodes (``pin``) and their result-cache keys
        self.idle: set[str] = set()  # nodes not run because they only feed pinned ones
        self._load: Callable[[str], dict[str, Any]] | None = None
        self._commands: queue.SimpleQueue[tuple[Callable[[], Any], dict[str, Any]]] = \
            queue.SimpleQueue()  # a person's actions from another thread (``amend``, ``retry``), run by the driver's loop

    # -- pins -----------------------------------------------------------------------------
    def pin(self, keys: dict[str, str], idle: set[str], load: Callable[[str], dict[str, Any]]) -> None:
        """Before ``run``: pinned nodes (``keys``: node -> result-cache key) take their outputs from
        ``load`` (put in Ray's object store for their successors) and wait for no input; the nodes
        in ``idle`` only feed pinned ones and are not run (as the local executor does)."""
        self.pinned, self.idle = dict(keys), set(idle)
        for node_id in keys:
            node = self.nodes[node_id]
            for pred in node.preds:
                self.nodes[pred].succs.remove(node_id)
            node.preds, node.links = [], []
        self._load = load

    def _start_pins(self, now: float) -> None:
        for node_id in self.idle:
            node = self.nodes[node_id]
            node.queued_at = now
            self._end(node, NodeStatus.SKIPPED, metrics={}, reason="not run: its outputs only feed pinned nodes")
        for node_id, key in self.pinned.items():
            node = self.nodes[node_id]
            node.queued_at = node.ready_at = node.ended_at = now
            if node.status.is_terminal:  # it only fed other pinned nodes
                continue
            try:
                outputs = self._load(key)
            except Exception as exc:  # it cannot be computed instead: its inputs never were
                self._fail(node, pinned_unreadable(node_id, exc))
                continue
            node.out_ref = self.ray.put(outputs)
            self._end(node, NodeStatus.CACHED, metrics={"device": "pinned", "wait_inputs_s": 0.0},
                      summary=summarize_outputs(outputs))

    # -- main loop ------------------------------------------------------------------------
    def run(self, infeasible: dict[str, str]) -> tuple[RunStatus, dict[str, dict[str, Any]]]:
        now = time.time()
        self._start_pins(now)
        for node in self.nodes.values():
            if node.status.is_terminal:  # pinned, or not needed because of pins
                continue
            node.queued_at = now
            if node.preds and not all(self.nodes[p].status in _DONE for p in node.preds):
                node.status = NodeStatus.WAITING_INPUTS
                self.emit(NodeWaitingInputs(run_id=self.s.run_id, node_id=node.id,
                                            waiting_for=tuple(node.preds), time=now))
            else:
                self._make_ready(node, now)
        for node_id, message in infeasible.items():
            self._fail(self.nodes[node_id], {"type": "CapacityError", "message": message, "traceback": ""})
        while self.remaining > 0 or self.held:
            self._poll_cancels()
            self._take_commands()
            self._give_up_held()
            self._dispatch()
            if not self.inflight:
                self.cancel_event.wait(self._wait_timeout())
                continue
            self._harvest(self._wait_timeout())
            self._enforce_deadlines()
            self._follow_progress()
        return self._finish()

    # -- a person acting on the run from another thread (edit and continue, retry) -----------
    def _in_driver(self, action: Callable[[], Any], what: str, timeout: float = 10.0) -> Any:
        """Run ``action`` on the driver's thread between two of its steps (it alone changes the
        nodes) and return what it returns, or raise the AmendError it raised."""
        box: dict[str, Any] = {"done": threading.Event(), "result": None, "error": None}
        self._commands.put((action, box))
        if not box["done"].wait(timeout):
            raise AmendError(f"the Ray driver of run {self.s.run_id} did not {what} within {timeout:g} s; "
                             "nothing changed: try again")
        if box["error"] is not None:
            raise box["error"]
        return box["result"]

    def _take_commands(self) -> None:
        while True:
            try:
                action, box = self._commands.get_nowait()
            except queue.Empty:
                return
            try:
                box["result"] = action()
            except AmendError as exc:
                box["error"] = exc
            box["done"].set()

    def amend(self, fresh: dict[str, RayNode], changed: dict[str, bool | None]) -> None:
        """From another thread: give the nodes ``changed`` names (node -> its breakpoint turned on,
        off, or None: unchanged) the settings of their ``fresh`` build, and the nodes not handed to
        Ray yet the demands of theirs (memory that grows with a changed source's items); all or
        nothing. Raises AmendError when one of the nodes was handed to Ray already (then nothing
        changed); a failed node the run holds may change."""
        self._in_driver(lambda: self._amend_now(fresh, changed), "take the new settings")

    def _open(self, node: RayNode) -> bool:
        """Whether ``node`` may still change: not handed to Ray yet, or failed and held for a retry."""
        return node.id in self.held or (node.key is None and node.status in _WAITING)

    def _amend_now(self, fresh: dict[str, RayNode], changed: dict[str, bool | None]) -> None:
        late = [self.nodes[nid] for nid in changed if not self._open(self.nodes[nid])]
        if late:
            raise AmendError(f"node {late[0].id!r} of run {self.s.run_id} was handed to Ray already "
                             f"({late[0].status.value}): a node's settings can change only before it starts; "
                             "run the workflow again from it")
        for nid, node in self.nodes.items():
            new = fresh.get(nid)
            if new is None or not self._open(node):
                continue
            if nid in changed or new.demand != node.demand:
                node.params, node.demand, node.lifecycle, node.options = new.params, new.demand, new.lifecycle, new.options
                node.live, node.faults, node.job = new.live, new.faults, None
            if nid in changed:
                node.break_when = new.break_when
                if changed[nid] is not None:  # turned on (it pauses the run) or off
                    node.breakpoint = bool(changed[nid])

    def retry(self, node_id: str) -> bool:
        """From another thread: put a failed node the run holds back with the ready nodes, a fresh
        start (the next step or resume hands it to Ray); False when the run does not hold it."""
        return bool(self._in_driver(lambda: self._retry_now(node_id), "retry it"))

    def _retry_now(self, node_id: str) -> bool:
        node = self.nodes.get(node_id)
        if node is None or node_id not in self.held:
            return False
        error, now = self.held.pop(node_id), time.time()
        self.emit(NodeRetried(run_id=self.s.run_id, node_id=node_id, attempt=node.attempts, error_type=error["type"],
                              message=error["message"], delay_s=0.0, by_hand=True, time=now))
        self.emit(NodeLog(run_id=self.s.run_id, node_id=node_id, message=RETRIED_LOG))
        node.key, node.out_ref, node.report, node.start, node.attempts = None, None, None, None, 0
        node.status = NodeStatus.PENDING
        self.remaining += 1
        self.unsubmitted += 1
        self._make_ready(node, now)
        return True

    def _follow_progress(self) -> None:
        """Every ``PROGRESS_S`` while nodes run, take the progress their attempts reported to the
        board and emit it (``NodeProgress``), without waiting for the board's answer."""
        if self.progress_ref is not None:
            done, _ = self.ray.wait([self.progress_ref], num_returns=1, timeout=0, fetch_local=True)
            if not done:
                return
            try:
                found = self.ray.get(self.progress_ref)
            except Exception:  # the board restarted: ask again next time
                found = {}
            self.progress_ref = None
            now = time.time()
            for node_id, (count, total) in found.items():
                node = self.nodes.get(node_id)
                if node is not None and node.status == NodeStatus.RUNNING:
                    self.emit(NodeProgress(run_id=self.s.run_id, node_id=node_id, done=count, total=total, time=now))
        mono = time.monotonic()
        if self.watch and mono - self.progress_at >= PROGRESS_S:
            self.progress_at = mono
            self.progress_ref = self.board.take_progress.remote(self.s.run_id)

    def _wait_timeout(self) -> float:
        mono = time.monotonic()
        due = [d for d, _ in self.delayed] + [n.deadline for n in self.watch.values() if n.deadline]
        due += [n.cancel_at + CANCEL_GRACE_S for n in self.watch.values() if n.cancel_at and not n.forced]
        return max(0.0, min([TICK_S, *(d - mono for d in due)]))

    def _harvest(self, timeout: float) -> None:
        if self.unsubmitted == 0:  # all in Ray's hands: collect results in batches (a wake-up per tick)
            keys = list(self.inflight)
            ready, rest = self.ray.wait(keys, num_returns=len(keys), timeout=timeout, fetch_local=False)
        else:  # a result may unlock a submission: react to each one
            keys = list(self.watch) or list(self.inflight)  # early-submitted tasks end after these
            ready, rest = self.ray.wait(keys, num_returns=1, timeout=timeout, fetch_local=False)
        if ready and rest and self.unsubmitted:
            more, _ = self.ray.wait(rest, num_returns=len(rest), timeout=0, fetch_local=False)
            ready += more
        ready.sort(key=lambda k: self.inflight[k].order if k in self.inflight else -1)
        plain = [self.inflight[k] for k in ready if k in self.inflight and not self.inflight[k].live]
        if len(plain) > 1:
            try:  # one round trip for every finished plain task
                reports = self.ray.get([n.key for n in plain])
            except Exception:
                reports = None  # one of them was cancelled or crashed: take them one by one
            if reports is not None:
                for node, report in zip(plain, reports, strict=True):
                    self._untrack(node)
                    self._on_report(node, report)
        for key in ready:
            node = self.inflight.get(key)
            if node is not None:
                self._on_ready(node)
            while node is not None and node.live and node.key in self.inflight and self.ray.wait(
                    [node.key], num_returns=1, timeout=0, fetch_local=False)[0]:
                self._on_ready(node)  # a streaming task's next record is there already

    # -- dispatch -------------------------------------------------------------------------
    def _make_ready(self, node: RayNode, now: float) -> None:
        node.status, node.ready_at = NodeStatus.QUEUED, now
        if node.cancel_at is not None:  # cancelled while it waited for its inputs: its grace starts now
            node.cancel_at = time.monotonic()
        if node.key in self.inflight:
            self.watch[node.key] = node
        self.ready.append(node)
        self.emit(NodeQueued(run_id=self.s.run_id, node_id=node.id, time=now))

    def _dispatch(self) -> None:
        mono = time.monotonic()
        due = [n for d, n in self.delayed if d <= mono]
        if due:
            self.delayed = [(d, n) for d, n in self.delayed if d > mono]
        waiting = [*self.ready, *due]
        if not self.gate.paused:
            self._break_at(waiting)
        self._sync_pause()
        if self.gate.paused:
            self.ready = self._step(waiting)
            return
        for node in waiting:
            if node.status.is_terminal or node.key in self.inflight:
                continue  # ended, or submitted ahead of its inputs
            self._submit(node)
            self._submit_children_early(node)
        self.ready.clear()

    def _break_at(self, waiting: list[RayNode]) -> None:
        """Pause the run when a node about to be handed to Ray has a breakpoint; the pause uses up
        the breakpoints of the component's first nodes with it (``runstate.held_together``): the
        others ready now pause the run again when it resumes."""
        hit, why = None, None
        for node in waiting:
            if node.breakpoint and not node.status.is_terminal and node.key not in self.inflight:
                node.breakpoint = False  # once
                why = self._break_verdict(node)
                if why is not False:
                    hit = node
                    break
        if hit is None:
            return
        for nid in held_together(hit.id, [n.id for n in waiting]):  # a component's first ones: one pause
            self.nodes[nid].breakpoint = False
        (self.on_break or (lambda _at, _why: self.gate.pause()))(hit.id, why)

    def _break_verdict(self, node: RayNode) -> str | Literal[False] | None:
        """Whether ``node``'s breakpoint pauses the run: None (no condition), what its condition
        found when it holds (or cannot be tested), or False (it does not hold: its log says so).
        Its inputs are read from the object store (they are ready: it is about to start)."""
        if node.break_when is None:
            return None
        try:
            verdict = breaks.check(node.break_when, self._inputs(node))
        except Exception as exc:  # an input that cannot be read: pause, and say so
            verdict = breaks.Verdict(True, f"cannot test {node.break_when.describe()}: its inputs could not be "
                                           f"read ({type(exc).__name__})")
        self.emit(NodeLog(run_id=self.s.run_id, node_id=node.id, message=f"breakpoint: {verdict.why}"))
        return verdict.why if verdict.pause else False

    def _inputs(self, node: RayNode, timeout: float = 30.0) -> dict[str, Any]:
        """``node``'s inputs by port, read from the object store: its finished parents' outputs."""
        sources = list(dict.fromkeys(src for _, _, src, _ in node.links
                                     if self.nodes[src].status in _DONE and self.nodes[src].out_ref is not None))
        upstream = tuple(self.ray.get([self.nodes[src].out_ref for src in sources], timeout=timeout))
        index = {src: i for i, src in enumerate(sources)}
        return gather_inputs([[t, s, index[src], m] for t, s, src, m in node.links if src in index], upstream)

    def inputs_of(self, node_id: str) -> dict[str, Any] | None:
        """What ``node_id`` starts (or started) with, for a person looking at a paused run (another
        thread than the driver's); None when a parent's outputs cannot be read now."""
        node = self.nodes.get(node_id)
        if node is None:
            return None
        try:
            return self._inputs(node, timeout=10.0)
        except Exception:  # gone from the object store, or the cluster went away: nothing to show
            return None

    def _sync_pause(self) -> None:
        """Tell the board when the run paused or resumed: the attempts Ray holds (submitted ahead
        of their inputs) then wait in their workers before their agents start."""
        if self.gate.paused != self.posted_paused:
            self.posted_paused = self.gate.paused
            (self.board.pause if self.gate.paused else self.board.resume).remote(self.s.run_id)

    def _step(self, waiting: list[RayNode]) -> list[RayNode]:
        """Paused: spend the steps granted on the first ready nodes in the policy's order, whether
        they wait here (not handed to Ray yet: submitted now) or in a worker (released through the
        board); returns those still waiting here."""
        held = [n for n in waiting if not n.status.is_terminal and n.key not in self.inflight]
        if not self.gate.steps:
            return held
        try:  # the attempts waiting in workers (a human pressed Step: one round trip is fine)
            in_workers = self.ray.get(self.board.holding.remote(self.s.run_id), timeout=5.0)
        except Exception:
            in_workers = []
        candidates = held + [self.nodes[i] for i in in_workers
                             if i in self.nodes and self.nodes[i].key in self.inflight]
        candidates.sort(key=lambda n: (self.gate.rank.get(n.id, len(self.gate.rank) + n.order), n.id))
        for node in candidates:
            if not self.gate.take():
                break
            self.board.release.remote(self.s.run_id, node.id)  # its worker must not hold it either
            if node.key not in self.inflight:
                self._submit(node)
                held.remove(node)
        return held

    def _submit_children_early(self, root: RayNode) -> None:
        """Submit descendants whose parents are all in flight as final plain tasks: Ray resolves the
        inputs in its object store, so a chain does not wait for the driver between nodes. Not
        with pause on failure: a child handed over ahead would hold its parent's failed result."""
        if self.on_fail is not None:
            return
        work = [root]
        while work:
            for cid in work.pop().succs:
                child = self.nodes[cid]
                if (child.status == NodeStatus.WAITING_INPUTS and child.key is None and not child.breakpoint
                        and child.lifecycle.start.inputs == "all"
                        and all(self._early_ready(self.nodes[p]) for p in child.preds)):
                    self._submit(child)
                    work.append(child)

    def _early_ready(self, parent: RayNode) -> bool:
        return parent.out_ref is not None and (
            parent.status in _DONE or (parent.early_parent and parent.key in self.inflight))

    def _submit(self, node: RayNode) -> None:
        if node.key is None:
            self.unsubmitted -= 1
        node.attempts += 1
        node.start, node.report, node.deadline, node.stage = None, None, None, 0
        node.cancel_reason, node.cancel_at, node.forced = None, None, False
        node.dispatched_at, node.out_ref = time.time(), None
        any_rule = node.lifecycle.start.inputs == "any"
        sources = list(dict.fromkeys(
            src for _, _, src, _ in node.links
            if self.nodes[src].status in _DONE or (not any_rule and self._early_ready(self.nodes[src]))))
        index = {src: i for i, src in enumerate(sources)}
        if node.job is None:
            node.job = {
                "node_id": node.id, "run_id": self.s.run_id, "agent": node.spec.name, "params": node.params,
                "module": getattr(node.spec.factory, "__module__", None),
                "lifecycle": node.lifecycle.model_dump(mode="json", exclude_defaults=True),
                "time_scale": self.s.time_scale, "board": self.board_address,
                "threads": max(1, round(node.demand.cpu)), "gpu": bool(node.options.get("num_gpus")),
                "faults": node.faults, "memory_mb": node.demand.memory_mb}
        job = {**node.job, "attempt": node.attempts,
               "links": [[t, s, index[src], m] for t, s, src, m in node.links if src in index]}  # lists: msgpack, not pickle
        result = self.remotes(node).remote(job, *(self.nodes[src].out_ref for src in sources))
        if node.live:
            node.key = result
        else:
            node.key, node.out_ref = result
        self.inflight[node.key] = node
        if node.status != NodeStatus.WAITING_INPUTS:
            self.watch[node.key] = node

    def _untrack(self, node: RayNode) -> None:
        self.inflight.pop(node.key, None)
        self.watch.pop(node.key, None)

    # -- results --------------------------------------------------------------------------
    def _on_ready(self, node: RayNode) -> None:
        try:
            if not node.live:
                self._untrack(node)
                self._on_report(node, self.ray.get(node.key))
                return
            ref = next(node.key)
            node.stage += 1
            if node.stage == 1:
                self._on_start(node, self.ray.get(ref))
            elif node.stage == 2:
                node.report = self.ray.get(ref)
            else:
                self._untrack(node)
                node.out_ref = ref
                self._on_report(node, node.report or {})
        except StopIteration:
            self._untrack(node)
            self._on_exception(node, RuntimeError("the Ray task ended without a result"))
        except Exception as exc:  # TaskCancelledError, WorkerCrashedError, RayTaskError, ...
            self._untrack(node)
            self._on_exception(node, exc)

    def _on_start(self, node: RayNode, start: dict[str, Any]) -> None:
        node.start = start
        if node.status == NodeStatus.QUEUED:
            node.status = NodeStatus.RUNNING
        timeout = node.lifecycle.execution.timeout_s
        if timeout:
            node.deadline = time.monotonic() + timeout + TIMEOUT_GRACE_S
        self.emit(NodeStarted(
            run_id=self.s.run_id, node_id=node.id, device=start["device"], attempt=node.attempts,
            threads=max(1, round(node.demand.cpu)), demand=node.demand.model_dump(),
            worker=worker_label(start), time=start["started_at"]))

    def _on_report(self, node: RayNode, report: dict[str, Any]) -> None:
        if node.start is None:
            self._on_start(node, report)
        node.ended_at = report.get("ended_at", node.ended_at)
        for message in report.get("logs", ()):
            self.emit(NodeLog(run_id=self.s.run_id, node_id=node.id, message=str(message)[:2000]))
        status = report.get("status")
        if status == "done":
            self._end(node, NodeStatus.DONE, metrics=self._metrics(node, report),
                      summary=report.get("output_summary", {}))
        elif status == "cancelled" and node.cancel_reason != "timeout":
            self._end(node, NodeStatus.CANCELLED, metrics=self._metrics(node, report),
                      reason=node.cancel_reason or "cancelled", propagate=self._propagates())
        elif status == "cancelled":
            self._failed_attempt(node, self._timeout(node), report)
        else:
            self._failed_attempt(node, report.get("error") or self._unknown(node), report)

    def _propagates(self) -> bool:
        """A cancelled node skips its descendants, unless the whole run is being cancelled."""
        return not (self.cancel_requested or self.fail_fast_by)

    def _on_exception(self, node: RayNode, exc: BaseException) -> None:
        report = getattr(getattr(exc, "cause", None), "report", None)
        if isinstance(report, dict) and report.get("node_id") == node.id:
            self.discarded.append(node.out_ref)  # the outputs of that attempt: the same error
            self._on_report(node, report)  # the attempt failed and said why (AttemptFailed)
            return
        if isinstance(report, dict) and self._on_upstream_failure(node, report):
            return
        if node.cancel_reason == "timeout":
            self._failed_attempt(node, self._timeout(node), {})
        elif node.cancel_reason is not None:
            self._end(node, NodeStatus.CANCELLED, metrics=self._metrics(node, {}), reason=node.cancel_reason,
                      propagate=self._propagates())
        else:
            cause = getattr(exc, "cause", None) or exc
            error = {"type": type(cause).__name__,
                     "message": f"node {node.id!r} (agent {node.spec.name!r}) failed on Ray: "
                                f"{type(cause).__name__}: {str(exc).strip()[:2000]}",
                     "traceback": str(exc)}
            self._failed_attempt(node, error, {})

    def _on_upstream_failure(self, node: RayNode, report: dict[str, Any]) -> bool:
        """An early-submitted node got its parent's failure: handle the parent's report first."""
        upstream = self.nodes.get(str(report.get("node_id")))
        if upstream is None:
            return False
        if upstream.key in self.inflight:
            self._untrack(upstream)
            self._on_report(upstream, report)
        return node.status.is_terminal

    def _failed_attempt(self, node: RayNode, error: dict[str, str], report: dict[str, Any]) -> None:
        ex = node.lifecycle.execution
        if node.attempts > ex.retries or self.cancel_requested or self.fail_fast_by:
            self._fail(node, error, self._metrics(node, report))
            return
        delay = ex.backoff_s * ex.backoff_factor ** (node.attempts - 1)
        self.emit(NodeRetried(run_id=self.s.run_id, node_id=node.id, attempt=node.attempts,
                              error_type=error["type"], message=error["message"], delay_s=delay))
        node.status = NodeStatus.QUEUED
        self.delayed.append((time.monotonic() + delay, node))

    def _timeout(self, node: RayNode) -> dict[str, str]:
        return timeout_error(node.id, node.spec.name, node.attempts, node.lifecycle.execution.timeout_s)

    @staticmethod
    def _unknown(node: RayNode) -> dict[str, str]:
        return {"type": "Error", "message": f"node {node.id!r} failed on Ray", "traceback": ""}

    def _metrics(self, node: RayNode, report: dict[str, Any]) -> dict[str, Any]:
        start = node.start or {}
        started = start.get("started_at", node.dispatched_at)
        ready = max([node.queued_at, *(self.nodes[p].ended_at or 0.0 for p in node.preds)])
        return {
            "wait_inputs_s": max(0.0, ready - node.queued_at),
            "wait_resource_s": max(0.0, started - max(ready, node.dispatched_at)),
            "wall_s": report.get("wall_s", max(0.0, time.time() - started)),
            "cpu_s": report.get("cpu_s", 0.0), "peak_rss_mb": report.get("peak_rss_mb"),
            "memory_mb": report.get("memory_mb"),
            "items": report.get("items", 0), "attempts": node.attempts,
            "device": start.get("device", ""), "threads": max(1, round(node.demand.cpu)),
            "ray_node_id": start.get("ray_node_id"), "ray_worker_pid": start.get("ray_worker_pid"),
            "isolated": bool(report.get("isolated")),
        }

    # -- endings --------------------------------------------------------------------------
    def _fail(self, node: RayNode, error: dict[str, str], metrics: dict[str, Any] | None = None) -> None:
        if node.status.is_terminal:
            return
        node.status = NodeStatus.FAILED
        self.remaining -= 1
        self.unsubmitted -= node.key is None
        self.emit(NodeFailed(run_id=self.s.run_id, node_id=node.id, error_type=error["type"],
                             message=error["message"], traceback=error.get("traceback", ""),
                             metrics=metrics or {}))
        if self.on_fail is not None and not self.cancel_requested:  # pause on failure: what follows it waits
            self.held[node.id] = error
            self.emit(NodeLog(run_id=self.s.run_id, node_id=node.id, message=HELD_LOG))
            self.on_fail(node.id, failure_text(error))
            return
        self._give_up(node)

    def _give_up(self, node: RayNode) -> None:
        """A node failed for good: what follows it is skipped; with ``fail_fast`` the rest is cancelled."""
        self._skip_descendants(node, "failed")
        if self.s.fail_fast and not self.cancel_requested and self.fail_fast_by is None:
            self.fail_fast_by = node.id
            self._cancel_all(f"fail_fast: node {node.id!r} failed")

    def _give_up_held(self) -> None:
        """Resumed with failed nodes held: go on without them."""
        if self.held and not self.gate.paused:
            held, self.held = [self.nodes[nid] for nid in sorted(self.held)], {}
            for node in held:
                self._give_up(node)

    def _end(self, node: RayNode, status: NodeStatus, *, metrics: dict[str, Any],
             summary: dict[str, Any] | None = None, reason: str = "", propagate: bool = True) -> None:
        if node.status.is_terminal:
            return
        node.status, rid, now = status, self.s.run_id, time.time()
        self.remaining -= 1
        self.unsubmitted -= node.key is None
        if status in _DONE:
            self.emit(NodeFinished(run_id=rid, node_id=node.id, metrics=metrics, cached=status == NodeStatus.CACHED,
                                   output_summary=summary or {}, time=now))
            self._release_succs(node, now)
        elif status == NodeStatus.CANCELLED:
            self.emit(NodeCancelled(run_id=rid, node_id=node.id, reason=reason, metrics=metrics, time=now))
            if propagate:
                self._skip_descendants(node, "was cancelled")
        elif status == NodeStatus.SKIPPED:
            self.emit(NodeSkipped(run_id=rid, node_id=node.id, reason=reason, time=now))

    def _release_succs(self, node: RayNode, now: float) -> None:
        for sid in node.succs:
            succ = self.nodes[sid]
            if succ.status != NodeStatus.WAITING_INPUTS:
                continue
            done = all(self.nodes[p].status in _DONE for p in succ.preds)
            if done or succ.lifecycle.start.inputs == "any":
                self._make_ready(succ, now)

    def _skip_descendants(self, root: RayNode, how: str) -> None:
        stack = list(root.succs)
        while stack:
            succ = self.nodes[stack.pop()]
            if succ.status.is_terminal or succ.status == NodeStatus.RUNNING:
                continue
            if succ.key in self.inflight:  # submitted ahead of its inputs: it will not run
                self._untrack(succ)
                self.discarded += [succ.key, succ.out_ref]
                self.to_post.append(succ.id)
            if succ.lifecycle.start.inputs == "any" and any(
                    self.nodes[p].status in _DONE or not self.nodes[p].status.is_terminal for p in succ.preds):
                continue
            self._end(succ, NodeStatus.SKIPPED, metrics={}, reason=f"upstream node {root.id!r} {how}")
            stack.extend(succ.succs)

    # -- cancel and deadlines ---------------------------------------------------------------
    def _poll_cancels(self) -> None:
        if self.cancel_event.is_set() and not self.cancel_requested:
            self.cancel_requested = True
            self._cancel_all("run cancelled")
        if self.cancel_node is not None:
            for node_id in set(self.cancel_node()) - self.seen_node_cancels:
                self.seen_node_cancels.add(node_id)
                node = self.nodes.get(node_id)
                if node is not None and not node.status.is_terminal:
                    self._cancel(node, "cancelled by request", propagate=True)
        self._post()

    def _post(self) -> None:
        """Write the nodes cancelled since the last call to the board, in one message."""
        if self.to_post:
            self.board.cancel.remote(self.s.run_id, self.to_post)
            self.to_post = []

    def _cancel_all(self, reason: str) -> None:
        self.held.clear()  # a cancelled run ends, failed nodes held or not
        for node in self.nodes.values():
            if not node.status.is_terminal:
                self._cancel(node, reason, propagate=False)

    def _cancel(self, node: RayNode, reason: str, *, propagate: bool) -> None:
        """Cancel one node. A node in Ray's hands is asked to stop through the cancel board (not
        with ``ray.cancel``: see ``ray_worker``), and killed if still running ``CANCEL_GRACE_S``
        later; one submitted ahead of its inputs ends now (its task fails on its parents' errors,
        or, should they succeed, reads the board before its agent starts)."""
        if node.key in self.inflight and node.key not in self.watch:  # submitted ahead of its inputs
            self._untrack(node)
            self.discarded += [node.key, node.out_ref]
            self.to_post.append(node.id)  # should its inputs still come, it stops before its agent runs
            self._end(node, NodeStatus.CANCELLED, metrics={}, reason=reason, propagate=propagate)
        elif node.key in self.inflight:
            node.cancel_reason, node.cancel_at = reason, time.monotonic()
            self.to_post.append(node.id)
        else:
            self.delayed = [(d, n) for d, n in self.delayed if n is not node]
            self._end(node, NodeStatus.CANCELLED, metrics={}, reason=reason, propagate=propagate)

    def _enforce_deadlines(self) -> None:
        mono = time.monotonic()
        for node in list(self.watch.values()):
            if node.deadline is not None and mono >= node.deadline and node.cancel_reason is None:
                node.cancel_reason, node.cancel_at, node.forced = "timeout", mono, True
                self.ray.cancel(node.key, force=True)
            elif node.cancel_at is not None and not node.forced and mono >= node.cancel_at + CANCEL_GRACE_S:
                node.forced = True
                self.ray.cancel(node.key, force=True)

    # -- the end --------------------------------------------------------------------------
    def _drain(self) -> None:
        """Read the errors of discarded refs, so Ray does not log them as unhandled."""
        refs = [r for r in self.discarded if r is not None]
        if not refs:
            return
        ready, _ = self.ray.wait(refs, num_returns=len(refs), timeout=1.0, fetch_local=False)
        for ref in ready:
            try:
                self.ray.get(ref, timeout=0)
            except Exception:  # expected: these hold the errors of failed or cancelled attempts
                pass

    def _finish(self) -> tuple[RunStatus, dict[str, dict[str, Any]]]:
        self._post()  # the last skips reach the board
        if self.posted_paused:  # the board forgets the pause
            self.board.resume.remote(self.s.run_id)
        self._drain()
        done = [n for n in self.nodes.values() if n.status in _DONE and n.out_ref is not None]
        values = self.ray.get([n.out_ref for n in done]) if done else []
        outputs = {n.id: (v if isinstance(v, dict) else {"out": v}) for n, v in zip(done, values, strict=True)}
        statuses = {n.status for n in self.nodes.values() if n.id not in self.idle}
        error = None
        if self.cancel_requested:
            status = RunStatus.CANCELLED
        elif NodeStatus.FAILED in statuses:
            status = RunStatus.FAILED
            failed = [n.id for n in self.nodes.values() if n.status == NodeStatus.FAILED]
            error = f"{len(failed)} node(s) failed: {', '.join(failed[:5])}"
        elif NodeStatus.CANCELLED in statuses or NodeStatus.SKIPPED in statuses:
            status = RunStatus.CANCELLED
        else:
            status = RunStatus.SUCCEEDED
        self.emit(RunFinished(run_id=self.s.run_id, status=status.value, error=error))
        return status, outputs
