"""Edit and continue: change the settings of nodes that have not started yet in a run under way,
typically one paused at a breakpoint ("the threshold is wrong: set it to 0.7, then Step").

A run's graph is fixed once it started; what a node computes with is read when the node starts.
So a node that has not started may take new ``params``, ``resources``, ``lifecycle``, a
breakpoint (and its condition) or a fault drill (``SETTINGS``); its label and place are how it is
drawn and never count. Anything else (its agent, pin, disabled or bypass switch, the nodes and
wires) needs a new run, and says so.

``amend_run`` checks the changed workflow as a submit would (``engine.validation``), works out
the new parameters, demands and cache keys off the executor's lock, then, under it, checks again
that the nodes have not started meanwhile and swaps them in: the run's workflow (what its record
and later resumes read), each node's parsed parameters, demand and lifecycle, its breakpoint, the
cache keys of the nodes after it (a changed node's result, and all that follows it, is no longer
the cached one). Each changed node logs what changed and a ``NodeAmended`` event records it.
On Ray the run's driver swaps the nodes' settings in between two of its steps, or refuses them all
when one was handed to Ray already (``RayRun.amend``); the run's record then follows as above.

``pending_changes`` is the designer's side: what of the drawn workflow can still go into the run
it started, what comes too late (the node ran already), and what no run under way can take.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from engine.errors import AmendError, shown_names
from engine.events import NodeAmended, NodeStatus
from engine.fusion import unfuse
from engine.items import node_demand, planned_items
from engine.results import canonical_params_json, workflow_cache_keys
from engine.versions import runnable
from engine.workflow import NodeSpec, Workflow, without_bypassed, without_disabled

if TYPE_CHECKING:
    from engine.registry import Registry
    from engine.runs import RunManager
    from engine.runstate import NodeState, RunState

SETTINGS = ("params", "resources", "lifecycle", "breakpoint", "break_when", "faults")
CHANGED_LOG = "settings changed during the run: "  # the log line of a changed node (what the monitor reads back)
DRAWN = ("id", "label", "position")  # how a node is drawn (and named): never a change to a run
NOT_STARTED = frozenset({NodeStatus.PENDING, NodeStatus.WAITING_INPUTS, NodeStatus.QUEUED,
                         NodeStatus.WAITING_RESOURCE})
_UNSET = object()


def _shown(values: Mapping[str, Any], key: str) -> str:
    value = values.get(key, _UNSET)
    if value is _UNSET:
        return "(default)"
    text = repr(value) if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)
    return text if len(text) <= 60 else text[:57] + "..."


def _flat(values: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in values.items():
        if isinstance(value, Mapping) and value:
            out.update(_flat(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def _diff(before: Mapping[str, Any], after: Mapping[str, Any], prefix: str) -> list[str]:
    old, new = _flat(before), _flat(after)
    return [f"{prefix}{key} {_shown(old, key)} -> {_shown(new, key)}"
            for key in sorted(set(old) | set(new)) if old.get(key, _UNSET) != new.get(key, _UNSET)]


def _described(value: Any) -> str:
    return "none" if value is None else value.describe()


def fixed_changes(before: NodeSpec, after: NodeSpec) -> list[str]:
    """The fields of a node, other than its settings and looks, that differ (``agent``, ``pin``...)."""
    return [name for name in NodeSpec.model_fields if name not in SETTINGS and name not in DRAWN
            and getattr(before, name) != getattr(after, name)]


def setting_changes(before: NodeSpec, after: NodeSpec) -> list[str]:
    """What differs between two versions of one node in the settings a run under way can take,
    a line each (``threshold 0.5 -> 0.7``, ``resources.memory_mb (default) -> 512``); empty when
    nothing does. Raises AmendError when something else differs (its agent, pin, switches)."""
    fixed = fixed_changes(before, after)
    if fixed:
        raise AmendError(f"node {before.id!r}: its {' and '.join(fixed)} changed, which a run under way cannot "
                         "take (only a node's parameters, resources, lifecycle, breakpoint and fault drill can "
                         "change before it starts); run the workflow again for that")
    lines = _diff(before.params, after.params, "")
    lines += _diff(before.resources, after.resources, "resources.")
    lines += _diff(before.lifecycle, after.lifecycle, "lifecycle.")
    if before.breakpoint != after.breakpoint:
        lines.append(f"breakpoint {'off -> on' if after.breakpoint else 'on -> off'}")
    if before.break_when != after.break_when:
        lines.append(f"breakpoint condition {_described(before.break_when)} -> {_described(after.break_when)}")
    if before.faults != after.faults:
        lines.append(f"fault drill {_described(before.faults)} -> {_described(after.faults)}")
    return lines


def as_run(workflow: Workflow, registry: Registry) -> Workflow:
    """``workflow`` as a run of it executes it (components expanded, params upgraded, disabled
    nodes and what follows them left out, bypassed nodes wired past): what ``pending_changes``
    compares with a run's workflow. Raises WorkflowInvalidError for a broken component."""
    return without_bypassed(without_disabled(runnable(workflow, registry)))


@dataclass(frozen=True)
class Pending:
    """What of a drawn workflow differs from the run it started (``pending_changes``)."""

    changes: dict[str, list[str]] = field(default_factory=dict)  # nodes not started yet: the run can take them
    too_late: dict[str, list[str]] = field(default_factory=dict)  # nodes that started or ended
    other: list[str] = field(default_factory=list)  # what no run under way can take (nodes, wires, agents)

    def __bool__(self) -> bool:
        return bool(self.changes or self.too_late or self.other)


def _wires(workflow: Workflow) -> set[tuple[str, str, str, str]]:
    return {(e.source, e.source_port or "", e.target, e.target_port or "") for e in workflow.edges}


def pending_changes(ran: Workflow, now: Workflow, statuses: Mapping[str, str],
                    held: Collection[str] = ()) -> Pending:
    """How ``now`` (a drawn workflow as it would run, ``as_run``) differs from ``ran`` (what a run
    under way executes), given the run's node statuses: the changed nodes that have not started
    (or failed and are ``held`` for a retry: which ``amend_run`` can take), those that started or
    ended, and what no run can take."""
    changes: dict[str, list[str]] = {}
    too_late: dict[str, list[str]] = {}
    other: list[str] = []
    waiting = {s.value for s in NOT_STARTED}
    drawn = {n.id: n for n in now.nodes}  # by id: ``Workflow.node`` looks through the list
    for node in ran.nodes:
        new = drawn.get(node.id)
        if new is None:
            other.append(f"{node.id} was removed or switched off")
            continue
        if new is node or new == node:
            continue
        if fixed := fixed_changes(node, new):
            other.append(f"{node.id}: its {' and '.join(fixed)} changed")
            continue
        if lines := setting_changes(node, new):
            (changes if statuses.get(node.id) in waiting or node.id in held else too_late)[node.id] = lines
    ran_ids = set(ran.node_ids())
    added = [n.id for n in now.nodes if n.id not in ran_ids]
    if added:
        other.append(f"{shown_names(added, 3, quoted=False)} {'is' if len(added) == 1 else 'are'} new")
    if _wires(ran) & _wires(now) != _wires(ran) | _wires(now) and not added:
        other.append("the wires changed")
    return Pending(changes, too_late, other)


def _checked(node: NodeSpec) -> NodeSpec:
    """``node`` validated again (one built with ``model_copy(update=...)`` never was)."""
    try:
        return NodeSpec.model_validate(node.model_dump(warnings=False))
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'node'}: {e['msg']}" for e in exc.errors()[:3])
        raise AmendError(f"node {node.id!r}: {problems}") from None


def _open(run: RunState, ns: NodeState) -> bool:
    """Whether ``ns`` may still change: not started, or failed and held for a retry (``pause_on_failure``)."""
    return (ns.status in NOT_STARTED and not ns.admitted) or ns.id in run.held


def _check_not_started(run: RunState, ns: NodeState) -> None:
    if not _open(run, ns):
        raise AmendError(f"node {ns.id!r} of run {run.id} has {'started' if not ns.status.is_terminal else 'ended'} "
                         f"({ns.status.value}): a node's settings can change only before it starts; run the "
                         "workflow again from it for its new settings")
    if ns.pinned:
        raise AmendError(f"node {ns.id!r} of run {run.id} takes its outputs from its pin: unpin it and run again")
    head = run.nodes.get(ns.fused_into or "")
    if head is not None and (head.admitted or head.status not in NOT_STARTED):
        raise AmendError(f"node {ns.id!r} of run {run.id} runs inside the fused chain {head.id!r} started: it can no "
                         "longer change; run the workflow again from it for its new settings")


def amend_run(manager: RunManager, run: RunState, nodes: Sequence[NodeSpec]) -> dict[str, list[str]]:
    """Give nodes of ``run`` that have not started the settings of ``nodes`` (each names a node
    of the run by id); returns what changed, by node (nothing for nodes that are the same).

    On Ray the run's driver takes them (``RayRun.amend``) for nodes it has not handed to Ray.
    Raises AmendError (the run has ended; a node is not in it, has started, or differs in more
    than its settings; the changed workflow does not validate; a new demand never fits the run's
    capacity): then nothing of the run changed."""
    from engine.validation import validate

    on_ray = run.options.backend == "ray"
    if run.status.is_terminal:
        raise AmendError(f"run {run.id} has ended ({run.status.value}): change the workflow and run it again")
    registry, executor = manager.registry, manager.executor
    with manager.amend_lock:
        ran = run.workflow
        changed: dict[str, NodeSpec] = {}
        changes: dict[str, list[str]] = {}
        for node in nodes:
            node = _checked(node)
            old = ran.node(node.id)
            if old is None:
                raise AmendError(f"run {run.id} has no node {node.id!r}; its nodes are: "
                                 f"{shown_names(ran.node_ids(), 10)}")
            lines = setting_changes(old, node)
            if lines:
                changes[node.id] = lines
                changed[node.id] = node.model_copy(update={"label": old.label, "position": old.position})
        if not changes:
            return {}
        with executor.lock:  # fail early, before validating, when a node started already
            for nid in changes:
                _check_not_started(run, run.nodes[nid])
        workflow = ran.model_copy(update={"nodes": [changed.get(n.id, n) for n in ran.nodes]})
        issues = validate(workflow, registry, capacity=run.capacity)
        if on_ray:
            issues += manager.ray.validate(workflow)  # demands no single Ray node can meet
        errors = [i for i in issues if i.is_error]
        if errors:
            listed = "; ".join(f"[{i.code}] {i.message}" + (f" ({i.hint})" if i.hint else "") for i in errors[:5])
            raise AmendError(f"the new settings of {shown_names(list(changes), 5)} do not validate, so run {run.id} "
                             f"goes on as it was: {listed}")
        fresh: dict[str, tuple[Any, str, Any]] = {}  # node -> (params, params json, lifecycle)
        for nid, node in changed.items():
            spec = registry.get(node.agent)
            params = spec.parse_params(node.params)
            fresh[nid] = (params, canonical_params_json(params), spec.lifecycle.merged(node.lifecycle))
        sized = planned_items(workflow, registry) if any(ns.spec.memory_grows for ns in run.nodes.values()) else None
        demands = {}
        by_id = {n.id: n for n in workflow.nodes}
        for nid, ns in run.nodes.items():
            node = by_id.get(nid)
            if not _open(run, ns) or node is None or (nid not in changed and not ns.spec.memory_grows):
                continue
            params = fresh[nid][0] if nid in fresh else ns.params
            demands[nid] = node_demand(node, ns.spec, params, sized if ns.spec.memory_grows else None)
        keys: dict[str, str] = {}
        if run.options.use_cache:
            jsons = {nid: fresh[nid][1] if nid in fresh else ns.params_json for nid, ns in run.nodes.items()}
            keys = workflow_cache_keys(workflow, registry, jsons)
        if on_ray:  # the driver swaps them in, or refuses them all when one was handed to Ray meanwhile
            manager.ray.amend(run, workflow, {nid: _turned(ran.node(nid), changed[nid]) for nid in changes})
        with executor.lock:
            for nid in changes if not on_ray else ():  # again: a node may have started while the workflow was checked
                _check_not_started(run, run.nodes[nid])
            for nid, demand in demands.items() if not on_ray else ():
                if nid in changed and not executor.fits_ever(run, demand):
                    raise AmendError(f"node {nid!r} would need {demand.amounts()} on {demand.device}, which never "
                                     f"fits run {run.id}'s capacity ({run.capacity.describe()}); lower its resources")
            _apply(manager, run, workflow, changes, fresh, demands, keys)
        return changes


def _turned(before: NodeSpec, after: NodeSpec) -> bool | None:
    """Whether a change turned the node's breakpoint on (True), off (False), or neither (None)."""
    return None if before.breakpoint == after.breakpoint else after.breakpoint


def _apply(manager: RunManager, run: RunState, workflow: Workflow, changes: dict[str, list[str]],
           fresh: dict[str, tuple[Any, str, Any]], demands: dict[str, Any], keys: dict[str, str]) -> None:
    """Swap the checked settings in (under the executor's lock)."""
    executor = manager.executor
    for nid in changes:  # a changed node runs on its own: its chain's demand was worked out for the old settings
        ns = run.nodes[nid]
        for head in {ns.fused_into, nid if ns.chain else None} - {None}:
            _unfuse_waiting(run.nodes[head])
    for nid, demand in demands.items():
        ns = run.nodes[nid]
        if not _open(run, ns) or ns.chain or ns.fused_into:
            continue  # started meanwhile (a memory_grows node after the changed ones), or fused: keep
        ns.demand, ns.demand_dict = demand, demand.model_dump()
    for nid, (params, params_json, lifecycle) in fresh.items():
        ns, node = run.nodes[nid], workflow.node(nid)
        ns.params, ns.params_json, ns.lifecycle, ns.faults = params, params_json, lifecycle, node.faults or None
        turned = _turned(run.workflow.node(nid), node)  # one already on was used, or is ahead: as it was
        if turned:
            run.breakpoints.add(nid)
        elif turned is False:
            run.breakpoints.discard(nid)
        if node.breakpoint and node.break_when is not None:
            run.break_when[nid] = node.break_when
        else:
            run.break_when.pop(nid, None)
    if run.options.use_cache:
        results, again = manager.results, set(run.options.rerun or ())
        for nid, ns in run.nodes.items():
            if ns.pinned or not _open(run, ns):
                continue
            key = keys.get(nid)
            if key != ns.cache_key:
                ns.cache_key = key
                ns.cache_hit = bool(key and not ns.replace_cached and nid not in again and results.has(key))
    run.min_cpu = 0.0 if any(n.cache_hit for n in run.nodes.values()) else min(
        (n.demand.cpu for n in run.nodes.values()), default=0.0)
    run.workflow = workflow
    run.version += 1
    for nid, lines in changes.items():
        ns = run.nodes[nid]
        run.amended.setdefault(nid, []).extend(lines)
        executor.runner.log(run, ns, CHANGED_LOG + "; ".join(lines))
        executor.bus.emit(NodeAmended(run_id=run.id, node_id=nid, changes=tuple(lines),
                                      node=workflow.node(nid).model_dump(mode="json", exclude_none=True)))
    executor.admit_locked()


def _unfuse_waiting(head: NodeState) -> None:
    """Undo a chain that has not started: its head takes back its own demand."""
    if not head.chain:
        return
    unfuse(head)
    if head.own_demand is not None:
        head.demand, head.own_demand = head.own_demand, None
        head.demand_dict = head.demand.model_dump()
