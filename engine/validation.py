"""Workflow validation: every finding at once, as ``Issue`` objects; never raises for a user's mistake.

``validate`` checks nodes (agents, parameters, overrides, capacity), edges (nodes, ports, kinds,
duplicates) and the graph (cycles, missing inputs, unused outputs). ``validate_text`` also turns
an unparseable file into an ``invalid_file`` finding. Iterative and linear: 10,000 nodes in well
under a second.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

from pydantic import ValidationError

from engine.agents.tables import never_matches
from engine.components import expand_components, has_instances
from engine.errors import CapacityError, DataPathError, WorkflowFileError, shown_names, suggest
from engine.graphs import find_cycles, format_cycle
from engine.issues import Issue, IssueCode
from engine.items import PlannedItems, planned_items
from engine.kinds import DataKind, is_compatible, score_classes
from engine.registry import Registry, default_registry
from engine.resources import Capacity, ResourceDemand, ResourceLedger
from engine.settings import data_dir, resolve_data_path
from engine.spec import AgentSpec, Lifecycle, PortSpec, params_error_details
from engine.versions import Newer, Upgrade, newer_than_installed, upgrade
from engine.workflow import COMPONENT_PREFIX, BreakCondition, EdgeSpec, NodeSpec, Workflow, load_workflow

__all__ = ["errors_of", "resolve_capacity", "validate", "validate_text"]

_SCHEMA_HINT = "see `servicegrid agents --json` for the agent's parameter schema"


@dataclass
class _Context:
    """What the checks share: the workflow's nodes by id, their specs, and the findings so far."""

    workflow: Workflow
    registry: Registry
    nodes: dict[str, NodeSpec] = field(default_factory=dict)
    specs: dict[str, AgentSpec] = field(default_factory=dict)
    demands: dict[str, ResourceDemand] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)  # parsed params by node; None: invalid
    # memory MB grown for the items, the items, and the image shape where it grows with the images too
    grown: dict[str, tuple[float, int | None, tuple[int, int, int] | None]] = field(default_factory=dict)
    issues: list[Issue] = field(default_factory=list)
    _sized: PlannedItems | None = None

    def sized(self) -> PlannedItems:
        """The planned item counts (computed once, on the first node whose memory grows with them)."""
        if self._sized is None:
            self._sized = planned_items(self.workflow, self.registry)
        return self._sized

    def add(self, code: IssueCode, message: str, *, node: str | None = None, port: str | None = None,
            hint: str = "", severity: str = "error") -> None:
        self.issues.append(Issue(code.value, message, node, port, hint, severity))  # type: ignore[arg-type]


@dataclass(frozen=True)
class _Link:
    """An edge whose endpoints exist, with the ports it resolves to (None: unresolved)."""

    source: str
    target: str
    source_port: str | None
    target_port: str | None
    kinds_fit: bool = True  # False: a type_mismatch, so what the data holds is not checked too


def resolve_capacity(workflow: Workflow, capacity: Capacity | None = None) -> Capacity:
    """The capacity to check against: ``capacity``, else the workflow's, filled from this machine."""
    chosen = capacity if capacity is not None else (workflow.capacity or Capacity())
    if chosen.cpu is not None and chosen.memory_mb is not None and chosen.gpus is not None:
        return chosen  # fully specified: no need to probe the machine (and import torch)
    from engine.devices import machine_capacity

    return chosen.resolved(machine_capacity())


def validate(workflow: Workflow, registry: Registry | None = None,
             capacity: Capacity | None = None, *, sized: PlannedItems | None = None) -> list[Issue]:
    """Every finding in ``workflow``: errors first, then warnings, each group in node order.

    ``capacity`` defaults to the workflow's own capacity, with unset dimensions taken from this
    machine (``engine.devices.machine_capacity``). ``sized``: the workflow's planned items, when
    the caller has them already (the designer draws its wires from the same).
    """
    registry = registry if registry is not None else default_registry()
    upgraded, changes = upgrade(workflow, registry)  # params saved for an older agent: checked as they will run
    if not (found := _version_issues(changes, newer_than_installed(workflow, registry))):
        return _current(workflow, registry, capacity, sized)
    ctx = _Context(upgraded, registry)
    ctx.issues = [*_current(upgraded, registry, capacity, None if changes else sized), *found]
    ctx.nodes = {n.id: n for n in upgraded.nodes}
    return _sorted(ctx)


def _current(workflow: Workflow, registry: Registry, capacity: Capacity | None,
             sized: PlannedItems | None) -> list[Issue]:
    """``validate`` of a workflow whose params are for its agents' current versions."""
    if has_instances(workflow):  # what runs is the expansion: check that, and the components themselves
        flat, found = expand_components(workflow)
        # a drawn workflow's planned items are its expansion's (engine.items.planned_items)
        ctx = _checked(flat, registry, capacity, sized)
        ctx.issues = [*found, *ctx.issues, *_idle_instance_breaks(workflow)]
        order: dict[str, Any] = {}  # an instance sorts where its first node inside does
        for node in flat.nodes:
            parts = node.id.split("/")
            for depth in range(1, len(parts) + 1):
                order.setdefault("/".join(parts[:depth]), node)
        ctx.nodes = order
        return _sorted(ctx)
    return _sorted(_checked(workflow, registry, capacity, sized))


def _version_issues(changes: list[Upgrade], newer: list[Newer]) -> list[Issue]:
    """A warning per node whose params were upgraded for its agent's version, and per node saved for
    a newer version of its agent than the one installed."""
    out = []
    for change in changes:
        inside, _, node_id = change.node.rpartition("/")
        where = f"component {inside!r}, node {node_id!r}" if inside else f"node {node_id!r}"
        out.append(Issue(IssueCode.AGENT_UPGRADED.value,
                         f"{where}: {change.agent} {change.now} changed its parameters since "
                         f"{change.was or 'the version it was saved with'} ({'; '.join(change.notes)}); runs use "
                         "the upgraded parameters", None if inside else node_id, None,
                         "save the workflow to keep them (the designer saves it on your next change; `servicegrid "
                         "upgrade FILE` rewrites a file)", "warning"))
    for item in newer:
        out.append(Issue(IssueCode.AGENT_NEWER.value,
                         f"node {item.node!r} was saved for {item.agent} {item.saved}, newer than the {item.installed} "
                         "installed here: its parameters may not be understood", item.node, None,
                         "upgrade ServiceGrid (or the package that provides the agent) before relying on it",
                         "warning"))
    return out


def _checked(workflow: Workflow, registry: Registry, capacity: Capacity | None,
             sized: PlannedItems | None) -> _Context:
    """Every check on a workflow without component instances (or with those left unexpanded)."""
    ctx = _Context(workflow, registry, _sized=sized)
    if not workflow.nodes:
        ctx.add(IssueCode.EMPTY_WORKFLOW, "the workflow has no nodes", severity="warning",
                hint="add a node from the palette (or to `nodes` in the file)")
        return ctx
    _check_nodes(ctx)
    _check_capacity(ctx, resolve_capacity(workflow, capacity))
    links = _check_edges(ctx)
    _check_inputs(ctx, links)
    _check_columns(ctx, links)
    _check_classes(ctx, links)
    _check_matches(ctx, links)
    _check_shapes(ctx, links)
    _check_cycles(ctx, links)
    _check_unused(ctx, links)
    _check_pins(ctx)
    _check_drills(ctx)
    _check_bypass(ctx, links)
    _check_breaks(ctx, links)
    return ctx


def validate_text(source: str | Path, registry: Registry | None = None,
                  capacity: Capacity | None = None) -> tuple[Workflow | None, list[Issue]]:
    """Load and validate a workflow given as text (``str``) or as a file (``Path``).

    A file that does not parse or does not follow the schema gives ``(None, [invalid_file])``.

    Raises:
        OSError, UnicodeDecodeError: the file cannot be read (the caller reports it).
    """
    try:
        workflow = load_workflow(source)
    except WorkflowFileError as exc:
        return None, [Issue(IssueCode.INVALID_FILE.value, str(exc), hint=exc.hint)]
    return workflow, validate(workflow, registry, capacity)


# -- nodes ------------------------------------------------------------------------------------


def _check_nodes(ctx: _Context) -> None:
    known = ctx.registry.names()
    for node in ctx.workflow.nodes:
        if node.id in ctx.nodes:
            ctx.add(IssueCode.DUPLICATE_NODE, f"two nodes have the id {node.id!r}", node=node.id,
                    hint="give every node a unique id (the second one is ignored)")
            continue
        ctx.nodes[node.id] = node
        if node.agent.startswith(COMPONENT_PREFIX):  # an instance left unexpanded: expand_components said why
            continue
        if node.agent not in ctx.registry:
            close = suggest(node.agent, known)
            hint = f"did you mean {' or '.join(repr(c) for c in close)}?" if close else \
                "run `servicegrid agents` to list the registered agents"
            ctx.add(IssueCode.UNKNOWN_AGENT, f"node {node.id!r}: no agent named {node.agent!r} is registered",
                    node=node.id, hint=hint)
            continue
        spec = ctx.registry.get(node.agent)
        ctx.specs[node.id] = spec
        _check_params(ctx, node, spec)
        _check_files(ctx, node, spec)
        _check_overrides(ctx, node, spec)


def _check_params(ctx: _Context, node: NodeSpec, spec: AgentSpec) -> None:
    """Parse the node's params once (``ctx.params``, for the checks after this one) and report
    what is wrong with them."""
    ctx.params[node.id] = None
    try:
        ctx.params[node.id] = spec.parse_params(node.params)
    except ValidationError as exc:
        fields = list(spec.params.model_fields)
        for name, value, constraint in params_error_details(exc):
            if constraint.startswith("Extra inputs"):
                close = suggest(name, fields)
                hint = f"did you mean {close[0]!r}?" if close else \
                    f"{spec.name} takes {', '.join(fields) or 'no parameters'}"
                ctx.add(IssueCode.INVALID_PARAM, f"node {node.id!r}: unknown parameter {name!r}",
                        node=node.id, hint=hint)
            else:
                ctx.add(IssueCode.INVALID_PARAM,
                        f"node {node.id!r}: parameter {name} = {value!r} is invalid: {constraint}",
                        node=node.id, hint=f"change {name}; {_SCHEMA_HINT}")
    except Exception as exc:  # a parameter model's own validator may raise anything
        ctx.add(IssueCode.INVALID_PARAM, f"node {node.id!r}: parameters rejected: {exc}",
                node=node.id, hint=_SCHEMA_HINT)


def _check_files(ctx: _Context, node: NodeSpec, spec: AgentSpec) -> None:
    """The files a node reads (``AgentSpec.files_fn``) are named and exist here."""
    params = ctx.params.get(node.id)
    if spec.files_fn is None or params is None:  # invalid params: reported by _check_params
        return
    files = spec.files_fn(params)
    if files is None:
        return
    param, paths = files
    where = "upload the file(s) in the designer's properties panel (Your files)"
    if not [p for p in paths if str(p).strip()]:
        ctx.add(IssueCode.MISSING_FILE, f"node {node.id!r} ({spec.name}) names no file to read",
                node=node.id, hint=f"{where}, or set `{param}` to a path on this machine")
        return
    try:
        missing = [p for p in paths if not resolve_data_path(str(p)).is_file()]
    except DataPathError as exc:
        ctx.add(IssueCode.MISSING_FILE, f"node {node.id!r} ({spec.name}): {exc}", node=node.id,
                hint=f"{where}, or set `{param}` to a file inside those folders")
        return
    if missing:
        shown = ", ".join(repr(p) for p in missing[:3]) + (f" and {len(missing) - 3} more" if len(missing) > 3 else "")
        ctx.add(IssueCode.MISSING_FILE,
                f"node {node.id!r} ({spec.name}) reads {shown}, not found on this machine",
                node=node.id, hint=f"{where}, or correct `{param}` (relative paths start in the data "
                f"folder, {data_dir()})")
        return
    problem = spec.file_check_fn(params) if spec.file_check_fn is not None else None
    if problem:
        ctx.add(IssueCode.UNREADABLE_FILE, f"node {node.id!r} ({spec.name}): {problem}", node=node.id,
                hint=f"correct the file, then upload it again in the designer's properties panel (Your "
                f"files), or set `{param}` to another file")


def _check_overrides(ctx: _Context, node: NodeSpec, spec: AgentSpec) -> None:
    try:
        demand = spec.resources.merged(node.resources)
        grows = spec.memory_grows and "memory_mb" not in (node.resources or {})
        if grows or spec.gpu_memory_fn is not None:
            params = ctx.params.get(node.id)  # None when invalid: the declared memory still counts
            grown = ctx.sized().demand(node.id, spec, params, node.resources, node.lifecycle)
            if grows and grown.memory_mb > demand.memory_mb:
                items = ctx.sized().handled(node.id, spec)
                ctx.grown[node.id] = (grown.memory_mb - demand.memory_mb, items, _larger_image(ctx, node, spec))
                demand = demand.model_copy(update={"memory_mb": grown.memory_mb})
            demand = demand.model_copy(update={"gpu_memory_mb": grown.gpu_memory_mb})  # one batch's, on a GPU
        if spec.memory_grows and not grows:  # the node's own memory_mb
            _check_fixed_memory(ctx, node, spec, demand.memory_mb)
        ctx.demands[node.id] = demand
    except CapacityError as exc:
        ctx.add(IssueCode.INVALID_RESOURCES, f"node {node.id!r}: bad resource override: {exc}",
                node=node.id, hint="resources take cpu, memory_mb, gpu_memory_mb (numbers >= 0), "
                "device (cpu, cuda or any) and custom ({name: amount})")
    if node.lifecycle:
        try:
            spec.lifecycle.merged(node.lifecycle)
        except ValidationError as exc:
            detail = "; ".join(_lifecycle_problem(f, v, c) for f, v, c in params_error_details(exc))
            sections = [f"{name} {{{', '.join(rules)}}}" for name, rules in _LIFECYCLE_RULES.items()]
            ctx.add(IssueCode.INVALID_LIFECYCLE, f"node {node.id!r}: bad lifecycle override: {detail}",
                    node=node.id, hint=f"lifecycle takes {', '.join(sections[:-1])} and {sections[-1]}")
        except Exception as exc:
            ctx.add(IssueCode.INVALID_LIFECYCLE, f"node {node.id!r}: bad lifecycle override: {exc}",
                    node=node.id, hint="lifecycle sections (start, execution, exit) are objects")


def _larger_image(ctx: _Context, node: NodeSpec, spec: AgentSpec) -> tuple[int, int, int] | None:
    """The larger of the images a node receives and emits, for an agent whose memory grows with
    them (None otherwise, or when the workflow cannot tell)."""
    return ctx.sized().images(node.id).larger if spec.per_image_fn is not None else None


def _of_size(shape: tuple[int, int, int] | None) -> str:
    return f" of {shape[1]} x {shape[2]} px" if shape is not None else ""


def _check_fixed_memory(ctx: _Context, node: NodeSpec, spec: AgentSpec, reserved: float) -> None:
    """A node whose own ``memory_mb`` is below what its agent declares for the data planned for
    it (a template's figure kept after its images were made larger): the run would reserve less
    than it uses, and the scheduler admit other nodes into the difference."""
    params = ctx.params.get(node.id)
    if params is None:
        return
    sized = ctx.sized()
    items = sized.handled(node.id, spec)
    need = sized.demand(node.id, spec, params).memory_mb
    if need <= reserved:
        return
    count = f"{items:,} items" if items is not None else "a typical number of items"
    ctx.add(IssueCode.MEMORY_BELOW_NEED,
            f"node {node.id!r} reserves {reserved:,.0f} MB (its memory_mb) but its agent declares "
            f"{need:,.0f} MB for the {count}{_of_size(_larger_image(ctx, node, spec))} it handles: "
            "the run may use more than it reserves",
            node=node.id, severity="warning",
            hint=f"raise the node's memory_mb to {need:,.0f} or more, or remove it so that the reservation "
            "grows with the data")


# the lifecycle's sections and the rules each takes, from the model itself (engine.spec.Lifecycle)
_LIFECYCLE_RULES = {name: list(f.annotation.model_fields) for name, f in Lifecycle.model_fields.items()}


def _lifecycle_problem(field: str, value: Any, constraint: str) -> str:
    """One problem of a lifecycle override, said so that it can be fixed: a rule written at the
    top level instead of in its section (``{"retries": 2}``) says which section it belongs in; an
    unknown name gets the closest known one."""
    if not constraint.startswith("Extra inputs"):
        return f"{field} = {value!r}: {constraint}"
    *section, name = field.split(".")
    if not section:
        home = next((s for s, names in _LIFECYCLE_RULES.items() if name in names), None)
        if home is not None:
            return f"{name!r} belongs in the {home!r} section: write {json.dumps({home: {name: value}}, default=str)}"
        close = suggest(name, list(_LIFECYCLE_RULES))
        return f"unknown section {name!r}" + (f" (did you mean {close[0]!r}?)" if close else "")
    known = _LIFECYCLE_RULES.get(section[-1], [])
    close = suggest(name, known)
    return f"{field}: {section[-1]!r} has no rule {name!r}" + (
        f" (did you mean {close[0]!r}?)" if close else f" (it takes {', '.join(known)})")


def _check_capacity(ctx: _Context, capacity: Capacity) -> None:
    try:
        ledger = ResourceLedger(capacity)
    except CapacityError as exc:
        ctx.add(IssueCode.CAPACITY_EXCEEDED, f"the capacity is unusable: {exc}",
                hint="set cpu and memory_mb in the workflow's capacity")
        return
    fits: dict[int, bool] = {}  # nodes without overrides share their agent's demand object
    for node_id, demand in ctx.demands.items():
        ok = fits.get(id(demand))
        if ok is None:
            ok = fits[id(demand)] = ledger.could_ever_fit(demand)
        if ok:
            continue
        if demand.device == "cuda" and not capacity.has_gpu:
            ctx.add(IssueCode.NO_DEVICE,
                    f"node {node_id!r} ({ctx.specs[node_id].name}) needs a CUDA GPU, but the capacity "
                    f"has none ({capacity.describe()})", node=node_id,
                    hint='set "device": "any" in the node\'s resources to allow the CPU, run on a GPU '
                    "machine, or simulate one with --capacity gpus=1,gpu_memory_mb=8000")
        else:
            key, need, have = _worst_shortfall(ledger, demand)
            extra, items, shape = ctx.grown.get(node_id, (0.0, None, None))
            why = ""
            if key == "memory_mb" and extra:
                count = f"{items:,} items" if items is not None else "an unknown number of items (assumed typical)"
                why = f" ({extra:,.0f} MB of it for the {count}{_of_size(shape)} it handles)"
            hint = f"lower the node's {_field(key)} or raise the capacity's"
            if key.endswith("gpu_memory_mb") and ctx.specs[node_id].gpu_memory_fn is not None:  # one batch's
                hint = ("lower the node's batch size (lifecycle execution.batch_size), set its gpu_memory_mb, "
                        "allow the CPU (\"device\": \"any\") or raise the capacity's GPU memory")
            ctx.add(IssueCode.CAPACITY_EXCEEDED,
                    f"node {node_id!r} needs {_amount(key, need)}{why} but the capacity has {_amount(key, have)}",
                    node=node_id, hint=hint + (", or process fewer items" if why else "")
                    + (" or smaller images" if shape else ""))


def _worst_shortfall(ledger: ResourceLedger, demand: ResourceDemand) -> tuple[str, float, float]:
    """The resource that misses by the largest factor on the device that comes closest."""
    best: tuple[float, str, float, float] | None = None
    for device in ledger.candidate_devices(demand) or ["cpu"]:
        over = [(need / max(ledger.total.get(k, 0.0), 1e-9), k, need, ledger.total.get(k, 0.0))
                for k, need in ledger.needs(demand, device).items() if need > ledger.total.get(k, 0.0)]
        worst = max(over, default=None)
        if worst is not None and (best is None or worst[0] < best[0]):
            best = worst
    assert best is not None  # could_ever_fit was False, so some device misses something
    return best[1], best[2], best[3]


def _amount(key: str, value: float) -> str:
    if key == "cpu":
        return f"{value:g} CPU thread(s)"
    if key == "memory_mb":
        return f"{value:,.0f} MB of memory"
    if key.endswith(".gpu_memory_mb"):
        return f"{value:,.0f} MB of GPU memory on {key.split('.')[0]}"
    return f"{value:g} of custom resource {key.removeprefix('custom.')!r}"


def _field(key: str) -> str:
    return "gpu_memory_mb" if key.endswith(".gpu_memory_mb") else key


# -- edges and ports --------------------------------------------------------------------------


def _check_edges(ctx: _Context) -> list[_Link]:
    links: list[_Link] = []
    seen: set[tuple[str, str | None, str, str | None]] = set()
    nodes, specs = ctx.nodes, ctx.specs
    # edges between nodes of the same two agents on the same ports resolve alike: an edge whose
    # ports resolved and whose kinds matched without a finding is remembered by
    # (source agent, source_port, target agent, target_port) and the next one skips the checks
    clean: dict[tuple[int, str | None, int, str | None], tuple[str, str]] = {}
    for edge in ctx.workflow.edges:
        source, target = edge.source, edge.target
        if source not in nodes or target not in nodes:
            _report_missing_ends(ctx, edge)
            continue
        if source == target:
            ctx.add(IssueCode.SELF_LOOP, f"edge {source} -> {target}: a node cannot feed itself", node=source,
                    port=edge.target_port, hint="remove the edge")
            continue
        src_spec, dst_spec = specs.get(source), specs.get(target)
        memo = None if src_spec is None or dst_spec is None or src_spec.kinds_fn or dst_spec.kinds_fn else (
            id(src_spec), edge.source_port, id(dst_spec), edge.target_port)  # kinds from params: per node
        known = clean.get(memo) if memo is not None else None
        before = len(ctx.issues)
        if known is not None:
            link = _Link(source, target, known[0], known[1])
        else:
            link = _Link(source, target, _resolve_port(ctx, edge, "output"), _resolve_port(ctx, edge, "input"))
        key = (source, link.source_port or edge.source_port, target, link.target_port or edge.target_port)
        if key in seen:
            ctx.add(IssueCode.DUPLICATE_EDGE, f"edge {source} -> {target}: the same connection appears twice",
                    node=target, port=link.target_port, hint="remove one of the two edges")
            continue
        seen.add(key)
        if known is None and not _check_kinds(ctx, link):
            link = replace(link, kinds_fit=False)
        elif known is None and memo is not None and len(ctx.issues) == before \
                and None not in (link.source_port, link.target_port):
            clean[memo] = (link.source_port, link.target_port)  # type: ignore[assignment]
        links.append(link)
    return links


def _report_missing_ends(ctx: _Context, edge: EdgeSpec) -> None:
    ids = list(ctx.nodes)
    for end in dict.fromkeys(end for end in (edge.source, edge.target) if end not in ctx.nodes):
        close = suggest(end, ids)
        ctx.add(IssueCode.UNKNOWN_NODE, f"edge {edge.source} -> {edge.target}: there is no node {end!r}", node=end,
                hint=f"did you mean {close[0]!r}?" if close else "add the node or remove the edge")


def _resolve_port(ctx: _Context, edge: EdgeSpec, side: str) -> str | None:
    """The port an edge uses on one side, reporting unknown or ambiguous ports; None if unresolved."""
    node_id, given = (edge.source, edge.source_port) if side == "output" else (edge.target, edge.target_port)
    spec = ctx.specs.get(node_id)
    if spec is None:
        return None  # unknown agent, already reported
    ports: tuple[PortSpec, ...] = spec.outputs if side == "output" else spec.inputs
    names = [p.name for p in ports]
    label = f"edge {edge.source} -> {edge.target}"
    field_name = "source_port" if side == "output" else "target_port"
    if given is not None:
        if given in names:
            return given
        close = suggest(given, names)
        hint = f"did you mean {close[0]!r}?" if close else (
            f"{spec.name} has the {side}s {', '.join(names)}" if names else f"{spec.name} has no {side}s")
        ctx.add(IssueCode.UNKNOWN_PORT, f"{label}: {spec.name} (node {node_id!r}) has no {side} port {given!r}",
                node=node_id, port=given, hint=hint)
        return None
    if len(names) == 1:
        return names[0]
    if not names:
        ctx.add(IssueCode.UNKNOWN_PORT, f"{label}: {spec.name} (node {node_id!r}) has no {side} ports",
                node=node_id, hint="remove the edge; this agent cannot be connected on that side")
    else:
        ctx.add(IssueCode.AMBIGUOUS_PORT,
                f"{label}: {spec.name} (node {node_id!r}) has several {side}s ({', '.join(names)}); "
                "the edge does not say which", node=node_id, hint=f"set {field_name} on the edge")
    return None


def _port_kind(ctx: _Context, node_id: str, port: PortSpec) -> tuple[DataKind, str | None]:
    """The kind a node's port carries: the spec's, or what the node's params make it
    (``AgentSpec.kinds_fn``), with the parameter that decides it."""
    spec, params = ctx.specs[node_id], ctx.params.get(node_id)
    if spec.kinds_fn is not None and params is not None:  # invalid params: reported by _check_params
        declared = spec.kinds_fn(params).get(port.name)
        if declared is not None:
            return declared
    return port.kind, None


def _check_kinds(ctx: _Context, link: _Link) -> bool:
    """Whether the edge's kinds fit (or its ports are unresolved); reports a type_mismatch."""
    if link.source_port is None or link.target_port is None:
        return True
    out = ctx.specs[link.source].output(link.source_port)
    inp = ctx.specs[link.target].input(link.target_port)
    assert out is not None and inp is not None
    (out_kind, out_param), (in_kind, in_param) = _port_kind(ctx, link.source, out), _port_kind(ctx, link.target, inp)
    accepts = inp.accepts if in_kind == inp.kind else ()
    if not is_compatible(out_kind, in_kind, accepts):
        hint = f"connect an output of kind {in_kind.value!r} (or 'any'), or insert a converting agent"
        if accepts:
            kinds = ", ".join(repr(k.value) for k in accepts)
            hint = f"connect an output of kind {kinds}" + (
                " (for images: a classifier's scores or labels, or the explainer's regions table)"
                if out_kind == DataKind.IMAGE_BATCH else "")
            in_kind_text = f"{in_kind.value!r} (which reads {kinds})"
        else:
            in_kind_text = repr(in_kind.value)
        if in_param:
            hint = f"set {in_param} of node {link.target!r} to {out_kind.value!r}, or {hint}"
        elif out_param:
            hint = f"set {out_param} of node {link.source!r} to {in_kind.value!r}, or {hint}"
        ctx.add(IssueCode.TYPE_MISMATCH,
                f"edge {link.source}.{link.source_port} -> {link.target}.{link.target_port}: "
                f"output kind {out_kind.value!r} cannot feed input kind {in_kind_text}",
                node=link.target, port=link.target_port, hint=hint)
        return False
    return True


# -- graph ------------------------------------------------------------------------------------


def _check_inputs(ctx: _Context, links: list[_Link]) -> None:
    into: dict[tuple[str, str], list[str]] = {}
    unresolved = {link.target for link in links if link.target_port is None}
    for link in links:
        if link.target_port is not None:
            into.setdefault((link.target, link.target_port), []).append(link.source)
    for node_id, spec in ctx.specs.items():
        for port in spec.inputs:
            sources = into.get((node_id, port.name), [])
            if not sources and port.required and node_id not in unresolved:
                ctx.add(IssueCode.MISSING_INPUT,
                        f"node {node_id!r}: required input {port.name!r} ({port.kind.value}) is not connected",
                        node=node_id, port=port.name,
                        hint=f"connect an output of kind {port.kind.value!r} to it")
            elif len(sources) > 1 and not port.multiple:
                ctx.add(IssueCode.DUPLICATE_INPUT,
                        f"node {node_id!r}: input {port.name!r} takes one edge but has {len(sources)} "
                        f"(from {', '.join(repr(s) for s in sources)})", node=node_id, port=port.name,
                        hint="keep one edge, or merge the values first with a collecting agent")


def _links_into(ctx: _Context, links: list[_Link], needs: str) -> Iterator[tuple[_Link, AgentSpec, Any]]:
    """The links into a node whose agent declares what its inputs need (``needs``: the name of an
    ``AgentSpec`` hook such as ``needs_columns_fn``), with the node's parsed params: those whose
    input port resolved and whose kinds fit (a type_mismatch is reported, not checked further)."""
    for link in links:
        spec, params = ctx.specs.get(link.target), ctx.params.get(link.target)
        if spec is not None and getattr(spec, needs) is not None and params is not None \
                and link.target_port is not None and link.kinds_fit:
            yield link, spec, params


def _check_columns(ctx: _Context, links: list[_Link]) -> None:
    """A table whose columns the workflow knows (a table source's data set, passed on by limits,
    branches and merges), connected to an agent that needs columns it lacks: a scorer fed the
    wrong data set, a branch or merge on a column that is not there. At run time that node would
    fail after everything before it had run."""
    for link, spec, params in _links_into(ctx, links, "needs_columns_fn"):
        needed = spec.needed_columns(params, link.target_port)
        have = ctx.sized().columns_on(link.source, link.source_port) if needed else None
        missing = [c for c in needed if have is not None and c not in have]
        if not missing or have is None:
            continue
        names = ", ".join(repr(c) for c in missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
        listed = shown_names(have, 5)
        ctx.add(IssueCode.MISSING_COLUMNS,
                f"edge {link.source} -> {link.target}: node {link.target!r} ({spec.name}) needs the "
                f"column{'s' if len(missing) > 1 else ''} {names}, which the table from {link.source!r} "
                f"does not have (it has {listed})",
                node=link.target, port=link.target_port, hint=_columns_hint(ctx, link, missing, have))


def _columns_hint(ctx: _Context, link: _Link, missing: list[str], have: tuple[str, ...]) -> str:
    """How to get the columns: a setting of the source that emits them, the column meant, or
    another table."""
    source = ctx.specs.get(link.source)
    params = ctx.params.get(link.source)
    if source is not None and source.columns_fn is not None and params is not None:
        for name, info in type(params).model_fields.items():
            if get_origin(info.annotation) is not Literal:
                continue
            for choice in get_args(info.annotation):
                if choice == getattr(params, name):
                    continue
                try:
                    columns = source.columns_fn(params.model_copy(update={name: choice}), [])
                except (TypeError, ValueError, KeyError):
                    continue
                if columns is not None and all(c in columns for c in missing):
                    return f"set {name} of node {link.source!r} to {choice!r} (its table has them), or connect another table"
    if len(missing) == 1 and (close := suggest(missing[0], list(have))):
        return f"did you mean {close[0]!r}? (a column of the table from {link.source!r})"
    return f"connect a table that has them, or change the parameters of node {link.target!r}"


def _check_classes(ctx: _Context, links: list[_Link]) -> None:
    """Scores whose classes the workflow knows (a classifier's, an aggregate's risk), fed to an
    agent that picks a class they lack: a threshold on a class typed wrong, or on the class of
    the scores before an aggregation. At run time that node would fail after everything before
    it had run."""
    for link, spec, params in _links_into(ctx, links, "needs_classes_fn"):
        needed = spec.needs_classes_fn(params)  # type: ignore[misc]
        columns = ctx.sized().columns_on(link.source, link.source_port) if needed else None
        have = score_classes(columns) if columns is not None else []
        missing = [c for c in needed if c not in have]
        if not have or not missing:
            continue
        listed = shown_names(have)
        close = suggest(missing[0], have) if len(missing) == 1 else []
        ctx.add(IssueCode.UNKNOWN_CLASS,
                f"edge {link.source} -> {link.target}: node {link.target!r} ({spec.name}) picks the "
                f"class{'es' if len(missing) > 1 else ''} {', '.join(repr(c) for c in missing)}, which the "
                f"scores from {link.source!r} do not have (their classes: {listed})",
                node=link.target, port=link.target_port,
                hint=f"did you mean {close[0]!r}?" if close else
                f"pick one of {listed}, or connect scores that have {missing[0]!r}")


def _check_matches(ctx: _Context, links: list[_Link]) -> None:
    """A condition no row of a table of known columns can meet (a branch on ``predicted ==
    'negatve'``): the run would succeed and quietly send every row the same way."""
    for link, spec, params in _links_into(ctx, links, "match_check_fn"):
        sized = ctx.sized()
        columns = sized.columns_on(link.source, link.source_port)
        found = None if columns is None else spec.match_check_fn(  # type: ignore[misc]
            params, columns, sized.values_on(link.source, link.source_port))
        if found is not None:
            message, hint = found
            ctx.add(IssueCode.NEVER_MATCHES, f"edge {link.source} -> {link.target}: node {link.target!r} "
                    f"({spec.name}): {message}", node=link.target, port=link.target_port, hint=hint,
                    severity="warning")


def _check_shapes(ctx: _Context, links: list[_Link]) -> None:
    """Images of a planned size fed to an agent that takes only another size (a user's model
    exported for 3 x 32 x 32 images): at run time the model would refuse the first batch."""
    for link, spec, params in _links_into(ctx, links, "needs_shape_fn"):
        needed = spec.needs_shape_fn(params)  # type: ignore[misc]
        have = ctx.sized().shape_out.get(link.source) if needed is not None else None
        if needed is None or have is None:
            continue
        wrong = [i for i, (n, h) in enumerate(zip(needed, have, strict=True)) if n is not None and n != h]
        if not wrong:
            continue
        ctx.add(IssueCode.IMAGE_SIZE_MISMATCH,
                f"edge {link.source} -> {link.target}: node {link.target!r} ({spec.name}) takes images of "
                f"{_shape_text(needed)}, but the images from {link.source!r} are planned at {_shape_text(have)}",
                node=link.target, port=link.target_port, hint=_shape_hint(ctx, links, link.source, needed, wrong))


def _shape_text(shape: tuple[int | None, ...]) -> str:
    channels, height, width = ("any" if d is None else str(d) for d in shape)
    return f"{channels} channel{'' if channels == '1' else 's'} x {height} x {width} px"


def _shape_hint(ctx: _Context, links: list[_Link], source: str, needed: tuple[int | None, ...],
                wrong: list[int]) -> str:
    """The settings upstream that give the size: the nearest node before it with a ``size`` (a
    preprocess, a source) and with ``channels`` (a source); else a resizing node before it."""
    feeds: dict[str, list[str]] = {}
    for link in links:
        feeds.setdefault(link.target, []).append(link.source)

    def nearest(field_name: str) -> str | None:
        seen, frontier = {source}, [source]
        while frontier:
            for node_id in frontier:
                params = ctx.params.get(node_id)
                if params is not None and field_name in type(params).model_fields:
                    return node_id
            frontier = [p for n in frontier for p in feeds.get(n, []) if p not in seen]
            seen.update(frontier)
        return None

    channels, height, width = needed
    fixes: list[str | None] = []
    if 0 in wrong:
        node_id = nearest("channels")
        fixes.append(f"channels of node {node_id!r} to {channels}" if node_id else None)
    if 1 in wrong or 2 in wrong:
        node_id = nearest("size") if height is not None and width in (None, height) else None
        fixes.append(f"size of node {node_id!r} to {height}" if node_id else None)
    if None not in fixes:
        return "set " + " and ".join(f for f in fixes if f)
    return ("make the images that size before it (a vision.preprocess node resizes them), or give "
            "the model an input of any size")


def _check_cycles(ctx: _Context, links: list[_Link]) -> None:
    for cycle in find_cycles(list(ctx.nodes), ((link.source, link.target) for link in links)):
        ctx.add(IssueCode.CYCLE, f"the edges form a cycle: {format_cycle(cycle)}", node=cycle[0],
                hint="a workflow must be acyclic; remove one of these edges")


def _check_unused(ctx: _Context, links: list[_Link]) -> None:
    """Warnings: nodes with no edge at all; unconnected outputs of nodes whose other outputs are
    used; sinks that do not keep their outputs (``execution.keep_outputs`` off).

    A node none of whose outputs is connected is a sink: its outputs are the workflow's results,
    so it is not warned about.
    """
    touched: set[str] = set()
    used: dict[str, set[str | None]] = {}
    for edge in ctx.workflow.edges:
        touched.update((edge.source, edge.target))
    for link in links:
        used.setdefault(link.source, set()).add(link.source_port)
    if len(ctx.nodes) > 1:
        for node_id in ctx.nodes:
            if node_id not in touched:
                ctx.add(IssueCode.ISOLATED_NODE, f"node {node_id!r} is not connected to anything",
                        node=node_id, severity="warning", hint="connect it or remove it")
    sinks = set(ctx.nodes) - {edge.source for edge in ctx.workflow.edges}
    for node_id in ctx.nodes:
        node, spec = ctx.nodes[node_id], ctx.specs.get(node_id)
        if node_id in sinks and spec is not None and node.lifecycle:
            try:
                kept = spec.lifecycle.merged(node.lifecycle).execution.keep_outputs
            except Exception:  # a bad override is reported by _check_overrides
                continue
            if not kept:
                ctx.add(IssueCode.OUTPUTS_NOT_KEPT,
                        f"node {node_id!r} feeds nothing and does not keep its outputs: they are "
                        "dropped as soon as it ends", node=node_id, severity="warning",
                        hint="set lifecycle.execution.keep_outputs to true, or cache the run "
                        "(its cached copy stays)")
    for node_id, ports in used.items():
        spec = ctx.specs.get(node_id)
        if spec is None or None in ports:
            continue
        for port in spec.outputs:
            if port.name not in ports:
                ctx.add(IssueCode.UNUSED_OUTPUT,
                        f"node {node_id!r}: output {port.name!r} is computed but feeds nothing",
                        node=node_id, port=port.name, severity="warning",
                        hint="connect it, or ignore this if you do not need it")


_UNPIN = "unpin it (the designer's Unpin, or delete the node's `pin` in the file)"


def _check_drills(ctx: _Context) -> None:
    """A node with a fault drill (``faults``) gets a warning: trouble made on purpose for a lesson
    must never be left on by mistake. It says what the drill does and what the node's lifecycle
    makes of it (recovers with enough retries; a timeout shorter than its delay)."""
    for node in ctx.nodes.values():
        drill = node.faults
        if not drill:
            continue
        try:
            execution = (ctx.specs[node.id].lifecycle if node.id in ctx.specs else Lifecycle()).merged(
                node.lifecycle).execution
        except (ValidationError, TypeError, ValueError):  # reported by _check_overrides
            execution = None
        outcome = ""
        if execution is not None and drill.fail_attempts:
            outcome = ("; its retries let it recover" if execution.retries >= drill.fail_attempts else
                       f"; with {execution.retries} retr{'y' if execution.retries == 1 else 'ies'} it fails "
                       f"(set retries to {drill.fail_attempts} to see it recover)")
        if execution is not None and execution.timeout_s is not None and drill.delay_s >= execution.timeout_s:
            outcome += f"; its timeout of {execution.timeout_s:g} s stops it first"
        ctx.add(IssueCode.FAULT_DRILL, f"node {node.id!r} has a fault drill: it {drill.describe()}{outcome}",
                node=node.id, severity="warning",
                hint="made on purpose for a lesson: turn it off in the node's properties (Fault drill), or remove "
                     "`faults` from the file")


def _check_pins(ctx: _Context) -> None:
    """Pinned nodes: an agent whose results are never stored cannot be pinned (error); a pin whose
    node or upstream changed since its run is stale (warning: the run uses the older output).
    Whether the pinned output still exists is checked where the result cache is (at submit)."""
    pinned = [n for n in ctx.nodes.values() if n.pin is not None and n.id in ctx.specs]
    if not pinned:
        return
    from engine.results import canonical_params_json, not_cacheable, workflow_cache_keys

    for node in pinned:
        try:
            why = not_cacheable(ctx.specs[node.id], node)
        except Exception:  # a bad lifecycle override is reported by _check_overrides
            continue
        if why is not None:
            ctx.add(IssueCode.PIN_NOT_ALLOWED, f"node {node.id!r} cannot be pinned: {why}", node=node.id, hint=_UNPIN)
    params_json = {nid: canonical_params_json(p) for nid, p in ctx.params.items() if p is not None}
    natural: dict[str, str] = {}
    workflow_cache_keys(ctx.workflow, ctx.registry, params_json, natural=natural)
    for node in pinned:
        now = natural.get(node.id)
        if now is not None and now != node.pin.key:
            source = f"run {node.pin.run_id}" if node.pin.run_id else "an earlier run"
            ctx.add(IssueCode.PIN_STALE,
                    f"node {node.id!r} is pinned to its output from {source}, but it or a node upstream "
                    "has changed since: runs use that older output, not what the node would compute now",
                    node=node.id, severity="warning",
                    hint=f"{_UNPIN} to compute it again, or run and pin the new output")


def _check_bypass(ctx: _Context, links: list[_Link]) -> None:
    """A bypassed node passes its one input wire on to what it feeds: it needs exactly one wire in,
    and what that wire carries must fit each input it fed (``engine.workflow.without_bypassed``)."""
    unbypass = "stop bypassing it (Ctrl+B), or disable it and what follows it instead (Ctrl+M)"
    for node in ctx.nodes.values():
        if not node.bypass or node.disabled or node.id not in ctx.specs:
            continue
        ins = [link for link in links if link.target == node.id]
        if len(ins) != 1:
            ctx.add(IssueCode.BYPASS_NOT_POSSIBLE,
                    f"node {node.id!r} is bypassed, which passes its one input wire on, but it has {len(ins)} "
                    f"wire{'s' if len(ins) != 1 else ''} in", node=node.id,
                    hint=f"leave it exactly one wire in, or {unbypass}")
            continue
        (source,) = ins
        out = ctx.specs[source.source].output(source.source_port) if source.source_port else None
        if out is None:
            continue  # an unresolved port: reported by _check_edges
        out_kind = _port_kind(ctx, source.source, out)[0]
        for link in links:
            if link.source != node.id or link.target_port is None:
                continue
            inp = ctx.specs[link.target].input(link.target_port)
            in_kind = _port_kind(ctx, link.target, inp)[0]
            if not is_compatible(out_kind, in_kind, inp.accepts if in_kind == inp.kind else ()):
                ctx.add(IssueCode.BYPASS_NOT_POSSIBLE,
                        f"node {node.id!r} is bypassed, so {link.target}.{link.target_port} would read "
                        f"{source.source}.{source.source_port} ({out_kind.value!r}) directly, and it reads "
                        f"{in_kind.value!r}", node=node.id, port=link.target_port, hint=unbypass)


def _idle_instance_breaks(workflow: Workflow) -> list[Issue]:
    """A component's node with a breakpoint condition but no breakpoint (its nodes inside get
    neither, so ``_check_breaks`` never sees it): the condition has no effect."""
    return [_idle_break(n.id, n.break_when) for n in workflow.nodes
            if n.break_when is not None and not n.breakpoint and n.agent.startswith(COMPONENT_PREFIX)]


def _idle_break(node_id: str, condition: BreakCondition) -> Issue:
    """A breakpoint condition on a node without a breakpoint: a warning, it has no effect."""
    return Issue(IssueCode.BREAK_CONDITION.value, f"node {node_id!r} has a breakpoint condition "
                 f"({condition.describe()}) but no breakpoint, so it has no effect", node_id, None,
                 "set its breakpoint (F9, or `breakpoint: true`), or remove `break_when`", "warning")


def _check_breaks(ctx: _Context, links: list[_Link]) -> None:
    """A breakpoint's condition (``engine.breaks``) must name an input of its node (its only one may
    go unnamed) that carries something readable as a table, and a column the table has where the
    workflow knows its columns; a condition no row can meet is a warning (the run never pauses
    there). A condition without a breakpoint has no effect."""
    for node_id, node in ctx.nodes.items():
        condition, spec = node.break_when, ctx.specs.get(node_id)
        if condition is None or spec is None:
            continue
        said = condition.describe()
        if not node.breakpoint:
            ctx.issues.append(_idle_break(node_id, condition))
            continue
        names = [p.name for p in spec.inputs]
        port_name = condition.tested_port(names)
        port = spec.input(port_name) if port_name is not None else None
        if port is None:
            close = suggest(condition.port, names) if condition.port else []
            ctx.add(IssueCode.BREAK_CONDITION,
                    f"node {node_id!r}: its breakpoint condition ({said}) "
                    + (f"tests input {condition.port!r}, which {spec.name} does not have" if condition.port else
                       "names no input") + f" (its inputs: {', '.join(names) or 'none'})",
                    node=node_id, port=condition.port,
                    hint=f"did you mean {close[0]!r}?" if close else
                    (f"name the input it tests, e.g. '{names[0]}: {said}'" if names else
                     "remove the condition: the node has no input to test"))
            continue
        into = [link for link in links if link.target == node_id and link.target_port == port.name]
        kinds = {_port_kind(ctx, link.source, sp)[0] for link in into
                 if (src := ctx.specs.get(link.source)) is not None and (sp := src.output(link.source_port or "")) is not None}
        if DataKind.IMAGE_BATCH in kinds or (port.kind == DataKind.IMAGE_BATCH and not into):
            ctx.add(IssueCode.BREAK_CONDITION, f"node {node_id!r}: its breakpoint condition ({said}) tests "
                    f"input {port.name!r}, which carries images: a condition tests the rows of a table, "
                    "scores or labels", node=node_id, port=port.name,
                    hint="put the breakpoint on a node after the classifier (its scores have 'predicted' "
                    "and 'confidence'), or remove the condition")
            continue
        for link in into:
            sized = ctx.sized()
            have = sized.columns_on(link.source, link.source_port)
            if have is None:
                continue
            if condition.field != "id" and condition.field not in have:
                close = suggest(condition.field, ["id", *have])
                ctx.add(IssueCode.BREAK_CONDITION,
                        f"node {node_id!r}: its breakpoint condition ({said}) tests the column "
                        f"{condition.field!r}, which the table from {link.source!r} does not have (it has "
                        f"{shown_names(('id', *have), 8)})", node=node_id, port=port.name,
                        hint=f"did you mean {close[0]!r}?" if close else "test one of its columns")
            elif (found := never_matches(condition.field, condition.op, condition.value, have,
                                         sized.values_on(link.source, link.source_port))) is not None:
                message, hint = found
                ctx.add(IssueCode.BREAK_CONDITION, f"node {node_id!r}: its breakpoint condition will never "
                        f"pause the run: {message}", node=node_id, port=port.name, hint=hint, severity="warning")


def _sorted(ctx: _Context) -> list[Issue]:
    order = {node_id: i for i, node_id in enumerate(ctx.nodes)}
    late = len(order)

    def key(issue: Issue) -> tuple[int, int]:
        place = -1 if issue.node is None else order.get(issue.node, late)
        return (0 if issue.is_error else 1, place)

    return sorted(ctx.issues, key=key)


def errors_of(issues: Iterable[Issue]) -> list[Issue]:
    """Only the findings that block a run."""
    return [i for i in issues if i.is_error]
