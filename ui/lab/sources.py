"""Where the lab's workflow comes from: a template, a workflow saved in the store, or an uploaded
benchmark instance (PSPLIB .sm, STG .stg, WfCommons .json, Pegasus DAX .xml; size-limited)."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

import streamlit as st

from engine.benchmarks import load_instance
from engine.errors import ServiceGridError
from engine.workflow import Workflow, load_workflow
from storage import StorageError, Store
from ui import auth
from ui.render import show_error

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
LAB_EXAMPLES = Path(__file__).resolve().parent / "examples"
MAX_UPLOAD_BYTES = 2 * 2**20
K_SOURCE = "lab.source"
K_TEMPLATE = "lab.template"
K_SAVED = "lab.saved"
K_UPLOAD = "lab.upload"
K_PROCESSORS = "lab.processors"
SOURCES = ("Template", "Saved workflow", "Benchmark instance")


@dataclass(frozen=True)
class Picked:
    workflow: Workflow
    key: str  # identifies the choice (what-if edits reset when it changes)
    workflow_id: str | None = None  # set for saved workflows (learned estimates, apply advice)


def template_paths() -> dict[str, Path]:
    """Lab templates first, then the gallery's ``examples/*.json``."""
    paths = sorted(LAB_EXAMPLES.glob("*.json")) + (sorted(EXAMPLES.glob("*.json")) if EXAMPLES.is_dir() else [])
    return {p.stem: p for p in paths}


@st.cache_data(show_spinner=False, max_entries=32)
def _template(path: str, mtime: float) -> Workflow:
    return load_workflow(Path(path))


def pick_workflow(store: Store) -> Picked | None:
    """The source selector; None (with a message shown) when nothing usable is picked."""
    source = st.segmented_control("Workflow source", SOURCES, default=SOURCES[0], key=K_SOURCE) or SOURCES[0]
    if source == "Template":
        paths = template_paths()
        if not paths:
            st.info("No templates found.")
            return None
        name = st.selectbox("Template", list(paths), key=K_TEMPLATE)
        path = paths[name]
        try:
            return Picked(_template(str(path), path.stat().st_mtime), f"template:{name}")
        except (ServiceGridError, OSError) as exc:
            show_error(f"Could not load template {name}", exc)
            return None
    if source == "Saved workflow":
        return _saved(store)
    return _uploaded()


def _saved(store: Store) -> Picked | None:
    try:
        saved = store.list_workflows(owner=auth.owner_filter(auth.current_user()))
    except StorageError as exc:
        show_error("Could not list the saved workflows", exc)
        return None
    if not saved:
        st.info("No saved workflows yet: draw one in the Designer, or pick a template.")
        return None
    labels = {f"{w.name} (v{w.latest_version}, {w.id})": w.id for w in saved}
    label = st.selectbox("Saved workflow", list(labels), key=K_SAVED)
    workflow_id = labels[label]
    try:
        workflow = store.get_workflow(workflow_id)
    except (StorageError, ServiceGridError, LookupError) as exc:
        show_error(f"Could not open workflow {workflow_id}", exc)
        return None
    version = next(w.latest_version for w in saved if w.id == workflow_id)
    return Picked(workflow, f"saved:{workflow_id}:{version}", workflow_id)


def _uploaded() -> Picked | None:
    upload = st.file_uploader("Benchmark instance (PSPLIB .sm, STG .stg, WfCommons .json, DAX .xml; up to 2 MB)",
                              type=["sm", "stg", "json", "xml", "dax"], key=K_UPLOAD)
    processors = st.number_input("Processors (STG instances)", 1, 256, 4, key=K_PROCESSORS)
    if upload is None:
        st.caption("Upload an instance to schedule it here.")
        return None
    data = upload.getvalue()
    if len(data) > MAX_UPLOAD_BYTES:
        st.error(f"{upload.name} is {len(data) / 2**20:.1f} MB; the lab takes instances up to 2 MB.")
        return None
    suffix = Path(upload.name).suffix.lower() or ".json"
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / (Path(upload.name).stem[:80] + suffix)
        path.write_bytes(data)
        try:
            workflow = load_instance(path, processors=int(processors))
        except (ServiceGridError, OSError, UnicodeDecodeError) as exc:
            show_error(f"Could not import {upload.name}", exc)
            return None
    return Picked(workflow, f"upload:{upload.name}:{len(data)}:{processors}")
