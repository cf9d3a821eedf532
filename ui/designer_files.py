"""The designer's files panel: templates, my workflows, named save and versions, duplicate, delete,
import (JSON/YAML, size-limited) and export (JSON, YAML, Python script)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import streamlit as st

from engine.definitions import add_components, is_component_file
from engine.errors import ServiceGridError
from engine.workflow import dump_workflow, load_workflow
from storage import StorageError, Store
from ui import auth, state
from ui.editor import DesignerSession
from ui.export import NotExpressibleError, python_script
from ui.gallery import FAMILIES, TemplateCard, last_run_line, last_runs, template_card
from ui.render import code_md, escape_md, show_error
from ui.services import get_registry, get_store
from ui.session import flash, load_template, new_workflow, open_workflow, save, templates

MAX_IMPORT_BYTES = 5 * 2**20
LAST_RUN_TTL_S = 5.0


def template_gallery(store: Store) -> None:
    """Cards of the ready-made workflows (examples/*.json): a thumbnail of the graph, what it does,
    its agents' families (a filter picks by them), how it last ran here, and one click to open it."""
    paths = templates()
    if not paths:
        st.caption("No templates found (examples/*.json).")
        return
    cards: list[tuple[Path, TemplateCard]] = []
    for path in paths:
        try:
            cards.append((path, _card(str(path), path.stat().st_mtime_ns)))
        except (ServiceGridError, OSError) as exc:
            show_error(f"Template {path.name} cannot be read", exc)
    families = [f for f in FAMILIES.values() if any(f in card.families for _, card in cards)]
    wanted = set(st.pills("Show templates with", families, selection_mode="multi", key="tpl.filter",
                          help="Pick one or more agent families; none picked shows every template.") or ())
    shown = [(path, card) for path, card in cards if card.matches(wanted)]
    if not shown:
        st.caption("No template has agents of the families picked.")
        return
    last = _last_runs(store, tuple(card.stem for _, card in shown))
    now = time.time()
    cols = st.columns(3)
    for i, (path, card) in enumerate(shown):
        with cols[i % 3].container(border=True):
            st.image(card.preview_svg, width="stretch", alt=f"graph of the {card.stem} template")
            st.markdown(f"**{escape_md(card.title)}**")
            badges = [f":gray-badge[{card.n_agents} agents]"]
            badges += [f":{'orange' if f == FAMILIES['simulation'] else 'blue'}-badge[{escape_md(f)}]"
                       for f in card.families]
            st.markdown(" ".join(badges))
            if card.summary:
                st.caption(escape_md(card.summary))
            st.caption(escape_md(last_run_line(last.get(card.stem), now)))
            if st.button(f"Open {card.stem}", key=f"tpl.{card.stem}", icon=":material/account_tree:",
                         width="stretch"):
                _open_template(path, store)
            with st.popover("Details", width="stretch"):
                st.markdown(f"**{escape_md(card.title)}** · {code_md(path.name)}")
                st.markdown(escape_md(card.description) or "*No description.*")
                st.caption("Agents: " + escape_md(", ".join(card.agents)))


def _open_template(path: Path, store: Store) -> None:
    try:
        workflow = load_template(path)
    except (ServiceGridError, OSError) as exc:
        show_error(f"Template {path.name} cannot be opened", exc)
        return
    open_workflow(workflow, store, message=f"from template {path.name}")
    flash(f"Opened template {path.stem}.", "success")
    st.rerun()


@st.cache_data(show_spinner=False, max_entries=64)
def _card(path: str, mtime_ns: int) -> TemplateCard:
    """A template's card, read again only when its file changes (``mtime_ns`` is the cache key)."""
    return template_card(Path(path).stem, load_template(Path(path)), get_registry())


def _last_runs(store: Store, names: tuple[str, ...]) -> dict[str, Any]:
    """The newest run of each template name by the signed-in user (lab mode: only their own),
    read again at most every few seconds per database (the designer reruns on every gesture)."""
    try:
        return _cached_last_runs(str(getattr(store, "url", id(store))), auth.owner_filter(auth.current_user()), names)
    except StorageError:  # the gallery opens templates even when the history cannot be read
        return {}


@st.cache_data(ttl=LAST_RUN_TTL_S, show_spinner=False, max_entries=32)
def _cached_last_runs(database: str, user: str | None, names: tuple[str, ...]) -> dict[str, Any]:
    store = get_store()
    return last_runs([run for name in names for run in store.list_runs(workflow=name, user=user, limit=1)])


def workflow_panel(sess: DesignerSession, store: Store) -> None:
    """Name and save a version, open a saved workflow or an older version, duplicate, delete, new."""
    if closed_first(sess, "Its name and versions belong to the workflow."):
        return
    name = st.text_input("Workflow name", value=sess.workflow.name, key=f"wfname.{sess.rev}", max_chars=500)
    message = st.text_input("Version note", key="wfmessage", placeholder="what changed")
    c1, c2, c3, c4 = st.columns(4)
    if c1.button("Save version", icon=":material/save:", key="wfsave"):
        if name != sess.workflow.name:
            sess.push(sess.workflow.model_copy(update={"name": name.strip() or "untitled"}))
        if save(sess, store, message=message.strip() or "saved"):
            flash(f"Saved {sess.workflow.name}.", "success")
        st.rerun()
    if c2.button("Duplicate", icon=":material/content_copy:", key="wfdup", disabled=sess.workflow_id is None):
        try:
            new_id, _ = store.duplicate_workflow(str(sess.workflow_id), f"{sess.workflow.name} (copy)")
            open_workflow(store.get_workflow(new_id), store, workflow_id=new_id)
            flash(f"Duplicated as {sess.workflow.name} (copy).", "success")
        except (StorageError, ServiceGridError) as exc:
            flash(f"Could not duplicate: {exc}", "error")
        st.rerun()
    if c3.button("New", icon=":material/add:", key="wfnew"):
        new_workflow()
        st.rerun()
    if c4.button("Delete", icon=":material/delete:", key="wfdel", disabled=sess.workflow_id is None):
        try:
            store.delete_workflow(str(sess.workflow_id))
            flash(f"Deleted {sess.workflow.name}.", "success")
        except (StorageError, ServiceGridError) as exc:
            flash(f"Could not delete: {exc}", "error")
        new_workflow()
        st.rerun()
    _versions(sess, store)
    _saved_workflows(sess, store)


def _versions(sess: DesignerSession, store: Store) -> None:
    if not sess.workflow_id:
        st.caption("Not saved yet: the first change saves it.")
        return
    try:
        versions = store.workflow_versions(sess.workflow_id)
    except (StorageError, ServiceGridError) as exc:
        show_error("Versions cannot be listed", exc)
        return
    if not versions:
        return
    labels = {v.version: f"v{v.version} · {v.message or 'autosave'}" for v in reversed(versions)}
    picked = st.selectbox("Versions", list(labels), format_func=labels.__getitem__, key=f"wfver.{sess.rev}")
    if st.button("Open this version", key="wfveropen"):
        try:
            older = store.get_workflow(sess.workflow_id, picked)
        except (StorageError, ServiceGridError) as exc:
            show_error(f"Version {picked} cannot be opened", exc)
            return
        from ui.graphmodel import ensure_positions

        sess.push(ensure_positions(older), fit=True)
        save(sess, store, message=f"restored v{picked}")
        flash(f"Restored version {picked}.", "success")
        st.rerun()


def _saved_workflows(sess: DesignerSession, store: Store) -> None:
    try:
        saved = [w for w in store.list_workflows(owner=auth.owner_filter(auth.current_user()))
                 if w.id != sess.workflow_id]
    except (StorageError, ServiceGridError) as exc:
        show_error("Saved workflows cannot be listed", exc)
        return
    if not saved:
        return
    names = {w.id: f"{w.name} (v{w.latest_version})" for w in saved}
    picked = st.selectbox("Open a saved workflow", list(names), format_func=names.__getitem__, key="wfopen")
    if st.button("Open", key="wfopenbtn"):
        st.query_params[state.QP_WORKFLOW] = picked  # current_session opens it on the rerun
        st.rerun()


def closed_first(sess: DesignerSession, what: str) -> bool:
    """With a component open, say that the workflow's ``what`` wait until it is closed (True)."""
    if sess.scope is None:
        return False
    st.info(f"Component {code_md(sess.scope.name)} is open on the canvas. {what} Go back to "
            "the workflow first (the path above the canvas, or **Back to the workflow** beside it).",
            icon=":material/info:")
    return True


def import_panel(sess: DesignerSession, store: Store) -> None:
    if closed_first(sess, "Imports go into the workflow."):
        return
    upload = st.file_uploader("Import a workflow file (JSON or YAML), or a component's file to add it to this "
                              "workflow", type=["json", "yaml", "yml"],
                              key=state.IMPORT_UPLOAD, max_upload_size=MAX_IMPORT_BYTES // 2**20)
    if upload is None:
        return
    if st.button("Import", key="wfimport", icon=":material/upload:"):
        data = upload.getvalue()
        if len(data) > MAX_IMPORT_BYTES:
            st.error(f"{escape_md(upload.name)} is larger than {MAX_IMPORT_BYTES // 2**20} MB.")
            return
        try:
            fmt = "yaml" if upload.name.lower().endswith((".yaml", ".yml")) else None
            workflow = load_workflow(data.decode("utf-8"), fmt=fmt)
        except UnicodeDecodeError:
            st.error(f"{escape_md(upload.name)} is not UTF-8 text; workflow files are JSON or YAML text.")
            return
        except ServiceGridError as exc:
            location = getattr(exc, "location", None)
            show_error(f"{upload.name} cannot be imported" + (f" ({location})" if location else ""), exc)
            return
        if is_component_file(workflow):  # a component to add, not a graph to open
            merged, renamed = add_components(sess.workflow, workflow.components)
            sess.push(merged)
            save(sess, store)
            names = ", ".join(renamed.get(c.name, c.name) for c in workflow.components)
            flash(f"Added component {names} from {upload.name} to this workflow: the palette offers it "
                  "(section components).", "success")
            st.rerun()
        open_workflow(workflow, store, message=f"imported {upload.name}")
        flash(f"Imported {upload.name}.", "success")
        st.rerun()


def export_buttons(sess: DesignerSession) -> None:
    workflow = sess.document  # with a component open: the whole workflow
    stem = "".join(c if c.isalnum() or c in "-_" else "_" for c in workflow.name)[:60] or "workflow"
    c1, c2, c3 = st.columns(3)
    c1.download_button("Export JSON", dump_workflow(workflow), file_name=f"{stem}.json", mime="application/json",
                       key="export_json", icon=":material/download:", on_click="ignore")
    c2.download_button("Export YAML", dump_workflow(workflow, fmt="yaml"), file_name=f"{stem}.yaml",
                       mime="application/yaml", key="export_yaml", icon=":material/download:", on_click="ignore")
    try:
        script = python_script(workflow)
    except NotExpressibleError as exc:
        c3.button("Export Python", disabled=True, key="export_py_off", help=str(exc))
        st.caption(f"Export Python is not available: {escape_md(str(exc))}")  # visible, not only on hover
        return
    c3.download_button("Export Python", script, file_name=f"{stem}.py", mime="text/x-python", key="export_py", on_click="ignore",
                       icon=":material/code:")
