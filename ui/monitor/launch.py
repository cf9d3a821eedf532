"""Starting a run: pick the workflow, policy, capacity, backend and time scale, preview the
predicted plan (Gantt, makespan, lower bounds), then submit to the RunManager."""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import streamlit as st

from engine.components import flatten
from engine.errors import ServiceGridError, WorkflowInvalidError
from engine.policies import POLICIES, POLICY_HELP
from engine.resources import Capacity, GpuDevice
from engine.workflow import Workflow, load_workflow, parse_document, upstream_workflow, workflow_from_data
from ui import auth, state
from ui.monitor.charts import gantt_spec
from ui.monitor.plan_inputs import learned_durations, learned_panel, ray_capacity_panel
from ui.monitor.view import RunView
from ui.render import escape_md, show_error

EXAMPLES_DIR = Path(__file__).resolve().parents[2] / "examples"
PREFERRED_TEMPLATE = "medical-imaging"
RAY_HINT = "Ray is not installed: `pip install 'servicegrid[ray]'` (or `pip install ray`) and restart the server."


@dataclass(frozen=True)
class Source:
    label: str
    load: Callable[[], Workflow]
    workflow_id: str | None = None  # saved workflows: their runs are found by id (learned estimates)


def ray_installed() -> bool:
    return importlib.util.find_spec("ray") is not None


def manager_runs_ray(manager: Any) -> bool:
    """Whether this RunManager can execute runs on Ray (it says so with ``supports_backend``)."""
    return bool(manager.supports_backend("ray"))


def workflow_sources(store: Any) -> list[Source]:
    """Where a run's workflow can come from: the designer's open workflow, saved ones, templates."""
    sources: list[Source] = []
    designer = st.session_state.get(state.DESIGNER)
    if designer is not None and getattr(designer, "workflow", None) is not None and designer.workflow.nodes:
        wf = designer.workflow
        sources.append(Source(f"Open in the designer: {wf.name}", lambda wf=wf: wf))
    templates = sorted(EXAMPLES_DIR.glob("*.json")) if EXAMPLES_DIR.is_dir() else []
    templates.sort(key=lambda p: (not p.stem.startswith(PREFERRED_TEMPLATE), p.stem))
    sources += [Source(f"Template: {p.stem}", lambda p=p: load_workflow(p)) for p in templates]
    try:
        saved = store.list_workflows(owner=auth.owner_filter(auth.current_user()))
    except Exception:  # a broken database must not hide the templates
        saved = []
    sources += [Source(f"Saved: {w.name} (v{w.latest_version}, {w.id})", lambda w=w: store.get_workflow(w.id), w.id)
                for w in saved]
    return sources


def capacity_form(machine: Capacity, key: str) -> Capacity | None:
    """The machine's capacity, or a custom one (cpu, memory, GPUs incl. simulated); None = machine."""
    mode = st.radio("Capacity", ["This machine", "Custom"], horizontal=True, key=f"{key}.capmode",
                    help="Custom limits this run; unset dimensions take the machine's values.")
    if mode == "This machine":
        return None
    cols = st.columns(4)
    cpu = cols[0].number_input("CPU threads", 0.5, 1024.0, float(machine.cpu or 2), 0.5, key=f"{key}.cpu")
    mem = cols[1].number_input("Memory (MB)", 64.0, 1e7, float(machine.memory_mb or 4096), 256.0, key=f"{key}.mem")
    n_gpu = cols[2].number_input("GPUs", 0, 16, len(machine.gpus or ()), 1, key=f"{key}.gpus")
    gpu_mb = cols[3].number_input("GPU memory each (MB)", 256.0, 1e6, float((machine.gpus or (None,))[0].memory_mb
                                  if machine.gpus else 8192.0), 256.0, key=f"{key}.gpumb")
    real = len(machine.gpus or ())
    simulated = st.checkbox("Simulate the GPUs this machine lacks", value=True, key=f"{key}.sim",
                            disabled=int(n_gpu) <= real, help="Simulated GPUs let a CPU-only machine plan and run "
                            "GPU workflows (agents fall back to the CPU).")
    gpus = tuple(GpuDevice(index=i, name="simulated GPU" if i >= real else (machine.gpus or ())[i].name,
                           memory_mb=gpu_mb, simulated=i >= real and simulated) for i in range(int(n_gpu)))
    if int(n_gpu) > real and not simulated:
        st.warning(f"This machine has {real} GPU(s); tick 'Simulate' to plan with {int(n_gpu)}.")
        gpus = gpus[:real]
    return Capacity(cpu=cpu, memory_mb=mem, gpus=gpus)


def preview_view(workflow: Workflow, plan: dict[str, Any], capacity: Capacity, time_scale: float) -> RunView:
    """A RunView of a run that has not started: only the predicted bars."""
    nodes = {n.id: {"status": "pending", "agent": n.agent, "start": None, "end": None, "device": ""}
             for n in workflow.nodes}
    return RunView(run_id="preview", workflow_name=workflow.name, status="pending", t0=0.0, now=0.0, nodes=nodes,
                   samples=[], plan=plan, capacity=capacity.model_dump(mode="json"),
                   options={"time_scale": time_scale})


def plan_summary(plan: dict[str, Any], time_scale: float) -> None:
    """Makespan, lower bounds and gap of a predicted plan, in real seconds (scaled)."""
    cols = st.columns(3)
    makespan = float(plan.get("makespan") or 0.0) * time_scale
    bound = float(plan.get("lower_bound") or 0.0) * time_scale
    cols[0].metric("Predicted makespan", f"{makespan:,.2f} s")
    cols[1].metric("Lower bound", f"{bound:,.2f} s")
    cols[2].metric("Gap to bound", f"{100 * float(plan.get('gap') or 0.0):.1f} %")
    bounds = plan.get("lower_bounds") or {}
    if bounds:
        st.caption("Lower bounds: " + ", ".join(f"{escape_md(k)} {float(v) * time_scale:,.2f} s"
                                                 for k, v in bounds.items()))
    path = plan.get("critical_path") or []
    if path:
        st.caption("Critical path: " + escape_md(" → ".join(path)))


def launch_form(manager: Any, registry: Any, store: Any, key: str = "launch") -> str | None:
    """The "start a run" panel; returns the new run id once the user confirms."""
    from engine.planner import plan_workflow
    from engine.runs import RunOptions

    sources = workflow_sources(store)
    upload = st.file_uploader("Upload a workflow file (JSON or YAML), or pick a workflow below",
                              type=["json", "yaml", "yml"],
                              key=f"{key}.upload")
    if upload is not None:
        text = upload.getvalue().decode("utf-8", errors="replace")
        fmt = "yaml" if upload.name.lower().endswith((".yaml", ".yml")) else "json"
        label = f"Uploaded: {upload.name}"
        sources.insert(0, Source(label, lambda: workflow_from_data(parse_document(text, fmt=fmt))))
        if st.session_state.get(f"{key}.uploaded") != upload.file_id:  # a new file: select it once
            st.session_state[f"{key}.uploaded"] = upload.file_id
            st.session_state[f"{key}.source"] = label
    if not sources:
        st.info("No workflow to run: open or build one in the Designer, or upload a workflow file.")
        return None
    labels = [s.label for s in sources]
    if st.session_state.pop("monitor_from_designer", False) and labels[0].startswith("Open in the designer"):
        st.session_state[f"{key}.source"] = labels[0]
    label = st.selectbox("Workflow", labels, key=f"{key}.source")
    source = sources[labels.index(label)]
    try:
        workflow = source.load()
    except (ServiceGridError, OSError, LookupError, ValueError) as exc:
        show_error("Could not load the workflow", exc)
        return None
    targets = st.multiselect("Run only up to", workflow.node_ids(), key=f"{key}.to.{label}",
                             placeholder="the whole workflow",
                             help="Only these nodes and the nodes they need run (`servicegrid run --to`); their "
                                  "results are cached for the next whole run.")
    if targets:
        whole = len(workflow.nodes)
        workflow = upstream_workflow(workflow, targets)
        st.caption(f"{len(workflow.nodes)} of {whole} nodes run: {escape_md(', '.join(workflow.node_ids()))}")
    try:
        workflow = flatten(workflow)  # what runs: each node of a component on its own (rerun, plan, learning)
    except WorkflowInvalidError as exc:
        show_error("Cannot run this workflow", exc)
        return None
    cols = st.columns([2, 1, 1])
    policy = cols[0].selectbox("Policy", POLICIES, index=POLICIES.index("critical_path"), key=f"{key}.policy",
                               format_func=lambda p: f"{p}: {POLICY_HELP.get(p, '')}")
    ray_ok = ray_installed() and manager_runs_ray(manager)
    backend = cols[1].radio("Backend", ["local", "ray"], key=f"{key}.backend", horizontal=True,
                            help=None if ray_ok else (RAY_HINT if not ray_installed() else
                                                      "This server's run manager executes locally; Ray runs "
                                                      "are started from the CLI for now."))
    time_scale = cols[2].number_input("Time scale", 0.001, 100.0, 1.0, 0.05, format="%.3f", key=f"{key}.scale",
                                      help="Simulated agents wait duration × time scale real seconds.")
    machine = manager.machine
    if backend == "ray" and ray_ok and hasattr(manager, "ray"):
        machine = ray_capacity_panel(manager, key) or machine
    custom = capacity_form(machine, key)
    again = st.multiselect("Compute again from", workflow.node_ids(), key=f"{key}.rerun.{label}",
                           placeholder="nothing: reuse what the cache holds",
                           help="These nodes and every node after them compute again even where the cache holds "
                                "their results, which they then replace (`servicegrid run --rerun`); the nodes "
                                "before them come from the cache.")
    reuse = st.checkbox("Reuse cached results", value=True, key=f"{key}.cache",
                        help="On: a node whose agent, parameters and inputs match an earlier run's takes that "
                             "result instead of running again (it shows as cached). Off: every node runs and is "
                             "measured again, as `servicegrid run --no-cache` does; the Lab learns durations and "
                             "memory only from nodes that ran.")
    priority = st.number_input("Priority among runs", -100, 100, 0, 1, key=f"{key}.priority",
                               help="When several runs share this machine, the one of higher priority gets the "
                                    "resources that free up first (then the older run); a run of lower priority "
                                    "can still start a node that fits beside it. Change it later on the run's page.")
    paused = st.checkbox("Start paused, to step through it", value=False, key=f"{key}.paused",
                         help="The run starts no node until you press Step (the next ready node starts, then "
                              "it pauses again) or Resume, on this page or in the designer: a run walked node "
                              "by node, for a class or a demo. Chains of itemwise agents are not fused then, so "
                              "each node is a step. On Ray too: a node waits in its worker until its step.")
    on_failure = st.checkbox("Pause when a node fails", value=False, key=f"{key}.on_failure",
                             help="A node that fails (its retries spent) pauses the run and holds what follows it: "
                                  "fix its parameters on this page and Retry it in the same run, or Resume without it "
                                  "(what follows it is skipped) (`servicegrid run --pause-on-failure`).")
    marked = [n.id for n in workflow.nodes if n.breakpoint]
    stops = st.multiselect("Pause before (breakpoints)", [n for n in workflow.node_ids() if n not in marked],
                           key=f"{key}.breaks.{label}", placeholder="no more breakpoints" if marked else "no breakpoint",
                           help="The run pauses when one of these nodes is ready to start: Step starts it, Resume goes "
                                "on (`servicegrid run --break NODE`; `--break-if NODE CONDITION` pauses only when "
                                "some row of its input meets the condition). "
                                + (f"The workflow has its own before {escape_md(', '.join(_marked(workflow)[:5]))}." if marked else ""))
    conditions = [(stop, text) for stop in stops
                  if (text := st.text_input(f"Only when (condition) at {escape_md(stop)}", key=f"{key}.break_if.{label}.{stop}",
                                            placeholder="always; or e.g. confidence < 0.6",
                                            help="Pause before it only when some row of its input meets this: "
                                                 "`[PORT:] FIELD OP VALUE`, e.g. `intents: predicted == refund` "
                                                 "(`servicegrid run --break-if`). Empty: always.").strip())]
    capacity = (custom or workflow.capacity or Capacity()).resolved(machine)
    workflow_id = source.workflow_id or str((workflow.metadata or {}).get("workflow_id") or "") or None
    durations = learned_panel(workflow, registry, learned_durations(store, registry, workflow, workflow_id), key)
    try:
        plan = plan_workflow(workflow, registry, capacity, policy=policy, durations=durations,
                             budget_s=0.5).to_dict()
    except (ServiceGridError, ValueError, KeyError) as exc:
        show_error("Cannot plan this workflow", exc)
        return None
    st.markdown("**Predicted plan**")
    plan_summary(plan, time_scale)
    st.vega_lite_chart(spec=gantt_spec(preview_view(workflow, plan, capacity, time_scale)), width="stretch",
                       key=f"{key}.plan")
    blocked = backend == "ray" and not ray_ok
    if blocked:
        st.warning(RAY_HINT if not ray_installed() else "Ray runs cannot start from the browser yet; use local.")
    if not st.button("Start run", key=f"{key}.start", type="primary", disabled=blocked, icon=":material/play_arrow:"):
        return None
    try:
        handle = auth.submit_for_user(manager, workflow, RunOptions(policy=policy, capacity=custom, backend=backend,
                                                                    time_scale=float(time_scale),
                                                                    durations=durations, use_cache=reuse,
                                                                    start_paused=paused, breakpoints=tuple(stops),
                                                                    break_if=tuple(conditions),
                                                                    pause_on_failure=on_failure,
                                                                    priority=int(priority), rerun=tuple(again)))
    except (ServiceGridError, ValueError, RuntimeError) as exc:
        show_error("Could not start the run", exc)
        return None
    return str(handle.run_id)


def _marked(workflow: Workflow) -> list[str]:
    """The workflow's own breakpoints, each with its condition ("route (when intents: confidence < 0.6)")."""
    return [n.id + (f" (when {n.break_when.describe()})" if n.break_when is not None else "")
            for n in workflow.nodes if n.breakpoint]
