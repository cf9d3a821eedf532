"""The component library in the designer: save a workflow's component to it (the component's
panel), offer its components in every workflow's palette (section "library"), bring a dropped
one's definition into the workflow, and list and delete entries (the "Component library" tab).

In lab mode a teacher's components are shared with the class and a student's are their own
(``storage.components``); off lab mode every component is shared.
"""

from __future__ import annotations

import time

import streamlit as st

from engine.components import component_name
from engine.definitions import add_components
from engine.registry import Registry
from engine.workflow import Workflow
from storage import StorageError, Store
from storage.summaries import ComponentSummary
from ui import auth
from ui.editor import DesignerSession
from ui.gallery import ago
from ui.graphmodel import LIBRARY_CATEGORY, component_entry
from ui.render import code_md, escape_md, show_error


def library(store: Store) -> list[ComponentSummary]:
    """What this user may use from the library (their own first where a shared one has its name)."""
    user = auth.current_user()
    try:
        return store.list_components(visible_to=user.name if user is not None else None)
    except StorageError:
        return []  # the palette goes on without it; the library tab says what is wrong


def library_palette(entries: list[ComponentSummary], workflow: Workflow, registry: Registry) -> list[dict]:
    """Palette entries for the library's components the workflow does not have (by name)."""
    out = []
    for entry in entries:
        if workflow.component(entry.name) is not None or not entry.definitions:
            continue
        holder = Workflow(name="library", components=tuple(entry.definitions))
        item = component_entry(entry.name, holder, registry)
        item["category"] = LIBRARY_CATEGORY
        out.append(item)
    return out


def adopt_from_library(sess: DesignerSession, entries: list[ComponentSummary]) -> list[str]:
    """Add to the workflow the library's definitions of the components its nodes use but it lacks
    (a component dropped from the palette's library section), with those they hold; part of the
    same undo step as the drop. Returns the names added."""
    have = {c.name for c in sess.workflow.components}
    wanted = {name for n in sess.workflow.nodes if (name := component_name(n)) is not None and name not in have}
    incoming = {d.name: d for e in entries if e.name in wanted for d in e.definitions}.values()  # each once
    if not incoming:
        return []
    workflow, _ = add_components(sess.workflow, incoming)
    sess.push(workflow, record=False)
    return [c.name for c in workflow.components if c.name not in have]


def library_version(entries: list[ComponentSummary], workflow: Workflow, name: str) -> ComponentSummary | None:
    """The library's entry for component ``name`` when it differs from the workflow's copy (what
    it holds included); None when the library has none or the same (KNIME's "update available"
    on a linked component)."""
    entry = next((e for e in entries if e.name == name), None)
    if entry is None or not entry.definitions:
        return None
    same = all(workflow.component(d.name) == d for d in entry.definitions)
    return None if same else entry


def mark_library_versions(graph: dict, entries: list[ComponentSummary], workflow: Workflow) -> dict:
    """The canvas graph with ``newer`` on each component's node whose component the library holds
    in another version (drawn with a ↻; its panel offers the library's)."""
    if not entries:
        return graph
    differs = {c.name for c in workflow.components if library_version(entries, workflow, c.name) is not None}
    for item in graph["nodes"]:
        if item.get("component") in differs:
            item["newer"] = True
    return graph


def use_library_version(sess: DesignerSession, entry: ComponentSummary) -> None:
    """Replace the workflow's copy of ``entry``'s component (and of those it holds) with the
    library's; one undo step (widget callback)."""
    incoming = {d.name: d for d in entry.definitions}
    kept = tuple(incoming.pop(c.name, c) for c in sess.workflow.components)
    sess.push(sess.workflow.model_copy(update={"components": (*kept, *incoming.values())}))
    sess.tell(f"component {entry.name!r} is now the library's version (saved {ago(time.time() - entry.updated)}); "
              "Undo brings back the one you had")


def save_to_library(sess: DesignerSession, name: str, store: Store) -> None:
    """Keep component ``name`` of the open workflow in the library (widget callback)."""
    user = auth.current_user()
    shared = user is None or user.is_teacher
    try:
        store.save_component(sess.workflow, name, owner=user.name if user is not None else None, shared=shared)
    except StorageError as exc:
        sess.tell(f"could not save {name!r} to the library: {exc}", "error")
        return
    who = "every workflow's palette offers it" + ("" if user is None else " to the class" if shared else " to you")
    sess.tell(f"saved component {name!r} to the library: {who} (section {LIBRARY_CATEGORY})")


def library_tab(store: Store) -> None:
    """The library's entries, with Delete for the ones this user may remove."""
    user = auth.current_user()
    try:
        entries = store.list_components(visible_to=auth.owner_filter(user))
    except StorageError as exc:
        show_error("Could not read the component library", exc)
        return
    if not entries:
        st.caption("The library is empty. Select a component's node and press **Save to the library** in its "
                   "panel: every workflow's palette then offers it (section library).")
        return
    st.caption("Components saved here are offered in every workflow's palette (section library); dropping one "
               "copies it into the workflow.")
    now = time.time()
    for entry in entries:
        cols = st.columns([4, 1], vertical_alignment="center")
        who = f" · by {code_md(entry.owner)}" if entry.owner else ""
        cols[0].markdown(f"**{escape_md(entry.name)}** · {entry.nodes} nodes{who}" +
                         (" · shared" if entry.shared and entry.owner else ""))
        cols[0].caption(escape_md(entry.description or "no description") +
                        f" · saved {ago(now - entry.updated)}")
        if user is None or user.is_teacher or entry.owner == user.name:
            cols[1].button("Delete", key=f"library.delete.{entry.id}", icon=":material/delete:",
                           on_click=_delete, args=(store, entry.id, entry.name))


def _delete(store: Store, component_id: str, name: str) -> None:
    try:
        store.delete_component(component_id)
    except StorageError as exc:
        show_error(f"Could not delete {name}", exc)
        return
    st.toast(f"deleted {name} from the library (workflows that use it keep their copy)")

