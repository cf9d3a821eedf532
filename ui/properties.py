"""The designer's properties panel: label, parameters (form from the agent's schema), resource
overrides, lifecycle rules and the node's findings. Every edit is pushed to the session at once.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import streamlit as st
from pydantic import ValidationError

from engine.agents.tables import value_choices
from engine.components import component_name, owner_of
from engine.errors import ServiceGridError
from engine.issues import Issue
from engine.items import PlannedItems, planned_items
from engine.kinds import score_classes
from engine.registry import Registry
from engine.resources import ResourceDemand
from engine.spec import AgentSpec, ExecutionStrategy
from engine.workflow import FaultSpec, NodeSpec, Workflow
from storage.summaries import ComponentSummary
from ui.component_panel import component_panel
from ui.editor import DesignerSession
from ui.forms import render_fields, schema_fields, shown_values, sync_widget
from ui.lifecycle_svg import lifecycle_svg
from ui.panel_edits import breakpoint_toggle, set_flag, update_node
from ui.render import code_md, escape_md, issue_md
from ui.uploads_panel import files_section

RESOURCE_FIELDS = ("cpu", "memory_mb", "gpu_memory_mb", "device")
LIFECYCLE_FIELDS = ("retries", "timeout_s", "batch_size", "backoff_s", "keep_outputs")
Saver = Callable[[DesignerSession], None]


def properties_panel(sess: DesignerSession, registry: Registry, issues: list[Issue], save: Saver,
                     sized: PlannedItems | None = None, shelf: list[ComponentSummary] | None = None) -> None:
    """Draw the panel for the selected node (or a short summary when none / several are selected).
    ``sized``: the workflow's planned items, ``shelf``: the component library, when the page has
    them already."""
    if len(sess.selected) != 1:
        st.markdown("#### Properties")
        if sess.selected:
            st.caption(f"{len(sess.selected)} nodes selected. Press Del to delete them.")
        else:
            st.caption("Select a node on the canvas to edit it.")
        st.caption(f"{len(sess.workflow.nodes)} nodes · {len(sess.workflow.edges)} edges")
        return
    node = sess.workflow.node(sess.selected[0])
    if node is None:
        return
    if component_name(node) is not None:  # a component's node: its own panel
        component_panel(sess, node, registry, [i for i in issues if i.node and owner_of(i.node, [node.id]) == node.id],
                        save, shelf)
        return
    st.markdown(f"#### {escape_md(node.label or node.id)}")
    st.caption(f"id {code_md(node.id)} · agent {code_md(node.agent)}")
    if sess.scope is not None:  # a node inside the open component: its values are the component's
        st.caption(f":material/stacks: Inside component {code_md(sess.scope.name)}: what you set here, every node "
                   "using the component runs (one of them may set its own value in its panel).")
    findings = [i for i in issues if i.node == node.id]
    for issue in findings:  # with its hint: how to fix it is what the user came here for
        (st.error if issue.is_error else st.warning)(issue_md(issue))
    if node.pin is not None:
        source = f"run {code_md(node.pin.run_id)}" if node.pin.run_id else "an earlier run"
        st.info(f"**Pinned.** Runs take this node's output from {source} instead of computing it, and do not "
                "run the nodes that only feed it.", icon=":material/push_pin:")
        st.button("Unpin", key=f"unpin.{node.id}", icon=":material/keep_off:", on_click=update_node,
                  args=(sess, node, save), kwargs={"pin": None}, help="Compute this node again in the next run")
    off, past = st.columns(2)
    key = f"disabled.{node.id}.{node.disabled}"
    off.toggle("Disabled", value=node.disabled, key=key, on_change=set_flag, args=(sess, node.id, "disabled", key, save),
               help="A disabled node, and every node after it, does not run; the rest of the workflow does "
                    "(Ctrl+M on the canvas)")
    key = f"bypass.{node.id}.{node.bypass}"
    past.toggle("Bypassed", value=node.bypass, key=key, on_change=set_flag, args=(sess, node.id, "bypass", key, save),
                help="A bypassed node does not run: its one input goes straight to the nodes it feeds, as if "
                     "it were not there (Ctrl+B on the canvas)")
    breakpoint_toggle(sess, node, save, _input_columns(sess, node, registry, sized) if node.breakpoint else None)
    if node.agent not in registry:
        st.info("This agent is not installed here; only its label can be edited.")
        spec = None
    else:
        spec = registry.get(node.agent)
    prefix = node.id
    label = node.label or ""
    label_default = "" if sync_widget(f"label.{prefix}", label) else label  # see ui.forms._widget
    st.text_input("Label", value=label_default, key=f"label.{prefix}", help="shown on the canvas",
                  on_change=_set_label, args=(sess, node.id, f"label.{prefix}", save))
    if spec is None:
        return
    st.caption(escape_md(spec.description))
    fields = schema_fields(spec.params.model_json_schema())

    def set_param(name: str, value: Any) -> None:
        _set_param(sess, node.id, name, value, spec, save)

    if fields:
        st.markdown("**Parameters**")
        choices = received_choices(sess.workflow, node.id, registry, sized) if any(f.picks for f in fields) else None
        many = {"value"} if _condition(node, registry)[1] == "in" else set()  # a branch's 'in' lists several
        render_fields(fields, shown_values(spec.params, node.params), key_prefix=f"param.{prefix}", on_change=set_param,
                      choices=choices,
                      many=many)
    files_section(node, set_param, lambda: (sess.workflow.node(node.id) or node).params)
    with st.expander("Resources", expanded=False):
        _resource_form(sess, node, spec, prefix, save, registry, sized)
    with st.expander("Lifecycle", expanded=False):
        _lifecycle_form(sess, node, spec, prefix, save)
    with st.expander("Fault drill (for lessons)" + (" · on" if node.faults else ""), expanded=bool(node.faults)):
        _drill_form(sess, node, prefix, save)


def received_choices(workflow: Workflow, node_id: str, registry: Registry,
                     sized: PlannedItems | None = None) -> dict[str, list[str]]:
    """What the pickers of ``node_id``'s parameters may offer (``ui.forms.render_fields``): the
    columns every table arriving on its inputs has (``"columns"``; ``"column"`` adds the items'
    ``id``), the classes of the scores arriving (``"class"``), and the values a row condition
    can name (``"value"``: the classes, where the node's ``field`` holds class names). Empty while
    any input's columns are unknown (a custom model's output), so the form keeps its text box."""
    edges = [e for e in workflow.edges if e.target == node_id]
    if not edges:
        return {}
    planned = sized if sized is not None else planned_items(workflow, registry)
    tables = [planned.columns_on(e.source, e.source_port) for e in edges]
    if any(t is None for t in tables):
        return {}
    common = [c for c in tables[0] if all(c in t for t in tables[1:])]  # type: ignore[union-attr,operator]
    field, op = _condition(workflow.node(node_id), registry)
    values = planned.values_on(edges[0].source, edges[0].source_port) if len(edges) == 1 else {}
    return {"column": ["id", *(c for c in common if c != "id")], "columns": common, "class": score_classes(common),
            "value": value_choices(field, op, values)}


def _condition(node: NodeSpec | None, registry: Registry) -> tuple[str, str]:
    """The ``field`` and ``op`` a node's params set (a branch's row condition; empty for others)."""
    if node is None or node.agent not in registry:
        return "", ""
    try:
        parsed: Any = registry.get(node.agent).parse_params(node.params)
    except (ValidationError, TypeError):
        parsed = None
    return str(getattr(parsed, "field", "")), str(getattr(parsed, "op", ""))


def _input_columns(sess: DesignerSession, node: NodeSpec, registry: Registry,
                   sized: PlannedItems | None) -> dict[str, tuple[tuple[str, ...], dict[str, tuple[str, ...]]]]:
    """The planned columns arriving at each input of ``node`` (where the workflow knows them), with
    the names a column is known to hold: what its breakpoint's condition can test."""
    if node.agent not in registry:
        return {}
    spec = registry.get(node.agent)
    sized = sized if sized is not None else planned_items(sess.workflow, registry)
    out: dict[str, tuple[tuple[str, ...], dict[str, tuple[str, ...]]]] = {}
    for edge in sess.workflow.edges:
        port = edge.target_port or (spec.inputs[0].name if len(spec.inputs) == 1 else None)
        if edge.target == node.id and port is not None and (have := sized.columns_on(edge.source, edge.source_port)):
            columns, names = out.get(port, ((), {}))
            out[port] = (tuple(dict.fromkeys((*columns, *have))), {**names, **sized.values_on(edge.source, edge.source_port)})
    return out


def _set_label(sess: DesignerSession, node_id: str, key: str, save: Saver) -> None:
    node = sess.workflow.node(node_id)
    if node is not None:
        text = str(st.session_state[key]).strip()[:500]
        update_node(sess, node, save, label=text or None)


def _set_param(sess: DesignerSession, node_id: str, name: str, value: Any, spec: AgentSpec, save: Saver) -> None:
    node = sess.workflow.node(node_id)
    if node is None:
        return
    params = dict(node.params)
    default = spec.params.model_fields[name].default if name in spec.params.model_fields else None
    if value == default and name in params:
        params.pop(name)
    elif value != default or name in params:
        params[name] = value
    update_node(sess, node, save, params=params)


def _resource_form(sess: DesignerSession, node: NodeSpec, spec: AgentSpec, prefix: str, save: Saver,
                   registry: Registry, sized: PlannedItems | None = None) -> None:
    try:
        current = spec.resources.merged(node.resources).model_dump()
    except ServiceGridError:
        current = {**spec.resources.model_dump(), **node.resources}
    fields = [f for f in schema_fields(ResourceDemand.model_json_schema()) if f.name in RESOURCE_FIELDS]
    st.caption("Defaults come from the agent; a changed value is stored as an override.")
    if spec.memory_grows and "memory_mb" not in node.resources:
        st.caption(_memory_growth(sess, node, spec, registry, sized))
    if spec.gpu_memory_fn is not None and "gpu_memory_mb" not in node.resources:
        st.caption(gpu_reserve_text(sess.workflow, node, spec, registry, sized))
    render_fields(fields, current, key_prefix=f"res.{prefix}",
                  on_change=lambda name, value: _set_override(sess, node.id, "resources", name, value,
                                                             spec.resources.model_dump().get(name), save))


def _memory_growth(sess: DesignerSession, node: NodeSpec, spec: AgentSpec, registry: Registry,
                   sized: PlannedItems | None = None) -> str:
    """What the run adds to the memory shown for the items this node will handle."""
    sized = sized if sized is not None else planned_items(sess.workflow, registry)
    items = sized.handled(node.id, spec)
    try:
        grown = sized.demand(node.id, spec, spec.parse_params(node.params), node.resources).memory_mb
        extra = grown - spec.resources.merged(node.resources).memory_mb
    except (ServiceGridError, ValueError):
        return "Its memory grows with the items it handles (fix the parameters to see by how much)."
    count = f"{items:,} items" if items is not None else "a typical 64 items (the count is unknown)"
    larger = sized.images(node.id).larger if spec.per_image_fn is not None else None
    if larger is not None:  # the larger of the images it receives and emits
        count += f" of {larger[1]} x {larger[2]} px"
    return (f"Its memory grows with the items it handles: the run reserves {grown:,.0f} MB, "
            f"{extra:,.0f} MB more than shown, for {count}; set memory_mb to reserve a fixed amount.")


def gpu_reserve_text(workflow: Workflow, node: NodeSpec, spec: AgentSpec, registry: Registry,
                     sized: PlannedItems | None = None) -> str:
    """What a node of a GPU agent reserves on a GPU for one batch (``AgentSpec.gpu_memory_fn``),
    while ``gpu_memory_mb`` shows the agent's fixed part (0)."""
    sized = sized if sized is not None else planned_items(workflow, registry)
    try:
        params = spec.parse_params(node.params)
        reserved = sized.demand(node.id, spec, params, node.resources, node.lifecycle).gpu_memory_mb
        batch = spec.lifecycle.merged(node.lifecycle).execution.batch_size
        once, per_item = spec.gpu_memory_parts(params, sized.images(node.id)) or (0.0, 0.0)
    except (ServiceGridError, ValueError):
        return "On a GPU it reserves GPU memory for one batch (fix the parameters to see how much)."
    what = f"each item of a batch of {batch}" if batch else "each of its items (it takes them all at once)"
    return (f"On a GPU it reserves {reserved:,.0f} MB of GPU memory: {once:,.0f} MB, plus {per_item:.2g} MB for "
            f"{what}, as measured on an H200. Nothing on the CPU. Set gpu_memory_mb to reserve a fixed amount.")


def _lifecycle_form(sess: DesignerSession, node: NodeSpec, spec: AgentSpec, prefix: str, save: Saver) -> None:
    try:
        rules = spec.lifecycle.merged(node.lifecycle)
        current = rules.execution.model_dump()
        inputs = sum(e.target == node.id for e in sess.workflow.edges)
        st.image(lifecycle_svg(rules, inputs), width="stretch")  # the rules as states: when it starts, retries, stops
    except ValidationError:
        current = {**spec.lifecycle.execution.model_dump(), **node.lifecycle.get("execution", {})}
    fields = [f for f in schema_fields(ExecutionStrategy.model_json_schema()) if f.name in LIFECYCLE_FIELDS]
    render_fields(fields, current, key_prefix=f"life.{prefix}",
                  on_change=lambda name, value: _set_lifecycle(sess, node.id, name, value, spec, save))


def _drill_form(sess: DesignerSession, node: NodeSpec, prefix: str, save: Saver) -> None:
    """Trouble on purpose, to show what retries, timeouts and memory admission do: the first
    attempts fail, the agent starts late, it holds more memory than declared."""
    st.caption("Make this node fail, slow down or hold more memory on purpose, then run: retries, timeouts and "
               "the memory check show what they do. The node's outputs stay the same; it is never taken from "
               "the cache while a drill is on, and a warning reminds you it is on.")
    current = (node.faults or FaultSpec()).model_dump()
    render_fields(schema_fields(FaultSpec.model_json_schema()), current, key_prefix=f"drill.{prefix}",
                  on_change=lambda name, value: _set_drill(sess, node.id, name, value, save))
    if node.faults:
        st.button("Turn the drill off", key=f"drill.off.{prefix}", icon=":material/healing:",
                  on_click=_drill_off, args=(sess, node.id, save))


def _drill_off(sess: DesignerSession, node_id: str, save: Saver) -> None:
    node = sess.workflow.node(node_id)
    if node is not None:
        update_node(sess, node, save, faults=None)


def _set_drill(sess: DesignerSession, node_id: str, name: str, value: Any, save: Saver) -> None:
    node = sess.workflow.node(node_id)
    if node is None:
        return
    try:
        drill = FaultSpec.model_validate({**(node.faults or FaultSpec()).model_dump(), name: value})
    except ValidationError as exc:
        sess.tell(f"fault drill: {exc.errors()[0]['msg']}", "error")
        return
    update_node(sess, node, save, faults=drill if drill else None)


def _set_override(sess: DesignerSession, node_id: str, section: str, name: str, value: Any,
                  default: Any, save: Saver) -> None:
    node = sess.workflow.node(node_id)
    if node is None:
        return
    overrides = dict(getattr(node, section))
    if value == default:
        overrides.pop(name, None)
    else:
        overrides[name] = value
    update_node(sess, node, save, **{section: overrides})


def _set_lifecycle(sess: DesignerSession, node_id: str, name: str, value: Any, spec: AgentSpec, save: Saver) -> None:
    node = sess.workflow.node(node_id)
    if node is None:
        return
    execution = dict(node.lifecycle.get("execution", {}))
    if value == spec.lifecycle.execution.model_dump().get(name):
        execution.pop(name, None)
    else:
        execution[name] = value
    lifecycle = {k: v for k, v in node.lifecycle.items() if k != "execution"}
    if execution:
        lifecycle["execution"] = execution
    update_node(sess, node, save, lifecycle=lifecycle)
