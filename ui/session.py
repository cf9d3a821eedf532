"""Opening, saving and switching the workflow of the designer session (store + query params).

Every accepted change is saved as a new version (message "autosave"); the workflow id lives in
``st.query_params`` so that a browser reload opens the same workflow again, with its saved
versions as the undo history.
"""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from engine.components import component_name
from engine.errors import ServiceGridError
from engine.workflow import Workflow, load_workflow
from storage import StorageError, Store
from ui import auth, state
from ui.editor import DesignerSession
from ui.graphmodel import ensure_positions

EXAMPLES_DIR = Path(__file__).resolve().parents[1] / "examples"


def flash(message: str, kind: str = "info") -> None:
    """A message shown once at the top of the designer after the next run."""
    st.session_state[state.FLASH] = (kind, message)


def current_session(store: Store) -> DesignerSession:
    """The session's designer state; (re)opened from the store when the URL names another workflow."""
    ss = st.session_state
    wanted = st.query_params.get(state.QP_WORKFLOW)
    sess: DesignerSession | None = ss.get(state.DESIGNER)
    if sess is None or (wanted and sess.workflow_id != wanted):
        rev = sess.rev + 1 if sess is not None else 1  # the canvas adopts only a higher revision
        sess = DesignerSession(Workflow(name="untitled"), rev=rev)
        if wanted and not auth.may_open_workflow(auth.current_user(), store, wanted):
            flash(f"Could not open workflow {wanted}: {auth.NOT_YOURS}. Started a new one.", "error")
            st.query_params.pop(state.QP_WORKFLOW, None)
        elif wanted:
            try:
                sess = DesignerSession(ensure_positions(store.get_workflow(wanted)), workflow_id=wanted, rev=rev)
                sess.undo_stack = undo_history(store, wanted)
                upgrade_opened(sess, store)
                reopen_inside(sess)
            except (StorageError, ServiceGridError, LookupError) as exc:
                flash(f"Could not open workflow {wanted}: {exc}. Started a new one.", "error")
                st.query_params.pop(state.QP_WORKFLOW, None)
        ss[state.DESIGNER] = sess
    if sess.workflow_id:
        st.query_params[state.QP_WORKFLOW] = sess.workflow_id  # page switches clear query params
    mark_inside(sess)
    return sess


def mark_inside(sess: DesignerSession) -> None:
    """Put the open component, and the path to it, in the URL (a reload opens it again), or take
    it out when none is open."""
    scope = sess.scope
    if scope is None or not sess.workflow_id:
        for key in (state.QP_INSIDE, state.QP_INSIDE_NODE):
            st.query_params.pop(key, None)
        return
    st.query_params[state.QP_INSIDE] = "/".join((*scope.trail, scope.name))  # component names have no "/"
    st.query_params[state.QP_INSIDE_NODE] = scope.instance


def reopen_inside(sess: DesignerSession) -> None:
    """Open again the component the URL names (``mark_inside``), along the same path: a reload
    goes back inside it. A path that no longer leads anywhere stays on the workflow, saying so."""
    path = [p for p in str(st.query_params.get(state.QP_INSIDE) or "").split("/") if p]
    node_id = str(st.query_params.get(state.QP_INSIDE_NODE) or "")
    if not path:
        return
    if not sess.enter(node_id) or sess.scope_name != path[0]:
        sess.leave(quiet=True)
        sess.notice = None
        sess.tell(f"component {path[0]!r} of node {node_id!r} is not in this workflow any more: showing the workflow")
        return
    for name in path[1:]:  # components opened inside it, in order
        inner = next((n.id for n in sess.workflow.nodes if component_name(n) == name), None)
        if inner is None or not sess.enter(inner):
            sess.tell(f"component {name!r} is not inside {sess.scope_name!r} any more: showing {sess.scope_name!r}")
            return


UNDO_FROM_VERSIONS = 30  # saved versions a reopened workflow can be undone through


def undo_history(store: Store, workflow_id: str, limit: int = UNDO_FROM_VERSIONS) -> list[Workflow]:
    """The undo stack of a workflow opened again (a reload, a link): its saved versions before
    the latest, oldest first, so Undo steps back through them as it did before the reload (every
    accepted change was saved as a version). A version that cannot be read ends the history there."""
    versions = [v.version for v in store.workflow_versions(workflow_id)][:-1][-limit:]
    history: list[Workflow] = []
    for version in reversed(versions):  # newest first: an unreadable one cuts off only the older ones
        try:
            history.append(ensure_positions(store.get_workflow(workflow_id, version)))
        except (StorageError, ServiceGridError, LookupError, ValueError):
            break
    return history[::-1]


def save(sess: DesignerSession, store: Store, message: str = "autosave") -> bool:
    """Save the workflow as a new version when it changed; True when saved."""
    if not sess.dirty and message == "autosave":
        return False
    try:
        workflow_id, _version = store.save_workflow(sess.document, workflow_id=sess.workflow_id, message=message,
                                                   owner=getattr(auth.current_user(), "name", None))
    except (StorageError, ServiceGridError, OSError) as exc:
        flash(f"Could not save: {exc}", "error")
        return False
    sess.workflow_id = workflow_id
    sess.dirty = False
    st.query_params[state.QP_WORKFLOW] = workflow_id
    return True


def open_workflow(workflow: Workflow, store: Store, *, workflow_id: str | None = None,
                  message: str = "opened") -> DesignerSession:
    """Make ``workflow`` the open one (laid out if it has no positions) and save it."""
    old: DesignerSession | None = st.session_state.get(state.DESIGNER)
    sess = DesignerSession(ensure_positions(workflow), workflow_id=workflow_id, dirty=workflow_id is None,
                           rev=(old.rev + 1) if old else 1)
    st.session_state[state.DESIGNER] = sess
    if workflow_id is None:
        save(sess, store, message=message)
    else:
        st.query_params[state.QP_WORKFLOW] = workflow_id
    upgrade_opened(sess, store)
    return sess


def upgrade_opened(sess: DesignerSession, store: Store) -> None:
    """Upgrade the params of an opened workflow's nodes saved for an older version of their agent
    (``engine.versions``): one undo step (Undo gives the saved form back), saved, and a toast names
    what changed."""
    from engine.versions import upgrade
    from ui.services import get_registry

    upgraded, changes = upgrade(sess.workflow, get_registry())
    if not changes:
        return
    sess.push(upgraded)
    save(sess, store, message="parameters upgraded for the agents' current versions")
    said = "; ".join(f"{c.node} ({c.agent} {c.now}): {', '.join(c.notes)}" for c in changes[:5])
    more = f" and {len(changes) - 5} more" if len(changes) > 5 else ""
    sess.tell(f"upgraded the parameters of {len(changes)} node{'s' if len(changes) != 1 else ''} for their agents' "
              f"current versions: {said}{more}. Undo gives the saved form back.")


def new_workflow() -> None:
    old: DesignerSession | None = st.session_state.get(state.DESIGNER)
    st.session_state[state.DESIGNER] = DesignerSession(Workflow(name="untitled"), rev=(old.rev + 1) if old else 1)
    st.query_params.pop(state.QP_WORKFLOW, None)


def templates() -> list[Path]:
    """The template gallery: every ``examples/*.json`` next to the app."""
    return sorted(EXAMPLES_DIR.glob("*.json")) if EXAMPLES_DIR.is_dir() else []


def load_template(path: Path) -> Workflow:
    return load_workflow(path)
