"""Benchmark: the store's batched event writer against one transaction per event (same run, same file).

Run: ``python bench/storage_bench.py [--runs 20] [--nodes 50]``. Prints events/s for both, the
ratio batched / per-event, and the cost of ``on_event`` on the engine's thread next to a no-op
observer call. No absolute targets, no asserts: compare the ratios between versions.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from sqlmodel import Session

from engine import events as ev
from storage import Store
from storage.ingest import BatchWriter


def synthetic_run(run_id: str, nodes: int) -> list[ev.Event]:
    ids = tuple(f"n{i}" for i in range(nodes))
    out: list[ev.Event] = [ev.RunStarted(run_id=run_id, workflow_name="bench", policy="fifo", backend="local",
                                         capacity={"cpu": 2}, node_ids=ids)]
    for node in ids:
        out += [
            ev.NodeQueued(run_id=run_id, node_id=node),
            ev.NodeStarted(run_id=run_id, node_id=node, device="cpu", attempt=1, threads=1, demand={"cpu": 1}),
            ev.MetricSampled(run_id=run_id, cpu_percent=50.0, rss_mb=100.0, per_node={node: {"cpu": 1.0}}),
            ev.NodeFinished(run_id=run_id, node_id=node, metrics={"wall_s": 0.1, "cpu_s": 0.1, "items": 1}),
        ]
    out.append(ev.RunFinished(run_id=run_id, status="succeeded"))
    return out


def batched(store: Store, events: list[ev.Event]) -> float:
    start = time.perf_counter()
    observer = store.observer()
    for event in events:
        observer.on_event(event)
    assert store.flush(timeout=600)
    return time.perf_counter() - start


def per_event(store: Store, events: list[ev.Event]) -> float:
    start = time.perf_counter()
    for event in events:
        with Session(store.engine) as session:
            BatchWriter(session).apply([event])
            session.commit()
    return time.perf_counter() - start


def enqueue_cost(store: Store, events: list[ev.Event]) -> tuple[float, float]:
    """Median seconds per call: the store's on_event, and a no-op observer (the floor)."""
    observer = store.observer()
    noop = ev.EventBus()  # an EventBus with no observers: the least an emit can cost
    timings: dict[str, list[float]] = {"store": [], "noop": []}
    for name, call in (("store", observer.on_event), ("noop", noop.emit)):
        for event in events:
            t0 = time.perf_counter()
            call(event)
            timings[name].append(time.perf_counter() - t0)
    store.flush(timeout=600)
    return statistics.median(timings["store"]), statistics.median(timings["noop"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--nodes", type=int, default=50)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        with Store(f"sqlite:///{Path(tmp) / 'batched.db'}") as store:
            events = [e for i in range(args.runs) for e in synthetic_run(f"b{i}", args.nodes)]
            t_batched = batched(store, events)
            t_store, t_noop = enqueue_cost(store, [e for i in range(5) for e in synthetic_run(f"q{i}", args.nodes)])
        with Store(f"sqlite:///{Path(tmp) / 'single.db'}") as store:
            t_single = per_event(store, [e for i in range(args.runs) for e in synthetic_run(f"s{i}", args.nodes)])
    n = len(events)
    print(f"{n} events ({args.runs} runs x {args.nodes} nodes), SQLite WAL")
    print(f"  batched writer        {n / t_batched:10.0f} events/s")
    print(f"  one txn per event     {n / t_single:10.0f} events/s   (baseline)")
    print(f"  ratio batched/single  {t_single / t_batched:10.1f} x")
    print(f"  on_event median       {t_store * 1e6:10.1f} us   (no-op emit {t_noop * 1e6:.1f} us,"
          f" ratio {t_store / max(t_noop, 1e-9):.1f} x)")


if __name__ == "__main__":
    main()
