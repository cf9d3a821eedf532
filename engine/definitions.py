"""Component definitions: the ports an instance shows (``component_ports``), renaming one,
bringing definitions into a workflow (``add_components``: paste, import, the library) and a
component as a file of its own (``component_file``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from engine.components import component_name, held_components, instance_agent
from engine.errors import WorkflowFileError
from engine.kinds import DataKind
from engine.registry import Registry
from engine.spec import PortSpec
from engine.workflow import ComponentPort, ComponentSpec, NodeSpec, Workflow


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
