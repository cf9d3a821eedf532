"""AppTest fixtures for the Run and History pages: a private database and fresh singletons."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def app(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[AppTest]:
    monkeypatch.setenv("SERVICEGRID_NO_CUDA", "1")
    st.cache_resource.clear()  # a fresh store and run manager on this test's database
    yield AppTest.from_file(str(ROOT / "app.py"), default_timeout=30)
    st.cache_resource.clear()  # on_release shuts the manager down and closes the store


def poll(at: AppTest, done: Callable[[AppTest], bool], timeout: float = 30.0) -> AppTest:
    """Rerun until ``done(at)`` (AppTest never ticks run_every fragments)."""
    deadline = time.monotonic() + timeout
    while True:
        at.run()
        if done(at) or time.monotonic() > deadline:
            return at
        time.sleep(0.2)
