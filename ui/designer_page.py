"""The Designer page: canvas and properties panel in one fragment, findings, run gate, files.

Canvas reports are handled in widget callbacks (before the script runs), so the drawing of the
same run already shows the saved graph with its fresh findings: one rerun per action.
"""

from __future__ import annotations

from typing import Any

import streamlit as st

from engine.components import instances_of, owner_of
from engine.inside import is_boundary, placed_instances, relative
from engine.issues import Issue
from engine.items import PlannedItems, planned_items
from engine.registry import Registry
from engine.results import ResultStore, pin_issues
from engine.validation import validate
from engine.workflow import without_disabled
from storage.summaries import ComponentSummary
from ui import state
from ui.canvas import canvas_value, draw_canvas, report_ack
from ui.component_library import (
    adopt_from_library,
    library,
    library_palette,
    library_tab,
    mark_library_versions,
)
from ui.designer_amend import amend_notice
from ui.designer_files import export_buttons, import_panel, template_gallery, workflow_panel
from ui.designer_run import (
    ACTIVE,
    PAUSE_ON_FAILURE,
    cancel_run,
    counted_items,
    next_up_text,
    node_outputs_section,
    paused_here,
    poll_every,
    run_state,
    run_to_target,
    start_run,
)
from ui.editor import Accepted, DesignerSession
from ui.graphmodel import (
    KIND_COLORS,
    Clip,
    canvas_graph,
    component_states,
    copy_of,
    counted_labels,
    describe_clip,
    palette_of,
)
from ui.inside_view import inside_canvas, inside_panel
from ui.monitor.controls import pause_controls
from ui.properties import properties_panel
from ui.render import code_md, escape_md, issue_list, issues_by_node, run_blocker
from ui.services import get_registry, get_run_manager, get_store, runs_available
from ui.session import current_session, save

CANVAS_HEIGHT = 560
FULL_RUN_ID = "designer_full_run_id"  # workflow id the whole page last drew
FULL_SCOPE = "designer_full_scope"  # the component open when the whole page last drew (None: none)
POLLING = "designer_polling"  # how often the editor fragment refreshes now (seconds; None: it does not)
MAX_COPIED = 500  # ids in one copy command
SEEN_COMMANDS, KEEP_SEEN = "designer_seen_commands", 50  # canvas command ids handled (first_delivery)
CLIPBOARD = "designer_clipboard"  # session state: what Ctrl+C took (ui.graphmodel.Clip)
SPEEDS = {1.0: "real time", 0.1: "10× faster", 0.01: "100× faster", 0.001: "1000× faster"}


def render_designer() -> None:
    store = get_store()
    sess = current_session(store)
    st.markdown(f"### Designer · {escape_md(sess.workflow.name)}")
    flashed = st.session_state.pop(state.FLASH, None)
    flash_slot = st.container()  # always there, so the editor fragment below never changes place in the page
    if flashed:
        kind, message = flashed
        {"error": flash_slot.error, "warning": flash_slot.warning, "success": flash_slot.success}.get(
            kind, flash_slot.info)(escape_md(message))
    st.session_state[FULL_RUN_ID] = sess.workflow_id
    st.session_state[FULL_SCOPE] = sess.scope_name
    _, status, statuses = run_state()
    every = st.session_state[POLLING] = poll_every(status, statuses)
    st.fragment(_editor, run_every=every)()
    templates_tab, workflow_tab, files_tab, library_tab_ = st.tabs(
        ["Templates", "Workflow & versions", "Import", "Component library"])
    with templates_tab:
        template_gallery(store)
    with workflow_tab:
        workflow_panel(sess, store)
    with files_tab:
        import_panel(sess, store)
    with library_tab_:
        library_tab(store)


def _session() -> DesignerSession:
    return st.session_state[state.DESIGNER]


def _on_graph() -> None:
    sess, report = _session(), canvas_value("graph", state.DESIGNER_CANVAS)
    if (ack := report_ack(report)) is not None:  # taken, whatever the outcome: the canvas may adopt again
        st.session_state[state.DESIGNER_CANVAS_ACK] = ack
    if sess.accept(report) is Accepted.CHANGED:
        store = get_store()
        if added := adopt_from_library(sess, library(store)):  # a component dropped from the library
            sess.tell(f"copied {', '.join(repr(a) for a in added)} from the component library into this workflow")
        save(sess, store)


def _on_command() -> None:
    sess, command = _session(), canvas_value("command", state.DESIGNER_CANVAS)
    if not first_delivery(command):
        return
    name = command.get("name") if isinstance(command, dict) else None
    if name == "undo" and not sess.undo():
        sess.tell("nothing to undo")
    elif name == "redo" and not sess.redo():
        sess.tell("nothing to redo")
    elif name == "layout":
        sess.layout()
    elif name == "duplicate":  # Ctrl+D
        sess.duplicate(_ids(command.get("ids")), _ids(command.get("notes")))
    elif name == "copy":  # Ctrl+C: kept for this browser session, to paste here or into another workflow
        clip = copy_of(sess.workflow, sess.editable(_ids(command.get("ids"))), _ids(command.get("notes")))
        if clip:
            st.session_state[CLIPBOARD] = clip
            sess.tell(f"copied {describe_clip(len(clip.nodes), len(clip.notes))}: Ctrl+V pastes them, here or in "
                      "another workflow (Ctrl+Shift+V with the wires into them)")
        else:
            sess.tell("nothing to copy: select nodes or notes first")
    elif name in ("disable", "bypass", "breakpoint"):  # Ctrl+M / Ctrl+B / F9: off, past, pause before; or back
        sess.toggle(_ids(command.get("ids")), {"disable": "disabled"}.get(name, name))
    elif name == "group":  # Ctrl+G: the selected nodes become a component
        sess.group(_ids(command.get("ids")), get_registry())
    elif name == "ungroup":  # Ctrl+Shift+G: a component's nodes back in its place
        sess.ungroup(_ids(command.get("ids")))
    elif name == "open" and isinstance(command.get("id"), str):  # a component's node opened to edit inside it
        sess.enter(command["id"])
    elif name == "leave":  # the path above the canvas: back to the workflow (0) or a component on the way
        depth = command.get("depth")
        sess.back(depth if isinstance(depth, int) and not isinstance(depth, bool) else 0)
    elif name == "label" and isinstance(command.get("id"), str):  # a title renamed on the canvas
        sess.relabel(command["id"], str(command.get("label") or ""))
    elif name == "paste":  # Ctrl+V; Ctrl+Shift+V with the wires into the copies
        if "ids" in command or "notes" in command:  # copied in this workflow: the copy comes with it
            st.session_state[CLIPBOARD] = copy_of(sess.workflow, sess.editable(_ids(command.get("ids"))),
                                                  _ids(command.get("notes")))
        sess.paste(st.session_state.get(CLIPBOARD) or Clip(), command.get("inputs") is True)
    save(sess, get_store())


def first_delivery(command: object) -> bool:
    """Whether this canvas command is new. Streamlit can deliver one trigger to two reruns (a
    fragment's and the page's, when they overlap), and a paste or duplicate must not happen twice;
    each command carries an id unique to its canvas (``cid``), and the last ids handled are kept."""
    cid = command.get("cid") if isinstance(command, dict) else None
    if not isinstance(cid, str):
        return True
    seen: list[str] = st.session_state.setdefault(SEEN_COMMANDS, [])
    if cid in seen:
        return False
    seen.append(cid)
    del seen[:-KEEP_SEEN]
    return True


def _ids(value: object) -> list[str]:
    """A list of ids the browser sent (anything else: none), at most ``MAX_COPIED``."""
    return [str(i) for i in value[:MAX_COPIED]] if isinstance(value, list) else []


def _select(node_id: str) -> None:
    sess = _session()  # a finding inside a component selects the component's node (or, with it open, the node)
    if sess.scope is not None:
        sess.select(relative(node_id, placed_instances(sess.document, sess.scope.name)) or node_id)
        return
    sess.select(owner_of(node_id, instances_of(sess.workflow)))


def _editor() -> None:
    registry, store = get_registry(), get_store()
    sess = _session()
    if st.session_state.get(FULL_RUN_ID) != sess.workflow_id:
        st.rerun()  # first save in this fragment: redraw the page so the panels outside know the id
    if st.session_state.get(FULL_SCOPE, sess.scope_name) != sess.scope_name:
        st.rerun()  # a component opened or closed: the tabs under the canvas say what they may do now
    document = sess.document  # what is saved and run (with a component open: the workflow around it)
    sized = planned_items(document, registry)  # once: validation, the wires and the panel read it
    issues = validate(document, registry, sized=sized)
    if any(n.pin is not None for n in document.nodes):  # pinned outputs this machine lacks
        issues = [*pin_issues(document, get_run_manager().results if runs_available() else ResultStore()),
                  *issues]
    shelf = library(store)  # the component library, once per draw
    run_id, run_status, statuses = run_state()
    by_node = statuses  # by node id as the run has them (a component's nodes inside it: "desk/route")
    if sess.scope is not None:  # a component open: its inside, with what is said of its nodes
        drawn = inside_canvas(sess, registry, document, sized, issues, statuses, shelf,
                              counted_items(sess, run_id, statuses))
    else:
        statuses = component_states(statuses, sess.workflow)  # a component's node: the state of its nodes
        drawn = workflow_canvas(sess, registry, sized, issues, statuses, shelf, counted_items(sess, run_id, statuses))
    if run_status == "paused" and (here := paused_here(sess, run_id)) is not None:  # where the run stopped, marked
        drawn["status"] = {**drawn["status"], here: "breakpoint"}
    left, right = st.columns([3, 1.2], gap="small")
    with left:
        draw_canvas(
            **drawn,
            rev=sess.rev,
            kind_colors=KIND_COLORS,
            fit=sess.fit,
            notice=sess.notice,
            ack=st.session_state.get(state.DESIGNER_CANVAS_ACK),
            doc=sess.token,
            height=CANVAS_HEIGHT,
            key=state.DESIGNER_CANVAS,
            on_graph=_on_graph,
            on_command=_on_command,
        )
        _run_row(sess, issues, run_id, run_status, by_node)
        if run_id and run_status in ACTIVE:
            amend_notice(sess, run_id, by_node)
        node_outputs_section(sess, run_id, statuses, run_status)
        export_buttons(sess)
    with right:  # the hint sits beside the canvas, so the canvas never moves (or remounts) when it goes
        if not sess.workflow.nodes:
            getting_started()
        if sess.scope is not None and (not sess.selected or is_boundary(sess.selected[0])):
            inside_panel(sess, lambda s: save(s, store))
        else:
            properties_panel(sess, registry, issues, save=lambda s: save(s, store), sized=sized, shelf=shelf)
    with st.expander(f"Problems ({sum(i.is_error for i in issues)} errors, "
                     f"{sum(not i.is_error for i in issues)} warnings)",
                     expanded=bool(issues) and bool(document.nodes)):
        issue_list(issues, on_select=_select)


def workflow_canvas(sess: DesignerSession, registry: Registry, sized: PlannedItems, issues: list[Issue],
                    statuses: dict[str, str], shelf: list[ComponentSummary],
                    counted: dict[tuple[str, str], int]) -> dict[str, Any]:
    """What ``ui.canvas.draw_canvas`` draws of the workflow (``ui.inside_view.inside_canvas`` the
    same of an open component): the palette with the library's components, the graph with the
    items planned on its wires and the ↻ marks, the findings, the run's states and counts."""
    workflow = sess.workflow
    return {"palette": palette_of(registry, workflow) + library_palette(shelf, workflow, registry),
            "graph": mark_library_versions(canvas_graph(workflow, registry, sess.selected, sized), shelf, workflow),
            "issues": issues_by_node(issues, instances_of(workflow)),
            "status": statuses,
            "counted": counted_labels(workflow, registry, counted, sized)}


def getting_started() -> None:
    """The empty-canvas hint: the two ways to begin."""
    st.info("**Getting started:** drag an agent from the palette onto the canvas (or double-click the canvas "
            "and type its name), then drag an output ● to an input ● to connect two agents; let go of a wire "
            "on empty canvas to pick the next agent.  \nOr open a ready-made workflow from the **Templates** "
            "tab below the canvas.", icon=":material/lightbulb:")


def partial_blocker(issues: list[Issue], nodes: set[str]) -> str | None:
    """Why the nodes ``nodes`` cannot run on their own: errors on them (or inside them, for a
    component), or on the whole workflow (errors on the nodes after them do not stop a run up to here)."""
    return run_blocker([i for i in issues if i.node is None or owner_of(i.node, nodes) in nodes])


def _run_row(sess: DesignerSession, issues: list[Issue], run_id: str | None, run_status: str | None,
             statuses: dict[str, str]) -> None:
    missing = None if runs_available() else "the run manager is not installed"
    document = sess.document  # with a component open: the workflow around it runs
    running = without_disabled(document)  # what a run executes: errors on the rest do not block it
    blocker = run_blocker(issues) if running is document else partial_blocker(issues, set(running.node_ids()))
    if blocker is None and document.nodes and not running.nodes:
        blocker = "every node is disabled or follows a disabled node: enable one (Ctrl+M)"
    if blocker is None and not document.nodes:
        blocker = "the workflow is empty: add an agent or open a template first"
    blocker = blocker or missing
    busy = run_status in ACTIVE
    cols = st.columns([1, 1.45, 1, 1.25, 2.3], vertical_alignment="center")
    cols[3].selectbox("Speed", list(SPEEDS), format_func=SPEEDS.__getitem__, key="designer_time_scale",
                              label_visibility="collapsed",
                              help="time scale of simulated waits: faster runs sim.task nodes sooner")
    cols[4].checkbox("Pause on failure", key=PAUSE_ON_FAILURE, disabled=busy,
                     help="A node that fails (its retries spent) pauses the run and holds what follows it: "
                          "fix its settings and Retry it in the same run, or Resume without it (a debugger's "
                          "break on exception)")
    if busy and run_id:  # pause, resume and step the run started here
        pause_controls(get_run_manager(), run_id, run_status == "paused", [cols[1], cols[2]], "designer")
    else:
        cols[2].button("Step", key="designer_step_start", icon=":material/skip_next:", disabled=blocker is not None,
                       on_click=start_run, args=(sess, "designer_time_scale", None, True),
                       help=blocker or "Run it node by node: its first node starts, then the run waits; each Step "
                                       "starts the next node, Resume starts the rest")
    chosen = run_to_target(sess) if not busy else None  # with a component open: a node inside, as it runs
    if chosen is not None:
        target, part = chosen
        reason = partial_blocker(issues, set(part.node_ids())) or missing
        cols[1].button("Run to here", key="designer_run_to", icon=":material/line_end_arrow:",
                       disabled=reason is not None, on_click=start_run, args=(sess, "designer_time_scale", target),
                       help=reason or f"Run {target} and the {len(part.nodes) - 1} node(s) it needs, not the rest; "
                                      "their results are cached for the next whole run")
    if busy and run_id:  # the run started here is under way: it can be stopped from here
        cols[0].button("Cancel", key="designer_cancel", icon=":material/stop_circle:", on_click=cancel_run,
                       args=(sess, run_id), help="Stop this run; the nodes that finished stay done (and cached)")
    else:
        cols[0].button("Run", key="designer_run", disabled=blocker is not None, icon=":material/play_arrow:",
                       help=blocker, type="primary", on_click=start_run, args=(sess, "designer_time_scale"))
    if blocker:
        cols[4].caption(f"Run disabled: {escape_md(blocker)}")
    elif run_status == "paused":
        cols[4].caption(f"Run {code_md(run_id)}: paused{next_up_text(run_id)}")
    elif run_id and run_status:
        cols[4].caption(f"Run {code_md(run_id)}: {run_status}. Select a node to see its outputs below (or why it "
                        "failed); timings and resources on the Run page.")
    else:
        cols[4].caption("No errors: ready to run.")
    if poll_every(run_status, statuses) != st.session_state.get(POLLING):
        st.rerun()  # redraw the page so that the fragment polls the run at its new pace (or stops)
