"""Importers of standard scheduling benchmarks into workflows of ``sim.task`` nodes.

PSPLIB ``.sm`` (RCPSP, R1..R4 as custom resources), STG ``.stg`` (P identical processors),
WfCommons WfFormat JSON and Pegasus DAX XML; plus readers of the reference makespans.
Default capacity of WfCommons/DAX (no capacity in the file): 4 CPU threads, 8,192 MB memory
(raised to the largest task's memory if needed); override it with ``--capacity``.
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from engine.errors import WorkflowFileError
from engine.resources import Capacity
from engine.workflow import Workflow

DEFAULT_DAG_CAPACITY = Capacity(cpu=4, memory_mb=8192, gpus=(), custom={})
_MEMORY_FOR_UNBOUND = 1024.0  # capacity of a dimension no task uses (PSPLIB, STG)


def instance_format(path: Path) -> str | None:
    """``psplib``, ``stg``, ``wfcommons``, ``dax`` or None (not a benchmark instance)."""
    suffix = path.suffix.lower()
    if suffix == ".sm":
        return "psplib"
    if suffix == ".stg":
        return "stg"
    if suffix in (".dax", ".xml"):
        return "dax"
    head = path.read_text(encoding="utf-8", errors="replace")[:4000]
    if suffix == ".json" or head.lstrip().startswith("{"):
        if '"schema_version"' in head and '"nodes"' in head:
            return None
        return "wfcommons" if '"workflow"' in head or '"schemaVersion"' in head else None
    if "PRECEDENCE RELATIONS" in head:
        return "psplib"
    if "<adag" in head:
        return "dax"
    return None


def load_instance(path: str | Path, processors: int | None = None) -> Workflow:
    """Import a benchmark instance as a workflow of ``sim.task`` nodes.

    Raises:
        WorkflowFileError: unknown format, a malformed file, or STG without ``processors``.
    """
    path = Path(path)
    fmt = instance_format(path)
    text = path.read_text(encoding="utf-8", errors="replace")
    try:
        if fmt == "psplib":
            return _psplib(path.stem, text)
        if fmt == "stg":
            return _stg(path.stem, text, processors)
        if fmt == "wfcommons":
            return _wfcommons(path.stem, json.loads(text))
        if fmt == "dax":
            return _dax(path.stem, text)
    except (ValueError, IndexError, KeyError) as exc:
        if isinstance(exc, WorkflowFileError):
            raise
        raise WorkflowFileError(
            f"{path.name} looks like a {fmt} instance but cannot be read: {exc}",
            hint="check the file against the format described in benchdata/<set>/README.md",
        ) from None
    raise WorkflowFileError(
        f"{path.name} is not a recognised benchmark instance",
        hint="use .sm (PSPLIB), .stg (STG, with --processors), WfCommons .json or Pegasus DAX .xml",
    )


def _workflow(
    name: str,
    tasks: list[tuple[str, float, dict[str, Any], str | None]],
    edges: Iterable[tuple[str, str]],
    capacity: Capacity,
    metadata: dict[str, Any],
) -> Workflow:
    edge_list = list(dict.fromkeys(edges))
    depth = _depths([t[0] for t in tasks], edge_list)
    per_layer: dict[int, int] = {}
    nodes = []
    for tid, duration, resources, label in tasks:
        layer = depth[tid]
        row = per_layer.get(layer, 0)
        per_layer[layer] = row + 1
        node: dict[str, Any] = {
            "id": tid,
            "agent": "sim.task",
            "params": {"duration_s": duration},
            "resources": resources,
            "position": {"x": 200.0 * layer, "y": 90.0 * row},
        }
        if label:
            node["label"] = label
        nodes.append(node)
    return Workflow.model_validate(
        {
            "name": name,
            "nodes": nodes,
            "edges": [{"source": s, "target": t} for s, t in edge_list],
            "capacity": capacity,
            "metadata": metadata,
        }
    )


def _depths(ids: list[str], edges: list[tuple[str, str]]) -> dict[str, int]:
    preds: dict[str, list[str]] = {i: [] for i in ids}
    for s, t in edges:
        preds[t].append(s)
    depth: dict[str, int] = {}
    for tid in ids:  # iterative DFS; ids need not be topologically ordered
        stack = [tid]
        while stack:
            cur = stack[-1]
            if cur in depth:
                stack.pop()
                continue
            todo = [p for p in preds[cur] if p not in depth]
            if todo:
                if len(stack) > len(ids):
                    raise WorkflowFileError("the instance's dependencies form a cycle")
                stack.extend(todo)
                continue
            depth[cur] = 1 + max((depth[p] for p in preds[cur]), default=-1)
            stack.pop()
    return depth


def _psplib(name: str, text: str) -> Workflow:
    lines = text.splitlines()
    i_prec = next(i for i, ln in enumerate(lines) if ln.startswith("PRECEDENCE RELATIONS"))
    i_req = next(i for i, ln in enumerate(lines) if ln.startswith("REQUESTS/DURATIONS"))
    i_cap = next(i for i, ln in enumerate(lines) if ln.startswith("RESOURCEAVAILABILITIES"))
    edges: list[tuple[str, str]] = []
    for ln in lines[i_prec + 2 : i_req]:
        parts = ln.split()
        if len(parts) >= 3 and parts[0].isdigit():
            edges += [(parts[0], s) for s in parts[3 : 3 + int(parts[2])]]
    names = lines[i_cap + 1].split()
    res_names = [f"R{n}" for n in "".join(names).split("R") if n]
    capacity_values = [float(v) for v in lines[i_cap + 2].split()]
    tasks = []
    for ln in lines[i_req + 3 : i_cap]:
        parts = ln.split()
        if len(parts) < 3 or not parts[0].isdigit():
            continue
        demand = {r: float(v) for r, v in zip(res_names, parts[3:], strict=False) if float(v) > 0}
        tasks.append((parts[0], float(parts[2]), {"cpu": 0, "custom": demand}, None))
    mpm = re.search(r"MPM-Time\s*\n\s*(\d+)\s+\d+\s+\d+\s+\d+\s+\d+\s+(\d+)", text)
    capacity = Capacity(
        cpu=float(len(tasks)), memory_mb=_MEMORY_FOR_UNBOUND, gpus=(),
        custom=dict(zip(res_names, capacity_values, strict=True)),
    )
    meta = {"source": "psplib", "file": name, "mpm_time": float(mpm.group(2)) if mpm else None}
    return _workflow(name, tasks, edges, capacity, meta)


def _stg(name: str, text: str, processors: int | None) -> Workflow:
    if processors is None:
        raise WorkflowFileError(
            f"{name}.stg is a P|prec|Cmax instance: give the number of processors",
            hint="add --processors 4 (or pass processors=4 to load_instance)",
        )
    if processors < 1:
        raise WorkflowFileError(f"{name}.stg needs at least 1 processor, not {processors}",
                                hint="give --processors 1 or more (e.g. --processors 4)")
    rows = [ln.split() for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    n_real = int(rows[0][0])
    tasks = []
    edges = []
    for parts in rows[1 : n_real + 3]:
        tid, duration, n_pred = parts[0], float(parts[1]), int(parts[2])
        edges += [(p, tid) for p in parts[3 : 3 + n_pred]]
        tasks.append((tid, duration, {"cpu": 1, "memory_mb": 0}, None))
    capacity = Capacity(cpu=float(processors), memory_mb=_MEMORY_FOR_UNBOUND, gpus=(), custom={})
    return _workflow(name, tasks, edges, capacity, {"source": "stg", "file": name, "processors": processors})


def _wfcommons(name: str, data: dict[str, Any]) -> Workflow:
    wf = data["workflow"]
    if "specification" in wf:  # WfFormat 1.5
        spec_tasks = wf["specification"]["tasks"]
        runs = {t["id"]: t for t in wf.get("execution", {}).get("tasks", [])}
    else:  # WfFormat <= 1.4: runtimes inline
        spec_tasks = wf["tasks"]
        runs = {t.get("id", t.get("name")): t for t in spec_tasks}
    tasks = []
    edges = []
    for task in spec_tasks:
        tid = task.get("id") or task["name"]
        run = runs.get(tid, {})
        runtime = float(run.get("runtimeInSeconds", run.get("runtime", 0.0)) or 0.0)
        resources: dict[str, Any] = {"cpu": float(run.get("coreCount") or 1)}
        if run.get("memoryInBytes"):
            resources["memory_mb"] = round(float(run["memoryInBytes"]) / 2**20, 3)
        tasks.append((tid, runtime, resources, task.get("name")))
        edges += [(p, tid) for p in task.get("parents", [])]
    return _workflow(name, tasks, edges, _dag_capacity(tasks), {"source": "wfcommons", "file": name})


def _dax(name: str, text: str) -> Workflow:
    import xml.etree.ElementTree as ET

    root = ET.fromstring(text)
    ns = root.tag.split("}")[0] + "}" if root.tag.startswith("{") else ""
    tasks = [
        (job.attrib["id"], float(job.attrib.get("runtime", 0.0)), {"cpu": 1}, job.attrib.get("name"))
        for job in root.iter(f"{ns}job")
    ]
    edges = [
        (parent.attrib["ref"], child.attrib["ref"])
        for child in root.iter(f"{ns}child")
        for parent in child.iter(f"{ns}parent")
    ]
    return _workflow(name, tasks, edges, _dag_capacity(tasks), {"source": "dax", "file": name})


def _dag_capacity(tasks: list[tuple[str, float, dict[str, Any], str | None]]) -> Capacity:
    biggest = max((float(t[2].get("memory_mb", 0)) for t in tasks), default=0.0)
    cores = max((float(t[2].get("cpu", 1)) for t in tasks), default=1.0)
    return DEFAULT_DAG_CAPACITY.model_copy(
        update={"memory_mb": max(DEFAULT_DAG_CAPACITY.memory_mb or 0, biggest), "cpu": max(4.0, cores)}
    )


def load_reference(path: str | Path) -> dict[str, dict[str, str]]:
    """Rows of a derived reference CSV keyed by instance.

    PSPLIB ``j*_reference.csv`` keys by instance name (``j301_1``); STG ``stg_reference.csv`` by
    ``graph/m`` (``50/rand0000.stg/4``); WfCommons/DAX CSVs by ``file``.
    """
    with Path(path).open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    out: dict[str, dict[str, str]] = {}
    for row in rows:
        if "instance" in row:
            out[row["instance"]] = row
        elif "graph" in row:
            out[f"{row['graph']}/{row['m_processors']}"] = row
        else:
            out[row["file"]] = row
    return out
