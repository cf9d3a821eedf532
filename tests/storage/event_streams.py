"""Synthetic workflows and run event streams for the storage tests (no engine run needed)."""

from __future__ import annotations

import itertools

from engine import events as ev
from engine.workflow import Workflow, workflow_from_data
from storage import Store


def make_workflow(name: str = "two-stage", nodes: tuple[str, ...] = ("pre", "cls")) -> Workflow:
    return workflow_from_data({
        "schema_version": 1,
        "name": name,
        "nodes": [{"id": n, "agent": "sim.task", "params": {"duration_s": 1}} for n in nodes],
        "edges": [{"source": a, "target": b} for a, b in itertools.pairwise(nodes)],
    })


def run_stream(
    run_id: str, nodes: tuple[str, ...] = ("pre", "cls"), *, t0: float = 1000.0, status: str = "succeeded",
    user: str | None = None, workflow_name: str = "two-stage",
) -> list[ev.Event]:
    """A complete, plausible event stream for one run: every node queued, started, finished."""
    wf = make_workflow(workflow_name, nodes)
    out: list[ev.Event] = [ev.RunStarted(
        run_id=run_id, time=t0, workflow_name=workflow_name, policy="fifo", backend="local",
        capacity={"cpu": 2, "memory_mb": 4096}, node_ids=nodes, workflow=wf.to_dict(),
        options={"time_scale": 1.0}, plan={"makespan": 2.0 * len(nodes)}, user=user,
    )]
    t = t0
    for i, node in enumerate(nodes):
        out += [
            ev.NodeQueued(run_id=run_id, node_id=node, time=t + 0.1),
            ev.NodeStarted(run_id=run_id, node_id=node, time=t + 0.2, device="cpu", attempt=1, threads=1,
                           demand={"cpu": 1}, worker="w0"),
            ev.MetricSampled(run_id=run_id, time=t + 0.5, cpu_percent=50.0 + i, rss_mb=100.0,
                             per_node={node: {"cpu_percent": 40.0}}),
            ev.NodeFinished(run_id=run_id, node_id=node, time=t + 1.0, metrics={
                "wait_inputs_s": 0.1 * i, "wait_resource_s": 0.05, "wait_resource": {"cpu": 0.05},
                "queue_s": 0.1, "wall_s": 0.8, "cpu_s": 0.7, "peak_rss_mb": 120.0, "peak_gpu_mb": None,
                "items": 10 + i, "attempts": 1, "device": "cpu", "threads": 1, "custom_metric": i,
            }, output_summary={"out": "tensor[4]"}),
        ]
        t += 1.0
    out.append(ev.RunFinished(run_id=run_id, time=t + 0.1, status=status))
    return out


def emit(store: Store, events: list[ev.Event]) -> None:
    observer = store.observer()
    for event in events:
        observer.on_event(event)


