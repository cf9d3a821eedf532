"""The properties panel of a component's node: its name and description (shared by every instance),
its ports and what they stand for, the parameters of the nodes inside as this instance sets them,
and Ungroup. Every edit is pushed to the session at once.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import streamlit as st

from engine.components import SEP, component_name, params_inside
from engine.definitions import component_file, component_ports, rename_component
from engine.errors import WorkflowFileError
from engine.issues import Issue
from engine.registry import Registry
from engine.workflow import ComponentSpec, NodeSpec, Workflow, dump_workflow
from storage.summaries import ComponentSummary
from ui.component_library import library, library_version, save_to_library, use_library_version
from ui.editor import DesignerSession
from ui.forms import render_fields, schema_fields, shown_values, sync_widget
from ui.gallery import ago
from ui.graph_svg import graph_svg
from ui.panel_edits import breakpoint_toggle, set_flag, update_node
from ui.render import code_md, escape_md, issue_md
from ui.services import get_store

Saver = Callable[[DesignerSession], None]


def component_panel(sess: DesignerSession, node: NodeSpec, registry: Registry, issues: list[Issue],
                    save: Saver, shelf: list[ComponentSummary] | None = None) -> None:
    """The panel of instance ``node`` (findings on the nodes inside it included); ``shelf``: the
    component library, when the page has read it already."""
    name = component_name(node) or ""
    definition = sess.workflow.component(name)
    st.markdown(f"#### {escape_md(node.label or node.id)}")
    st.caption(f"id {code_md(node.id)} · component {code_md(name)}")
    for issue in issues:
        (st.error if issue.is_error else st.warning)(issue_md(issue))
    if definition is None:
        st.info("This workflow has no component of that name: paste one in, or delete this node.")
        return
    users = sum(component_name(n) == name for n in sess.workflow.nodes)
    st.caption(f"{len(definition.nodes)} nodes inside, run one by one (each measured on its own). "
               + (f"{users} nodes of this workflow use this component: a change to its name or description "
                  "shows in all of them; its parameters below are this node's own." if users > 1 else ""))
    shelf = library(get_store()) if shelf is None else shelf
    if (other := library_version(shelf, sess.workflow, name)) is not None:
        st.info(f"The component library holds another version of {code_md(name)}, saved "
                f"{ago(time.time() - other.updated)}" + (f" by {code_md(other.owner)}" if other.owner else "") + ".",
                icon=":material/sync:")
        st.button("Use the library's version", key=f"library.use.{node.id}", icon=":material/download:",
                  on_click=_use, args=(sess, other, save),
                  help="Replace this workflow's copy of the component with the library's (every node using it "
                       "follows); Undo brings yours back. Save to the library does the opposite.")
    key = f"disabled.{node.id}.{node.disabled}"
    st.toggle("Disabled", value=node.disabled, key=key, on_change=set_flag, args=(sess, node.id, "disabled", key, save),
              help="A disabled component, and every node after it, does not run (Ctrl+M on the canvas)")
    breakpoint_toggle(sess, node, save)
    label = node.label or ""
    shown = "" if sync_widget(f"label.{node.id}", label) else label
    st.text_input("Label", value=shown, key=f"label.{node.id}", help="shown on the canvas",
                  on_change=_set_label, args=(sess, node.id, save))
    _definition_form(sess, definition, save)
    inside = Workflow(name=definition.name, nodes=definition.nodes, edges=definition.edges)
    st.image(graph_svg(inside, registry, 320, 150), width="stretch")  # labels escaped in the SVG
    st.caption("Inside: " + escape_md(", ".join(n.label or n.id for n in definition.nodes)[:300]))
    st.button("Open to edit inside", key=f"open.{node.id}", icon=":material/open_in_full:", type="primary",
              on_click=_open, args=(sess, node.id, save), width="stretch",
              help="Draw the component's nodes on the canvas to change them, their wires and its ports in place "
                   "(double-click the node, or its ⤢, does the same); every node of this component runs the change")
    _ports(sess, definition, registry)
    _inner_params(sess, node, definition, registry, save)
    left, right = st.columns(2)
    left.button("Ungroup", key=f"ungroup.{node.id}", icon=":material/call_split:",
                on_click=_ungroup, args=(sess, node.id, save),
                help="Put the component's nodes back in its place, wired as they were (Ctrl+Shift+G); "
                     "to change what is inside, change them, select them and group them again (Ctrl+G): "
                     "the component's other nodes run the change too")
    right.button("Save to the library", key=f"library.save.{node.id}", icon=":material/library_add:",
                 on_click=save_to_library, args=(sess, name, get_store()),
                 help="Keep this component in the component library: every workflow's palette then offers it "
                      "(section library), to drop into any workflow")
    stem = "".join(c if c.isalnum() or c in "-_" else "_" for c in name)[:60] or "component"
    st.download_button("Download this component", dump_workflow(component_file(sess.workflow, name)),
                       file_name=f"{stem}.component.json", mime="application/json", key=f"component.file.{node.id}",
                       icon=":material/download:", on_click="ignore",
                       help="A file of its own (JSON), to share it: the designer's Import tab (or `servicegrid "
                            "components FILE --add`) adds it to another workflow")


def _definition_form(sess: DesignerSession, definition: ComponentSpec, save: Saver) -> None:
    key = f"component.name.{definition.name}"
    inside = sess.scope is not None  # its nodes elsewhere in the workflow are not drawn: renamed from there
    st.text_input("Component name", value=definition.name, key=key, max_chars=100, disabled=inside,
                  on_change=_rename, args=(sess, definition.name, key, None, save),
                  help="renamed on the workflow, where all the nodes using it are (not inside another component)"
                  if inside else "its name in the palette (section 'components') and in every node using it")
    dkey = f"component.description.{definition.name}"
    st.text_area("Description", value=definition.description, key=dkey, max_chars=4000, height=68,
                 on_change=_rename, args=(sess, definition.name, None, dkey, save),
                 help="what the component does, for the palette's tooltip")


def _ports(sess: DesignerSession, definition: ComponentSpec, registry: Registry) -> None:
    ports = component_ports(definition.name, sess.workflow, registry)
    rows = [{"side": "input", "port": p.name, "kind": p.kind.value,
             "to": ", ".join(f"{c.node}.{c.port}" if c.port else c.node for c in definition.inputs if c.name == p.name)}
            for p in ports.inputs]
    rows += [{"side": "output", "port": p.name, "kind": p.kind.value,
              "to": next((f"{c.node}.{c.port}" if c.port else c.node for c in definition.outputs if c.name == p.name), "")}
             for p in ports.outputs]
    if rows:
        st.markdown("**Ports**")
        st.dataframe(rows, hide_index=True, width="stretch",
                     column_config={"to": st.column_config.TextColumn("inside", help="the node (and port) it stands for")})


def _inner_params(sess: DesignerSession, node: NodeSpec, definition: ComponentSpec, registry: Registry,
                  save: Saver) -> None:
    """One expander per node inside with parameters: the form shows the instance's value where it
    sets one (``node/param``), else the component's."""
    shown = False
    for inner in definition.nodes:
        if component_name(inner) is not None or inner.agent not in registry:
            continue
        spec = registry.get(inner.agent)
        fields = schema_fields(spec.params.model_json_schema())
        if not fields:
            continue
        if not shown:
            st.markdown("**Parameters inside**")
            st.caption("Set here for this node only; the component keeps its own values for the others.")
            shown = True
        own = params_inside(node.params).get(inner.id, {})
        title = inner.label or inner.id
        title += "" if (spec.label or spec.name) == title else f" · {spec.label or spec.name}"
        with st.expander(escape_md(title) + (" (changed here)" if own else "")):
            render_fields(fields, shown_values(spec.params, {**inner.params, **own}), key_prefix=f"cparam.{node.id}.{inner.id}",
                          on_change=lambda name, value, inner=inner, spec=spec: _set_inner(
                              sess, node.id, inner, name, value, _default(spec.params, name), save))
    if not shown:
        st.caption("The nodes inside have no parameters to set.")


def _set_inner(sess: DesignerSession, node_id: str, inner: NodeSpec, name: str, value: Any, default: Any,
               save: Saver) -> None:
    """Set the instance's ``inner/name``; a value equal to the component's own (or the agent's
    default, where the component sets none) is dropped, so the component's value shows through."""
    node = sess.workflow.node(node_id)
    if node is None:
        return
    key = f"{inner.id}{SEP}{name}"
    params = dict(node.params)
    if value == inner.params.get(name, default):
        params.pop(key, None)
    else:
        params[key] = value
    update_node(sess, node, save, params=params)


def _default(model: Any, name: str) -> Any:
    field = model.model_fields.get(name)
    return None if field is None or field.is_required() else field.default


def _set_label(sess: DesignerSession, node_id: str, save: Saver) -> None:
    node = sess.workflow.node(node_id)
    if node is not None:
        text = str(st.session_state[f"label.{node_id}"]).strip()[:500]
        update_node(sess, node, save, label=text or None)


def _rename(sess: DesignerSession, name: str, name_key: str | None, description_key: str | None, save: Saver) -> None:
    new = str(st.session_state[name_key]) if name_key else name
    description = str(st.session_state[description_key]) if description_key else None
    try:
        workflow = rename_component(sess.workflow, name, new, description)
    except WorkflowFileError as exc:
        sess.tell(f"{exc}" + (f" ({exc.hint})" if exc.hint else ""), "error")
        if name_key:
            st.session_state[name_key] = name
        return
    sess.push(workflow)
    save(sess)


def _use(sess: DesignerSession, entry: ComponentSummary, save: Saver) -> None:
    use_library_version(sess, entry)
    save(sess)


def _open(sess: DesignerSession, node_id: str, save: Saver) -> None:
    if sess.enter(node_id):
        save(sess)


def _ungroup(sess: DesignerSession, node_id: str, save: Saver) -> None:
    sess.ungroup([node_id])
    save(sess)
