"""Soak benchmark: many workflows in sequence through one RunManager recording into one Store;
RSS is sampled after each run and the slope (MB per 100 runs) after warm-up is printed.

Run: ``python bench/soak_bench.py [--runs 600] [--nodes 8] [--warmup 30]``. No asserts: memory is
"flat" when the slope stays near zero and the last RSS stays near the post-warm-up RSS; compare
the slope with the mean per-run allocation (reported) to judge it. Uses a temporary database.
"""

from __future__ import annotations

import argparse
import gc
import random
import statistics
import tempfile
import time
from pathlib import Path

import psutil

from engine.resources import Capacity
from engine.results import ResultStore
from engine.runs import KEEP_FINISHED, RunManager, RunOptions
from engine.workflow import Workflow
from storage import Store


def make_workflow(rng: random.Random, nodes: int, index: int) -> Workflow:
    specs = [{"id": f"n{i}", "agent": "test.source" if i == 0 else rng.choice(["test.sleep", "test.echo"]),
              "params": {}, "resources": {"cpu": 1, "memory_mb": rng.choice([64, 128, 256])}} for i in range(nodes)]
    for s in specs:
        if s["agent"] == "test.sleep":
            s["params"] = {"seconds": rng.uniform(0.0, 0.004)}
        elif s["agent"] == "test.source":
            s["params"] = {"value": [rng.random() for _ in range(50)]}
    edges = [{"source": f"n{j}", "target": f"n{i}"} for i in range(1, nodes) for j in range(i) if rng.random() < 0.25]
    return Workflow.model_validate({"schema_version": 1, "name": f"soak-{index}", "nodes": specs, "edges": edges})


def slope_per_100(xs: list[float], ys: list[float]) -> float:
    """Least-squares slope of ys over xs, times 100."""
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    den = sum((x - mx) ** 2 for x in xs) or 1.0
    return 100 * sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / den


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=600)
    parser.add_argument("--nodes", type=int, default=8)
    parser.add_argument("--warmup", type=int, default=30)
    args = parser.parse_args()
    rng = random.Random(1)
    proc = psutil.Process()
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(f"sqlite:///{Path(tmp) / 'soak.db'}")
        manager = RunManager(machine=Capacity(cpu=4, memory_mb=4096, gpus=()),
                             results=ResultStore(Path(tmp) / "results"), sample_hz=4)
        manager.bus.subscribe(store.observer())
        rss: list[float] = []
        start = time.perf_counter()
        for i in range(args.runs):
            h = manager.submit(make_workflow(rng, args.nodes, i), RunOptions(use_cache=False, predict=False))
            h.wait(60)
            if i % 10 == 9:
                store.flush(30)
                gc.collect()
            rss.append(proc.memory_info().rss / 2**20)
        wall = time.perf_counter() - start
        store.flush(30)
        runs_in_db = len(store.list_runs(limit=args.runs + 10))
        manager.shutdown()
        store.close()
    filling = list(range(args.warmup, min(KEEP_FINISHED, args.runs)))
    steady = list(range(KEEP_FINISHED + args.warmup, args.runs))
    print(f"soak: {args.runs} runs x {args.nodes} nodes in {wall:.1f} s ({args.runs / wall:.1f} runs/s), "
          f"{runs_in_db} runs recorded")
    print(f"RSS: start {rss[0]:.1f} MB, after warm-up ({args.warmup} runs) {rss[args.warmup]:.1f} MB, "
          f"end {rss[-1]:.1f} MB, max {max(rss):.1f} MB")
    if len(filling) > 2:
        print(f"RSS slope while the manager fills its {KEEP_FINISHED}-run snapshot memory: "
              f"{slope_per_100([float(i) for i in filling], [rss[i] for i in filling]):+.2f} MB per 100 runs")
    if len(steady) > 2:
        print(f"RSS slope once old runs are dropped (runs {steady[0]}..{steady[-1]}): "
              f"{slope_per_100([float(i) for i in steady], [rss[i] for i in steady]):+.2f} MB per 100 runs")

if __name__ == "__main__":
    main()
