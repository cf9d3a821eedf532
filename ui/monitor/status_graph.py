"""The workflow drawn as a graph coloured by each node's status, live or replayed.

An Altair chart (it updates in place like the other monitor charts): nodes where the Designer
placed them (or in topological layers), edges as lines, colour by status, hover for why a node
waits. User text only reaches the chart as data, never as markup.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import altair as alt

from engine.graphs import layers
from ui.monitor.charts import STATUS_COLORS, Spec, _fill, _named
from ui.monitor.view import RunView

_SPACING_X, _SPACING_Y = 220.0, 90.0


def positions(workflow: dict[str, Any], node_ids: list[str]) -> dict[str, tuple[float, float]]:
    """Canvas positions from the workflow, else columns by topological layer."""
    placed: dict[str, tuple[float, float]] = {}
    for node in workflow.get("nodes", []):
        pos = node.get("position") if isinstance(node, dict) else None
        if isinstance(pos, dict) and node.get("id") in node_ids:
            placed[node["id"]] = (float(pos.get("x", 0.0)), float(pos.get("y", 0.0)))
    if len(placed) == len(node_ids):
        return placed
    for col, layer in enumerate(layers(node_ids, edge_pairs(workflow))):
        for row, nid in enumerate(layer):
            placed[nid] = (col * _SPACING_X, row * _SPACING_Y)
    return placed


def edge_pairs(workflow: dict[str, Any]) -> list[tuple[str, str]]:
    return [(str(e["source"]), str(e["target"])) for e in workflow.get("edges", [])
            if isinstance(e, dict) and "source" in e and "target" in e]


def _why(node: dict[str, Any]) -> str:
    if node.get("error"):
        return f"{node['error'].get('type', 'Error')}: {node['error'].get('message', '')}"[:200]
    if node.get("waiting_for"):
        return "waiting for " + ", ".join(node["waiting_for"])
    if node.get("waiting_resource"):
        held = ", ".join(node.get("held_by") or [])
        return f"waiting for {node['waiting_resource']}" + (f" (held by {held})" if held else "")
    return node.get("reason") or ""


def graph_rows(view: RunView) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(node rows, edge rows) for the chart."""
    ids = view.node_ids()
    pos = positions(view.workflow, ids)
    nodes = [{"node": nid, "agent": n.get("agent", ""), "status": n.get("status", "pending"),
              "device": n.get("device") or "", "why": _why(n), "x": pos[nid][0], "y": pos[nid][1]}
             for nid, n in view.nodes.items() if nid in pos]
    edges = [{"x": pos[a][0], "y": pos[a][1], "x2": pos[b][0], "y2": pos[b][1]}
             for a, b in edge_pairs(view.workflow) if a in pos and b in pos]
    return nodes, edges


@lru_cache(maxsize=1)
def _template() -> Spec:
    x = alt.X("x:Q", axis=None, scale=alt.Scale(zero=False, nice=False, padding=40))
    y = alt.Y("y:Q", axis=None, scale=alt.Scale(zero=False, nice=False, reverse=True, padding=30))
    lines = _named("graph_edges").mark_rule(color="#94a3b8", strokeWidth=1.5).encode(
        x=x, y=y, x2="x2:Q", y2="y2:Q")
    scale = alt.Scale(domain=list(STATUS_COLORS), range=list(STATUS_COLORS.values()))
    dots = _named("graph_nodes").mark_square(size=420, opacity=1, stroke="#334155", strokeWidth=1).encode(
        x=x, y=y, color=alt.Color("status:N", scale=scale, legend=None),
        tooltip=["node:N", "agent:N", "status:N", "device:N", "why:N"])
    labels = _named("graph_nodes").mark_text(dy=20, fontSize=11, color="#0f172a", limit=200).encode(
        x=x, y=y, text="node:N")
    return alt.layer(lines, dots, labels).properties(height=260, title="Workflow by node status").to_dict()


def status_graph_spec(view: RunView) -> Spec:
    nodes, edges = graph_rows(view)
    return _fill(_template(), {"graph_nodes": nodes, "graph_edges": edges})
