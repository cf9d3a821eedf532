"""The Ray worker side of the Ray backend: run one attempt of one node inside a Ray worker process.

Agents are built here from the worker's own registry by name (code is never shipped from the
driver or a browser); models stay warm in a small per-process cache keyed by agent name, version,
params and device. Errors are caught and reported as data, so the driver decides about retries.
``ray`` is imported lazily, only to read the Ray node id and the GPU ids of this worker and to
ask the run's cancel board whether a running attempt was cancelled.

Cancel is cooperative: the driver writes requests to a ``CancelBoard`` actor instead of calling
``ray.cancel`` (a Ray core race between ``ray.cancel`` and a task's reply can abort the driver);
each worker process polls the board for its running attempts and sets their ``RunContext``
cancel event, which ``ctx.wait`` and ``ctx.check_cancelled`` honour. Pause works the same way:
the board says a run is paused, and an attempt that has not started yet waits in its worker
before its agent starts until the run resumes or the driver releases it (Step).
"""

from __future__ import annotations

import os
import resource
import threading
import time
import traceback
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from engine.errors import AgentExecutionError, AgentTimeoutError, RunCancelledError
from engine.faults import before_attempt, held_memory
from engine.metrics import memory_growth_mb, rss_now_mb
from engine.payloads import payload_bytes
from engine.spec import Agent, AgentSpec, Lifecycle, RunContext
from engine.workflow import FaultSpec

if TYPE_CHECKING:
    from engine.registry import Registry

CACHE_ENV = "SERVICEGRID_RAY_MODEL_CACHE"  # models kept warm per worker process (0: none)
_DEFAULT_CACHE = 2
_cache: OrderedDict[tuple[str, str, str, str], Agent] = OrderedDict()
_cache_lock = threading.Lock()
_registries: dict[str, Registry] = {}  # worker-local registries by agent module
_lifecycles: dict[str, Lifecycle] = {}
_node_id: str | None = None
POLL_S = 0.1  # how often a worker asks the board about its running attempts
PROGRESS_EVERY_S = 0.25  # a running attempt reports its progress to the board at most this often (and its last)


class AttemptFailed(Exception):
    """Raised by a plain node task whose attempt did not succeed, so its outputs hold an error (the
    descendants submitted ahead of time do not run) while the driver still gets the report."""

    def __init__(self, report: dict[str, Any]) -> None:
        super().__init__(str(report.get("error", {}).get("message", report.get("status", ""))))
        self.report = report

    def __reduce__(self) -> tuple[Any, ...]:
        return (AttemptFailed, (self.report,))


class CancelBoard:
    """The cancel requests and pauses of the runs of one driver, kept by a small Ray actor
    (``num_cpus=0``) that the driver creates and owns; workers read it for the runs they take part
    in. A paused run's attempts wait in their worker before their agent starts (``_Watch.hold``)
    until the run resumes or the driver releases them one by one (Step)."""

    KEEP_RUNS = 256  # the most recent runs with cancels are kept; older ones are long over

    def __init__(self) -> None:
        self._runs: OrderedDict[str, set[str]] = OrderedDict()
        self._paused: dict[str, set[str]] = {}  # paused run -> its nodes released to start anyway
        self._holding: dict[str, set[str]] = {}  # paused run -> its nodes waiting in a worker
        self._progress: dict[str, dict[str, tuple[int, int | None]]] = {}  # run -> node -> (done, total)

    def cancel(self, run_id: str, node_ids: list[str]) -> None:
        self._runs.setdefault(run_id, set()).update(node_ids)
        self._runs.move_to_end(run_id)
        while len(self._runs) > self.KEEP_RUNS:
            self._runs.popitem(last=False)

    def cancelled(self, run_ids: list[str]) -> dict[str, list[str]]:
        """The cancelled nodes of each of ``run_ids`` that has any."""
        return {r: sorted(self._runs[r]) for r in run_ids if r in self._runs}

    def pause(self, run_id: str) -> None:
        self._paused.setdefault(run_id, set())
        self._holding.setdefault(run_id, set())

    def resume(self, run_id: str) -> None:
        """Let the run's attempts start (also said when a run ends: it forgets the run)."""
        self._paused.pop(run_id, None)
        self._holding.pop(run_id, None)

    def release(self, run_id: str, node_id: str) -> None:
        """Let one waiting node of a paused run start (a Step)."""
        if run_id in self._paused:
            self._paused[run_id].add(node_id)
            self._holding[run_id].discard(node_id)

    def hold(self, run_id: str, node_id: str) -> None:
        """A worker says node ``node_id`` waits for the paused run."""
        if run_id in self._holding:
            self._holding[run_id].add(node_id)

    def holding(self, run_id: str) -> list[str]:
        """The nodes of a paused run waiting in a worker, not yet released."""
        return sorted(self._holding.get(run_id, ()))

    def progress(self, run_id: str, node_id: str, done: int, total: int | None) -> None:
        """A running attempt's progress (``ctx.progress``), kept until the driver takes it."""
        self._progress.setdefault(run_id, {})[node_id] = (done, total)

    def take_progress(self, run_id: str) -> dict[str, tuple[int, int | None]]:
        """The progress reported since the last call, by node (the driver's live NodeProgress)."""
        return self._progress.pop(run_id, {})

    def state(self, run_ids: list[str]) -> dict[str, dict[str, Any]]:
        """For each of ``run_ids``: its cancelled nodes, whether it is paused, its released nodes."""
        return {r: {"cancelled": sorted(self._runs.get(r, ())), "paused": r in self._paused,
                    "released": sorted(self._paused.get(r, ()))}
                for r in run_ids if r in self._runs or r in self._paused}


@dataclass
class _RunView:
    """What this worker process knows of one run's cancel requests and pause."""

    board: tuple[str, str]  # the board actor's name and namespace
    cancelled: set[str] = field(default_factory=set)
    paused: bool = False
    released: set[str] = field(default_factory=set)
    last_active: float = 0.0  # monotonic time an attempt of the run last ran here


class _Watch:
    """The runs this worker process takes part in, kept in step with their cancel boards.

    The first attempt of a run in this process reads the board before its agent starts (so a node
    cancelled while it waited for its inputs does not run); a daemon thread then reads it every
    ``POLL_S`` while the process has taken part in the run within the last ``KEEP_S`` seconds, and
    sets the cancel event of each running attempt whose node was cancelled.
    """

    KEEP_S = 5.0

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._runs: dict[str, _RunView] = {}
        self._active: dict[int, tuple[str, str, threading.Event]] = {}  # token: run, node, cancel event
        self._handles: dict[tuple[str, str], Any] = {}
        self._next = 0
        self._thread: threading.Thread | None = None

    def _view(self, board: list[str], run_id: str) -> _RunView:
        """This process's view of the run, read from the board when it is new here."""
        with self._cond:
            view = self._runs.get(run_id)
        if view is None:
            view = _RunView((board[0], board[1]))
            self._read(view.board, {run_id: view}, timeout=2.0)
        with self._cond:
            view = self._runs.setdefault(run_id, view)
            view.last_active = time.monotonic()
            return view

    def hold(self, board: list[str] | None, run_id: str, node_id: str) -> bool:
        """Wait here while the run is paused (its attempts do not start until it resumes or the
        driver releases this node); True when the node was cancelled meanwhile."""
        if not board:
            return False
        view, told = self._view(board, run_id), False
        while node_id not in view.cancelled and view.paused and node_id not in view.released:
            if not told:  # the driver's Step reads who waits
                told = self._call(view.board, "hold", run_id, node_id)
            time.sleep(POLL_S)
            self._read(view.board, {run_id: view}, timeout=5.0)
            view.last_active = time.monotonic()
        return node_id in view.cancelled

    def enter(self, board: list[str] | None, run_id: str, node_id: str, event: threading.Event) -> int | None:
        """Register a starting attempt; sets ``event`` at once if its node is already cancelled."""
        if not board:
            return None
        view = self._view(board, run_id)
        with self._cond:
            if node_id in view.cancelled:
                event.set()
            self._next += 1
            self._active[self._next] = (run_id, node_id, event)
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name="servicegrid-cancel-watch", daemon=True)
                self._thread.start()
            self._cond.notify()
            return self._next

    def leave(self, token: int | None) -> None:
        if token is not None:
            with self._cond:
                run_id, _, _ = self._active.pop(token)
                self._runs[run_id].last_active = time.monotonic()

    def _loop(self) -> None:
        while True:
            with self._cond:
                while not self._recent():
                    self._cond.wait()
            time.sleep(POLL_S)
            self.poll()

    def _recent(self) -> dict[str, _RunView]:
        """The runs to keep in step (caller holds the lock); forgets the others."""
        now, busy = time.monotonic(), {run for run, _, _ in self._active.values()}
        self._runs = {r: v for r, v in self._runs.items() if r in busy or now - v.last_active < self.KEEP_S}
        return self._runs

    def poll(self) -> None:
        """Read the boards of the recent runs and set the events of cancelled running attempts."""
        with self._cond:
            by_board: dict[tuple[str, str], dict[str, _RunView]] = {}
            for run_id, view in self._recent().items():
                by_board.setdefault(view.board, {})[run_id] = view
        for board, views in by_board.items():
            self._read(board, views, timeout=5.0)
        with self._cond:
            for run_id, node_id, event in self._active.values():
                view = self._runs.get(run_id)
                if view is not None and node_id in view.cancelled:
                    event.set()

    def _handle(self, board: tuple[str, str]) -> Any:
        import ray

        handle = self._handles.get(board)
        if handle is None:
            handle = self._handles[board] = ray.get_actor(board[0], namespace=board[1])
        return handle

    def tell(self, board: list[str] | None, method: str, *args: Any) -> None:
        """Tell the run's board something, without waiting (nothing when the run has none)."""
        if board:
            self._call((board[0], board[1]), method, *args)

    def _call(self, board: tuple[str, str], method: str, *args: Any) -> bool:
        """Tell the board something (no reply awaited); False when it cannot be reached now."""
        try:
            getattr(self._handle(board), method).remote(*args)
            return True
        except Exception:  # the board is gone with its driver: nothing to tell
            self._handles.pop(board, None)
            return False

    def _read(self, board: tuple[str, str], views: dict[str, _RunView], timeout: float) -> None:
        import ray

        try:
            found = ray.get(self._handle(board).state.remote(list(views)), timeout=timeout)
        except Exception:  # the board is gone with its driver, or slow: read it again next time
            self._handles.pop(board, None)
            return
        for run_id, view in views.items():
            seen = found.get(run_id) or {}
            view.cancelled = set(seen.get("cancelled", ()))
            view.paused, view.released = bool(seen.get("paused")), set(seen.get("released", ()))


_watch = _Watch()


def _cache_size() -> int:
    try:
        return max(0, int(os.environ.get(CACHE_ENV, _DEFAULT_CACHE)))
    except ValueError:
        return _DEFAULT_CACHE


def find_spec(name: str, module: str | None) -> AgentSpec:
    """The spec of agent ``name`` in this worker: from its defining module when the driver names
    one (cheap: the worker imports only that module), else from the default registry."""
    from engine.registry import Registry, default_registry

    if module:
        with _cache_lock:
            registry = _registries.get(module)
        if registry is None:
            registry = Registry()
            try:
                registry.register_module(module)
            except ImportError:
                registry = default_registry()
            with _cache_lock:
                _registries[module] = registry
        if name in registry:
            return registry.get(name)
    return default_registry().get(name)


def checkout_agent(name: str, params: dict[str, Any], device: str,
                   module: str | None = None) -> tuple[Agent, bool]:
    """A loaded agent for (name, params, device): from this worker's cache when warm, else built.

    Returns the agent and whether it is cached (cached agents are returned by ``checkin``).
    """
    import json

    spec = find_spec(name, module)
    key = (spec.name, spec.version, json.dumps(params, sort_keys=True, default=str), device)
    with _cache_lock:
        agent = _cache.pop(key, None)
    if agent is None:
        agent = spec.build(spec.parse_params(params))
        agent.load(device)
    return agent, _worth_caching(agent)


def checkin_agent(name: str, params: dict[str, Any], device: str, agent: Agent) -> None:
    """Keep a loaded agent warm for the next task in this worker (least recently used goes first)."""
    import json

    size = _cache_size()
    if size == 0:
        agent.unload()
        return
    key = (name, agent.spec.version, json.dumps(params, sort_keys=True, default=str), device)
    with _cache_lock:
        _cache[key] = agent
        _cache.move_to_end(key)
        evicted = [_cache.popitem(last=False)[1] for _ in range(max(0, len(_cache) - size))]
    for old in evicted:
        old.unload()


def _worth_caching(agent: Agent) -> bool:
    """Only agents that override ``load`` (real models) are kept; simulated ones are cheap to build."""
    return type(agent).load is not Agent.load and not agent.spec.simulated


def _where(gpu: bool) -> tuple[str, list[int]]:
    """This worker's Ray node id (read once per process) and, for GPU tasks, its GPU ids."""
    global _node_id
    import ray

    if _node_id is None:
        _node_id = ray.get_runtime_context().get_node_id()
    return _node_id, (list(ray.get_gpu_ids()) if gpu else [])


def _lifecycle(data: dict[str, Any]) -> Lifecycle:
    """The node's lifecycle rules (parsed once per distinct rules in this worker)."""
    import json

    key = json.dumps(data, sort_keys=True)
    rules = _lifecycles.get(key)
    if rules is None:
        rules = _lifecycles[key] = Lifecycle.model_validate(data)
    return rules


def gather_inputs(links: list[list[Any]], upstream: tuple[Any, ...]) -> dict[str, Any]:
    """Inputs by port from upstream outputs; ``links`` are (target port, source port, arg index, multiple)."""
    inputs: dict[str, Any] = {}
    for target_port, source_port, index, multiple in links:
        out = upstream[index]
        value = out.get(source_port) if isinstance(out, dict) else out
        if multiple:
            inputs.setdefault(target_port, []).append(value)
        else:
            inputs[target_port] = value
    return inputs


def _device(job: dict[str, Any], gpu_ids: list[int]) -> str:
    return "cuda:0" if job["gpu"] and gpu_ids else "cpu"  # Ray sets CUDA_VISIBLE_DEVICES


def _start_info(job: dict[str, Any]) -> dict[str, Any]:
    find_spec(job["agent"], job.get("module"))  # imports the agent's module before the clock starts
    node_id, gpu_ids = _where(job["gpu"])
    return {"ray_node_id": node_id, "ray_worker_pid": os.getpid(), "started_at": time.time(),
            "device": _device(job, gpu_ids), "gpu_ids": gpu_ids}


def _attempt(job: dict[str, Any], start: dict[str, Any], upstream: tuple[Any, ...],
             cancelled: bool = False) -> tuple[dict, Any]:
    """Run the agent once (``cancelled``: not at all, it was cancelled while it waited); returns
    (report, outputs). Never raises for an agent's error."""
    lifecycle = _lifecycle(job["lifecycle"])
    ex, stop = lifecycle.execution, lifecycle.exit
    now = time.monotonic()
    peak = [rss_now_mb()]  # the node's own memory: read at its start, each progress report, its end

    sent = [float("-inf")]

    def on_progress(done: int, total: int | None) -> None:
        peak[0] = max(peak[0], rss_now_mb())
        now = time.monotonic()
        if done == total or now - sent[0] >= PROGRESS_EVERY_S:  # to the board, for the driver's live bars
            sent[0] = now
            _watch.tell(job.get("board"), "progress", job["run_id"], job["node_id"], int(done), total)

    ctx = RunContext(node_id=job["node_id"], run_id=job["run_id"], device=start["device"],
                     threads=job["threads"], lifecycle=lifecycle, time_scale=job["time_scale"],
                     deadline=now + ex.timeout_s if ex.timeout_s else None,
                     stop_at=now + stop.time_limit_s if stop.time_limit_s else None,
                     attempt=job["attempt"], on_progress=on_progress)
    cpu0, wall0, mem0 = time.thread_time(), time.monotonic(), peak[0]
    report: dict[str, Any] = dict(start)
    outputs: Any = None
    token = _watch.enter(job.get("board"), job["run_id"], job["node_id"], ctx.cancel_event)
    if cancelled:
        ctx.cancel_event.set()
    drill = FaultSpec.model_validate(job["faults"]) if job.get("faults") else None
    isolate, stats, held = lifecycle.execution.isolate, {}, None
    try:
        try:
            ctx.check_cancelled()  # cancelled while it waited for its inputs: the agent does not start
            if drill is not None:  # a fault drill: this attempt fails, starts late, or holds more memory
                before_attempt(drill, job["attempt"], ctx)
                if not isolate and (held := held_memory(drill.extra_memory_mb)) is not None:
                    peak[0] = max(peak[0], rss_now_mb())
            if isolate:  # in a child of this worker, killed past its memory limit, as on the local backend
                outputs = _run_isolated(job, ctx, upstream, stats, drill.extra_memory_mb if drill else 0.0)
            else:
                outputs = _run_agent(job, ctx, upstream)
        finally:
            _watch.leave(token)
            del held  # a drill's memory goes with the attempt
        if ctx.deadline is not None and time.monotonic() > ctx.deadline:
            raise AgentTimeoutError(f"node {job['node_id']!r} ran past its timeout")
        report["status"] = "done"
    except RunCancelledError:
        report["status"] = "cancelled"
    except Exception as exc:  # an agent's failure is data for the driver (retry or fail)
        report.update(status="error", error=describe_error(job, exc))
    report.update(node_id=job["node_id"], ended_at=time.time(), wall_s=time.monotonic() - wall0, cpu_s=time.thread_time() - cpu0,
                  peak_rss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  memory_mb=memory_growth_mb(mem0, max(peak[0], rss_now_mb()),
                                           payload_bytes(outputs) if outputs is not None else 0),
                  items=ctx.items_processed, logs=list(ctx.logs)[-50:], threads=ctx.threads, isolated=isolate)
    if isolate:  # the child's own figures (what its memory limit checks)
        report.update({k: stats[k] for k in ("peak_rss_mb", "memory_mb", "cpu_s") if stats.get(k) is not None})
    if report["status"] == "done":
        from engine.results import summarize_outputs

        report["output_summary"] = summarize_outputs(outputs if isinstance(outputs, dict) else {"out": outputs})
    return report, outputs


def _run_agent(job: dict[str, Any], ctx: RunContext, upstream: tuple[Any, ...]) -> Any:
    agent, keep = checkout_agent(job["agent"], job["params"], ctx.device, job.get("module"))
    try:
        if "torch" in __import__("sys").modules:
            import torch

            torch.set_num_threads(ctx.threads)
        outputs = agent.run(gather_inputs(job["links"], upstream), ctx)
    except BaseException:
        agent.unload()
        raise
    if keep:
        checkin_agent(job["agent"], job["params"], ctx.device, agent)
    else:
        agent.unload()
    return outputs


def _run_isolated(job: dict[str, Any], ctx: RunContext, upstream: tuple[Any, ...], stats: dict[str, Any],
                  hold_mb: float) -> Any:
    """One attempt in a child process of this worker (``engine.isolation``): killed past its
    memory limit (``MemoryLimitExceeded``), its deadline or a cancel; ``stats`` gets its figures."""
    import tempfile
    from pathlib import Path

    from engine.isolation import run_isolated

    spec = find_spec(job["agent"], job.get("module"))
    scratch = Path(tempfile.mkdtemp(prefix=f"sg-ray-{job['node_id'][:40].replace('/', '_')}-"))
    return run_isolated(spec, spec.parse_params(job["params"]), gather_inputs(job["links"], upstream), ctx,
                        scratch, stats, declared_memory_mb=float(job.get("memory_mb") or 0.0), hold_mb=hold_mb)


def describe_error(job: dict[str, Any], exc: BaseException) -> dict[str, str]:
    """The error record of a failed attempt (type, message naming node and agent, traceback); an
    isolated attempt's child names its own error type (``MemoryLimitExceeded``, ...)."""
    node, name = job["node_id"], job["agent"]
    if isinstance(exc, AgentTimeoutError):
        limit = _lifecycle(job["lifecycle"]).execution.timeout_s
        return timeout_error(node, name, job["attempt"], limit)
    remote_type = getattr(exc, "error_type", None)
    tb = getattr(exc, "remote_traceback", "") or "".join(traceback.format_exception(exc))
    message = str(AgentExecutionError(node, name, exc))
    if remote_type and remote_type != type(exc).__name__:
        message = f"node {node!r} (agent {name!r}) failed: {remote_type}: {exc}"
    return {"type": remote_type or type(exc).__name__, "message": message, "traceback": tb}


def timeout_error(node: str, agent: str, attempt: int, limit: float | None) -> dict[str, str]:
    """The same timeout record as the local executor's."""
    text = f" of {limit:g} s" if limit else ""
    return {"type": "AgentTimeoutError", "traceback": "",
            "message": f"node {node!r} (agent {agent!r}) timed out: ran past its timeout{text} "
                       f"on attempt {attempt}; raise lifecycle.execution.timeout_s or make it faster"}


def run_node(job: dict[str, Any], *upstream: Any) -> tuple[dict[str, Any], Any]:
    """Ray task body (two returns: the report for the driver, the outputs for the object store).

    An attempt that did not succeed raises AttemptFailed (carrying the report) instead.
    """
    cancelled = _watch.hold(job.get("board"), job["run_id"], job["node_id"])  # a paused run: wait here
    report, outputs = _attempt(job, _start_info(job), upstream, cancelled)
    if report["status"] != "done":
        raise AttemptFailed(report)
    return report, outputs


def run_node_live(job: dict[str, Any], *upstream: Any) -> Iterator[Any]:
    """Ray streaming-generator task body: yields the start record, then the report, then the outputs.

    Used for long or time-limited nodes, so the driver sees the start (and times out from it).
    """
    cancelled = _watch.hold(job.get("board"), job["run_id"], job["node_id"])  # a paused run: wait here
    start = _start_info(job)
    yield start
    report, outputs = _attempt(job, start, upstream, cancelled)
    yield report
    yield outputs
