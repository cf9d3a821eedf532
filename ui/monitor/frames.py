"""Chart data of a RunView as plain rows: Gantt bars, per-agent resource series, utilisation.

Pure Python (no Streamlit, no Altair) so that the HTML report and the benchmarks share it.
Every series is binned to at most ``MAX_POINTS`` points; times are seconds since the run start.
"""

from __future__ import annotations

import itertools
from typing import Any

from ui.monitor.view import RunView

# ~70 ms of headless-browser time per 2k-point Vega chart on a weak box; every live chart re-renders
# each second, so each draws at most this many (the Store keeps full resolution for History).
MAX_POINTS = 1500
RESOURCE_LABELS = {"cpu": "CPU threads", "memory_mb": "memory", "gpu_memory_mb": "GPU memory"}


def lane_of(device: str | None) -> str:
    return device or "cpu"


def gantt_rows(view: RunView) -> list[dict[str, Any]]:
    """Predicted bars (the plan, scaled by the run's time scale) and actual bars, one row each."""
    scale = view.time_scale
    critical = set(view.plan.get("critical_path") or [])
    planned = {p["id"]: p for p in view.plan.get("nodes") or [] if isinstance(p, dict) and "id" in p}
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
    planned = {p["id"]: p for p in view.plan.get("nodes") or [] if isinstance(p, dict) and "id" in p}
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
