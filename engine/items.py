"""How many items each node of a workflow will see: the planner's size estimate.

A source says how many items it emits from its parameters (``AgentSpec.items_fn``: an image
source's ``n_items``, a text list's length, the texts of a file, counted once per version of the
file); a node with inputs receives the largest count among its inputs and, unless its agent says
otherwise (a limit keeps ``n``), passes it on. An agent that emits one item per group of what it
receives (one risk per customer, features per item) counts the groups: sources say how many
distinct values their key columns hold (``AgentSpec.keys_fn``: a transaction table's customers),
and ``groups_fn`` turns its inputs' keys into its count (``PlannedItems.keys_on``). A count the
workflow cannot tell (a file that cannot be read, an unknown agent, bad parameters) is None, and
so is everything that depends only on it.

Images are followed the same way: a source says the shape of the images it emits
(``AgentSpec.shape_fn``: channels x size x size), a resize changes it, a filter passes it on; the
agents whose work or memory grows with each image's pixels declare what they add per item
(``per_image_fn``), so a 512 px run is not planned with a 64 px run's figures.

Declared durations and memory grow with these counts (``AgentSpec.per_item_s``,
``memory_per_item_mb``), and learned ones are scaled from the counts planned for the runs they
were measured in to those planned now (``engine.estimates``), so a 4,096-image run is not planned
with a 64-image run's times. Counts are compared planned with planned, so one that is only an
approximation (a recommendation log's mean size) still scales right.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from pydantic import BaseModel, ValidationError

from engine.components import expand_components, has_instances, output_sources
from engine.graphs import topological_order
from engine.kinds import CLASS_COLUMNS, ENTITY, score_classes
from engine.registry import Registry
from engine.resources import ResourceDemand
from engine.spec import AgentSpec, ImageShape, ImageSizes, values_of
from engine.workflow import NodeSpec, Workflow


def node_demand(node: NodeSpec, spec: AgentSpec, params: BaseModel | None,
                sized: PlannedItems | None) -> ResourceDemand:
    """What ``node`` reserves (``AgentSpec.demand_for``): for the items and images planned for it
    where ``sized`` is given (agents whose memory grows with them), else for a typical number; its
    GPU memory for one batch of its lifecycle."""
    if sized is not None:
        return sized.demand(node.id, spec, params, node.resources, node.lifecycle)
    return spec.demand_for(node.resources, params, lifecycle=node.lifecycle)


@dataclass(frozen=True)
class PlannedItems:
    """Per node: the items on its inputs (what it processes) and the items it emits (the most
    of any of its output ports); per output port where the agent counts them apart."""

    items_in: dict[str, int | None]
    items_out: dict[str, int | None]
    port_out: dict[tuple[str, str], int | None] = field(default_factory=dict)
    shape_in: dict[str, ImageShape | None] = field(default_factory=dict)
    shape_out: dict[str, ImageShape | None] = field(default_factory=dict)
    columns_out: dict[str, tuple[str, ...] | None] = field(default_factory=dict)  # a table's, where known
    port_columns: dict[tuple[str, str], tuple[str, ...]] = field(default_factory=dict)  # agents with several
    # per (node, output port): the names a column can hold, where the agent knows them (values_fn);
    # an agent's only output also under "" (an edge that names no port)
    port_values: dict[tuple[str, str], dict[str, tuple[str, ...]]] = field(default_factory=dict)
    # per (node, output port): distinct values of its key columns where the agent knows them
    # (keys_fn); an agent's only output also under ""
    port_keys: dict[tuple[str, str], dict[str, int]] = field(default_factory=dict)

    def images(self, node_id: str) -> ImageSizes:
        """The planned shape of one image ``node_id`` receives and of one it emits."""
        return ImageSizes(self.shape_in.get(node_id), self.shape_out.get(node_id))

    def handled(self, node_id: str, spec: AgentSpec | None) -> int | None:
        """The items a node of agent ``spec`` handles: those it receives, or for a source (an
        agent without inputs) those it emits."""
        return (self.items_in if spec is not None and spec.inputs else self.items_out).get(node_id)

    def duration(self, node_id: str, spec: AgentSpec, params: BaseModel | None) -> float:
        """The seconds ``spec`` declares for the node with these params, for the items it
        receives and the images planned for it (``AgentSpec.expected_duration``)."""
        return spec.expected_duration(params, self.items_in.get(node_id), images=self.images(node_id))

    def demand(self, node_id: str, spec: AgentSpec, params: BaseModel | None,
               overrides: Mapping[str, Any] | None = None,
               lifecycle: Mapping[str, Any] | None = None) -> ResourceDemand:
        """What the node reserves: ``spec``'s demand with the node's ``overrides``, its memory
        grown for the items it handles and the images planned for it, its GPU memory for a batch
        of its ``lifecycle`` (``AgentSpec.demand_for``)."""
        return spec.demand_for(overrides, params, self.handled(node_id, spec), images=self.images(node_id),
                               lifecycle=lifecycle)

    def columns_on(self, node_id: str, port: str | None) -> tuple[str, ...] | None:
        """The columns of the table that leaves ``node_id`` by output ``port``, where known."""
        if port is not None and (node_id, port) in self.port_columns:
            return self.port_columns[(node_id, port)]
        return self.columns_out.get(node_id)

    def values_on(self, node_id: str, port: str | None) -> dict[str, tuple[str, ...]]:
        """The names each column of the table leaving ``node_id`` by ``port`` can hold, where known:
        what the agent says (``AgentSpec.values_fn``), and for scores the classes their
        ``predicted`` and ``label`` columns hold (read from the ``score_<class>`` columns)."""
        known = dict(self.port_values.get((node_id, port or ""), {}))  # "": an agent's only output
        columns = self.columns_on(node_id, port) or ()
        if classes := tuple(score_classes(columns)):
            known.update({c: classes for c in CLASS_COLUMNS if c in columns and c not in known})
        return known

    def keys_on(self, node_id: str, port: str | None) -> dict[str, int]:
        """The distinct values each key column of what leaves ``node_id`` by ``port`` holds (at
        most), where known (``AgentSpec.keys_fn``), and under ``ENTITY`` the groups of its rows:
        by default each row its own, as a scores payload without ``entities`` is pooled by id."""
        keys = dict(self.port_keys.get((node_id, port or ""), {}))
        if ENTITY not in keys and (rows := self.on_port(node_id, port)) is not None:
            keys[ENTITY] = rows
        return keys

    def inside(self, instance: str) -> PlannedItems:
        """What is planned for the nodes inside ``instance`` (an id of the expansion), under their
        ids inside the component: what the designer draws on the wires when the component is open."""
        head = instance + "/"

        def cut(key: Any) -> Any:
            node = key[0] if isinstance(key, tuple) else key
            if not isinstance(node, str) or not node.startswith(head) or "/" in node[len(head):]:
                return None
            return (node[len(head):], *key[1:]) if isinstance(key, tuple) else node[len(head):]

        def part(values: dict[Any, Any]) -> dict[Any, Any]:
            return {k: v for key, v in values.items() if (k := cut(key)) is not None}

        return PlannedItems(**{f.name: part(getattr(self, f.name)) for f in fields(self)})

    def on_port(self, node_id: str, port: str | None) -> int | None:
        """The items that leave ``node_id`` by output ``port`` (the node's count when the agent
        does not count its ports apart, or the port is not named)."""
        if port is not None and (node_id, port) in self.port_out:
            return self.port_out[(node_id, port)]
        return self.items_out.get(node_id)


def planned_items(workflow: Workflow | Mapping[str, Any], registry: Registry) -> PlannedItems:
    """The planned item counts of every node (None where the workflow cannot tell).

    ``workflow`` may be a Workflow or its plain dict (as stored with a run). Never raises for a
    bad workflow: what cannot be read is unknown (validation reports it elsewhere).
    """
    if isinstance(workflow, Workflow) and has_instances(workflow):  # planned as it runs, read as drawn
        planned = _planned(expand_components(workflow)[0], registry)
        _alias_instances(planned, workflow)
        return planned
    return _planned(workflow, registry)


def _planned(workflow: Workflow | Mapping[str, Any], registry: Registry) -> PlannedItems:
    """``planned_items`` of a workflow whose components are expanded (or left as unknown nodes)."""
    nodes, edges = _graph(workflow)
    preds: dict[str, list[tuple[str, str | None]]] = {nid: [] for nid in nodes}
    for source, target, port in edges:
        if source in preds and target in preds:
            preds[target].append((source, port))
    order = topological_order(list(nodes), [(s, t) for s, t, _ in edges if s in nodes and t in nodes]) or []
    planned = PlannedItems(dict.fromkeys(nodes), dict.fromkeys(nodes), {}, dict.fromkeys(nodes), dict.fromkeys(nodes),
                           dict.fromkeys(nodes))
    for nid in order:
        known = [n for p, port in preds[nid] if (n := planned.on_port(p, port)) is not None]
        planned.items_in[nid] = max(known) if known else None
        shapes = [s for p, _ in preds[nid] if (s := planned.shape_out.get(p)) is not None]
        planned.shape_in[nid] = max(shapes, key=values_of) if shapes else None
        agent, params = nodes[nid]
        if agent not in registry:
            continue
        spec = registry.get(agent)
        try:
            parsed = spec.parse_params(params)
            planned.shape_out[nid] = spec.emitted_shape(parsed, planned.shape_in[nid])
            columns = spec.emitted_columns(parsed, [planned.columns_on(p, port) for p, port in preds[nid]])
            _store_ports(planned.port_values, nid, spec,
                         spec.emitted_values(parsed, [planned.values_on(p, port) or None for p, port in preds[nid]]))
            if isinstance(columns, dict):
                planned.port_columns.update(((nid, port), cols) for port, cols in columns.items())
            else:
                planned.columns_out[nid] = columns
            keys = [planned.keys_on(p, port) for p, port in preds[nid]]
            if preds[nid] and not known:
                continue
            ports = spec.port_items(parsed, planned.items_in[nid])
            ports.update((port, n) for port, n in spec.grouped_items(parsed, keys).items() if port in ports)
            planned.items_out[nid] = spec.items_out(parsed, planned.items_in[nid], ports)
            _store_ports(planned.port_keys, nid, spec, spec.emitted_keys(parsed, keys))
        except (ValidationError, TypeError, ValueError):
            continue
        planned.port_out.update(((nid, port), n) for port, n in ports.items())
    return planned


def _alias_instances(planned: PlannedItems, workflow: Workflow) -> None:
    """Each component instance's outputs planned as those of the nodes inside they stand for, so
    the drawn graph's wires and pickers read them as any node's."""
    for (instance, port), (inner, inner_port) in output_sources(workflow).items():
        planned.port_out[(instance, port)] = planned.on_port(inner, inner_port)
        if (columns := planned.columns_on(inner, inner_port)) is not None:
            planned.port_columns[(instance, port)] = columns
            planned.columns_out.setdefault(instance, columns)  # a wire that names no port: its first
        planned.port_values[(instance, port)] = planned.values_on(inner, inner_port)
        planned.port_values.setdefault((instance, ""), planned.port_values[(instance, port)])
        planned.port_keys[(instance, port)] = dict(planned.port_keys.get((inner, inner_port or ""), {}))
        planned.shape_out[instance] = planned.shape_out.get(instance) or planned.shape_out.get(inner)
        counts = [n for n in (planned.items_out.get(instance), planned.port_out[(instance, port)]) if n is not None]
        planned.items_out[instance] = max(counts) if counts else None


def _store_ports(into: dict[tuple[str, str], Any], nid: str, spec: AgentSpec, found: Mapping[str, Any]) -> None:
    """What an agent says of each output port, stored per (node, port); an agent's only output
    also under "" (an edge that names no port)."""
    into.update(((nid, port), value) for port, value in found.items())
    if len(spec.outputs) == 1 and found:
        into[(nid, "")] = found.get(spec.outputs[0].name, {})


def declared_durations(workflow: Workflow | Mapping[str, Any], registry: Registry,
                       sized: PlannedItems | None = None) -> dict[str, float]:
    """Node id -> the duration its agent declares for the node's parameters and planned input items
    (as the planner counts them: ``AgentSpec.expected_duration``). Nodes whose agent is unknown or
    whose parameters do not validate are left out. ``sized``: the workflow's planned items, when
    the caller has them already."""
    sized = sized or planned_items(workflow, registry)
    nodes, _ = _graph(workflow)
    out: dict[str, float] = {}
    for nid, (agent, params) in nodes.items():
        if agent not in registry:
            continue
        spec = registry.get(agent)
        try:
            out[nid] = sized.duration(nid, spec, spec.parse_params(params))
        except (TypeError, ValueError):  # pydantic's ValidationError, or params that are not a mapping
            continue
    return out


def _graph(workflow: Workflow | Mapping[str, Any]) -> tuple[dict[str, tuple[str, Any]],
                                                            list[tuple[str, str, str | None]]]:
    """Nodes (id -> agent, params) and edges (source, target, source port or None)."""
    if isinstance(workflow, Workflow):
        return ({n.id: (n.agent, n.params) for n in workflow.nodes},
                [(e.source, e.target, e.source_port) for e in workflow.edges])
    nodes = {str(n.get("id")): (str(n.get("agent", "")), n.get("params") or {})
             for n in workflow.get("nodes") or [] if isinstance(n, Mapping)}
    edges = [(str(e.get("source")), str(e.get("target")),
              None if e.get("source_port") is None else str(e.get("source_port")))
             for e in workflow.get("edges") or [] if isinstance(e, Mapping)]
    return nodes, edges
