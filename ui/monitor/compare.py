"""Two runs side by side: what changed between them (workflow and run options), per-node durations
and statuses, totals, and output summaries."""

from __future__ import annotations

import json
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


CHANGE_LIMIT = 40  # lines; a longer difference ends with how many more there are
OPTION_NAMES = {"policy": "policy", "time_scale": "time scale", "use_cache": "cache", "fuse": "fusion", "priority": "priority",
                "backend": "backend", "fail_fast": "fail fast"}


def _short(value: Any, limit: int = 60) -> str:
    text = json.dumps(value, sort_keys=True, default=str) if not isinstance(value, str) else repr(value)
    return text if len(text) <= limit else text[:limit - 1] + "…"


def _settings(node: dict[str, Any]) -> dict[str, Any]:
    """A node's settings as flat names: ``n``, ``resources.memory_mb``, ``lifecycle.retries``..."""
    flat = {str(k): v for k, v in (node.get("params") or {}).items()}
    for section in ("resources", "lifecycle"):
        flat.update({f"{section}.{k}": v for k, v in (node.get(section) or {}).items()})
    return flat


def _pin_change(a: Any, b: Any) -> str | None:
    """A node's pin from run A to run B, in words (None: the same)."""
    ka, kb = (a or {}).get("key") if isinstance(a, dict) else None, (b or {}).get("key") if isinstance(b, dict) else None
    if ka == kb:
        return None
    if kb is None:
        return "unpinned (computed again)"
    source = f"run {b.get('run_id')}" if b.get("run_id") else "an earlier run"
    return f"pinned to its output from {source}" if ka is None else f"pinned to another output, from {source}"


def workflow_changes(a: RunView, b: RunView) -> list[str]:
    """What differs from run A to run B, in words: the run options (policy, time scale, cache...),
    the capacity, nodes added or removed or given another agent, each changed parameter or
    override (``reviews: n 90 -> 12``), and wires added or removed. Positions, labels and notes
    are left out: they do not change what runs."""
    lines: list[str] = []
    for key, name in OPTION_NAMES.items():
        va, vb = a.options.get(key), b.options.get(key)
        if va != vb and not (va is None or vb is None):
            lines.append(f"run option {name}: {_short(va)} -> {_short(vb)}")
    ca, cb = (a.workflow or {}).get("capacity"), (b.workflow or {}).get("capacity")
    if (ca or None) != (cb or None):
        lines.append(f"capacity: {_short(ca or 'the machine')} -> {_short(cb or 'the machine')}")
    na = {str(n.get("id")): n for n in (a.workflow or {}).get("nodes", []) if isinstance(n, dict)}
    nb = {str(n.get("id")): n for n in (b.workflow or {}).get("nodes", []) if isinstance(n, dict)}
    left = {}  # nodes a run left out on purpose (disabled, bypassed, not needed to run up to a node)
    for view, side in ((a, "A"), (b, "B")):
        meta = (view.workflow or {}).get("metadata") or {}
        for key, how in (("disabled", "disabled, or after a disabled node"), ("bypassed", "bypassed")):
            for nid in meta.get(key) or []:
                left[(side, str(nid))] = how
    for side, mine, theirs in (("B", nb, na), ("A", na, nb)):
        gone = [nid for nid in theirs if nid not in mine and (side, nid) in left]
        for how in dict.fromkeys(left[(side, nid)] for nid in gone):
            names = ", ".join(nid for nid in gone if left[(side, nid)] == how)
            lines.append(f"run {side} left out ({how}): {names}")
    lines += [f"node removed: {nid} ({na[nid].get('agent', '?')})" for nid in na if nid not in nb
              and ("B", nid) not in left]
    lines += [f"node added: {nid} ({nb[nid].get('agent', '?')})" for nid in nb if nid not in na
              and ("A", nid) not in left]
    for nid in [n for n in na if n in nb]:
        if na[nid].get("agent") != nb[nid].get("agent"):
            lines.append(f"{nid}: agent {na[nid].get('agent')} -> {nb[nid].get('agent')}")
            continue
        sa, sb = _settings(na[nid]), _settings(nb[nid])
        for name in list(dict.fromkeys([*sa, *sb])):
            if sa.get(name) != sb.get(name):
                before = _short(sa[name]) if name in sa else "(default)"
                after = _short(sb[name]) if name in sb else "(default)"
                lines.append(f"{nid}: {name} {before} -> {after}")
        if (change := _pin_change(na[nid].get("pin"), nb[nid].get("pin"))) is not None:
            lines.append(f"{nid}: {change}")

    def wires(view: RunView) -> set[tuple[str, str, str, str]]:
        return {(str(e.get("source")), str(e.get("source_port") or ""), str(e.get("target")),
                 str(e.get("target_port") or "")) for e in (view.workflow or {}).get("edges", []) if isinstance(e, dict)}

    def wire(w: tuple[str, str, str, str]) -> str:
        return f"{w[0]}{'.' + w[1] if w[1] else ''} -> {w[2]}{'.' + w[3] if w[3] else ''}"

    wa, wb = wires(a), wires(b)
    lines += [f"wire removed: {wire(w)}" for w in sorted(wa - wb)]
    lines += [f"wire added: {wire(w)}" for w in sorted(wb - wa)]
    if len(lines) > CHANGE_LIMIT:
        lines = [*lines[:CHANGE_LIMIT], f"… and {len(lines) - CHANGE_LIMIT} more differences"]
    return lines
