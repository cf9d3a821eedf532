"""Synthetic run snapshots for the monitor's tests and benchmark (no engine threads needed)."""

from __future__ import annotations

import time
from types import SimpleNamespace
from typing import Any


def fake_snapshot(nodes: int = 5, samples: int = 40, *, status: str = "running", running: int | None = None,
                  gpus: int = 0, t0: float | None = None) -> Any:
    """A RunSnapshot-shaped object: a chain of ``nodes`` sim tasks, the first ``running`` of them
    running (the rest done before them), ``samples`` metric samples at 4 Hz."""
    t0 = t0 if t0 is not None else time.time() - samples / 4.0
    running = nodes if running is None else running
    ids = [f"n{i:02d}" for i in range(nodes)]
    node_views: dict[str, dict[str, Any]] = {}
    for i, nid in enumerate(ids):
        is_running = i < running and status == "running"
        start = t0 + 0.1 * i
        end = None if is_running else start + 1.0
        node_views[nid] = {
            "status": "running" if is_running else "done", "agent": "sim.task", "device": "cpu" if i % 3 else "cuda:0",
            "attempts": 1, "queued_at": t0, "ready_at": start, "start": start, "end": end,
            "waiting_for": [], "waiting_resource": None, "held_by": [],
            "metrics": {} if is_running else {"wait_inputs_s": 0.1 * i, "wait_resource_s": 0.0, "queue_s": 0.0,
                                              "wall_s": 1.0, "cpu_s": 0.01},
            "error": None, "logs": [f"log line of {nid}"], "output_summary": {"out": {"type": "int", "value": i}},
            "cpu_percent": 10.0, "peak_rss_mb": 100.0, "memory_mb": 12.0, "reason": "", "cached": False, "progress": [0, None],
            "demand": {"cpu": 0.04, "memory_mb": 10.0, "gpu_memory_mb": 0.0, "device": "cpu", "custom": {}},
        }
    run_ids = [nid for nid, n in node_views.items() if n["status"] == "running"]
    sample_rows = [{"time": t0 + k / 4.0, "cpu_percent": 50.0 + k % 7, "rss_mb": 300.0 + k % 11,
                    "per_node": {nid: {"cpu_percent": float((k + j) % 90), "rss_mb": 300.0}
                                 for j, nid in enumerate(run_ids)},
                    "gpu_memory_mb": {f"cuda:{g}": 100.0 + k for g in range(gpus)}} for k in range(samples)]
    plan = {"makespan": 5.0, "lower_bound": 4.0, "lower_bounds": {"critical_path": 4.0}, "critical_path": ids[:2],
            "nodes": [{"id": nid, "start": 0.1 * i, "end": 0.1 * i + 1.2, "device": "cpu"} for i, nid in enumerate(ids)]}
    capacity = {"cpu": 2.0, "memory_mb": 4096.0, "custom": {},
                "gpus": [{"device_id": g, "memory_mb": 8192.0, "simulated": True} for g in range(gpus)]}
    done = sum(1 for n in node_views.values() if n["status"] == "done")
    return SimpleNamespace(
        run_id="fake0001", workflow_name="fake <flow>", status=status, version=samples, created=t0, started_at=t0,
        finished_at=None if status == "running" else t0 + samples / 4.0, progress=(done, nodes), eta_s=3.0,
        nodes=node_views, samples=sample_rows, plan=plan, capacity=capacity,
        options={"policy": "critical_path", "time_scale": 1.0}, error=None)
