"""One registry, store and run manager per Streamlit server (``st.cache_resource``).

Shared by every browser session. Engine threads never call ``st.*``: pages read snapshots.
``SERVICEGRID_AGENT_MODULES`` (comma-separated module names, set by whoever starts the server)
registers extra agent modules, e.g. typed test agents for the browser tests.
"""

from __future__ import annotations

import importlib.util
import os
from typing import Any

import streamlit as st

from engine.registry import Registry, default_registry
from engine.resources import Capacity
from storage import Store


@st.cache_resource(show_spinner=False)
def get_registry() -> Registry:
    registry = default_registry()
    for module in filter(None, (m.strip() for m in os.environ.get("SERVICEGRID_AGENT_MODULES", "").split(","))):
        registry.register_module(module)
    return registry


def _close_store(store: Store) -> None:
    store.close()


@st.cache_resource(show_spinner=False, on_release=_close_store)
def get_store() -> Store:
    return Store()


@st.cache_resource(show_spinner=False)
def get_capacity() -> Capacity:
    from engine.devices import machine_capacity

    return machine_capacity()


def runs_available() -> bool:
    """Whether the run manager (engine/runs.py) is part of this installation."""
    return importlib.util.find_spec("engine.runs") is not None


def _shutdown(manager: Any) -> None:
    manager.shutdown()


@st.cache_resource(show_spinner=False, on_release=_shutdown)
def get_run_manager() -> Any:
    """The process-wide RunManager (raises ImportError when engine.runs is absent)."""
    from engine.runs import RunManager

    store = get_store()
    manager = RunManager(registry=get_registry(), machine=None)
    observer = getattr(store, "observer", None)
    if callable(observer) and hasattr(manager, "add_observer"):
        manager.add_observer(observer())
    elif callable(observer) and hasattr(manager, "bus"):  # engine.runs.RunManager: observers subscribe to its bus
        manager.bus.subscribe(observer())
    if hasattr(store, "mark_interrupted"):  # runs a previous server process left running
        store.mark_interrupted()
    return manager
