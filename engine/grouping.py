"""Making components and taking them apart: ``group`` turns selected nodes into a component and one
instance of it (KNIME's "create component", ComfyUI's "convert to subgraph"); ``ungroup`` puts an
instance's nodes back in its place; ``component_ports`` says what an instance's ports carry.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from engine.components import (
    SEP,
    component_name,
    held_components,
    instance_agent,
    merged_lifecycle,
    params_inside,
)
from engine.errors import WorkflowFileError
from engine.kinds import DataKind
from engine.registry import Registry
from engine.spec import PortSpec
from engine.workflow import (
    MAX_COMPONENTS,
    ComponentPort,
    ComponentSpec,
    EdgeSpec,
    NodeSpec,
    Position,
    Workflow,
)


@dataclass(frozen=True)
class Ports:
    """What a node shows to its wires: its inputs and outputs."""

    inputs: tuple[PortSpec, ...] = ()
    outputs: tuple[PortSpec, ...] = ()


def ports_of(node: NodeSpec, workflow: Workflow, registry: Registry, _depth: int = 0) -> Ports:
    """The ports of ``node``: its agent's, or for an instance its component's (``component_ports``);
    none for an unknown agent or component."""
    name = component_name(node)
    if name is None:
        if node.agent not in registry:
            return Ports()
        spec = registry.get(node.agent)
        return Ports(spec.inputs, spec.outputs)
    return component_ports(name, workflow, registry, _depth)


def component_ports(name: str, workflow: Workflow, registry: Registry, _depth: int = 0) -> Ports:
    """The ports of component ``name``: each takes the kind of the port inside it stands for; an
    input is required when a port it feeds is, and takes several wires when they all do."""
    definition = workflow.component(name)
    if definition is None or _depth > 8:
        return Ports()
    inner = {n.id: n for n in definition.nodes}
    found: dict[str, list[PortSpec]] = {}
    for port in definition.inputs:
        found.setdefault(port.name, []).append(_inner_port(inner, port, workflow, registry, _depth, "inputs"))
    inputs = tuple(PortSpec(name=p, kind=_common_kind(ps), required=any(q.required for q in ps),
                            multiple=all(q.multiple for q in ps), description=_says(definition.inputs, p),
                            accepts=ps[0].accepts if len(ps) == 1 else ())
                   for p, ps in found.items())
    outputs = tuple(PortSpec(name=p.name, kind=_inner_port(inner, p, workflow, registry, _depth, "outputs").kind,
                             description=f"from {p.node}") for p in definition.outputs)
    return Ports(inputs, outputs)


def _inner_port(inner: dict[str, NodeSpec], port: ComponentPort, workflow: Workflow, registry: Registry,
                depth: int, side: str) -> PortSpec:
    node = inner.get(port.node)
    ports = getattr(ports_of(node, workflow, registry, depth + 1), side) if node is not None else ()
    chosen = next((p for p in ports if p.name == port.port), None) if port.port else (ports[0] if ports else None)
    return chosen or PortSpec(name=port.port or port.name, kind=DataKind.ANY, required=False)


def _common_kind(ports: list[PortSpec]) -> DataKind:
    kinds = {p.kind for p in ports}
    return kinds.pop() if len(kinds) == 1 else DataKind.ANY


def _says(ports: Iterable[ComponentPort], name: str) -> str:
    return "to " + ", ".join(p.node + (f".{p.port}" if p.port else "") for p in ports if p.name == name)


# -- group -------------------------------------------------------------------------------------


def group(workflow: Workflow, ids: Iterable[str], registry: Registry, name: str | None = None,
          description: str = "", *, replace: bool = False, node_id: str | None = None) -> tuple[Workflow, str]:
    """``workflow`` with the nodes ``ids`` made into a new component, drawn as one instance where
    they were: the wires between them go inside; each output outside that fed them becomes an
    input of the component (one input for all the nodes it fed), each of their outputs read
    outside becomes an output. Returns the workflow and the instance's id.

    ``replace``: the nodes become component ``name``'s new definition (its description kept when
    ``description`` is empty), which its other instances then run too: how a component is edited
    (ungroup, change, group again). ``node_id``: the instance's id, where it is free.

    Raises WorkflowFileError when no node is chosen, one is not in the workflow, or a node not
    chosen lies on a path between two chosen ones (the component would wait for itself)."""
    wanted = set(ids)
    chosen = [n for n in workflow.nodes if n.id in wanted]
    if not chosen:
        raise WorkflowFileError("select the nodes to group into a component first")
    unknown = sorted(wanted - {n.id for n in chosen})
    if unknown:
        raise WorkflowFileError(f"no node {unknown[0]!r} in workflow {workflow.name!r}",
                                hint=f"its nodes are: {', '.join(workflow.node_ids()[:20])}")
    old = workflow.component(name) if replace and name else None
    if replace and old is None:
        raise WorkflowFileError(f"the workflow has no component named {name!r} to update")
    if old is None and len(workflow.components) >= MAX_COMPONENTS:
        raise WorkflowFileError(f"the workflow has {MAX_COMPONENTS} components already",
                                hint="ungroup or remove an unused one first")
    inside = {n.id for n in chosen}
    _check_convex(workflow, inside)
    name = old.name if old is not None else _fresh_name(name or _named_after(chosen), {c.name for c in workflow.components})
    ports = {n.id: ports_of(n, workflow, registry) for n in chosen}
    outside_ports = {n.id: ports_of(n, workflow, registry) for n in workflow.nodes if n.id not in inside}
    inputs, outputs, wires = [], [], []
    named_in: dict[tuple[str, str | None], str] = {}
    named_out: dict[tuple[str, str | None], str] = {}
    taken_in: set[str] = set()
    taken_out: set[str] = set()
    free = set(workflow.node_ids()) - inside
    instance = node_id if node_id and node_id not in free else _fresh_id(_slug(name), free)
    for edge in workflow.edges:
        src_in, dst_in = edge.source in inside, edge.target in inside
        if src_in == dst_in:
            continue
        if dst_in:  # from outside into the group: one input per outside output
            port = edge.target_port or _first(ports[edge.target].inputs)
            key = (edge.source, edge.source_port or _first(outside_ports[edge.source].outputs))
            if key not in named_in:
                named_in[key] = _fresh_port(port or "input", taken_in)
                wires.append(EdgeSpec(source=edge.source, source_port=edge.source_port, target=instance,
                                      target_port=named_in[key]))
            inputs.append(ComponentPort(name=named_in[key], node=edge.target, port=edge.target_port))
        else:  # from the group to outside: one output per inside output read outside
            port = edge.source_port or _first(ports[edge.source].outputs)
            key = (edge.source, port)
            if key not in named_out:
                named_out[key] = _fresh_port(port or "output", taken_out, edge.source)
                outputs.append(ComponentPort(name=named_out[key], node=edge.source, port=edge.source_port))
            wires.append(EdgeSpec(source=instance, source_port=named_out[key], target=edge.target,
                                  target_port=edge.target_port))
    description = description or (old.description if old is not None else "")
    definition = ComponentSpec(name=name, description=description, nodes=tuple(chosen),
                               edges=tuple(e for e in workflow.edges if e.source in inside and e.target in inside),
                               inputs=tuple(dict.fromkeys(inputs)), outputs=tuple(outputs))
    corner = Position(x=min((n.position.x for n in chosen if n.position), default=0.0),
                      y=min((n.position.y for n in chosen if n.position), default=0.0))
    node = NodeSpec(id=instance, agent=instance_agent(name), label=None, position=corner)
    nodes, placed = [], False
    for n in workflow.nodes:  # the instance takes the place of the first chosen node in file order
        if n.id not in inside:
            nodes.append(n)
        elif not placed:
            nodes.append(node)
            placed = True
    edges = [e for e in workflow.edges if e.source not in inside and e.target not in inside] + wires
    return workflow.model_copy(update={"nodes": tuple(nodes), "edges": tuple(edges),
                                       "components": tuple(definition if c.name == name else c for c in workflow.components)
                                       if old is not None else (*workflow.components, definition)}), instance


def _check_convex(workflow: Workflow, inside: set[str]) -> None:
    from engine.graphs import ancestors, descendants

    wires = [(e.source, e.target) for e in workflow.edges]
    after = descendants(inside, wires) - inside
    between = sorted(after & ancestors(inside, wires) - inside)
    if between:
        raise WorkflowFileError(
            f"node {between[0]!r} takes from the selected nodes and feeds them too: the component would "
            "wait for itself", hint=f"select {', '.join(repr(b) for b in between[:5])} as well, or fewer nodes")


def _first(ports: tuple[PortSpec, ...]) -> str | None:
    return ports[0].name if ports else None


def _named_after(nodes: list[NodeSpec]) -> str:
    """A component's first name, from what its nodes are called: "Intent, Entities, Routing"."""
    names = [n.label or n.id for n in nodes]
    text = ", ".join(names) if len(names) <= 3 else f"{names[0]}, {names[1]} and {len(names) - 2} more"
    return text if len(text) <= 60 else text[:57].rstrip(" ,") + "..."


def _slug(name: str) -> str:
    """A short node id from a name: its first words, lower case (``intent_entities``)."""
    words = re.sub(r"[^A-Za-z0-9_]+", "_", name).strip("_").lower().split("_")
    out = ""
    for word in filter(None, words):
        if out and len(out) + len(word) + 1 > 24:
            break
        out = f"{out}_{word}" if out else word
    return out[:24] or "component"


def _fresh_name(base: str, taken: set[str]) -> str:
    base = re.sub(r"[^A-Za-z0-9_ .,()+&-]+", "_", base).strip()[:90] or "component"
    if not base[0].isalnum() and base[0] != "_":
        base = "c " + base
    name, i = base, 2
    while name in taken:
        name, i = f"{base} {i}", i + 1
    return name


def _fresh_id(base: str, taken: set[str]) -> str:
    fresh, i = base, 2
    while fresh in taken:
        fresh, i = f"{base}_{i}", i + 1
    return fresh


def _fresh_port(base: str, taken: set[str], node: str | None = None) -> str:
    base = re.sub(r"\W+", "_", base).strip("_") or "port"
    if not (base[0].isalpha() or base[0] == "_"):
        base = "p_" + base
    if base in taken and node:
        base = _fresh_port(f"{node}_{base}", set())
    fresh, i = base[:90], 2
    while fresh in taken:
        fresh, i = f"{base[:90]}_{i}", i + 1
    taken.add(fresh)
    return fresh


def add_components(workflow: Workflow, definitions: Iterable[ComponentSpec]) -> tuple[Workflow, dict[str, str]]:
    """``workflow`` with the ``definitions`` it lacks (pasted, imported, from the library); one of
    a name the workflow has with other content comes in renamed ("triage 2"), and instances of it
    inside the others follow. Returns the workflow and the new name of each renamed one."""
    definitions = list(definitions)
    renamed: dict[str, str] = {}
    taken = {c.name for c in workflow.components} | {d.name for d in definitions}
    for definition in definitions:
        have = workflow.component(definition.name)
        if have is not None and have != definition:
            i = 2
            while f"{definition.name} {i}" in taken:
                i += 1
            renamed[definition.name] = f"{definition.name} {i}"
            taken.add(renamed[definition.name])
    added = tuple(d.model_copy(update={"name": renamed.get(d.name, d.name),
                                       "nodes": tuple(following(n, renamed) for n in d.nodes)})
                  for d in definitions if workflow.component(d.name) != d)
    return workflow.model_copy(update={"components": workflow.components + added}), renamed


COMPONENT_FILE = "component"  # metadata.kind of a file that holds a component to import, not a graph


def component_file(workflow: Workflow, name: str) -> Workflow:
    """A file of its own for component ``name`` (with those it holds), to share it: a workflow
    without nodes, named after it, ``metadata.kind`` "component". Importing it (the designer's
    Import tab, ``servicegrid components FILE --add``) adds its components to a workflow.

    Raises WorkflowFileError when ``workflow`` has no such component."""
    held = held_components(workflow, [name])
    if not held:
        raise WorkflowFileError(f"the workflow has no component named {name!r}",
                                hint=f"its components are: {', '.join(c.name for c in workflow.components) or 'none'}")
    main = next(c for c in held if c.name == name)
    return Workflow(name=name, description=main.description, components=(main, *(c for c in held if c is not main)),
                    metadata={"kind": COMPONENT_FILE})


def is_component_file(workflow: Workflow) -> bool:
    """Whether ``workflow`` is a component to import rather than a graph to open."""
    return not workflow.nodes and bool(workflow.components)


def following(node: NodeSpec, renamed: dict[str, str]) -> NodeSpec:
    """``node``, an instance of a renamed component (``renamed``: old -> new name) made one of the new name."""
    name = component_name(node)
    return node.model_copy(update={"agent": instance_agent(renamed[name])}) if name in renamed else node


# -- ungroup -----------------------------------------------------------------------------------


def ungroup(workflow: Workflow, node_id: str) -> tuple[Workflow, list[str]]:
    """``workflow`` with instance ``node_id`` replaced by its component's nodes (ids kept where
    free, else numbered), with the instance's parameters, lifecycle and disabling applied and its
    wires led to the nodes inside; where they would cover other nodes, the nodes drawn right of it
    move right to make room. The component stays while another instance uses it. Returns
    the workflow and the ids of the nodes put back.

    Raises WorkflowFileError when ``node_id`` is not an instance of a component the workflow has."""
    node = workflow.node(node_id)
    name = component_name(node) if node is not None else None
    definition = workflow.component(name) if name is not None else None
    if node is None or definition is None:
        raise WorkflowFileError(f"node {node_id!r} is not an instance of a component of this workflow",
                                hint="select a component's node to ungroup it")
    taken = set(workflow.node_ids()) - {node_id}
    rename: dict[str, str] = {}
    for inner in definition.nodes:
        rename[inner.id] = _fresh_id(inner.id, taken)
        taken.add(rename[inner.id])
    overrides = params_inside(node.params)
    corner = (min((n.position.x for n in definition.nodes if n.position), default=0.0),
              min((n.position.y for n in definition.nodes if n.position), default=0.0))
    at = node.position or Position()
    put = []
    for inner in definition.nodes:
        pos = inner.position or Position()
        lifecycle = merged_lifecycle(node.lifecycle, inner.lifecycle)
        put.append(inner.model_copy(update={
            "id": rename[inner.id], "params": {**inner.params, **overrides.get(inner.id, {})},
            "lifecycle": lifecycle, "disabled": inner.disabled or node.disabled,
            "position": None if inner.position is None else
            Position(x=at.x + pos.x - corner[0], y=at.y + pos.y - corner[1])}))
    edges = [e.model_copy(update={"source": rename[e.source], "target": rename[e.target]}) for e in definition.edges]
    only_in = {p.name for p in definition.inputs}
    only_out = [p.name for p in definition.outputs]
    for edge in workflow.edges:
        if edge.target == node_id:
            port = edge.target_port or (next(iter(only_in)) if len(only_in) == 1 else None)
            edges += [EdgeSpec(source=edge.source, source_port=edge.source_port, target=rename[p.node],
                               target_port=p.port) for p in definition.inputs if p.name == port and p.node in rename]
        elif edge.source == node_id:
            port = edge.source_port or (only_out[0] if len(only_out) == 1 else None)
            edges += [EdgeSpec(source=rename[p.node], source_port=p.port, target=edge.target,
                               target_port=edge.target_port)
                      for p in definition.outputs if p.name == port and p.node in rename]
    edges = [e for e in workflow.edges if node_id not in (e.source, e.target)] + edges
    nodes = []
    others = [n.position for n in workflow.nodes if n.id != node_id and n.position is not None]
    crowded = any(_overlap(a.position, b) for a in put if a.position is not None for b in others)
    wider = max((n.position.x for n in put if n.position), default=at.x) - at.x if crowded else 0.0
    for n in workflow.nodes:  # where they would cover nodes, the nodes right of the instance make room
        if n.id != node_id and wider > 0 and n.position is not None and n.position.x > at.x:
            n = n.model_copy(update={"position": Position(x=min(1e7, n.position.x + wider), y=n.position.y)})
        nodes.extend(put if n.id == node_id else [n])
    still_used = any(component_name(n) == name for n in nodes) or any(
        component_name(n) == name for c in workflow.components if c.name != name for n in c.nodes)
    components = workflow.components if still_used else tuple(c for c in workflow.components if c.name != name)
    return workflow.model_copy(update={"nodes": tuple(nodes), "edges": tuple(dict.fromkeys(edges)),
                                       "components": components}), [rename[n.id] for n in definition.nodes]


def rename_component(workflow: Workflow, old: str, new: str, description: str | None = None) -> Workflow:
    """``workflow`` with component ``old`` named ``new`` (its instances follow, also those inside
    other components), and with ``description`` when given.

    Raises WorkflowFileError for an unknown component or a name that is taken or not allowed."""
    definition = workflow.component(old)
    if definition is None:
        raise WorkflowFileError(f"the workflow has no component named {old!r}")
    new = new.strip()
    if new != old and workflow.component(new) is not None:
        raise WorkflowFileError(f"a component named {new!r} exists already", hint="choose another name")
    try:
        renamed = ComponentSpec.model_validate({**definition.model_dump(), "name": new,
                                                "description": definition.description if description is None
                                                else description})
    except ValueError:
        raise WorkflowFileError(f"{new!r} cannot name a component",
                                hint="use 1 to 100 letters, digits, spaces and _ . , ( ) + & -, starting "
                                     "with a letter, digit or _") from None

    def follow(nodes: tuple[NodeSpec, ...]) -> tuple[NodeSpec, ...]:
        return tuple(n.model_copy(update={"agent": instance_agent(new)}) if component_name(n) == old else n
                     for n in nodes)

    components = tuple(renamed if c.name == old else c for c in workflow.components)
    components = tuple(c.model_copy(update={"nodes": follow(c.nodes)}) for c in components)
    return workflow.model_copy(update={"nodes": follow(workflow.nodes), "components": components})


NODE_BOX = (200.0, 110.0)  # a node's width and height on the canvas, with a margin


def _overlap(a: Position, b: Position) -> bool:
    return abs(a.x - b.x) < NODE_BOX[0] and abs(a.y - b.y) < NODE_BOX[1]


def regroup(workflow: Workflow, ids: Iterable[str], registry: Registry, instance: NodeSpec,
            definition: ComponentSpec, put: Iterable[str]) -> tuple[Workflow, str]:
    """Group again the nodes that ``ungroup`` of ``instance`` (of ``definition``) put back as
    ``put`` (with what was changed or added since, ``ids``): the component is updated, or made again
    where no other node used it, and the instance comes back with its id, label and settings.

    The nodes get back their ids inside the component, so the parameters other instances set
    (``node/parameter``) still find them. A value the instance set that is still the same stays
    the instance's own, not the component's; a value changed since goes into the component, for
    every instance. Its lifecycle and disabling likewise."""
    original = dict(zip(put, (n.id for n in definition.nodes), strict=False))
    chosen = set(ids)
    taken = {original[i] for i in chosen if i in original}
    back: dict[str, str] = {}
    for node_id in ids:
        back[node_id] = original.get(node_id) or _fresh_id(node_id.replace(SEP, "_"), taken)
        taken.add(back[node_id])
    name = definition.name
    made, instance_id = group(workflow, ids, registry, name, definition.description,
                              replace=workflow.component(name) is not None, node_id=instance.id)
    new = made.component(name)
    assert new is not None
    old_nodes = {n.id: n for n in definition.nodes}
    own = params_inside(instance.params)
    kept: dict[str, object] = {k: v for k, v in instance.params.items() if k.partition(SEP)[0] not in old_nodes}
    nodes = []
    for node in new.nodes:
        inner_id = back.get(node.id, node.id)
        old = old_nodes.get(inner_id)
        node = node.model_copy(update={"id": inner_id})
        if old is not None:
            node, still = _unmerged(node, old, instance, own.get(inner_id, {}))
            kept.update({f"{inner_id}{SEP}{k}": v for k, v in still.items()})
        nodes.append(node)
    updated = new.model_copy(update={
        "nodes": tuple(nodes),
        "edges": tuple(e.model_copy(update={"source": back.get(e.source, e.source), "target": back.get(e.target, e.target)})
                       for e in new.edges),
        "inputs": tuple(p.model_copy(update={"node": back.get(p.node, p.node)}) for p in new.inputs),
        "outputs": tuple(p.model_copy(update={"node": back.get(p.node, p.node)}) for p in new.outputs)})
    node = made.node(instance_id)
    assert node is not None
    node = node.model_copy(update={"params": kept, "label": instance.label, "lifecycle": instance.lifecycle,
                                   "disabled": instance.disabled})
    return made.model_copy(update={
        "nodes": tuple(node if n.id == instance_id else n for n in made.nodes),
        "components": tuple(updated if c.name == name else c for c in made.components)}), instance_id


def _unmerged(node: NodeSpec, old: NodeSpec, instance: NodeSpec, own: dict[str, object]
              ) -> tuple[NodeSpec, dict[str, object]]:
    """A node put back by ungrouping ``instance`` and grouped again, without what the instance had
    put into it where that is unchanged: (the node as the component's, the instance's own params)."""
    params, still = dict(node.params), {}
    for key, value in own.items():
        if params.get(key) != value:
            continue  # changed since: the component's now, for every instance
        still[key] = value
        if key in old.params:
            params[key] = old.params[key]
        else:
            params.pop(key, None)
    lifecycle = node.lifecycle
    if instance.lifecycle and lifecycle == merged_lifecycle(instance.lifecycle, old.lifecycle):
        lifecycle = old.lifecycle
    disabled = node.disabled and not (instance.disabled and not old.disabled)
    return node.model_copy(update={"params": params, "lifecycle": lifecycle, "disabled": disabled}), still
