"""Editing a component in place (ComfyUI's "open subgraph", KNIME's "open component").

``open_inside`` makes the inside of a component a workflow of its own, a *view*: the component's
nodes and wires, and two boundary nodes, ``/inputs`` and ``/outputs``, whose wires are its ports.
Anything that edits a workflow (the canvas, the properties panels, undo) edits the view;
``close_inside`` puts it back: the component's new definition, and the wires of its instances
(here and inside other components) made to follow its ports.

The boundary nodes' ids hold a "/", which no node inside a component may have, so they never
clash with one. A wire from ``/inputs``'s port ``+`` (or into ``/outputs``'s ``+``) makes a new
port, named after the port inside it stands for. A port renamed in the view keeps its name at
opening in the boundary node's ``renamed`` param, so the instances' wires follow the rename; a
port that no wire names any more is gone, and the instances' wires to it with it (``Closed.dropped``
says which). Pure Python.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import Any

from pydantic import ValidationError

from engine.components import EXPANDED_KEY, MAX_DEPTH, SEP, component_name, expand_components, held_components
from engine.definitions import component_ports
from engine.errors import WorkflowFileError
from engine.grouping import fresh_port
from engine.issues import Issue
from engine.kinds import DataKind
from engine.registry import Registry
from engine.runstate import combined_state
from engine.spec import PortSpec
from engine.workflow import PORT_NAME, ComponentPort, ComponentSpec, EdgeSpec, NodeSpec, Position, Workflow

INPUTS, OUTPUTS = "/inputs", "/outputs"  # the boundary nodes' ids
INPUTS_AGENT, OUTPUTS_AGENT = "boundary:inputs", "boundary:outputs"
NEW_PORT = "+"  # the boundary port that makes a new port when wired
RENAMED = "renamed"  # a boundary node's param: port name now -> its name when the view was opened
INSIDE_KEY = "inside"  # a view's metadata: the component it is the inside of
GAP = 260.0  # canvas pixels between a boundary node and the nearest node inside
_PORT_NAME = re.compile(PORT_NAME)


def is_boundary(node_id: str) -> bool:
    return node_id in (INPUTS, OUTPUTS)


def inside_name(view: Workflow) -> str | None:
    """The component ``view`` is the inside of, or None for a workflow."""
    name = view.metadata.get(INSIDE_KEY)
    return name if isinstance(name, str) else None


def holders_of(workflow: Workflow, name: str) -> set[str]:
    """The components that hold ``name`` (itself included, and through nesting): none of them may
    be put inside it."""
    return {c.name for c in workflow.components
            if c.name == name or any(h.name == name for h in held_components(workflow, [c.name]))}


def open_inside(workflow: Workflow, name: str) -> Workflow:
    """The inside of component ``name`` of ``workflow`` as a view (see the module's text).

    Raises WorkflowFileError when the workflow has no such component."""
    definition = workflow.component(name)
    if definition is None:
        raise WorkflowFileError(f"the workflow has no component named {name!r}",
                                hint=f"its components are: {', '.join(c.name for c in workflow.components) or 'none'}")
    nodes = _placed(definition.nodes)
    left, right = beside(nodes)
    boundary = (NodeSpec(id=INPUTS, agent=INPUTS_AGENT, label="Inputs", params={RENAMED: {}},
                         position=definition.inputs_at or left),
                NodeSpec(id=OUTPUTS, agent=OUTPUTS_AGENT, label="Outputs", params={RENAMED: {}},
                         position=definition.outputs_at or right))
    edges = (*definition.edges,
             *(EdgeSpec(source=INPUTS, source_port=p.name, target=p.node, target_port=p.port) for p in definition.inputs),
             *(EdgeSpec(source=p.node, source_port=p.port, target=OUTPUTS, target_port=p.name) for p in definition.outputs))
    return Workflow(name=workflow.name, description=definition.description, nodes=(boundary[0], *nodes, boundary[1]),
                    edges=edges, capacity=workflow.capacity, components=workflow.components,
                    metadata={INSIDE_KEY: name})


def beside(nodes: Iterable[NodeSpec]) -> tuple[Position, Position]:
    """Where Inputs and Outputs go when the component does not say (``ComponentSpec.inputs_at``):
    left and right of its nodes, level with the top one."""
    xs = [n.position.x for n in nodes if n.position is not None]
    ys = [n.position.y for n in nodes if n.position is not None]
    top = min(ys) if ys else 0.0
    return (Position(x=max(-1e7, min(xs, default=0.0) - GAP), y=top),
            Position(x=min(1e7, max(xs, default=0.0) + GAP), y=top))


def _placed(nodes: tuple[NodeSpec, ...]) -> tuple[NodeSpec, ...]:
    """Nodes with a position each (a component written by hand may have none: a row, left to right)."""
    if all(n.position is not None for n in nodes):
        return nodes
    return tuple(n if n.position is not None else n.model_copy(update={"position": Position(x=i * GAP, y=0.0)})
                 for i, n in enumerate(nodes))


@dataclass(frozen=True)
class Closed:
    """What ``close_inside`` made: the workflow, and what changed outside the component."""

    workflow: Workflow
    dropped: list[str] = field(default_factory=list)  # wires of instances to ports that are gone
    renamed: dict[str, str] = field(default_factory=dict)  # "input x" -> new name, for messages


def close_inside(outer: Workflow, view: Workflow) -> Closed:
    """``outer`` (the workflow as it was when ``view`` was opened) with the component the view is
    the inside of defined as the view now draws it. The view's components replace ``outer``'s (a
    component brought in while inside comes along).

    Raises WorkflowFileError when the view is not the inside of one of ``outer``'s components, or
    has no node left inside."""
    name = inside_name(view)
    before = outer.component(name) if name is not None else None
    if name is None or before is None:
        raise WorkflowFileError(f"this is not the inside of a component of {outer.name!r}")
    definition, in_names, out_names = definition_of(view, before)
    workflow = outer.model_copy(update={"components": _with(view.components, definition)})
    dropped: list[str] = []
    renames = {f"input {old}": new for old, new in in_names.items() if new not in (old, None)}
    renames |= {f"output {old}": new for old, new in out_names.items() if new not in (old, None)}
    workflow = _follow(workflow, definition.name, in_names, out_names, {n.id for n in definition.nodes}, dropped)
    return Closed(workflow, dropped, renames)


def definition_of(view: Workflow, before: ComponentSpec | None = None
                  ) -> tuple[ComponentSpec, dict[str, str | None], dict[str, str | None]]:
    """The component ``view`` draws (``before``: its definition at opening, for what the view does
    not draw), and for each of its ports at opening the name it has now (None: gone).

    Raises WorkflowFileError when the view has no node inside or breaks a rule of components."""
    name = inside_name(view) or (before.name if before is not None else "component")
    inner = tuple(n for n in view.nodes if not is_boundary(n.id))
    if not inner:
        raise WorkflowFileError(f"component {name!r} would have no node inside",
                                hint="keep at least one node; to remove the component, delete its node on the workflow")
    ids = {n.id for n in inner}
    inputs, outputs, in_names, out_names = _ports(view, ids, before)
    fields = {"name": name, "description": view.description, "nodes": inner,
              "edges": tuple(e for e in view.edges if e.source in ids and e.target in ids),
              "inputs": tuple(inputs), "outputs": tuple(outputs), **_boundary_places(view, before)}
    try:  # the same checks a file gets (ids, port names)
        definition = ComponentSpec.model_validate(fields)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ()))
        raise WorkflowFileError(f"component {name!r} cannot be kept so: {first['msg'].removeprefix('Value error, ')}"
                                + (f" ({where})" if where else "")) from exc
    return definition, in_names, out_names


def _boundary_places(view: Workflow, before: ComponentSpec | None) -> dict[str, Position | None]:
    """Where the view draws Inputs and Outputs, kept in the definition when they were moved (or
    were kept before): placed by ``beside`` they stay unsaid, so that opening and closing changes
    nothing."""
    placed = dict(zip(("inputs_at", "outputs_at"), beside(_placed(tuple(n for n in view.nodes if not is_boundary(n.id)))),
                      strict=True))
    out: dict[str, Position | None] = {}
    for key, node_id in (("inputs_at", INPUTS), ("outputs_at", OUTPUTS)):
        node = view.node(node_id)
        kept = getattr(before, key) if before is not None else None
        at = node.position if node is not None else None
        out[key] = at if at is not None and (kept is not None or at != placed[key]) else kept
    return out


def _with(components: tuple[ComponentSpec, ...], definition: ComponentSpec) -> tuple[ComponentSpec, ...]:
    """``components`` with ``definition`` in place of the one of its name (or added)."""
    if all(c.name != definition.name for c in components):
        return (*components, definition)
    return tuple(definition if c.name == definition.name else c for c in components)


def _ports(view: Workflow, ids: set[str], before: ComponentSpec | None
           ) -> tuple[list[ComponentPort], list[ComponentPort], dict[str, str | None], dict[str, str | None]]:
    """The component's ports as the boundary wires draw them, and for each port at opening its
    name now (None: gone)."""
    view = normalized(view)
    inputs = [ComponentPort(name=e.source_port, node=e.target, port=e.target_port)  # type: ignore[arg-type]
              for e in view.edges if e.source == INPUTS and e.target in ids]
    outputs = [ComponentPort(name=e.target_port, node=e.source, port=e.source_port)  # type: ignore[arg-type]
               for e in view.edges if e.target == OUTPUTS and e.source in ids]
    opened_in = [p.name for p in before.inputs] if before is not None else []
    opened_out = [p.name for p in before.outputs] if before is not None else []
    return (inputs, outputs, _now(_renamed(view, INPUTS), [p.name for p in inputs], opened_in),
            _now(_renamed(view, OUTPUTS), [p.name for p in outputs], opened_out))


def normalized(view: Workflow) -> Workflow:
    """``view`` with each wire to a boundary's ``+`` given its new port's name, without wires from
    ``/inputs`` straight to ``/outputs``, and with one wire into each output (the last drawn)."""
    taken_in = {e.source_port for e in view.edges if e.source == INPUTS and e.source_port}
    taken_out = {e.target_port for e in view.edges if e.target == OUTPUTS and e.target_port}
    edges: list[EdgeSpec] = []
    into_out: dict[str, int] = {}
    for edge in view.edges:
        if edge.source == INPUTS and edge.target == OUTPUTS:
            continue
        if edge.source == INPUTS and (edge.source_port or NEW_PORT) == NEW_PORT:
            edge = edge.model_copy(update={"source_port": fresh_port(edge.target_port or edge.target, taken_in)})
        elif edge.target == OUTPUTS:
            if (edge.target_port or NEW_PORT) == NEW_PORT:
                edge = edge.model_copy(update={"target_port": fresh_port(edge.source_port or edge.source, taken_out)})
            if edge.target_port in into_out:
                edges[into_out[edge.target_port]] = edge  # type: ignore[index]
                continue
            into_out[edge.target_port] = len(edges)  # type: ignore[index]
        edges.append(edge)
    return view if tuple(edges) == view.edges else view.model_copy(update={"edges": tuple(edges)})


def _renamed(view: Workflow, boundary: str) -> dict[str, str]:
    node = view.node(boundary)
    found = node.params.get(RENAMED) if node is not None else None
    return {str(k): str(v) for k, v in found.items()} if isinstance(found, dict) else {}


def _now(was: dict[str, str], names: list[str], opened: list[str]) -> dict[str, str | None]:
    """Each port name at opening (``opened``) -> its name now (None: no port has it any more). A
    port renamed to the name of one that was is the renamed one, not that one."""
    now: dict[str, str | None] = dict.fromkeys(opened)
    for name in dict.fromkeys(names):
        old = was.get(name, name)
        if old in now and (now[old] is None or name in was):
            now[old] = name
    return now


def _follow(workflow: Workflow, name: str, ins: dict[str, str | None], outs: dict[str, str | None],
            inner: set[str], dropped: list[str], depth: int = 0) -> Workflow:
    """Every instance of ``name`` (in the graph and inside components) wired to its ports' names
    now, without wires to ports that are gone or params for nodes no longer inside."""
    nodes, edges = _follow_in(workflow.nodes, workflow.edges, name, ins, outs, inner, dropped, "")
    components, lost = [], []
    for definition in workflow.components:
        if not any(component_name(n) == name for n in definition.nodes):
            components.append(definition)
            continue
        c_nodes, c_edges = _follow_in(definition.nodes, definition.edges, name, ins, outs, inner, dropped,
                                      f" (inside {definition.name})")
        c_in = tuple(p for p in (_port_follows(p, c_nodes, name, ins) for p in definition.inputs) if p is not None)
        c_out = tuple(p for p in (_port_follows(p, c_nodes, name, outs) for p in definition.outputs) if p is not None)
        components.append(definition.model_copy(update={"nodes": c_nodes, "edges": c_edges,
                                                        "inputs": c_in, "outputs": c_out}))
        gone_in = {p.name for p in definition.inputs} - {p.name for p in c_in}
        gone_out = {p.name for p in definition.outputs} - {p.name for p in c_out}
        if gone_in or gone_out:  # a port of the holder stood only for one that is gone: it goes too
            lost.append((components[-1], dict.fromkeys(gone_in), dict.fromkeys(gone_out)))
    workflow = workflow.model_copy(update={"nodes": nodes, "edges": edges, "components": tuple(components)})
    for holder, gone_in, gone_out in lost if depth < MAX_DEPTH else ():  # and so on outwards (a cycle, which
        workflow = _follow(workflow, holder.name, gone_in, gone_out,  # validation refuses, stops at the limit)
                           {n.id for n in holder.nodes}, dropped, depth + 1)
    return workflow


def _follow_in(nodes: tuple[NodeSpec, ...], edges: tuple[EdgeSpec, ...], name: str, ins: dict[str, str | None],
               outs: dict[str, str | None], inner: set[str], dropped: list[str], where: str
               ) -> tuple[tuple[NodeSpec, ...], tuple[EdgeSpec, ...]]:
    instances = {n.id for n in nodes if component_name(n) == name}
    if not instances:
        return nodes, edges
    kept: list[EdgeSpec] = []
    for edge in edges:
        if edge.target in instances and edge.target_port in ins:
            new = ins[edge.target_port]
            if new is None:
                dropped.append(f"{edge.source} → {edge.target}.{edge.target_port}{where}")
                continue
            edge = edge.model_copy(update={"target_port": new})
        if edge.source in instances and edge.source_port in outs:
            new = outs[edge.source_port]
            if new is None:
                dropped.append(f"{edge.source}.{edge.source_port} → {edge.target}{where}")
                continue
            edge = edge.model_copy(update={"source_port": new})
        kept.append(edge)
    placed = tuple(n.model_copy(update={"params": _params_inside(n.params, inner)}) if n.id in instances else n
                   for n in nodes)
    return placed, tuple(kept)


def _port_follows(port: ComponentPort, nodes: tuple[NodeSpec, ...], name: str,
                  names: dict[str, str | None]) -> ComponentPort | None:
    """A port of a component that holds an instance of ``name``, standing for that instance's port
    ``port.port``: renamed with it, or gone with it."""
    node = next((n for n in nodes if n.id == port.node), None)
    if node is None or component_name(node) != name or port.port not in names:
        return port
    new = names[port.port]  # type: ignore[index]
    return None if new is None else port.model_copy(update={"port": new})


def _params_inside(params: dict[str, Any], inner: set[str]) -> dict[str, Any]:
    """An instance's params without those for nodes no longer inside its component."""
    return {k: v for k, v in params.items() if SEP not in k or k.split(SEP, 1)[0] in inner}


def rename_port(view: Workflow, side: str, old: str, new: str) -> Workflow:
    """``view`` with its component's input (``side`` "inputs") or output port ``old`` named ``new``;
    the instances' wires follow when the view is closed.

    Raises WorkflowFileError for a name that is not allowed or taken, or an unknown port."""
    boundary = INPUTS if side == "inputs" else OUTPUTS
    names = {e.source_port for e in view.edges if e.source == INPUTS} if boundary == INPUTS else \
        {e.target_port for e in view.edges if e.target == OUTPUTS}
    new = new.strip()
    if old not in names:
        raise WorkflowFileError(f"the component has no {side[:-1]} named {old!r}")
    if new == old:
        return view
    if not _PORT_NAME.match(new):
        raise WorkflowFileError(f"{new!r} cannot name a port",
                                hint="use letters, digits and _, starting with a letter or _ (at most 100)")
    if new in names:
        raise WorkflowFileError(f"the component has an {side[:-1]} named {new!r} already", hint="choose another name")
    key = "source_port" if boundary == INPUTS else "target_port"
    edges = tuple(e.model_copy(update={key: new}) if getattr(e, key) == old and boundary in (e.source, e.target)
                  else e for e in view.edges)
    was = _renamed(view, boundary)
    was[new] = was.pop(old, old)
    nodes = tuple(n.model_copy(update={"params": {**n.params, RENAMED: was}}) if n.id == boundary else n
                  for n in view.nodes)
    return view.model_copy(update={"nodes": nodes, "edges": edges})


def boundary_ports(workflow: Workflow, name: str, registry: Registry
                   ) -> tuple[tuple[PortSpec, ...], tuple[PortSpec, ...]]:
    """(the ports ``/inputs`` shows, those ``/outputs`` shows) while component ``name`` of
    ``workflow`` (the workflow as saved: its definition as the view draws it) is open: its inputs
    as outputs of ``/inputs`` and its outputs as inputs of ``/outputs``, each with the kind of the
    port inside it stands for, and a ``+`` on each to make a new one."""
    ports = component_ports(name, workflow, registry)
    outs = tuple(replace(p, required=False, multiple=True, accepts=()) for p in ports.inputs)
    ins = tuple(replace(p, required=False, multiple=False) for p in ports.outputs)
    return ((*outs, PortSpec(name=NEW_PORT, kind=DataKind.ANY, required=False, multiple=True,
                             description="wire it to a port inside to make a new input")),
            (*ins, PortSpec(name=NEW_PORT, kind=DataKind.ANY, required=False,
                            description="wire a port inside to it to make a new output")))


# -- what a run and validation say of the nodes inside -------------------------------------------


def placed_instances(workflow: Workflow, name: str) -> list[str]:
    """The ids, in the expansion of ``workflow``, of every instance of component ``name`` (in the
    graph, and inside instances of other components: ``desk/triage``)."""
    names = expand_components(workflow)[0].metadata.get(EXPANDED_KEY) or {}
    return [i for i, n in names.items() if n == name]


def relative(node_id: str, instances: list[str]) -> str | None:
    """``node_id`` of the expansion as a node of the inside: the node of the component that it is
    (or is inside of) under one of ``instances``; None for a node elsewhere."""
    for instance in instances:
        if node_id.startswith(instance + SEP):
            return node_id[len(instance) + 1:].split(SEP, 1)[0]
    return None


def inside_issues(issues: list[Issue], instances: list[str]) -> list[Issue]:
    """The findings on nodes inside the instances, as findings on the inside's nodes (one of each
    kind per node: every instance runs the same nodes), and those on the whole workflow."""
    out: list[Issue] = []
    seen: set[tuple[str, str | None, str | None]] = set()
    for issue in issues:
        if issue.node is None:
            out.append(issue)
            continue
        node = relative(issue.node, instances)
        if node is None or (issue.code, node, issue.port) in seen:
            continue
        seen.add((issue.code, node, issue.port))
        out.append(replace(issue, node=node, port=issue.port if node == issue.node.rsplit(SEP, 1)[-1] else None))
    return out


def inside_states(statuses: dict[str, str], instances: list[str]) -> dict[str, str]:
    """A run's states (by node of its expansion) as states of the inside's nodes: each the
    combined state of that node in every instance (``engine.runstate.combined_state``)."""
    found: dict[str, list[str]] = {}
    for node_id, status in statuses.items():
        if (node := relative(node_id, instances)) is not None:
            found.setdefault(node, []).append(status)
    return {node: combined_state(states) for node, states in found.items()}
