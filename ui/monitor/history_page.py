"""The History page: every stored run with filters; open one (replay with a time slider), compare
two side by side, re-run or resume it, export it (JSON, CSV, HTML report), and retention."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import streamlit as st

from engine.errors import ServiceGridError
from engine.resources import Capacity
from engine.results import workflow_cache_keys
from engine.runstate import PAUSE_EVENTS, pauses_of
from engine.workflow import workflow_from_data
from storage.transfer import MAX_RUN_FILE_BYTES, RunImportError, run_document
from ui import auth
from ui.monitor import charts, compare, exports, report
from ui.monitor.classview import render_class_view
from ui.monitor.live import MISSING, render_charts, render_monitor
from ui.monitor.run_page import watch
from ui.monitor.view import RunView, fill_demands, replay_view, view_from_store
from ui.render import escape_md, show_error
from ui.services import get_registry, get_run_manager, get_store
from ui.widget_memory import recall, remember

RESUMABLE = ("failed", "interrupted", "cancelled")
STATUSES = ("succeeded", "failed", "cancelled", "interrupted", "running", "pending")
OPEN_KEY = "history.open"
TAB_KEY = "history.tab"  # the open tab (View, Compare, Export)
TOTALS_COLUMNS = {
    "elapsed_s": st.column_config.NumberColumn("elapsed (s)", format="%.2f"),
    "predicted_s": st.column_config.NumberColumn("predicted (s)", format="%.2f"),
    "nodes_done": "nodes done", "cpu_s": st.column_config.NumberColumn("CPU (s)", format="%.3f"),
    "peak_rss_mb": st.column_config.NumberColumn("process peak memory (MB)", format="%.0f",
                                                 help="the whole server process's highest RSS sampled during the "
                                                      "run (each node's own is in the View tab's table)"),
    "mean_reserved": "mean reserved share"}


def _when(ts: float | None) -> str:
    return dt.datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M:%S") if ts else ""


def _filters(store: Any) -> list[Any]:
    mine = auth.owner_filter(auth.current_user())  # lab mode: a student sees only their runs
    every = store.list_runs(user=mine, limit=1000)
    names = sorted({r.workflow_name for r in every})
    cols = st.columns([2, 2, 2])
    workflow = cols[0].selectbox("Workflow", ["(all)", *names], key="history.wf")
    status = cols[1].selectbox("Status", ["(all)", *STATUSES], key="history.status")
    today = dt.date.today()
    days = cols[2].date_input("Dates", value=(today - dt.timedelta(days=30), today), key="history.dates")
    since = until = None
    if isinstance(days, tuple | list) and len(days) == 2:
        since = dt.datetime.combine(days[0], dt.time.min).timestamp()
        until = dt.datetime.combine(days[1], dt.time.max).timestamp()
    return store.list_runs(workflow=None if workflow == "(all)" else workflow,
                           status=None if status == "(all)" else status, since=since, until=until, user=mine,
                           limit=500)


def _table(runs: list[Any]) -> None:
    rows = [{"run": r.id, "workflow": r.workflow_name, "status": r.status, "policy": r.policy,
             "created": _when(r.created), "duration_s": round(r.duration_s, 2) if r.duration_s is not None else None,
             "predicted_s": r.predicted_makespan_s, "nodes": ", ".join(f"{k} {v}" for k, v in r.node_counts.items()),
             "resumed_from": r.resumed_from or ""} for r in runs]
    st.dataframe(rows, hide_index=True, width="stretch", key="history.table", placeholder=MISSING, column_config={
        "duration_s": st.column_config.NumberColumn("duration (s)", format="%.2f"),
        "predicted_s": st.column_config.NumberColumn(
            "predicted (s, time scale 1)", format="%.2f",
            help="the planner's makespan before the run's time scale; the run's View tab shows it scaled"),
        "resumed_from": "resumed from"})


def _label(r: Any) -> str:
    return f"{r.id} · {r.workflow_name} · {r.status} · {_when(r.created)}"


def load_view(store: Any, run_id: str) -> tuple[Any, RunView] | None:
    detail = store.get_run(run_id)
    if detail is None or not auth.may_access(auth.current_user(), detail.summary.user):
        return None  # lab mode: another user's run is "not found"
    from ui.services import get_registry

    return detail, fill_demands(view_from_store(detail, store.run_samples(run_id), store.node_logs(run_id),
                                           pauses_of(store.run_events(run_id, PAUSE_EVENTS))), get_registry())


def _options(detail: Any) -> dict[str, Any]:
    opts = dict(detail.options or {})
    cap = opts.get("capacity")
    return {"policy": opts.get("policy") or detail.summary.policy, "backend": "local",
            "time_scale": float(opts.get("time_scale") or 1.0), "fail_fast": bool(opts.get("fail_fast", False)),
            "capacity": Capacity.model_validate(cap) if isinstance(cap, dict) else None}


def start_again(detail: Any, *, resume: bool) -> str:
    """Submit the stored workflow again (``resume``: finished nodes come from the result cache)."""
    from engine.runs import RunOptions

    workflow = workflow_from_data(detail.workflow)
    options = RunOptions(**_options(detail), resume_from=detail.id if resume else None)
    return str(auth.submit_for_user(get_run_manager(), workflow, options).run_id)  # lab mode: user + quota


def _actions(detail: Any, view: RunView) -> None:
    cols = st.columns(4)
    go = None
    if cols[0].button("Re-run", key="history.rerun", icon=":material/replay:"):
        go = False
    if cols[1].button("Resume", key="history.resume", icon=":material/resume:", disabled=view.status not in RESUMABLE,
                      help="Run the remaining nodes; finished ones come from the result cache."):
        go = True
    manager = get_run_manager()
    if manager.get(view.run_id) is not None and cols[2].button("Open live", key="history.live"):
        watch(view.run_id)
        st.switch_page("pages/run.py")
    if go is not None:
        try:
            new_id = start_again(detail, resume=go)
        except (ServiceGridError, ValueError, RuntimeError) as exc:
            show_error("Could not start the run", exc)
            return
        watch(new_id)
        st.switch_page("pages/run.py")


def _import(store: Any) -> None:
    """A recorded run from a file (another machine's History > Export > JSON): stored here as a run,
    to replay, compare and re-run (in lab mode, for the person importing it)."""
    with st.expander("Import a recorded run", icon=":material/upload:"):
        upload = st.file_uploader("A run's JSON file (History > Export > JSON, or `servicegrid runs export`)",
                                  type=["json"], key="history.import", max_upload_size=MAX_RUN_FILE_BYTES // 2**20)
        if upload is None or not st.button("Import", key="history.import.go", icon=":material/upload:"):
            return
        user = auth.current_user()
        try:
            run_id = store.import_run(upload.getvalue(), user=user.name if user is not None else None)
        except RunImportError as exc:
            show_error(f"{upload.name} cannot be imported", exc)
            return
        st.success(f"Imported run {run_id} from {escape_md(upload.name)}: pick it in Open run below.")


def _exports(store: Any, detail: Any, view: RunView) -> None:
    cols = st.columns(4)
    rid = view.run_id
    cols[0].download_button("JSON", run_document(detail, store.run_events(rid), store.run_samples(rid)),
                            file_name=f"run-{rid}.json", mime="application/json", key="history.json",
                            icon=":material/download:")
    cols[1].download_button("Nodes CSV", exports.nodes_csv(view), file_name=f"run-{rid}-nodes.csv",
                            mime="text/csv", key="history.csv", icon=":material/download:")
    cols[2].download_button("Samples CSV", exports.samples_csv(view), file_name=f"run-{rid}-samples.csv",
                            mime="text/csv", key="history.samples", icon=":material/download:")
    cols[3].download_button("HTML report", report.html_report(view), file_name=f"run-{rid}.html",
                            mime="text/html", key="history.html", icon=":material/description:")


def stored_outputs(detail: Any, registry: Any, results: Any) -> Callable[[str], dict[str, Any] | None]:
    """A stored run's node outputs, found again in the result cache by the keys its workflow gives
    (``engine.results.workflow_cache_keys``): thumbnails, tables and downloads for past runs too.
    None for a node with no key (a sink, a simulated task) or whose result is not (or no longer)
    in the cache; then the Outputs tab shows the stored summary."""
    try:
        keys = workflow_cache_keys(workflow_from_data(detail.workflow), registry)
    except (ServiceGridError, ValueError, TypeError, KeyError):
        keys = {}

    def load(node_id: str) -> dict[str, Any] | None:
        key = keys.get(node_id)
        if key is None or not results.has(key):
            return None
        try:
            return results.load(key)
        except (OSError, ValueError):  # a cache entry being written or removed: show the summary
            return None

    return load


def _replay(view: RunView, outputs: Callable[[str], dict[str, Any] | None] | None = None) -> None:
    span = round(max(view.elapsed_s, 0.01), 2)
    key = f"history.t.{view.run_id}"
    start = {} if recall(key, lambda t: 0.0 <= t <= span) else {"value": span}  # kept while another tab is open
    t = remember(key, st.slider("Replay: seconds since start", 0.0, span, step=max(0.01, round(span / 200, 2)),
                                key=key, help="State of every node at this moment", **start))
    render_monitor(replay_view(view, t) if t < span else view, "history", outputs=outputs)


def _compare(store: Any, view: RunView, runs: list[Any]) -> None:
    others = [r for r in runs if r.id != view.run_id]
    if not others:
        st.info("Only one run matches the filters: nothing to compare with.")
        return
    labels = [_label(r) for r in others]
    recall("history.other", labels)  # kept while another tab is open, unless the filters now hide it
    other_label = remember("history.other", st.selectbox("Compare with", labels, key="history.other"))
    loaded = load_view(store, other_label.split(" · ", 1)[0])
    if loaded is None:
        st.warning("That run is gone from the database.")
        return
    other = loaded[1]
    first, second = (other, view) if other.t0 <= view.t0 else (view, other)  # older first
    changes = compare.workflow_changes(first, second)
    with st.expander(f"What changed from {first.run_id} to {second.run_id} ({len(changes)})", expanded=bool(changes)):
        if changes:
            st.markdown("\n".join(f"- {escape_md(line)}" for line in changes))
        else:
            st.caption("The same workflow and run options (positions, labels and notes aside).")
    st.dataframe([compare.totals(view), compare.totals(other)], hide_index=True, width="stretch",
                 key="history.cmp.totals", column_config=TOTALS_COLUMNS, placeholder=MISSING)
    st.dataframe(compare.node_rows(view, other), hide_index=True, width="stretch", key="history.cmp.nodes",
                 placeholder=MISSING)
    st.vega_lite_chart(spec=charts.durations_spec(compare.duration_rows(view, other)), width="stretch",
                       key="history.cmp.durations")
    left, right = st.columns(2)
    for col, v, tag in ((left, view, "a"), (right, other, "b")):
        with col:
            st.markdown(f"**{escape_md(v.run_id)}** · {v.status}")
            render_charts(v, f"history.cmp.{tag}")


def _retention(store: Any) -> None:
    with st.expander("Retention: keep the database small"):
        cols = st.columns(3)
        days = cols[0].number_input("Keep runs of the last N days", 0, 3650, 30, key="history.keep_days",
                                    help="0 = no age limit")
        count = cols[1].number_input("Keep at most N runs", 0, 100000, 500, key="history.keep_runs",
                                     help="0 = no count limit")
        if cols[2].button("Prune now", key="history.prune", icon=":material/delete_sweep:"):
            gone = store.prune(keep_days=float(days) or None, keep_runs=int(count) or None)
            st.success(f"Deleted {gone} run(s) with their nodes, events and samples. Active runs are never deleted.")


def render_history_page() -> None:
    st.markdown("### History")
    store = get_store()
    store.flush(timeout=2.0)
    _import(store)
    runs = _filters(store)
    if not runs:  # an empty table with no columns reads as broken: say what to do instead
        st.info("No runs match these filters. Start one from the Designer (**Run** under the canvas) "
                "or from the Run page.", icon=":material/info:")
        _retention(store)
        return
    _table(runs)
    picked = st.session_state.get("history.wf")
    user = auth.current_user()
    if picked and picked != "(all)" and (user is None or user.is_teacher):  # a teacher compares the class
        render_class_view(runs, picked)
    _retention(store)
    labels = [_label(r) for r in runs]
    chosen = st.selectbox("Open run", labels, key=OPEN_KEY)
    loaded = load_view(store, chosen.split(" · ", 1)[0])
    if loaded is None:
        st.warning("That run is gone from the database.")
        return
    detail, view = loaded
    _actions(detail, view)
    # lazy tabs: only the open tab runs, so a page load draws one tab's charts, not all of them
    view_tab, compare_tab, export_tab = st.tabs(["View", "Compare", "Export"], key=TAB_KEY, on_change="rerun")
    with view_tab:
        if view_tab.open:
            _replay(view, stored_outputs(detail, get_registry(), get_run_manager().results))
    with compare_tab:
        if compare_tab.open:
            _compare(store, view, runs)
    with export_tab:
        if export_tab.open:
            _exports(store, detail, view)
