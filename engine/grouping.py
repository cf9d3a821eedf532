"""Making components and taking them apart: ``group`` turns selected nodes into a component and one
instance of it (KNIME's "create component", ComfyUI's "convert to subgraph"); ``ungroup`` puts an
instance's nodes back in its place; ``regroup`` puts them back into the component (how one is
edited). What an instance's ports carry is ``engine.definitions``'.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from engine.components import (
    SEP,
    as_inside,
    breaks_inside,
    component_name,
    instance_agent,
    merged_lifecycle,
    params_inside,
    top_left,
)
from engine.definitions import ports_of
from engine.errors import WorkflowFileError
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
    slashed = [n.id for n in chosen if SEP in n.id]
    if slashed:
        raise WorkflowFileError(f"node {slashed[0]!r} has a '/' in its id, which a node inside a component may not "
                                "have (a run names those instance/node)", hint="rename it first, then group again")
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
                named_in[key] = fresh_port(port or "input", taken_in)
                wires.append(EdgeSpec(source=edge.source, source_port=edge.source_port, target=instance,
                                      target_port=named_in[key]))
            inputs.append(ComponentPort(name=named_in[key], node=edge.target, port=edge.target_port))
        else:  # from the group to outside: one output per inside output read outside
            port = edge.source_port or _first(ports[edge.source].outputs)
            key = (edge.source, port)
            if key not in named_out:
                named_out[key] = fresh_port(port or "output", taken_out, edge.source)
                outputs.append(ComponentPort(name=named_out[key], node=edge.source, port=edge.source_port))
            wires.append(EdgeSpec(source=instance, source_port=named_out[key], target=edge.target,
                                  target_port=edge.target_port))
    description = description or (old.description if old is not None else "")
    definition = ComponentSpec(name=name, description=description, nodes=tuple(chosen),
                               edges=tuple(e for e in workflow.edges if e.source in inside and e.target in inside),
                               inputs=tuple(dict.fromkeys(inputs)), outputs=tuple(outputs))
    node = NodeSpec(id=instance, agent=instance_agent(name), label=None, position=top_left(chosen))
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


def fresh_port(base: str, taken: set[str], node: str | None = None) -> str:
    """A port name made from ``base`` (a port's or node's name) that is not in ``taken`` (and now
    is); ``node``: prefix it with that node's name first when ``base`` is taken."""
    base = re.sub(r"[^A-Za-z0-9_]+", "_", base).strip("_") or "port"
    if not (base[0].isalpha() or base[0] == "_"):
        base = "p_" + base
    if base in taken and node:
        base = fresh_port(f"{node}_{base}", set())
    fresh, i = base[:90], 2
    while fresh in taken:
        fresh, i = f"{base[:90]}_{i}", i + 1
    taken.add(fresh)
    return fresh


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
    corner = top_left(definition.nodes)
    at = node.position or Position()
    put = []
    breaks = breaks_inside(definition, node.breakpoint, node.break_when)  # the instance's breakpoint stays where it stopped
    for inner in definition.nodes:
        pos = inner.position
        put.append(inner.model_copy(update={
            "id": rename[inner.id], **as_inside(inner, {**inner.params, **overrides.get(inner.id, {})},
                                                node.lifecycle, node.disabled, breaks),
            "position": None if pos is None else Position(x=at.x + pos.x - corner.x, y=at.y + pos.y - corner.y)}))
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
