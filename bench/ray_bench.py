"""Per-node overhead of the Ray backend against plain Ray tasks, measured in the same run.

The same no-op DAG (a chain and a layered DAG, ``--nodes`` nodes each) runs twice: as chained
``ray.remote`` calls submitted at once (the baseline: Ray's own cost), and through
``RayBackend.execute`` (our bookkeeping: events, metrics, lifecycle, one ``ray.wait`` loop).
Target: overhead ratio <= 1.5. Usage: ``python bench/ray_bench.py --nodes 1000``.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import threading
import time
from typing import Any

TARGET = 1.5


def dag(shape: str, n: int, width: int = 8, seed: int = 0) -> list[tuple[int, int]]:
    """Edges of a chain, or of a layered DAG (each node takes 1-2 parents from the layer above)."""
    if shape == "chain":
        return [(i - 1, i) for i in range(1, n)]
    rng = random.Random(seed)
    edges = []
    for i in range(width, n):
        layer_start = (i // width - 1) * width
        for parent in rng.sample(range(layer_start, layer_start + width), rng.choice((1, 2))):
            edges.append((parent, i))
    return edges


def plain_ray(ray: Any, n: int, edges: list[tuple[int, int]]) -> tuple[float, float]:
    """Wall and driver CPU seconds to run the DAG as plain chained Ray tasks (all submitted at once)."""

    @ray.remote(num_cpus=1, max_retries=0)
    def noop(node: int, *inputs: Any) -> dict[str, Any]:
        return {"out": {"node": node, "duration_s": 0.0}}

    parents: dict[int, list[int]] = {i: [] for i in range(n)}
    for s, t in edges:
        parents[t].append(s)
    t0, c0 = time.perf_counter(), time.process_time()
    refs: dict[int, Any] = {}
    for i in range(n):
        refs[i] = noop.remote(i, *(refs[p] for p in parents[i]))
    ray.get(list(refs.values()))
    return time.perf_counter() - t0, time.process_time() - c0


def backend_run(backend: Any, n: int, edges: list[tuple[int, int]], run_id: str) -> tuple[float, float]:
    """Wall and driver CPU seconds to run the same DAG of ``sim.task`` (duration 0) nodes through
    RayBackend (events go to a no-op observer)."""
    from engine.registry import default_registry
    from engine.workflow import Workflow

    wf = Workflow.model_validate({
        "name": "bench", "nodes": [{"id": f"n{i}", "agent": "sim.task", "params": {"duration_s": 0}}
                                   for i in range(n)],
        "edges": [{"source": f"n{s}", "target": f"n{t}"} for s, t in edges]})
    t0, c0 = time.perf_counter(), time.process_time()
    status, outputs = backend.execute(run_id, wf, default_registry(), lambda e: None, threading.Event())
    elapsed = time.perf_counter() - t0, time.process_time() - c0
    if status != "succeeded" or len(outputs) != n:
        raise SystemExit(f"the backend run did not succeed: {status}, {len(outputs)} outputs of {n}")
    return elapsed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=3, help="best of this many runs per side")
    parser.add_argument("--cpus", type=int, default=2)
    args = parser.parse_args(argv)
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    import ray

    from engine.backends.ray import RayBackend

    ray.init(num_cpus=args.cpus, include_dashboard=False, log_to_driver=False, namespace="servicegrid-bench")
    backend = RayBackend()
    report: dict[str, Any] = {"nodes": args.nodes, "cpus": args.cpus, "target_ratio": TARGET, "shapes": {}}
    try:
        plain_ray(ray, 50, dag("chain", 50))  # warm up workers and imports on both sides
        backend_run(backend, 50, dag("chain", 50), "warmup")
        worst = 0.0
        for shape in ("chain", "layered"):
            edges = dag(shape, args.nodes)
            plain, ours = [], []
            for r in range(args.repeats):  # interleaved, so machine load hits both sides alike
                plain.append(plain_ray(ray, args.nodes, edges))
                ours.append(backend_run(backend, args.nodes, edges, f"{shape}-{r}"))
            ratio = min(w for w, _ in ours) / min(w for w, _ in plain)
            worst = max(worst, ratio)
            report["shapes"][shape] = {
                "plain_ray_ms_per_node": round(min(w for w, _ in plain) / args.nodes * 1e3, 3),
                "backend_ms_per_node": round(min(w for w, _ in ours) / args.nodes * 1e3, 3),
                "ratio": round(ratio, 3),
                "plain_driver_cpu_ms_per_node": round(min(c for _, c in plain) / args.nodes * 1e3, 3),
                "backend_driver_cpu_ms_per_node": round(min(c for _, c in ours) / args.nodes * 1e3, 3)}
        report["worst_ratio"] = round(worst, 3)
        report["meets_target"] = worst <= TARGET
    finally:
        backend.shutdown()
        ray.shutdown()
    json.dump(report, sys.stdout, indent=2)
    print()
    return 0 if report["meets_target"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
