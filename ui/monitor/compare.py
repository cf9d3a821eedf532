"""Two runs side by side: per-node durations and statuses, totals, and output summaries."""

from __future__ import annotations

from typing import Any

from ui.monitor.frames import mean_utilisation
from ui.monitor.view import RunView, duration


def _label(view: RunView, tag: str) -> str:
    return f"{tag}: {view.run_id}"


def duration_rows(a: RunView, b: RunView) -> list[dict[str, Any]]:
    """Rows {node, run, wall_s} for the grouped duration bars (nodes of either run)."""
    rows = []
    for view, tag in ((a, "A"), (b, "B")):
        for nid, n in view.nodes.items():
            wall = duration(n, view.now)
            if wall is not None:
                rows.append({"node": nid, "run": _label(view, tag), "wall_s": round(wall, 3)})
    return rows


def node_rows(a: RunView, b: RunView) -> list[dict[str, Any]]:
    """One row per node id of either run: status and wall seconds of A and B, and B − A."""
    ids = list(dict.fromkeys([*a.nodes, *b.nodes]))
    rows = []
    for nid in ids:
        na, nb = a.nodes.get(nid), b.nodes.get(nid)
        wa = duration(na, a.now) if na else None
        wb = duration(nb, b.now) if nb else None
        rows.append({"node": nid, "status A": na["status"] if na else "—", "status B": nb["status"] if nb else "—",
                     "wall A (s)": round(wa, 3) if wa is not None else None,
                     "wall B (s)": round(wb, 3) if wb is not None else None,
                     "B − A (s)": round(wb - wa, 3) if wa is not None and wb is not None else None,
                     "same outputs": _same_outputs(na, nb)})
    return rows


def _same_outputs(na: dict[str, Any] | None, nb: dict[str, Any] | None) -> str:
    if not na or not nb or not na.get("output_summary") or not nb.get("output_summary"):
        return "—"
    return "yes" if na["output_summary"] == nb["output_summary"] else "no"


def totals(view: RunView) -> dict[str, Any]:
    """Headline numbers of one run for the comparison header."""
    plan = view.plan or {}
    cpu = sum(float(n.get("cpu_s") or 0.0) for n in view.nodes.values())
    return {"run": view.run_id, "workflow": view.workflow_name, "status": view.status,
            "policy": view.options.get("policy", ""), "elapsed_s": round(view.elapsed_s, 2),
            "predicted_s": round(float(plan["makespan"]) * view.time_scale, 2) if plan.get("makespan") else None,
            "nodes_done": f"{view.progress[0]}/{view.progress[1]}",
            "cached": sum(1 for n in view.nodes.values() if n.get("cached") or n["status"] == "cached"),
            "cpu_s": round(cpu, 3), "peak_rss_mb": max((float(s["rss_mb"] or 0) for s in view.samples), default=None),
            "mean_reserved": ", ".join(f"{k} {v:g} %" for k, v in mean_utilisation(view).items())}
