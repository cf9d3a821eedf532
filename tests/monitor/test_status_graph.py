"""The status graph: nodes at their canvas positions (or in layers), edges between them, status colours."""

from __future__ import annotations

import json

from ui.monitor.status_graph import graph_rows, positions, status_graph_spec
from ui.monitor.view import RunView


def _view(workflow: dict) -> RunView:
    nodes = {
        "a": {"status": "done", "agent": "test.source", "device": "cpu"},
        "b": {"status": "waiting_resource", "agent": "test.sleep", "waiting_resource": "memory_mb",
              "held_by": ["c"]},
        "c": {"status": "running", "agent": "test.sleep", "device": "cpu"},
    }
    return RunView(run_id="r", workflow_name="w", status="running", t0=0.0, now=1.0, nodes=nodes,
                   samples=[], workflow=workflow)


EDGES = [{"source": "a", "target": "b"}, {"source": "a", "target": "c"}]


def test_nodes_without_positions_are_laid_out_in_layers() -> None:
    pos = positions({"nodes": [{"id": n} for n in "abc"], "edges": EDGES}, ["a", "b", "c"])
    assert pos["a"][0] < pos["b"][0] == pos["c"][0]
    assert pos["b"][1] != pos["c"][1]


def test_canvas_positions_are_kept() -> None:
    wf = {"nodes": [{"id": n, "position": {"x": i * 10, "y": 5}} for i, n in enumerate("abc")], "edges": EDGES}
    assert positions(wf, ["a", "b", "c"]) == {"a": (0.0, 5.0), "b": (10.0, 5.0), "c": (20.0, 5.0)}


def test_rows_carry_status_edges_and_the_reason_to_wait() -> None:
    nodes, edges = graph_rows(_view({"nodes": [{"id": n} for n in "abc"], "edges": EDGES}))
    by_id = {n["node"]: n for n in nodes}
    assert by_id["b"]["status"] == "waiting_resource"
    assert by_id["b"]["why"] == "waiting for memory_mb (held by c)"
    assert len(edges) == 2


def test_markup_in_node_ids_stays_data() -> None:
    bad = "<img src=x onerror=alert(1)>"
    view = _view({"nodes": [{"id": "a"}, {"id": bad}], "edges": [{"source": "a", "target": bad}]})
    view.nodes[bad] = view.nodes.pop("b")
    del view.nodes["c"]
    spec = status_graph_spec(view)
    assert any(row["node"] == bad for row in spec["datasets"]["graph_nodes"])
    json.dumps(spec)  # plain JSON for Vega-Lite, which renders text as text


def test_the_node_in_focus_is_a_failure_else_the_running_one_else_the_result() -> None:
    def view(statuses: dict[str, str], agents: dict[str, str] | None = None) -> RunView:
        nodes = {n: {"status": s, "agent": (agents or {}).get(n, "test.sleep")} for n, s in statuses.items()}
        edges = [{"source": "src", "target": "model"}, {"source": "model", "target": "csv"},
                 {"source": "src", "target": "other"}]
        return RunView(run_id="r", workflow_name="w", status="running", t0=0.0, now=1.0, nodes=nodes,
                       samples=[], workflow={"edges": edges})

    sink = {"csv": "flow.sink_csv"}
    assert view({"src": "done", "model": "done", "csv": "done", "other": "done"}, sink).focus_node() == "other"
    assert view({"src": "done", "model": "done", "csv": "done", "other": "running"}, sink).focus_node() == "other"
    assert view({"src": "done", "model": "done", "csv": "done", "other": "skipped"}, sink).focus_node() == "csv"
    assert view({"src": "done", "model": "failed", "csv": "skipped", "other": "running"}, sink).focus_node() == "model"
    assert view({"src": "done", "model": "running", "csv": "pending", "other": "done"}).focus_node() == "model"
    assert view({"src": "done", "model": "done", "csv": "done", "other": "done"}).focus_node() == "other"
    assert view({"src": "pending", "model": "pending", "csv": "pending", "other": "pending"}).focus_node() == "other"
    assert RunView(run_id="r", workflow_name="w", status="running", t0=0.0, now=1.0, nodes={},
                   samples=[]).focus_node() is None
