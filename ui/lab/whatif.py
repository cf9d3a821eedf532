"""The lab's capacity and what-if controls: change a capacity, a node's duration or demand, and
every plan is recomputed from the changed workflow."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import streamlit as st

from engine.errors import ServiceGridError
from engine.items import planned_items
from engine.registry import Registry
from engine.resources import Capacity, GpuDevice
from engine.workflow import Workflow
from ui.render import escape_md, show_error

K_EDITS = "lab.whatif"  # {picked key: {node id: {"duration": s, "cpu": n, "memory_mb": mb}}}


@dataclass
class Scenario:
    workflow: Workflow  # with demand edits applied as resource overrides
    capacity: Capacity
    durations: dict[str, float] = field(default_factory=dict)  # what-if durations (seconds)


def _custom_names(workflow: Workflow, registry: Registry) -> list[str]:
    names = set((workflow.capacity.custom if workflow.capacity else {}) or {})
    for node in workflow.nodes:
        names.update((node.resources or {}).get("custom", {}) or {})
        if node.agent in registry:
            names.update(registry.get(node.agent).resources.custom)
    return sorted(names)


def capacity_inputs(workflow: Workflow, registry: Registry, machine: Capacity, key: str) -> Capacity | None:
    """Number inputs for every capacity dimension, defaulting to the workflow's (else the machine's)."""
    base = (workflow.capacity or Capacity()).resolved(machine)
    gpus = base.gpus or ()
    cols = st.columns(4)
    cpu = cols[0].number_input("CPU threads", 0.5, 1e6, float(base.cpu or 1), step=1.0, key=f"lab.cap.cpu.{key}")
    memory = cols[1].number_input("Memory (MB)", 1.0, 1e12, float(base.memory_mb or 1024), step=512.0,
                                  key=f"lab.cap.mem.{key}")
    n_gpu = cols[2].number_input("GPUs", 0, 16, len(gpus), key=f"lab.cap.gpus.{key}")
    gpu_mem = cols[3].number_input("GPU memory each (MB)", 1.0, 1e9, float(gpus[0].memory_mb if gpus else 8192),
                                   step=1024.0, key=f"lab.cap.gpumem.{key}")
    custom: dict[str, float] = {}
    names = _custom_names(workflow, registry)
    if names:
        ccols = st.columns(min(4, len(names)))
        for i, name in enumerate(names):
            custom[name] = ccols[i % len(ccols)].number_input(
                f"{name}", 0.0, 1e9, float(base.custom.get(name, 1.0)), step=1.0, key=f"lab.cap.c.{name}.{key}")
    devices = tuple(GpuDevice(index=i, name="simulated GPU", memory_mb=gpu_mem, simulated=True)
                    for i in range(int(n_gpu)))
    try:
        return Capacity(cpu=cpu, memory_mb=memory, gpus=devices, custom=custom)
    except ValueError as exc:
        show_error("That capacity is not valid", exc)
        return None


def whatif_inputs(workflow: Workflow, registry: Registry, key: str) -> dict[str, dict[str, float]]:
    """Per-node edits (duration, CPU, memory); returns the edits of this workflow."""
    all_edits: dict[str, dict[str, dict[str, float]]] = st.session_state.setdefault(K_EDITS, {})
    edits = all_edits.setdefault(key, {})
    ids = workflow.node_ids()
    if not ids:
        return edits
    with st.expander("What-if: change a node's duration or demand", expanded=False):
        cols = st.columns([2, 1, 1, 1])
        node_id = cols[0].selectbox("Node", ids, key=f"lab.wi.node.{key}")
        current = _declared(workflow, registry, node_id)
        now = {**current, **edits.get(node_id, {})}
        dur = cols[1].number_input("Duration (s)", 0.0, 1e9, float(now["duration"]), key=f"lab.wi.dur.{key}.{node_id}")
        cpu = cols[2].number_input("CPU", 0.0, 1e6, float(now["cpu"]), key=f"lab.wi.cpu.{key}.{node_id}")
        mem = cols[3].number_input("Memory (MB)", 0.0, 1e9, float(now["memory_mb"]), step=256.0,
                                   key=f"lab.wi.mem.{key}.{node_id}")
        change = {k: v for k, v in {"duration": dur, "cpu": cpu, "memory_mb": mem}.items() if v != current[k]}
        if change:
            edits[node_id] = change
        else:
            edits.pop(node_id, None)
        if edits:
            st.caption("Changed: " + "; ".join(f"{escape_md(n)}: {', '.join(f'{k}={v:g}' for k, v in e.items())}"
                                               for n, e in edits.items()))
            if st.button("Undo all what-if changes", key=f"lab.wi.reset.{key}"):
                all_edits[key] = {}
                for k in [k for k in st.session_state if str(k).startswith("lab.wi.") and key in str(k)]:
                    del st.session_state[k]
                st.rerun()
    return edits


def _declared(workflow: Workflow, registry: Registry, node_id: str) -> dict[str, float]:
    node = workflow.node(node_id)
    assert node is not None
    try:
        spec = registry.get(node.agent)
        sized = planned_items(workflow, registry)
        params = spec.parse_params(node.params)
        demand = sized.demand(node_id, spec, params, node.resources, node.lifecycle)
        duration = sized.duration(node_id, spec, params)
    except (ServiceGridError, ValueError):
        return {"duration": 1.0, "cpu": 1.0, "memory_mb": 0.0}
    return {"duration": float(duration), "cpu": float(demand.cpu), "memory_mb": float(demand.memory_mb)}


def apply_edits(workflow: Workflow, capacity: Capacity, edits: dict[str, dict[str, float]],
                learned: dict[str, float] | None = None) -> Scenario:
    """The scenario to plan: demand edits as resource overrides, durations (learned, then edited)."""
    nodes: list[Any] = []
    durations = dict(learned or {})
    for node in workflow.nodes:
        edit = edits.get(node.id, {})
        if "duration" in edit:
            durations[node.id] = edit["duration"]
        demand = {k: v for k, v in edit.items() if k in ("cpu", "memory_mb")}
        nodes.append(node.model_copy(update={"resources": {**node.resources, **demand}}) if demand else node)
    changed = workflow.model_copy(update={"nodes": tuple(nodes), "capacity": capacity})
    return Scenario(changed, capacity, durations)
