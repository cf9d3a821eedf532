""""Why did it wait?" for every node of a plan (any policy, or the optimum) and of a real run:
for which input (the last predecessor to finish), for which resource held by which nodes, or
because the policy preferred other nodes that started instead.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from engine.problem import Problem
from engine.resources import ResourceDemand, ResourceLedger

EPS = 1e-9


@dataclass(frozen=True)
class Explanation:
    """Why a node started when it did. ``kind``: none | input | resource | policy | paused."""

    node: str
    kind: str
    ready_at: float  # when its last input was done
    start: float
    waited_s: float  # start - ready_at
    last_input: str | None = None  # the predecessor that finished last
    resource: str | None = None  # the ledger key that blocked it
    needed: float = 0.0
    free: float = 0.0
    held_by: list[str] = field(default_factory=list)
    preferred: list[str] = field(default_factory=list)  # nodes the policy started instead
    text: str = ""


def _field(item: Any, name: str) -> Any:
    return item[name] if isinstance(item, Mapping) else getattr(item, name)


def _intervals(plan: Any) -> dict[str, tuple[float, float, str]]:
    nodes = _field(plan, "nodes") if not isinstance(plan, list) else plan
    return {_field(n, "id"): (float(_field(n, "start")), float(_field(n, "end")), str(_field(n, "device") or "cpu"))
            for n in nodes}


def why_waited(problem: Problem, plan: Any) -> dict[str, Explanation]:
    """Explain every node of ``plan`` (an engine.planner.Plan, an OptimalResult or a list of
    {id, start, end, device}) against ``problem``'s demands and capacity."""
    spans = _intervals(plan)
    out: dict[str, Explanation] = {}
    for tid, task in problem.tasks.items():
        if tid not in spans:
            continue
        start = spans[tid][0]
        last = max(task.preds, key=lambda p: (spans[p][1], -task.preds.index(p)), default=None)
        ready = spans[last][1] if last is not None else 0.0
        waited = max(0.0, start - ready)
        input_text = f"its inputs were done at {ready:g} s (last: {last})" if last else "it has no inputs"
        if waited <= EPS * max(1.0, start) or task.duration <= 0:
            kind = "input" if last is not None and ready > EPS else "none"
            text = (f"started at {start:g} s as soon as {last} finished" if kind == "input"
                    else f"started at {start:g} s, at once")
            out[tid] = Explanation(tid, kind, ready, start, 0.0, last, text=text)
            continue
        out[tid] = _explain_wait(problem, spans, tid, task.demand, ready, start, last, input_text)
    return out


def _explain_wait(problem: Problem, spans: dict[str, tuple[float, float, str]], tid: str,
                  demand: ResourceDemand, ready: float, start: float, last: str | None,
                  input_text: str) -> Explanation:
    """Look at the node's ready time: held resources, or nodes started in its place."""
    older = [o for o, (s, e, _) in spans.items()
             if o != tid and s < ready - EPS and e > ready + EPS and problem.tasks[o].duration > 0]
    same = [o for o, (s, e, _) in spans.items()
            if o != tid and abs(s - ready) <= EPS and e > ready + EPS and problem.tasks[o].duration > 0]
    ledger = _ledger_with(problem, spans, older)
    base = dict(node=tid, ready_at=ready, start=start, waited_s=start - ready, last_input=last)
    if ledger.place(demand) is None:
        key = ledger.blocking(demand) or "capacity"
        held = [o for o in older if key in _needs(problem, spans, o)]
        free = ledger.free().get(key, 0.0)
        need = _need_of(ledger, demand, key)
        text = (f"waited {start - ready:g} s after {input_text}: needs {need:,.6g} {key} but "
                f"{max(0.0, free):,.6g} was free, held by {', '.join(held) or 'other nodes'}")
        return Explanation(kind="resource", resource=key, needed=need, free=free, held_by=held, text=text, **base)
    later = _ledger_with(problem, spans, older + same)
    if same and later.place(demand) is None:
        key = later.blocking(demand) or "capacity"
        text = (f"waited {start - ready:g} s after {input_text}: it fitted, but the policy preferred "
                f"{', '.join(same)}, which took the {key} it needed")
        return Explanation(kind="policy", resource=key, needed=_need_of(later, demand, key),
                           free=later.free().get(key, 0.0), preferred=same, text=text, **base)
    text = (f"waited {start - ready:g} s after {input_text} although it fitted: the plan holds it back "
            "(a searched or optimal plan may delay a node to make room for a more urgent one)")
    return Explanation(kind="policy", preferred=same, text=text, **base)


def _needs(problem: Problem, spans: dict[str, tuple[float, float, str]], node: str) -> dict[str, float]:
    return ResourceLedger.needs(problem.tasks[node].demand, spans[node][2])


def _need_of(ledger: ResourceLedger, demand: ResourceDemand, key: str) -> float:
    for device in ledger.candidate_devices(demand) or ["cpu"]:
        need = ledger.needs(demand, device)
        if key in need:
            return need[key]
    return 0.0


def _ledger_with(problem: Problem, spans: dict[str, tuple[float, float, str]], nodes: Iterable[str]) -> ResourceLedger:
    ledger = ResourceLedger(problem.capacity)
    for o in nodes:
        for key, amount in _needs(problem, spans, o).items():
            ledger.used[key] = ledger.used.get(key, 0.0) + amount  # plans never over-commit; no check
    return ledger


def why_waited_run(record: Any) -> dict[str, Explanation]:
    """Explain the nodes of a real run from its node records.

    ``record`` is an engine RunSnapshot (live: ``waiting_for``, ``waiting_resource``,
    ``held_by``, ``ready_at``, ``start``) or a stored run (storage's RunDetail, or its
    ``to_dict()``: node ``queued_at``/``started_at``/``finished_at``, ``wait_resource`` seconds
    per resource). Holders of a finished run are the nodes that ran while the node waited and
    hold the resource it waited for.
    """
    data = record.to_dict() if hasattr(record, "to_dict") else dict(record)
    workflow = data.get("workflow") or {}
    if isinstance(data.get("nodes"), Mapping):  # a snapshot
        return _from_snapshot(data["nodes"], workflow)
    return _from_detail(list(data.get("nodes") or []), workflow)


def _preds_of(workflow: Mapping[str, Any]) -> dict[str, list[str]]:
    preds: dict[str, list[str]] = {}
    for edge in workflow.get("edges", []) or []:
        preds.setdefault(edge["target"], [])
        if edge["source"] not in preds[edge["target"]]:
            preds[edge["target"]].append(edge["source"])
    return preds


def _from_snapshot(nodes: Mapping[str, Mapping[str, Any]], workflow: Mapping[str, Any]) -> dict[str, Explanation]:
    preds = _preds_of(workflow)
    out: dict[str, Explanation] = {}
    for nid, n in nodes.items():
        waiting_for = list(n.get("waiting_for") or [])
        ready, start = n.get("ready_at"), n.get("start")
        if waiting_for:
            out[nid] = Explanation(nid, "input", ready or 0.0, start or 0.0, 0.0, waiting_for[-1],
                                   text=f"waiting for input from {', '.join(waiting_for)}")
        elif n.get("waiting_resource"):
            key, held = n["waiting_resource"], list(n.get("held_by") or [])
            out[nid] = Explanation(nid, "resource", ready or 0.0, start or 0.0, 0.0, resource=key, held_by=held,
                                   text=f"waiting for {key}, held by {', '.join(held) or 'other nodes'}")
        else:
            out[nid] = _finished_node(nid, n.get("status", ""), ready, start, {}, preds.get(nid, []), nodes,
                                      paused=float((n.get("metrics") or {}).get("paused_s") or 0.0))
    return out


def _from_detail(rows: list[Any], workflow: Mapping[str, Any]) -> dict[str, Explanation]:
    preds = _preds_of(workflow)
    nodes = {}
    for row in rows:
        r = row if isinstance(row, Mapping) else row.to_dict()
        nodes[r["node_id"]] = {"status": r.get("status", ""), "start": r.get("started_at"),
                               "end": r.get("finished_at"), "queued_at": r.get("queued_at"),
                               "wait_inputs_s": r.get("wait_inputs_s"), "wait_resource": r.get("wait_resource") or {},
                               "demand": None, "paused_s": float((r.get("metrics") or {}).get("paused_s") or 0.0)}
    demands = {n["id"]: n.get("resources") or {} for n in workflow.get("nodes", []) or []}
    out: dict[str, Explanation] = {}
    for nid, n in nodes.items():
        ready = None
        if n["queued_at"] is not None and n["wait_inputs_s"] is not None:
            ready = n["queued_at"] + n["wait_inputs_s"]
        out[nid] = _finished_node(nid, n["status"], ready, n["start"], n["wait_resource"], preds.get(nid, []),
                                  nodes, demands, paused=n["paused_s"])
    return out


def _finished_node(nid: str, status: str, ready: float | None, start: float | None, waits: Mapping[str, float],
                   preds: list[str], nodes: Mapping[str, Mapping[str, Any]],
                   demands: Mapping[str, Mapping[str, Any]] | None = None, paused: float = 0.0) -> Explanation:
    ends = {p: nodes[p].get("end") for p in preds if p in nodes and nodes[p].get("end") is not None}
    last = max(ends, key=lambda p: ends[p]) if ends else None
    if start is None:
        return Explanation(nid, "none", ready or 0.0, 0.0, 0.0, last, text=f"did not start ({status or 'pending'})")
    ready = ready if ready is not None else (ends[last] if last else start)
    waited = max(0.0, start - ready)
    if paused > 0.05:  # the run was paused (RunManager.pause): that, not a resource, held it
        return Explanation(nid, "paused", ready, start, waited, last,
                           text=f"waited {waited:.3g} s after its inputs were ready, {paused:.3g} s of it while "
                                "the run was paused")
    if waits:
        key = max(waits, key=lambda k: waits[k])
        held = [o for o, m in nodes.items() if o != nid and m.get("start") is not None and m["start"] < start
                and (m.get("end") or start) > ready and _holds(demands, o, key)]
        return Explanation(nid, "resource", ready, start, waited, last, resource=key, held_by=held,
                           text=f"waited {waited:.3g} s for {key} after its inputs were ready, held by "
                                f"{', '.join(held) or 'other nodes'}")
    if waited > 0.05:
        return Explanation(nid, "policy", ready, start, waited, last,
                           text=f"started {waited:.3g} s after its inputs were ready (admission order / worker queue)")
    kind = "input" if last else "none"
    text = f"started as soon as {last} finished" if last else "started at once"
    return Explanation(nid, kind, ready, start, waited, last, text=text)


def _holds(demands: Mapping[str, Mapping[str, Any]] | None, node: str, key: str) -> bool:
    if demands is None or node not in demands:
        return True
    demand = demands[node]
    short = key.split(".")[-1]
    if key in ("cpu", "memory_mb"):
        return True  # every node holds some CPU; memory overrides may be absent (agent default)
    if short == "gpu_memory_mb":
        return True
    return float((demand.get("custom") or {}).get(short, 0.0)) > 0
