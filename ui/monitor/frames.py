"""Chart data of a RunView as plain rows: Gantt bars, per-agent resource series, utilisation.

Pure Python (no Streamlit, no Altair) so that the HTML report and the benchmarks share it.
Every series is binned to at most ``MAX_POINTS`` points; times are seconds since the run start.
"""

from __future__ import annotations

import itertools
from typing import Any

from engine.components import EXPANDED_KEY
from engine.runstate import component_rows
from ui.monitor.view import RunView

# ~70 ms of headless-browser time per 2k-point Vega chart on a weak box; every live chart re-renders
# each second, so each draws at most this many (the Store keeps full resolution for History).
MAX_POINTS = 1500
RESOURCE_LABELS = {"cpu": "CPU threads", "memory_mb": "memory", "gpu_memory_mb": "GPU memory"}


def lane_of(device: str | None) -> str:
    return device or "cpu"


def planned_nodes(view: RunView) -> dict[str, dict[str, Any]]:
    """The plan's node entries by id (start, end, device), as the run stored them."""
    return {p["id"]: p for p in view.plan.get("nodes") or [] if isinstance(p, dict) and "id" in p}


def pause_rows(view: RunView) -> list[dict[str, Any]]:
    """The spans the run was paused (Pause / Step, a breakpoint), in seconds since its start, with
    why; one still open ends at the view's time."""
    return [{"start": round(max(0.0, a - view.t0), 3), "end": round(max(0.0, (view.now if b is None else min(b, view.now)) - view.t0), 3),
             "why": why} for a, b, why in view.pauses if a <= view.now]


def gantt_rows(view: RunView) -> list[dict[str, Any]]:
    """Predicted bars (the plan, scaled by the run's time scale) and actual bars, one row each."""
    scale = view.time_scale
    critical = set(view.plan.get("critical_path") or [])
    planned = planned_nodes(view)
    rows: list[dict[str, Any]] = []
    for nid, p in planned.items():
        rows.append({"node": nid, "lane": lane_of(p.get("device")), "kind": "predicted",
                     "start": float(p["start"]) * scale, "end": float(p["end"]) * scale,
                     "status": "predicted", "critical": nid in critical,
                     "agent": view.nodes.get(nid, {}).get("agent", "")})
    for nid, n in view.nodes.items():
        if n.get("start") is None:
            continue
        end = n.get("end") or view.now
        rows.append({"node": nid, "lane": lane_of(n.get("device") or planned.get(nid, {}).get("device")),
                     "kind": "actual", "start": max(0.0, n["start"] - view.t0), "end": max(0.0, end - view.t0),
                     "status": n.get("status", ""), "critical": nid in critical, "agent": n.get("agent", "")})
    return rows


def node_order(view: RunView) -> list[str]:
    """Rows of the Gantt: by device lane, then planned start (then actual start), then file order."""
    planned = planned_nodes(view)
    index = {nid: i for i, nid in enumerate(view.nodes)}

    def key(nid: str) -> tuple[str, float, int]:
        p, n = planned.get(nid), view.nodes.get(nid, {})
        lane = lane_of((p or {}).get("device") or n.get("device"))
        start = float(p["start"]) if p else (n.get("start") or 0.0) - view.t0 + 1e9
        return lane, start, index.get(nid, len(index))

    return sorted(set(view.nodes) | set(planned), key=key)


def _bucket_edges(count: int, buckets: int) -> list[tuple[int, int]]:
    if count <= buckets:
        return [(i, i + 1) for i in range(count)]
    step = count / buckets
    return [(int(i * step), max(int(i * step) + 1, int((i + 1) * step))) for i in range(buckets)]


def cpu_rows(view: RunView, max_points: int = MAX_POINTS) -> list[dict[str, Any]]:
    """Per-agent CPU % (100 = one thread busy), averaged over time bins; ≤ ``max_points`` rows.
    A fused chain is sampled as its head: its series is named ``head + next + ...``."""
    samples = view.samples
    names = {nid for s in samples for nid in s["per_node"]}
    if not samples or not names:
        return []
    label = {nid: " + ".join([nid, *((view.nodes.get(nid) or {}).get("chain") or [])]) for nid in names}
    buckets = max(2, max_points // len(names))
    rows: list[dict[str, Any]] = []
    for lo, hi in _bucket_edges(len(samples), buckets):
        part = samples[lo:hi]
        sums: dict[str, float] = {}
        counts: dict[str, int] = {}
        for s in part:
            for nid, v in s["per_node"].items():
                sums[nid] = sums.get(nid, 0.0) + float(v.get("cpu_percent") or 0.0)
                counts[nid] = counts.get(nid, 0) + 1
        t = part[len(part) // 2]["time"] - view.t0
        rows.extend({"t": round(t, 3), "node": label[nid], "cpu_percent": round(sums[nid] / counts[nid], 2)}
                    for nid in sums)
    return rows[-max_points:]


def memory_rows(view: RunView, max_points: int = MAX_POINTS) -> list[dict[str, Any]]:
    """Process memory (RSS, MB) and GPU memory per device (MB) over time, binned."""
    samples = view.samples
    if not samples:
        return []
    devices = sorted({d for s in samples for d in s["gpu"]})
    buckets = max(2, max_points // (1 + len(devices)))
    rows: list[dict[str, Any]] = []
    for lo, hi in _bucket_edges(len(samples), buckets):
        part = samples[lo:hi]
        t = round(part[len(part) // 2]["time"] - view.t0, 3)
        rows.append({"t": t, "series": "process RSS", "mb": round(max(float(s["rss_mb"] or 0) for s in part), 1)})
        for d in devices:
            vals = [float(s["gpu"].get(d) or 0.0) for s in part]
            rows.append({"t": t, "series": f"GPU {d}", "mb": round(max(vals), 1)})
    return rows


def capacity_rules(view: RunView) -> dict[str, list[dict[str, Any]]]:
    """Horizontal capacity lines: CPU % (threads × 100), memory MB, each GPU's memory MB."""
    cap = view.capacity or {}
    cpu = [{"label": f"capacity {cap['cpu']:g} threads", "value": float(cap["cpu"]) * 100.0}] if cap.get("cpu") else []
    mem = [{"label": "memory capacity", "value": float(cap["memory_mb"])}] if cap.get("memory_mb") else []
    for gpu in cap.get("gpus") or []:
        tag = " (simulated)" if gpu.get("simulated") else ""
        mem.append({"label": f"GPU cuda:{gpu.get('index', 0)} capacity{tag}", "value": float(gpu.get("memory_mb") or 0)})
    return {"cpu": cpu, "memory": mem}


def _dims(view: RunView) -> dict[str, float]:
    cap = view.capacity or {}
    dims: dict[str, float] = {}
    if cap.get("cpu"):
        dims["cpu"] = float(cap["cpu"])
    if cap.get("memory_mb"):
        dims["memory_mb"] = float(cap["memory_mb"])
    gpu_total = sum(float(g.get("memory_mb") or 0) for g in cap.get("gpus") or [])
    if gpu_total:
        dims["gpu_memory_mb"] = gpu_total
    for name, amount in (cap.get("custom") or {}).items():
        if amount:
            dims[str(name)] = float(amount)
    return dims


def _demand(node: dict[str, Any], dim: str) -> float:
    demand = node.get("demand") or {}
    if dim in ("cpu", "memory_mb", "gpu_memory_mb"):
        return float(demand.get(dim) or 0.0)
    return float((demand.get("custom") or {}).get(dim) or 0.0)


def utilisation_rows(view: RunView) -> list[dict[str, Any]]:
    """Reserved share (%) of each resource over time: a step series from node start/end times."""
    dims = _dims(view)
    intervals = [(n["start"] - view.t0, (n.get("end") or view.now) - view.t0, n) for n in view.nodes.values()
                 if n.get("start") is not None and not n.get("cached")]
    if not intervals or not dims:
        return []
    times = sorted({0.0, view.elapsed_s} | {a for a, _, _ in intervals} | {b for _, b, _ in intervals})
    if len(times) * len(dims) > MAX_POINTS:
        step = max(1, len(times) * len(dims) // MAX_POINTS + 1)
        times = [*times[::step], times[-1]]
    rows = []
    for t in times:
        active = [n for a, b, n in intervals if a <= t < b]
        for dim, total in dims.items():
            used = sum(_demand(n, dim) for n in active)
            rows.append({"t": round(t, 3), "resource": RESOURCE_LABELS.get(dim, dim),
                         "percent": round(100.0 * used / total, 2)})
    return rows


def mean_utilisation(view: RunView) -> dict[str, float]:
    """Time-averaged reserved share (%) of each resource over the run so far."""
    rows = utilisation_rows(view)
    out: dict[str, float] = {}
    by_res: dict[str, list[tuple[float, float]]] = {}
    for r in rows:
        by_res.setdefault(r["resource"], []).append((r["t"], r["percent"]))
    for res, pts in by_res.items():
        span = pts[-1][0] - pts[0][0]
        area = sum((b[0] - a[0]) * a[1] for a, b in itertools.pairwise(pts))
        out[res] = round(area / span, 1) if span > 0 else 0.0
    return out


FIT_MEASURES = ("time (s)", "memory (MB)", "GPU memory (MB)")
# measured / planned: above the plan (time: by a quarter; memory: any more than reserved, which the
# scheduler could over-commit), or under half of it
FIT_ABOVE = dict(zip(FIT_MEASURES, (1.25, 1.0, 1.0), strict=True))
FIT_BELOW = 0.5


def fit_verdict(measure: str, ratio: float | None) -> str:
    """How a measurement compares with what was planned for it (None: nothing was planned)."""
    if ratio is None or ratio > FIT_ABOVE.get(measure, 1.0):
        return "above plan"
    return "under half the plan" if ratio < FIT_BELOW else "near plan"


COLD_NOTE = "its agent's first run in this server process: the time and memory include imports and model loading"


def fit_rows(view: RunView) -> list[dict[str, Any]]:
    """Planned against measured, per node that ran: the planned duration (the plan's, so learned
    estimates where the plan used them; scaled by the run's time scale) against its wall time, and
    the memory and GPU memory it reserved against what it used. A fused chain's memory is its
    head's (the chain held and measured it as one); cached nodes ran nothing and are left out."""
    planned = planned_nodes(view)
    rows: list[dict[str, Any]] = []

    def add(nid: str, node: dict[str, Any], measure: str, plan: float, used: float, note: str = "") -> None:
        ratio = used / plan if plan > 0 else None
        cold = bool((node.get("metrics") or {}).get("cold"))
        if cold:
            note = "; ".join(filter(None, [note, COLD_NOTE]))
        rows.append({"node": nid, "agent": node.get("agent", ""), "measure": measure, "planned": round(plan, 3),
                     "measured": round(used, 3), "ratio": round(ratio, 3) if ratio is not None else None,
                     "verdict": fit_verdict(measure, ratio), "cold": cold, "note": note})

    for nid in node_order(view):
        node = view.nodes.get(nid)
        if not node or node.get("cached") or node.get("start") is None or node.get("end") is None:
            continue
        wall = node.get("wall_s")
        wall = float(wall) if wall is not None else float(node["end"]) - float(node["start"])
        if (p := planned.get(nid)) is not None:
            add(nid, node, FIT_MEASURES[0], (float(p["end"]) - float(p["start"])) * view.time_scale, wall)
        if node.get("fused_into"):
            continue  # its memory is counted, and was reserved, in its chain's head
        demand = node.get("demand") or {}
        chain = node.get("chain") or []
        note = f"fused chain {' -> '.join([nid, *chain])}: reserved and measured as one" if chain else ""
        for measure, reserved, used in ((FIT_MEASURES[1], demand.get("memory_mb"), node.get("memory_mb")),
                                        (FIT_MEASURES[2], demand.get("gpu_memory_mb"), node.get("peak_gpu_mb"))):
            reserved, used = float(reserved or 0.0), (float(used) if used is not None else None)
            if used is None or (reserved <= 0 and used <= 0):
                continue
            add(nid, node, measure, reserved, used, note)
    return rows


FIT_NOTABLE = 0.01  # a mismatch worth words: at least this share of the run's time or the capacity


def fit_summary(view: RunView, rows: list[dict[str, Any]] | None = None, limit: int = 3) -> list[str]:
    """The mismatches that matter, in words (at most ``limit``): memory used beyond its reservation
    first (the scheduler could over-commit it), then the rest by how much of the run's time or of
    the machine's capacity they are (a 10 MB node that used 0 MB is not worth a line; one 1 %)."""
    rows = fit_rows(view) if rows is None else rows
    cap = view.capacity or {}
    scale = {FIT_MEASURES[0]: max(view.elapsed_s, 1e-9), FIT_MEASURES[1]: float(cap.get("memory_mb") or 0.0),
             FIT_MEASURES[2]: max([float(g.get("memory_mb") or 0.0) for g in cap.get("gpus") or []] or [0.0])}
    ranked = []
    for r in rows:
        if r["verdict"] == "near plan":
            continue
        weight = abs(r["measured"] - r["planned"]) / scale[r["measure"]] if scale.get(r["measure"]) else 1.0
        beyond = r["measure"] != FIT_MEASURES[0] and r["verdict"] == "above plan"
        if beyond or weight >= FIT_NOTABLE:
            ranked.append((not beyond, -weight, r))
    ranked.sort(key=lambda t: (t[0], t[1]))
    lines = []
    for _, _, r in ranked[:limit]:
        unit = "s" if r["measure"] == FIT_MEASURES[0] else "MB"
        what = {FIT_MEASURES[0]: "took", FIT_MEASURES[1]: "used"}.get(r["measure"], "used GPU memory")
        ratio = r["ratio"]
        share = "" if ratio is None else f" ({ratio:.0%})" if ratio >= 0.01 else " (under 1 %)"
        planned = "planned" if unit == "s" else "reserved"
        lines.append(f"{r['node']} {what} {r['measured']:,.3g} {unit} against {r['planned']:,.3g} {unit} "
                     f"{planned}{share}{' on its first run in this process' if r.get('cold') else ''}")
    return lines


def node_table(view: RunView) -> list[dict[str, Any]]:
    """One row per node for the status table (seconds rounded for people)."""
    rows = []
    for nid, n in view.nodes.items():
        start, end = n.get("start"), n.get("end")
        wall = (end or view.now) - start if start is not None else None
        why = ""
        if n["status"] == "waiting_inputs" and n.get("waiting_for"):
            why = "inputs: " + ", ".join(n["waiting_for"])
        elif n["status"] == "waiting_resource" and n.get("waiting_resource"):
            held = f" (held by {', '.join(n['held_by'])})" if n.get("held_by") else ""
            why = f"resource: {n['waiting_resource']}{held}"
        elif n.get("error"):
            why = f"{n['error']['type']}: {n['error']['message']}"[:160]
        elif n.get("fused_into"):
            why = f"fused into {n['fused_into']}'s chain: ran batch by batch inside its reservation"
        elif n.get("chain"):
            why = f"fused chain {' -> '.join([nid, *n['chain']])}: holds the chain's resources"
        rows.append({"node": nid, "agent": n.get("agent", ""), "status": n["status"], "device": n.get("device", ""),
                     "attempts": n.get("attempts", 0),
                     "start_s": round(start - view.t0, 2) if start is not None else None,
                     "wall_s": round(wall, 2) if wall is not None else None,
                     "cpu_s": round(n["cpu_s"], 3) if n.get("cpu_s") is not None else None,
                     "why": why})
    return rows


def component_table(view: RunView) -> list[dict[str, Any]]:
    """One row per component instance of the run (none for a run without components): its nodes,
    their combined state, when the first started, the span to the last one's end, the time its
    nodes ran in all, their CPU seconds and the most memory one held (``engine.runstate.component_rows``)."""
    instances = (view.workflow.get("metadata") or {}).get(EXPANDED_KEY) or {}
    if not isinstance(instances, dict) or not instances:
        return []
    nodes = [{"node": nid, "status": n.get("status"), "start": n.get("start"),
              "end": n.get("end") if n.get("start") is not None else None, "cpu_s": n.get("cpu_s"),
              "memory_mb": n.get("memory_mb")} for nid, n in view.nodes.items()]
    rows = []
    for row in component_rows(instances, nodes):
        rows.append({"component": row["component"], "of": row["of"], "nodes": row["nodes"], "status": row["status"],
                     "start_s": round(row["start"] - view.t0, 2) if row["start"] is not None else None,
                     "span_s": _round(row["span_s"], 2), "busy_s": _round(row["busy_s"], 2),
                     "cpu_s": _round(row["cpu_s"], 3), "memory_mb": _round(row["memory_mb"], 1)})
    return rows


def _round(value: float | None, digits: int) -> float | None:
    return round(value, digits) if value is not None else None
