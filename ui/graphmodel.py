"""Translation between a ``Workflow`` and the canvas's graph, the palette, and automatic layout.

Pure Python (no Streamlit): the canvas draws nodes ``{id, agent, label, x, y, sub}``, edges
``{id, src, srcPort, dst, dstPort}`` and notes ``{id, text, x, y, w, h, color}``; the workflow
keeps params, overrides and everything else (so copies of nodes are made here: ``copy_of``,
``paste``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from engine.components import SEP, component_name, held_components, instance_agent
from engine.definitions import add_components, component_ports, following
from engine.graphs import layers
from engine.items import PlannedItems, planned_items
from engine.kinds import DataKind
from engine.registry import Registry
from engine.runstate import combined_state
from engine.spec import AgentSpec
from engine.workflow import (
    MAX_NOTES,
    NOTE_COLORS,
    NOTE_HEIGHT,
    NOTE_MAX_CHARS,
    NOTE_WIDTH,
    ComponentSpec,
    EdgeSpec,
    NodeSpec,
    NoteSpec,
    Position,
    Workflow,
    disabled_reach,
    pinned_only_feeders,
)

KIND_COLORS: dict[str, str] = {
    DataKind.IMAGE_BATCH.value: "#7c3aed",
    DataKind.TENSOR.value: "#0891b2",
    DataKind.TEXT_BATCH.value: "#ea580c",
    DataKind.EMBEDDING.value: "#0d9488",
    DataKind.TABLE.value: "#4d7c0f",
    DataKind.SCORES.value: "#db2777",
    DataKind.LABELS.value: "#ca8a04",
    DataKind.ANY.value: "#64748b",
}
COLUMN_GAP, ROW_GAP = 260, 130
AGENT_COLOR = "#94a3b8"  # an agent that declares no palette colour


COMPONENT_COLOR = "#0f766e"
COMPONENTS_CATEGORY = "components"  # the palette's section of the open workflow's components
LIBRARY_CATEGORY = "library"  # the palette's section of the library's (ui.component_library)


def palette_of(registry: Registry, workflow: Workflow | None = None) -> list[dict[str, Any]]:
    """Every registered agent as the canvas palette needs it (ports with kinds, colour, category),
    and each component of ``workflow`` (drawn like an agent: its ports are the component's)."""
    out = [] if workflow is None else [component_entry(c.name, workflow, registry) for c in workflow.components]
    for spec in registry:
        out.append({
            "name": spec.name,
            "label": spec.label or spec.name,
            "category": spec.category,
            "description": spec.description,
            "color": spec.color or AGENT_COLOR,
            "inputs": [port_entry(p) for p in spec.inputs],
            "outputs": [port_entry(p) for p in spec.outputs],
        })
    return out


def component_entry(name: str, workflow: Workflow, registry: Registry) -> dict[str, Any]:
    """Component ``name`` of ``workflow`` as a palette entry (agent ``component:NAME``)."""
    definition = workflow.component(name)
    ports = component_ports(name, workflow, registry)
    size = len(definition.nodes) if definition else 0
    return {"name": instance_agent(name), "label": name, "category": COMPONENTS_CATEGORY,
            "description": (definition.description if definition and definition.description else
                            f"a component of {size} node{'s' if size != 1 else ''} in this workflow"),
            "color": COMPONENT_COLOR, "inputs": [port_entry(p) for p in ports.inputs],
            "outputs": [port_entry(p) for p in ports.outputs]}


def port_entry(port: Any) -> dict[str, Any]:
    out = {"name": port.name, "kind": port.kind.value, "required": port.required, "multiple": port.multiple}
    if port.accepts:  # an `any` input that reads only these kinds (engine.spec.PortSpec.accepts)
        out["accepts"] = [k.value for k in port.accepts]
    return out


def edge_id(source: str, source_port: str | None, target: str, target_port: str | None) -> str:
    return f"{source}.{source_port or ''}->{target}.{target_port or ''}"


def resolve_ports(edge: EdgeSpec, specs: dict[str, AgentSpec | None]) -> tuple[str | None, str | None]:
    """The ports an edge uses; an omitted port means the agent's only (or first) one."""
    src_spec, dst_spec = specs.get(edge.source), specs.get(edge.target)
    source_port = edge.source_port or (src_spec.outputs[0].name if src_spec and src_spec.outputs else None)
    target_port = edge.target_port or (dst_spec.inputs[0].name if dst_spec and dst_spec.inputs else None)
    return source_port, target_port


def _specs(workflow: Workflow, registry: Registry) -> dict[str, AgentSpec | None]:
    return {n.id: (registry.get(n.agent) if n.agent in registry else None) for n in workflow.nodes}


def component_states(statuses: dict[str, str], workflow: Workflow) -> dict[str, str]:
    """``statuses`` (a run's, by node of its expansion) with a state for each component instance
    of ``workflow``, from those of the nodes inside it (``engine.runstate.combined_state``)."""
    instances = {n.id for n in workflow.nodes if component_name(n) is not None}
    if not instances or not statuses:
        return statuses
    inner: dict[str, list[str]] = {}
    for node_id, status in statuses.items():  # one pass: each node under the instance its id starts with
        head = node_id.split(SEP, 1)[0]
        if head in instances and head != node_id:
            inner.setdefault(head, []).append(status)
    return {**statuses, **{inst: combined_state(states) for inst, states in inner.items()}}




def summarize_params(params: dict[str, Any], limit: int = 40) -> str:
    """A short one-line ``key=value`` summary of a node's parameters (the canvas escapes it)."""
    text = ", ".join(f"{k}={v}" for k, v in params.items())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def items_label(n: int | None, image: tuple[int, int, int] | None = None) -> str:
    """What an edge says about the items it carries ("" when the plan cannot tell): how many, and
    for images their planned size ("256 items · 64 px"), which the plan's time and memory follow."""
    if n is None:
        return ""
    size = "" if image is None else f" · {image[1]} px" if image[1] == image[2] else f" · {image[1]}x{image[2]} px"
    return f"{n:,} item{'s' if n != 1 else ''}{size}"


def canvas_graph(workflow: Workflow, registry: Registry, selected: list[str] | None = None,
                 sized: PlannedItems | None = None) -> dict[str, Any]:
    """The graph the canvas draws for ``workflow`` (positions must be set; see ``with_layout``).
    Each edge carries a ``label``: the items planned to flow along it (``engine.items``; ``sized``
    when the caller has them), as Orange shows on its links, so a user sees the size of the data
    before running (``counted_labels`` says what did flow, once a run has counted it)."""
    specs = _specs(workflow, registry)
    flows = sized if sized is not None else planned_items(workflow, registry)
    nodes: list[dict[str, Any]] = []
    idle = pinned_only_feeders(workflow)
    pinned = {n.id for n in workflow.nodes if n.pin is not None}
    muted = disabled_reach(workflow)
    for node in workflow.nodes:
        pos = node.position or Position()
        item = {"id": node.id, "agent": node.agent, "label": node.label or node.id,
                "x": pos.x, "y": pos.y, "sub": summarize_params(node.params)}
        if node.pin is not None:  # drawn with a pin: runs read its output from the pinned run
            item["pinned"] = f"run {node.pin.run_id}" if node.pin.run_id else "an earlier run"
        if node.id in idle:  # drawn faded: runs skip it
            item["idle"] = True
        if node.disabled:  # drawn hatched and dashed: runs leave it out, and what follows it
            item["disabled"] = True
        elif node.id in muted:
            item["muted"] = True
        elif node.bypass:  # drawn see-through: runs wire its input past it
            item["bypassed"] = True
        if node.breakpoint:  # drawn with a red dot: runs pause before it (a ring: when its condition holds)
            item["breakpoint"] = True
            if node.break_when is not None:
                item["breakWhen"] = node.break_when.describe()
        if node.faults:  # drawn with a bolt: trouble on purpose, for a lesson
            item["drill"] = node.faults.describe()
        if (name := component_name(node)) is not None:  # drawn stacked: it runs the nodes of a component
            definition = workflow.component(name)
            item["component"] = name
            item["label"] = node.label or name  # unlabelled: called what its component is
            item["inner"] = len(definition.nodes) if definition else 0
            item["sub"] = summarize_params(node.params) or (f"{item['inner']} nodes inside" if definition
                                                           else "no such component")
        nodes.append(item)
    edges = []
    for edge in workflow.edges:
        sp, tp, planned, image = _edge_flow(edge, specs, flows)
        item = {"id": edge_id(edge.source, sp, edge.target, tp), "src": edge.source, "srcPort": sp,
                "dst": edge.target, "dstPort": tp, "label": items_label(planned, image)}
        if edge.target in pinned:  # drawn dashed: the pinned node reads its output, not this wire's
            item["cut"] = True
        edges.append(item)
    notes = [{"id": n.id, "text": n.text, "x": n.position.x, "y": n.position.y, "w": n.width, "h": n.height,
              "color": n.color, "folded": n.folded} for n in workflow.notes]
    return {"nodes": nodes, "edges": edges, "notes": notes, "selected": list(selected or [])}


FLAGS = ("disabled", "bypass", "breakpoint")  # node switches the canvas toggles (Ctrl+M, Ctrl+B, F9)


def toggle_flag(workflow: Workflow, ids: list[str], flag: str) -> tuple[Workflow, bool | None]:
    """Set ``flag`` (``disabled``, ``bypass`` or ``breakpoint``) on the nodes ``ids``, or clear it
    when every one has it already (Ctrl+M, Ctrl+B and F9 toggle); (the workflow, whether it is now
    set; None when none of them exists)."""
    if flag not in FLAGS:
        raise ValueError(f"unknown node flag {flag!r}")
    chosen = [n for n in workflow.nodes if n.id in set(ids)]
    if not chosen:
        return workflow, None
    on = not all(getattr(n, flag) for n in chosen)
    ids_set = {n.id for n in chosen}
    return workflow.model_copy(update={"nodes": tuple(
        n.model_copy(update=flag_update(flag, on)) if n.id in ids_set else n for n in workflow.nodes)}), on


def flag_update(flag: str, on: bool) -> dict[str, Any]:
    """The node fields that setting ``flag`` to ``on`` changes: a breakpoint taken away takes its
    condition with it (as a debugger's does)."""
    return {flag: on, "break_when": None} if flag == "breakpoint" and not on else {flag: on}


def counted_labels(workflow: Workflow, registry: Registry, counted: dict[tuple[str, str], int],
                   sized: PlannedItems | None = None) -> dict[str, str]:
    """Edge id -> what a run counted along it (``counted``: (node, output port) -> items), with the
    plan's count when it differs ("30 items (planned 90)"): a branch's split, seen on its wires.
    The canvas draws these over the planned labels, as it draws the run's statuses over the nodes."""
    if not counted:
        return {}
    specs = _specs(workflow, registry)
    flows = sized if sized is not None else planned_items(workflow, registry)
    labels = {}
    for edge in workflow.edges:
        sp, tp, planned, image = _edge_flow(edge, specs, flows)
        if (n := counted.get((edge.source, sp or ""))) is None:
            continue
        labels[edge_id(edge.source, sp, edge.target, tp)] = items_label(n, image) + (
            "" if planned in (None, n) else f" (planned {planned:,})")
    return labels


def _edge_flow(edge: EdgeSpec, specs: dict[str, AgentSpec | None], flows: PlannedItems
               ) -> tuple[str | None, str | None, int | None, tuple[int, int, int] | None]:
    """An edge's resolved ports, the items planned along it and, for images, their planned size."""
    sp, tp = resolve_ports(edge, specs)
    port = specs[edge.source].output(sp) if specs.get(edge.source) is not None and sp else None
    image = flows.images(edge.source).emitted if port is not None and port.kind == DataKind.IMAGE_BATCH else None
    return sp, tp, flows.on_port(edge.source, sp), image


def workflow_from_canvas(workflow: Workflow, graph: dict[str, Any]) -> Workflow:
    """``workflow`` with the canvas's nodes, positions, labels, edges and notes; params and overrides
    kept (a report without notes keeps the workflow's)."""
    old = {n.id: n for n in workflow.nodes}
    nodes = []
    for item in graph.get("nodes", []):
        node_id, agent = str(item["id"]), str(item["agent"])
        prev = old.get(node_id)
        position = Position(x=float(item.get("x", 0)), y=float(item.get("y", 0)))
        if prev is not None and prev.agent == agent:
            nodes.append(prev.model_copy(update={"position": position}))  # labels change in the panel
        else:
            nodes.append(NodeSpec(id=node_id, agent=agent, label=item.get("label"), position=position))
    edges = [EdgeSpec(source=str(e["src"]), target=str(e["dst"]), source_port=e.get("srcPort"),
                      target_port=e.get("dstPort")) for e in graph.get("edges", [])]
    notes: dict[str, NoteSpec] = {n.id: n for n in workflow.notes} if "notes" not in graph else {}
    for item in graph.get("notes") or []:
        note = note_from_canvas(item)
        notes.setdefault(note.id, note)  # ids are unique in a workflow: a repeated one is dropped
    return workflow.model_copy(update={"nodes": tuple(nodes), "edges": tuple(edges),
                                       "notes": tuple(notes.values())[:MAX_NOTES]})


def note_from_canvas(item: dict[str, Any]) -> NoteSpec:
    """A note the canvas reported: its text cut to the longest a note keeps, its size in range, an
    unknown colour yellow."""
    width = min(NOTE_WIDTH[1], max(NOTE_WIDTH[0], float(item.get("w") or 220.0)))
    height = min(NOTE_HEIGHT[1], max(NOTE_HEIGHT[0], float(item["h"]))) if item.get("h") else None
    color = item.get("color") if item.get("color") in NOTE_COLORS else "yellow"
    return NoteSpec(id=str(item["id"]), text=str(item.get("text") or "")[:NOTE_MAX_CHARS], width=width,
                    height=height, color=color, folded=bool(item.get("folded")) and height is not None,
                    position=Position(x=float(item.get("x", 0)), y=float(item.get("y", 0))))


def structure_key(workflow: Workflow) -> str:
    """A comparable fingerprint of everything the user can change (to drop no-op echoes)."""
    return workflow.model_dump_json()


def needs_layout(workflow: Workflow) -> bool:
    return any(n.position is None for n in workflow.nodes)


def with_layout(workflow: Workflow) -> Workflow:
    """Nodes placed in columns by topological layer (sources left), rows in file order."""
    ids = workflow.node_ids()
    columns = layers(ids, [(e.source, e.target) for e in workflow.edges])
    where: dict[str, Position] = {}
    for col, members in enumerate(columns):
        for row, node_id in enumerate(members):
            where[node_id] = Position(x=col * COLUMN_GAP, y=row * ROW_GAP)
    nodes = tuple(n.model_copy(update={"position": where.get(n.id, Position())}) for n in workflow.nodes)
    return workflow.model_copy(update={"nodes": nodes})


def ensure_positions(workflow: Workflow) -> Workflow:
    return with_layout(workflow) if needs_layout(workflow) else workflow


COPY_OFFSET = 40.0  # canvas pixels down and right of the originals


def _fresh(base: str, taken: set[str]) -> str:
    """``base`` numbered (``pre`` -> ``pre_2``, ``pre_2`` -> ``pre_3``) so that it is not in ``taken``."""
    stem = re.sub(r"_\d+$", "", base)[:190] or "node"
    i = 2
    while f"{stem}_{i}" in taken:
        i += 1
    return f"{stem}_{i}"


@dataclass(frozen=True)
class Clip:
    """What Ctrl+C took: nodes (whole: parameters, overrides, label), the wires into them (between
    them, and from nodes not taken, for Ctrl+Shift+V), notes, and the components the nodes are
    instances of (with those they hold). Pasted into any workflow."""

    nodes: tuple[NodeSpec, ...] = ()
    wires: tuple[EdgeSpec, ...] = ()
    notes: tuple[NoteSpec, ...] = ()
    components: tuple[ComponentSpec, ...] = ()  # the definitions the copied nodes are instances of

    def __bool__(self) -> bool:
        return bool(self.nodes or self.notes)


def copy_of(workflow: Workflow, node_ids: Iterable[str], note_ids: Iterable[str] = ()) -> Clip:
    """The nodes ``node_ids`` and notes ``note_ids`` of ``workflow`` (unknown ids are skipped)."""
    wanted_nodes, wanted_notes = set(node_ids), set(note_ids)
    nodes = tuple(n for n in workflow.nodes if n.id in wanted_nodes)
    return Clip(nodes, tuple(e for e in workflow.edges if e.target in wanted_nodes),
                tuple(n for n in workflow.notes if n.id in wanted_notes),
                held_components(workflow, [n for c in nodes if (n := component_name(c)) is not None]))


def paste(workflow: Workflow, clip: Clip, with_inputs: bool = False) -> tuple[Workflow, list[str]]:
    """``workflow`` with copies of what ``clip`` holds and the wires between the copied nodes
    (``with_inputs``: and the wires into them from the nodes not copied that ``workflow`` has, as
    ComfyUI's Ctrl+Shift+V), placed down and right of where they were, where no copy sits yet.
    A copy keeps its id where it is free, else gets the next free one (``pre`` -> ``pre_2``);
    returns the workflow and the new nodes' ids."""
    notes = clip.notes[:max(0, MAX_NOTES - len(workflow.notes))]
    if not clip.nodes and not notes:
        return workflow, []
    spots = {(n.position.x, n.position.y) for n in workflow.nodes if n.position is not None}
    spots |= {(n.position.x, n.position.y) for n in workflow.notes}
    anchor = (clip.nodes[0].position or Position()) if clip.nodes else notes[0].position
    step = 1
    while (anchor.x + step * COPY_OFFSET, anchor.y + step * COPY_OFFSET) in spots:
        step += 1
    shift = step * COPY_OFFSET

    def moved(position: Position | None) -> Position:
        at = position or Position()
        return Position(x=min(1e7, at.x + shift), y=min(1e7, at.y + shift))

    workflow, renamed = add_components(workflow, clip.components) if clip.components else (workflow, {})
    present = set(workflow.node_ids())
    taken, rename = set(present), {}
    for node in clip.nodes:
        rename[node.id] = node.id if node.id not in taken else _fresh(node.id, taken)  # another workflow's may fit
        taken.add(rename[node.id])
    copies = tuple(following(n, renamed).model_copy(update={"id": rename[n.id], "position": moved(n.position)})
                   for n in clip.nodes)
    wires = tuple(e.model_copy(update={"source": rename.get(e.source, e.source), "target": rename[e.target]})
                  for e in clip.wires if e.target in rename
                  and (e.source in rename or (with_inputs and e.source in present)))
    note_taken = {n.id for n in workflow.notes}
    note_copies = []
    for note in notes:
        fresh = note.id if note.id not in note_taken else _fresh(note.id, note_taken)
        note_copies.append(note.model_copy(update={"id": fresh, "position": moved(note.position)}))
        note_taken.add(note_copies[-1].id)
    return workflow.model_copy(update={"nodes": workflow.nodes + copies, "edges": workflow.edges + wires,
                                       "notes": workflow.notes + tuple(note_copies)}), list(rename.values())


def describe_clip(nodes: int, notes: int) -> str:
    """``2 nodes and 1 note``."""
    made = [f"{nodes} node{'s' if nodes != 1 else ''}"] if nodes else []
    made += [f"{notes} note{'s' if notes != 1 else ''}"] if notes else []
    return " and ".join(made) or "nothing"


def replace_node(workflow: Workflow, node: NodeSpec) -> Workflow:
    """``workflow`` with the node of the same id replaced by ``node``."""
    return workflow.model_copy(update={"nodes": tuple(node if n.id == node.id else n for n in workflow.nodes)})
