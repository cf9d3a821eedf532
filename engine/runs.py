"""The run manager: submit, watch, cancel and wait for runs; one per process (one per server).

It owns the machine's one resource ledger (shared by every concurrent run), the event bus, the
executor's worker threads, the warm-model pool and the metric sampler. Engine threads never call
the UI: observers subscribe to ``manager.bus``; pages read ``snapshot()`` copies.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
import uuid
import weakref
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from engine import breaks
from engine.agents.runtime import helper_threads, lent_threads
from engine.backends import get_backend
from engine.components import inside_of
from engine.errors import WorkflowInvalidError
from engine.events import EventBus, MetricSampled, NodeStatus, RunPaused, RunStarted, RunStatus
from engine.executor import Executor
from engine.items import PlannedItems, node_demand, planned_items
from engine.metrics import GpuProbe, Sample, Sampler, default_gpu_probe
from engine.payloads import payload_bytes, rows_of
from engine.registry import Registry, default_registry
from engine.remote import RayRunner
from engine.resources import Capacity, ResourceLedger
from engine.results import ResultStore, canonical_params_json, pin_issues, workflow_cache_keys
from engine.runstate import NodeState, RunSnapshot, RunState, make_snapshot, node_memory_so_far, set_routes
from engine.versions import runnable
from engine.workflow import (
    DISABLED_KEY,
    BreakCondition,
    NodeSpec,
    Workflow,
    without_bypassed,
    without_disabled,
)

log = logging.getLogger(__name__)
KEEP_FINISHED = 200  # finished runs kept in memory for snapshots
KEEP_OUTPUTS_SHARE, KEEP_OUTPUTS_MAX_MB = 0.1, 2048  # default output budget: 10 % of memory, at most 2 GB
BACKENDS = ("local", "ray")
PRIORITY_LOCAL_ONLY = ("priority is for runs on this machine (the local backend), not Ray: Ray orders the tasks "
                       "it holds itself")


@dataclass(frozen=True)
class RunOptions:
    """How to run a workflow. ``capacity`` is a per-run limit (unset dimensions: the machine's)."""

    policy: str = "critical_path"
    capacity: Capacity | None = None
    backend: str = "local"
    time_scale: float = 1.0
    fail_fast: bool = False
    use_cache: bool = True
    resume_from: str | None = None
    max_workers: int | None = None
    user: str | None = None
    sample_hz: float = 4.0
    predict: bool = True  # compute the predicted plan (the Gantt) at submit
    plan_budget_s: float = 1.0  # time budget of the `auto` policy's search
    durations: dict[str, float] | None = None  # learned per-node durations (engine.estimates) for the plan
    fuse: bool = True  # run chains of itemwise agents batch by batch on one worker (engine.fusion)
    start_paused: bool = False  # admit nothing until resume() or step() (no fusion then)
    rerun: tuple[str, ...] = ()  # compute these nodes and all after them again, whatever the cache holds
    priority: int = 0  # among runs sharing the machine: higher is admitted first (then the older run)
    breakpoints: tuple[str, ...] = ()  # pause before these nodes too (besides the nodes' own `breakpoint`)
    break_if: tuple[tuple[str, str], ...] = ()  # (node, condition): pause before it when the condition holds (engine.breaks)
    pause_on_failure: bool = False  # a node that fails (its retries spent) pauses the run and holds what follows it:
    # fix its settings (amend) and retry it, or resume to skip what follows it (a debugger's break on exception)

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["capacity"] = self.capacity.model_dump(mode="json") if self.capacity else None
        return data


def with_breakpoints(workflow: Workflow, names: Iterable[str],
                     conditions: Mapping[str, BreakCondition] | None = None) -> Workflow:
    """``workflow`` with a breakpoint on each node ``names`` names that it has, with its condition
    in ``conditions`` if there is one (the others are nodes inside its components: named once they
    are expanded; ``RunManager.submit`` checks)."""
    conditions = conditions or {}
    wanted = (set(names) | set(conditions)) & set(workflow.node_ids())
    if not wanted:
        return workflow
    return workflow.model_copy(update={"nodes": tuple(
        n.model_copy(update={"breakpoint": True, "break_when": conditions.get(n.id)})
        if n.id in wanted else n for n in workflow.nodes)})


def break_conditions(pairs: Iterable[tuple[str, str]]) -> dict[str, BreakCondition]:
    """``RunOptions.break_if`` read: the condition of each node (``engine.breaks.parse``).

    Raises:
        ValueError: a condition is not of the form ``[PORT:] FIELD OP VALUE`` (the node is named).
    """
    out = {}
    for node, text in pairs:
        try:
            out[node] = breaks.parse(text)
        except ValueError as exc:
            raise ValueError(f"breakpoint on {node!r}: {exc}") from None
    return out


class RunHandle:
    """A submitted run, by id; every method goes through the manager (thread-safe)."""

    def __init__(self, manager: RunManager, run_id: str) -> None:
        self.manager = manager
        self.run_id = run_id

    @property
    def status(self) -> RunStatus:
        return self.manager.status(self.run_id)

    def snapshot(self) -> RunSnapshot:
        return self.manager.snapshot(self.run_id)

    def wait(self, timeout: float | None = None) -> RunStatus:
        return self.manager.wait(self.run_id, timeout)

    def cancel(self) -> None:
        self.manager.cancel(self.run_id)

    def pause(self) -> bool:
        return self.manager.pause(self.run_id)

    def resume(self) -> bool:
        return self.manager.resume(self.run_id)

    def step(self, nodes: int = 1) -> bool:
        return self.manager.step(self.run_id, nodes)

    def outputs(self, node_id: str) -> dict[str, Any] | None:
        return self.manager.outputs(self.run_id, node_id)

    def amend(self, nodes: Iterable[NodeSpec]) -> dict[str, list[str]]:
        return self.manager.amend(self.run_id, nodes)

    def retry(self, node_id: str) -> bool:
        return self.manager.retry(self.run_id, node_id)

    def set_params(self, node_id: str, **params: Any) -> list[str]:
        """Edit and continue with new values for some of a node's parameters (the others kept):
        ``handle.set_params("route", threshold=0.7)`` while paused before ``route``. Returns what
        changed; raises AmendError as ``RunManager.amend`` does."""
        from engine.errors import AmendError, shown_names

        ran = self.manager.workflow(self.run_id)
        node = ran.node(node_id)
        if node is None:
            raise AmendError(f"run {self.run_id} has no node {node_id!r}; its nodes are: "
                             f"{shown_names(ran.node_ids(), 10)}")
        changed = node.model_copy(update={"params": {**node.params, **params}})
        return self.manager.amend(self.run_id, [changed]).get(node_id, [])

    def __repr__(self) -> str:
        return f"RunHandle({self.run_id!r})"


class RunManager:
    """Runs workflows on this machine. Create one per process; call ``shutdown()`` at the end."""

    def __init__(self, registry: Registry | None = None, machine: Capacity | None = None,
                 results: ResultStore | None = None, *, memory_budget_mb: float | None = None,
                 gpu: GpuProbe | None = None, max_threads: int = 64, sample_hz: float = 4.0,
                 keep_outputs_mb: float | None = None) -> None:
        """``keep_outputs_mb``: how much of finished runs' outputs to keep in memory (default
        10 % of the machine's memory, at most 2 GB). Older finished runs beyond it lose their
        in-memory outputs (``outputs()`` then reads the result cache, if the run used it); the
        newest finished run always keeps its outputs, and running runs are never touched."""
        from engine.devices import machine_capacity
        from engine.memtune import tune_malloc

        tune_malloc()
        self.registry = registry or default_registry()
        if machine is None:
            machine = machine_capacity()
        elif machine.cpu is None or machine.memory_mb is None or machine.gpus is None:
            machine = machine.resolved(machine_capacity())
        self.machine: Capacity = machine
        self.keep_outputs_mb = keep_outputs_mb if keep_outputs_mb is not None else min(
            KEEP_OUTPUTS_MAX_MB, KEEP_OUTPUTS_SHARE * (self.machine.memory_mb or 4096))
        self.bus = EventBus()
        self.results = results or ResultStore()
        budget = memory_budget_mb if memory_budget_mb is not None else (self.machine.memory_mb or 2048) / 2
        self.backend = get_backend("local", memory_budget_mb=budget)
        self.gpu = gpu or default_gpu_probe(self.machine.has_gpu and not all(g.simulated for g in self.machine.gpus or ()))
        self.executor = Executor(ResourceLedger(self.machine), self.bus, self.backend, self.results, self.gpu,
                                 max_threads=max_threads)
        self._runs: dict[str, RunState] = {}
        self._closed = False
        self.amend_lock = threading.Lock()  # one change of a run's settings at a time (engine.amend)
        self.ray = RayRunner(self.registry, self.bus, self.executor.lock, self.results)
        self.sampler = Sampler(self._on_sample, self._worth_sampling, self.gpu, hz=sample_hz,
                               threads=self._sampled_threads)
        self.executor.on_run_end = self._last_sample
        _register_shutdown(self)

    # -- submitting ------------------------------------------------------------------------
    def submit(self, workflow: Workflow, options: RunOptions | None = None, run_id: str | None = None) -> RunHandle:
        """Validate, plan and start a run; returns at once (the run goes on in the background).

        What runs is the workflow with its components expanded (``engine.components``), without its disabled nodes and what follows them, with each
        bypassed node's input wired past it (``engine.workflow.without_disabled``,
        ``without_bypassed``); pinned nodes read their outputs from the result cache.

        Raises:
            WorkflowInvalidError: validation found errors (``.issues`` lists them), or a component is broken.
            UnknownPolicyError: ``options.policy`` is not a known policy.
        """
        from engine.policies import check_policy
        from engine.validation import validate

        options = options or RunOptions()
        drawn = set(workflow.node_ids())
        conditions = break_conditions(options.break_if)
        workflow = with_breakpoints(workflow, options.breakpoints, conditions)  # on drawn nodes: an instance's go inside
        # params saved for an older agent upgraded; each node of a component runs (and is measured) as itself
        workflow = runnable(workflow, self.registry)
        workflow = with_breakpoints(workflow, options.breakpoints, conditions)  # on nodes inside components ("desk/route")
        if missing := [b for b in (*options.breakpoints, *conditions) if b not in drawn and workflow.node(b) is None]:
            raise ValueError(f"no node {missing[0]!r} to pause before in workflow {workflow.name!r}; "
                             f"its nodes are: {', '.join(sorted(drawn)[:20])}")
        if options.rerun:  # a component named to compute again: every node inside it
            options = dataclasses.replace(options, rerun=inside_of(workflow, options.rerun))
        workflow = without_disabled(workflow)  # disabled nodes, and what follows them, do not run
        if not workflow.nodes and DISABLED_KEY in workflow.metadata:
            raise ValueError("every node is disabled or after a disabled node: enable one to run the workflow")
        if self._closed:
            raise RuntimeError("the run manager was shut down; create a new one")
        check_policy(options.policy)
        if options.backend not in BACKENDS:
            raise ValueError(f"unknown backend {options.backend!r}; choose one of {', '.join(BACKENDS)}")
        unknown = [n for n in options.rerun if workflow.node(n) is None]
        if unknown:
            raise ValueError(f"no node {unknown[0]!r} to re-run in workflow {workflow.name!r}; "
                             f"its nodes are: {', '.join(workflow.node_ids()[:20])}")
        if options.resume_from and not options.use_cache:
            options = dataclasses.replace(options, use_cache=True)
        machine = self.ray.capacity() if options.backend == "ray" else self.machine
        cap = (options.capacity or workflow.capacity or Capacity()).resolved(machine)
        issues = validate(workflow, self.registry, capacity=cap)
        if any(n.bypass for n in workflow.nodes) and not any(i.is_error for i in issues):
            workflow = without_bypassed(workflow)  # checked above (bypass_not_possible); what runs is checked too
            issues = validate(workflow, self.registry, capacity=cap)
        if options.backend == "ray":
            issues += self.ray.validate(workflow)  # demands no single Ray node can meet
        issues += pin_issues(workflow, self.results)
        if any(i.is_error for i in issues):
            raise WorkflowInvalidError(issues)
        run = self._build_run(workflow, options, cap, run_id or uuid.uuid4().hex[:12])
        self._runs[run.id] = run
        self._forget_old_runs()
        self._release_old_outputs()
        self.bus.emit(RunStarted(
            run_id=run.id, workflow_name=workflow.name, policy=options.policy, backend=options.backend,
            capacity=cap.model_dump(mode="json"), node_ids=tuple(run.nodes), workflow=workflow.to_dict(),
            options=options.to_dict(), plan=run.plan, resumed_from=options.resume_from, user=options.user))
        if options.start_paused:  # step by step from the first node
            run.mark_paused(time.time())
            self.bus.emit(RunPaused(run_id=run.id, ready=tuple(sorted(
                nid for nid, ns in run.nodes.items() if not ns.preds and not ns.idle))))
        if options.backend == "ray":
            self.ray.start(run)
            return RunHandle(self, run.id)
        if not self.executor.active:  # the sampler was idle: its baseline, before the first node
            self.sampler.prime()
            self.executor.last_rss_mb = self.sampler.last_rss_mb
        self.executor.start(run)
        self.sampler.wake()
        return RunHandle(self, run.id)

    def _build_run(self, workflow: Workflow, options: RunOptions, cap: Capacity, run_id: str) -> RunState:
        nodes: dict[str, NodeState] = {}
        dumps: dict[int, dict[str, Any]] = {}
        parsed: dict[tuple[str, str], tuple[Any, str]] = {}  # nodes with equal params share one model
        sized: PlannedItems | None = None  # counted once some agent's memory grows with its items
        for node in workflow.nodes:
            spec = self.registry.get(node.agent)
            raw_key = (node.agent, node.params_key())
            if raw_key not in parsed:
                params = spec.parse_params(node.params)
                parsed[raw_key] = (params, canonical_params_json(params))
            params, params_json = parsed[raw_key]
            if spec.memory_grows:
                sized = sized or planned_items(workflow, self.registry)
            demand = node_demand(node, spec, params, sized if spec.memory_grows else None)
            demand_dict = dumps.get(id(demand))
            if demand_dict is None:
                demand_dict = dumps[id(demand)] = demand.model_dump()
            nodes[node.id] = NodeState(
                id=node.id, spec=spec, params=params, params_json=params_json,
                demand=demand, demand_dict=demand_dict, lifecycle=spec.lifecycle.merged(node.lifecycle),
                preds=[], succs=[], in_edges=[], faults=node.faults or None)
        for edge in workflow.edges:
            src, dst = nodes[edge.source], nodes[edge.target]
            dst.in_edges.append(edge)
            if edge.source not in dst.preds:
                dst.preds.append(edge.source)
                src.succs.append(edge.target)
        _apply_pins(workflow, nodes)
        for ns in nodes.values():
            ns.unmet = len(ns.preds)
        set_routes(nodes)
        run = RunState(id=run_id, workflow=workflow, options=options, nodes=nodes, capacity=cap,
                       ledger=ResourceLedger(cap), priority=int(options.priority),
                       breakpoints={n.id for n in workflow.nodes if n.breakpoint},
                       break_when={n.id: n.break_when for n in workflow.nodes if n.breakpoint and n.break_when})
        run.drop_consumed = any(not ns.lifecycle.execution.keep_outputs for ns in nodes.values())
        run.plan, order = self._plan(workflow, options, cap)
        rank = {nid: i for i, nid in enumerate(order)}
        for ns in nodes.values():
            ns.prio = rank.get(ns.id, len(rank))
        if options.use_cache:
            self._assign_cache_keys(run, order)
        if options.fuse and not options.start_paused and options.backend == "local" and hasattr(self.executor.backend, "warm"):
            from engine.fusion import fuse_chains

            fuse_chains(run, lambda demand: self.executor.fits_ever(run, demand))
        run.min_cpu = 0.0 if any(n.cache_hit for n in nodes.values()) else min(
            (n.demand.cpu for n in nodes.values()), default=0.0)
        return run

    def _plan(self, workflow: Workflow, options: RunOptions, cap: Capacity) -> tuple[dict[str, Any], list[str]]:
        from engine.policies import priority_order
        from engine.problem import problem_from_workflow

        problem = problem_from_workflow(workflow.model_copy(update={"capacity": cap}), self.registry, cap,
                                        durations=options.durations)
        fallback = "critical_path" if options.policy == "auto" else options.policy
        if not options.predict and options.policy != "auto":
            return {}, priority_order(problem, options.policy)
        try:
            from engine.planner import plan as make_plan

            plan = make_plan(problem, policy=options.policy, budget_s=options.plan_budget_s)
        except ImportError:
            return {}, priority_order(problem, fallback)
        except Exception:  # a planner bug must not stop a run: admit by the plain rule
            log.exception("planning failed; running with the %s order", fallback)
            return {}, priority_order(problem, fallback)
        order = list(plan.order()) if options.policy == "auto" else priority_order(problem, options.policy)
        return plan.to_dict(), order

    def _assign_cache_keys(self, run: RunState, order: Iterable[str]) -> None:
        keys = workflow_cache_keys(run.workflow, self.registry,
                                   {nid: ns.params_json for nid, ns in run.nodes.items()})
        again = set()
        if run.options.rerun:  # "re-run from here": these and what follows compute, and replace their entries
            from engine.graphs import descendants

            again = descendants(run.options.rerun, ((e.source, e.target) for e in run.workflow.edges))
        for nid, key in keys.items():
            ns = run.nodes[nid]
            if ns.pinned:  # read from its pin whatever the options say (``_apply_pins``)
                continue
            ns.cache_key = key
            ns.cache_hit = bool(run.options.use_cache and nid not in again and self.results.has(key))
            ns.replace_cached = nid in again

    @staticmethod
    def supports_backend(name: str) -> bool:
        """Whether runs can go to backend ``name`` here (``ray`` needs the ``ray`` package)."""
        if name == "local":
            return True
        if name == "ray":
            import importlib.util

            return importlib.util.find_spec("ray") is not None
        return False

    # -- watching ---------------------------------------------------------------------------
    def _run(self, run_id: str) -> RunState:
        try:
            return self._runs[run_id]
        except KeyError:
            raise KeyError(f"no run {run_id!r} in this manager (finished runs are in the store)") from None

    def get(self, run_id: str) -> RunHandle | None:
        return RunHandle(self, run_id) if run_id in self._runs else None

    def snapshot(self, run_id: str) -> RunSnapshot:
        run = self._run(run_id)
        with self.executor.lock:
            return make_snapshot(run)

    def workflow(self, run_id: str) -> Workflow:
        """The workflow a run executes (immutable)."""
        return self._run(run_id).workflow

    def status(self, run_id: str) -> RunStatus:
        return self._run(run_id).status

    def outputs(self, run_id: str, node_id: str) -> dict[str, Any] | None:
        """A node's outputs; None before it finishes, or when they were released from memory
        (``keep_outputs_mb``, or the node's ``keep_outputs`` off) and the result cache does not
        hold them."""
        run = self._run(run_id)
        with self.executor.lock:
            ns = run.nodes[node_id]
            if ns.outputs is not None:
                return dict(ns.outputs) if isinstance(ns.outputs, dict) else ns.outputs
            released = run.outputs_released or ns.outputs_dropped
            key = ns.cache_key if released and run.options.use_cache else None
        if key and self.results.has(key):
            try:
                return self.results.load(key)
            except Exception as exc:  # a damaged cache entry means "no outputs", not a crash
                log.warning("cached outputs of %s/%s could not be read: %s", run_id, node_id, exc)
        return None

    def inputs(self, run_id: str, node_id: str) -> dict[str, Any] | None:
        """What a node starts (or started) with: its inputs by port, from the outputs of its
        finished upstream nodes (what a breakpoint lets one look at before the node runs): held in
        memory, or, on Ray while the run goes on, read from the object store. None when one of
        those outputs cannot be had: released from memory, or gone from Ray."""
        run = self._run(run_id)
        with self.executor.lock:
            ns = run.nodes[node_id]
            if any(src.status in (NodeStatus.DONE, NodeStatus.CACHED) and src.outputs is None for src, *_ in ns.routes):
                held = None
            else:
                return self.executor.runner.gather_inputs(run, ns)
        if run.options.backend == "ray" and not run.status.is_terminal:  # in the object store while it goes on
            return self.ray.inputs(run, node_id)
        return held

    def item_counts(self, run_id: str, node_id: str) -> dict[str, int]:
        """How many items each output port of a finished node gave, counted from the outputs held
        in memory (none when the node has not finished or its outputs were released: they are not
        read back from the result cache for this)."""
        run = self._run(run_id)
        with self.executor.lock:
            ns = run.nodes[node_id]
            outputs, spec = ns.outputs, ns.spec
        counts: dict[str, int] = {}
        for port in spec.outputs if isinstance(outputs, dict) else ():
            if (value := outputs.get(port.name)) is not None and (n := rows_of(value, port.kind)) is not None:
                counts[port.name] = n
        return counts

    def wait(self, run_id: str, timeout: float | None = None) -> RunStatus:
        run = self._run(run_id)
        run.finished.wait(timeout)
        return run.status

    def active_runs(self) -> list[str]:
        with self.executor.lock:
            remote = [rid for rid, r in self._runs.items()
                      if r.options.backend != "local" and not r.status.is_terminal]
            return [*self.executor.active, *remote]

    def runs(self) -> list[str]:
        return list(self._runs)

    # -- cancelling ---------------------------------------------------------------------------
    def cancel(self, run_id: str) -> None:
        run = self._run(run_id)
        if run.options.backend == "ray":
            self.ray.cancel(run)
        else:
            self.executor.cancel_run(run)

    def set_priority(self, run_id: str, priority: int) -> bool:
        """Change a local run's priority among the runs sharing this machine (a teacher moving a
        demo ahead of the class's runs, a long batch behind); True when it was still going."""
        return self.executor.set_priority(self._local(run_id), priority)

    def _worth_sampling(self) -> bool:
        """Whether the sampler should read the process: some run is active and not paused with
        nothing running (a run left paused for an hour would otherwise record 4 samples a second
        of an idle process)."""
        return any(not run.paused or run.running for run in list(self.executor.active.values()))

    def pause(self, run_id: str) -> bool:
        """Stop admitting the run's nodes; those running go on (Airflow's paused DAG, a teaching
        lab's "stop here"). True when it paused now. On Ray: no more ready nodes are handed to
        Ray; those it holds go on (``engine.backends.ray_run.Gate``)."""
        run = self._run(run_id)
        return self.ray.pause(run) if run.options.backend == "ray" else self.executor.pause_run(run)

    def resume(self, run_id: str) -> bool:
        """Admit the paused run's nodes again. True when it was paused."""
        run = self._run(run_id)
        resumed = self.ray.resume(run) if run.options.backend == "ray" else self.executor.resume_run(run)
        self.sampler.wake()
        return resumed

    def step(self, run_id: str, nodes: int = 1) -> bool:
        """Start the next ``nodes`` ready node(s) of a paused run (in its policy's order; a node
        waiting for resources counts when it starts; on Ray, in topological order, counted when
        it is handed to Ray), and stay paused: a run walked node by node. True when the run was
        paused."""
        run = self._run(run_id)
        stepped = (self.ray.resume(run, steps=nodes) if run.options.backend == "ray"
                   else self.executor.resume_run(run, steps=nodes))
        self.sampler.wake()
        return stepped

    def retry(self, run_id: str, node_id: str) -> bool:
        """Run a failed node again in its run (``RunOptions.pause_on_failure`` held it, and what
        follows it, with the run paused), typically after its settings were fixed (``amend``):
        it goes back to the ready nodes as a fresh attempt, and the next Step or Resume starts
        it. False when the run does not hold that node (it did not fail, or the run ended). On
        Ray, the run's driver puts it back (``RayRun.retry``)."""
        run = self._run(run_id)
        return self.ray.retry(run, node_id) if run.options.backend == "ray" else self.executor.retry_node(run, node_id)

    def amend(self, run_id: str, nodes: Iterable[NodeSpec]) -> dict[str, list[str]]:
        """Edit and continue: give nodes of a run under way that have not started new settings
        (``params``, ``resources``, ``lifecycle``, breakpoint, fault drill), typically while it is
        paused at a breakpoint; each of ``nodes`` names a node of the run by id. On Ray, for the
        nodes not handed to Ray yet. Returns what changed, by node. Raises AmendError, with the
        run unchanged, when a node started already, differs in more than its settings, or its
        new settings do not validate (``engine.amend``)."""
        from engine.amend import amend_run

        return amend_run(self, self._run(run_id), list(nodes))

    def _local(self, run_id: str) -> RunState:
        run = self._run(run_id)
        if run.options.backend != "local":
            raise ValueError(PRIORITY_LOCAL_ONLY)
        return run

    def cancel_node(self, run_id: str, node_id: str) -> None:
        run = self._run(run_id)
        if node_id not in run.nodes:
            raise KeyError(f"run {run_id!r} has no node {node_id!r}")
        if run.options.backend == "ray":
            self.ray.cancel_node(run, node_id)
        else:
            self.executor.cancel_node(run, node_id)

    def shutdown(self, timeout: float = 5.0) -> None:
        """Cancel every active run, wait up to ``timeout`` s for them, stop the threads."""
        if self._closed:
            return
        self._closed = True
        with self.executor.lock:
            active = list(self.executor.active.values())
        for run in active:
            self.executor.cancel_run(run, "the server is shutting down")
        deadline = time.monotonic() + timeout
        for run in active:
            run.finished.wait(max(0.0, deadline - time.monotonic()))
        for run in list(self._runs.values()):
            if run.options.backend == "ray" and not run.status.is_terminal:
                self.ray.cancel(run)
        self.sampler.stop()
        self.executor.close()
        self.backend.close()
        self.ray.close()

    # -- metrics --------------------------------------------------------------------------------
    def _sampled_threads(self) -> list[int]:
        """The threads whose CPU the sampler reads: the executor's workers and the threads that
        are or were lent to them (batch pools)."""
        return [*self.executor.worker_native_ids(), *helper_threads()]

    def _on_sample(self, s: Sample) -> None:
        ex = self.executor
        lent = lent_threads()
        with ex.lock:
            ex.last_rss_mb = s.rss_mb
            for run in ex.active.values():
                per_node: dict[str, dict[str, float]] = {}
                for nid in run.running:
                    ns = run.nodes[nid]
                    if ns.status != NodeStatus.RUNNING or ns.fused_into:
                        continue  # a fused node runs on its chain head's threads: counted there
                    own = ns.native_id or -1
                    read = [s.thread_cpu_percent[t] for t in (own, *lent.get(own, ())) if t in s.thread_cpu_percent]
                    pct = sum(read) if read else None
                    ns.cpu_percent = pct
                    ns.peak_rss_mb = max(ns.peak_rss_mb or 0.0, s.rss_mb)
                    if s.rss_mb > ns.mem_peak_mb:
                        ns.mem_peak_mb = s.rss_mb
                    per_node[nid] = {"cpu_percent": round(pct or 0.0, 2), "rss_mb": round(s.rss_mb, 1),
                                     "memory_mb": round(node_memory_so_far(ns) or 0.0, 1)}
                self._record_sample_locked(run, s, per_node)

    def _last_sample(self, run: RunState) -> None:
        """The run's last sample, as it ends (executor lock held): the process over the time since
        the previous sample, so a run shorter than the sampling period is measured too."""
        try:
            s = self.sampler.read()
        except Exception:  # a sampler glitch never stops runs
            log.exception("metric sampling failed")
            return
        if s is not None:
            self.executor.last_rss_mb = s.rss_mb
            self._record_sample_locked(run, s, {})

    def _record_sample_locked(self, run: RunState, s: Sample, per_node: dict[str, dict[str, float]]) -> None:
        event = MetricSampled(run_id=run.id, cpu_percent=round(s.cpu_percent, 2), rss_mb=round(s.rss_mb, 1),
                              per_node=per_node, gpu_memory_mb=s.gpu_memory_mb, time=s.time)
        run.samples.append({"time": s.time, "cpu_percent": event.cpu_percent, "rss_mb": event.rss_mb,
                            "per_node": per_node, "gpu_memory_mb": s.gpu_memory_mb})
        run.version += 1
        self.bus.emit(event)

    def _forget_old_runs(self) -> None:
        done = [rid for rid, r in self._runs.items() if r.status.is_terminal]
        for rid in done[: max(0, len(done) - KEEP_FINISHED)]:
            self._runs.pop(rid, None)

    def _release_old_outputs(self) -> None:
        """Keep finished runs' outputs within ``keep_outputs_mb``, newest first; the newest
        finished run keeps its outputs whatever their size. Without this a server kept every
        output of its last ``KEEP_FINISHED`` runs (a 512-image pipeline: 24 MB a run, 4.8 GB)."""
        budget = self.keep_outputs_mb * 2**20
        with self.executor.lock:
            finished = [r for r in self._runs.values()
                        if r.status.is_terminal and r.finished.is_set() and not r.outputs_released]
            finished.sort(key=lambda r: r.finished_at or r.created)
            kept = 0.0
            for i, run in enumerate(reversed(finished)):
                if run.output_bytes is None:
                    run.output_bytes = sum(payload_bytes(ns.outputs) if ns.output_bytes is None else ns.output_bytes
                                           for ns in run.nodes.values() if ns.outputs is not None)
                kept += run.output_bytes
                if i > 0 and kept > budget:
                    for ns in run.nodes.values():
                        ns.outputs = None
                    run.outputs_released = True
                    run.version += 1


def _apply_pins(workflow: Workflow, nodes: dict[str, NodeState]) -> None:
    """Cut the wires into pinned nodes (they take their outputs from the result cache under their
    pin's key, even with the cache off or asked to re-run, so they wait for nothing) and mark the
    nodes that then feed nothing needed as idle (never run)."""
    if not any(n.pin is not None for n in workflow.nodes):
        return
    from engine.workflow import pinned_only_feeders

    for node in workflow.nodes:
        if node.pin is None:
            continue
        ns = nodes[node.id]
        ns.pinned = True
        for pred in ns.preds:
            nodes[pred].succs.remove(ns.id)
        ns.preds, ns.in_edges = [], []
    for nid in pinned_only_feeders(workflow):
        nodes[nid].idle = True
        nodes[nid].reason = "not run: its outputs only feed pinned nodes"
    for node in workflow.nodes:
        if node.pin is not None and not nodes[node.id].idle:
            nodes[node.id].cache_key, nodes[node.id].cache_hit = node.pin.key, True


def _register_shutdown(manager: RunManager) -> None:
    """Cancel runs when the interpreter starts shutting down, before thread joins (see notes 1.5)."""
    ref = weakref.ref(manager)

    def hook() -> None:
        m = ref()
        if m is not None:
            m.shutdown(timeout=1.0)

    try:
        threading._register_atexit(hook)  # type: ignore[attr-defined]  # private CPython API
    except (AttributeError, RuntimeError):  # other interpreters, or already shutting down
        import atexit

        atexit.register(hook)
