"""Benchmark: the server-side cost of one live monitor update with 50 agents running.

One update = RunManager.snapshot() → RunView → the four chart specs (Gantt, CPU, memory,
utilisation) with their data binned to ≤ MAX_POINTS (1,500) points each, plus the status table rows. Target:
≤ 150 ms. Measured on (a) a real run of 50 concurrently running simulated agents, and (b) the same
snapshot with its sample ring buffer full (2,000 samples × 50 agents, the worst case). The baseline
in the same run is ``json.dumps`` of the snapshot (what merely serialising it costs).

Run: ``.venv/bin/python bench/monitor_bench.py [--agents 50] [--repeat 15]``
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("SERVICEGRID_DATA_DIR", tempfile.mkdtemp(prefix="monitor-bench-"))
os.environ.setdefault("SERVICEGRID_NO_CUDA", "1")

from engine.resources import Capacity
from engine.runs import RunManager, RunOptions
from engine.workflow import workflow_from_data
from ui.monitor import charts, frames
from ui.monitor.view import view_from_snapshot

TARGET_MS = 150.0


def wide_workflow(agents: int) -> Any:
    nodes = [{"id": f"agent{i:02d}", "agent": "sim.task", "params": {"duration_s": 60},
              "resources": {"cpu": 0.02, "memory_mb": 1}} for i in range(agents)]
    return workflow_from_data({"schema_version": 1, "name": f"wide-{agents}", "nodes": nodes, "edges": []})


def one_update(snapshot: Any) -> dict[str, Any]:
    view = view_from_snapshot(snapshot)
    specs = charts.all_specs(view)
    frames.node_table(view)
    return specs


def median_ms(fn: Any, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1000)
    return statistics.median(times)


def full_buffer(snapshot: Any, samples: int = 2000) -> Any:
    """The snapshot with a full sample ring buffer: every agent in every sample."""
    ids = list(snapshot.nodes)
    t0 = snapshot.started_at or snapshot.created
    rows = [{"time": t0 + k / 4.0, "cpu_percent": 50.0, "rss_mb": 400.0 + k % 13,
             "per_node": {nid: {"cpu_percent": float((k * 7 + j) % 100), "rss_mb": 400.0} for j, nid in enumerate(ids)},
             "gpu_memory_mb": {}} for k in range(samples)]
    return dataclasses.replace(snapshot, samples=rows)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agents", type=int, default=50)
    parser.add_argument("--repeat", type=int, default=15)
    args = parser.parse_args()
    manager = RunManager(machine=Capacity(cpu=2, memory_mb=8192, gpus=()), max_threads=args.agents + 8)
    try:
        handle = manager.submit(wide_workflow(args.agents), RunOptions(policy="fifo"))
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            snap = handle.snapshot()
            running = sum(1 for n in snap.nodes.values() if n["status"] == "running")
            if running == args.agents and len(snap.samples) >= 20:
                break
            time.sleep(0.25)
        snap = handle.snapshot()
        running = sum(1 for n in snap.nodes.values() if n["status"] == "running")
        worst = full_buffer(snap)
        one_update(snap)  # warm the spec templates (validated once per structure)
        base = median_ms(lambda: json.dumps(snap.to_dict(), default=str), args.repeat)
        live = median_ms(lambda: one_update(manager.snapshot(handle.run_id)), args.repeat)
        full = median_ms(lambda: one_update(worst), args.repeat)
        base_full = median_ms(lambda: json.dumps(worst.to_dict(), default=str), args.repeat)
        points = {k: charts.point_count(v) for k, v in one_update(worst).items()}
    finally:
        manager.shutdown(timeout=2.0)
    print(f"agents running: {running}/{args.agents}; live samples: {len(snap.samples)}")
    print(f"one update, live snapshot:        {live:7.1f} ms  (json.dumps baseline {base:6.1f} ms, "
          f"ratio {live / base:5.1f}x)  target <= {TARGET_MS:.0f} ms: {'OK' if live <= TARGET_MS else 'MISSED'}")
    print(f"one update, full buffer (2000x{args.agents}): {full:7.1f} ms  (json.dumps baseline {base_full:6.1f} ms, "
          f"ratio {full / base_full:5.1f}x)  target <= {TARGET_MS:.0f} ms: {'OK' if full <= TARGET_MS else 'MISSED'}")
    print(f"points per chart (full buffer): {points}  (cap {frames.MAX_POINTS})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
