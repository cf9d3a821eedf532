"""Lab mode in the app (AppTest): the sign-in gate, and another user's workflow or run by URL."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import streamlit as st
from faults import sleep, workflow
from streamlit.testing.v1 import AppTest

from ui import auth, state

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def lab(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    users = data_dir / "users.json"
    auth.add_user(users, "alice", "alice-password")
    auth.add_user(users, "bob", "bob-password")
    auth.add_user(users, "teach", "teach-password", "teacher")
    monkeypatch.setenv("SERVICEGRID_LAB_MODE", "1")
    monkeypatch.setenv("SERVICEGRID_USERS", str(users))
    monkeypatch.setenv("SERVICEGRID_NO_CUDA", "1")
    st.cache_resource.clear()
    yield users
    st.cache_resource.clear()


def _texts(at: AppTest) -> str:
    parts = [e.value for e in (*at.error, *at.warning, *at.markdown, *at.title, *at.caption)]
    return "\n".join(str(p) for p in parts)


def test_the_app_asks_for_a_sign_in_and_refuses_a_wrong_password(lab: Path) -> None:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60).run()
    assert "Sign in" in _texts(at)
    assert not at.tabs and "Designer" not in _texts(at)  # nothing of the app before sign-in
    at.text_input(key="sg_login_name").input("alice")
    at.text_input(key="sg_login_password").input("wrong-password")
    _submit(at)
    assert "wrong password" in _texts(at)
    assert auth.SESSION_KEY not in at.session_state
    at.text_input(key="sg_login_name").input("alice")
    at.text_input(key="sg_login_password").input("alice-password")
    _submit(at)
    assert at.session_state[auth.SESSION_KEY] == auth.User("alice")
    assert "Signed in as" in _texts(at)


def _submit(at: AppTest) -> None:
    buttons = [b for b in at.get("button") if "Sign in" in str(getattr(b, "label", ""))]
    (buttons[0] if buttons else at.button[0]).click()
    at.run()


def _designer_as(user: auth.User, workflow_id: str) -> AppTest:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    at.session_state[auth.SESSION_KEY] = user
    at.query_params[state.QP_WORKFLOW] = workflow_id
    return at.run()


def test_a_student_cannot_open_another_students_workflow_by_url(lab: Path) -> None:
    from storage import Store

    with Store() as store:
        bobs, _ = store.save_workflow(workflow([sleep("secret_node")], name="bob-private"), owner="bob")
        alices, _ = store.save_workflow(workflow([sleep("mine")], name="alice-own"), owner="alice")
    at = _designer_as(auth.User("alice"), bobs)
    assert auth.NOT_YOURS in _texts(at)
    assert at.session_state[state.DESIGNER].workflow_id != bobs
    at = _designer_as(auth.User("alice"), alices)
    assert at.session_state[state.DESIGNER].workflow_id == alices
    at = _designer_as(auth.User("teach", "teacher"), bobs)
    assert at.session_state[state.DESIGNER].workflow_id == bobs


def _recorded_run(user: str) -> str:
    from engine.events import RunFinished, RunStarted
    from storage import Store

    with Store() as store:
        run_id = f"run-of-{user}"
        store.on_event(RunStarted(run_id=run_id, workflow_name=f"{user}-wf", policy="fifo", backend="local",
                                  capacity={"cpu": 1}, node_ids=(), user=user))
        store.on_event(RunFinished(run_id=run_id, status="succeeded"))
        assert store.flush()
    return run_id


def test_a_student_cannot_watch_another_students_run_by_url(lab: Path) -> None:
    bobs = _recorded_run("bob")
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    at.session_state[auth.SESSION_KEY] = auth.User("alice")
    at.query_params[state.QP_RUN] = bobs
    at.switch_page("pages/run.py").run()
    assert auth.NOT_YOURS in _texts(at)
    assert state.RUN_ID not in at.session_state or at.session_state[state.RUN_ID] != bobs
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    at.session_state[auth.SESSION_KEY] = auth.User("bob")
    at.query_params[state.QP_RUN] = bobs
    at.switch_page("pages/run.py").run()
    assert auth.NOT_YOURS not in _texts(at)
    assert at.session_state[state.RUN_ID] == bobs


def test_history_lists_only_the_students_own_runs(lab: Path) -> None:
    bobs, alices = _recorded_run("bob"), _recorded_run("alice")
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    at.session_state[auth.SESSION_KEY] = auth.User("alice")
    at.switch_page("pages/history.py").run()
    shown = "\n".join(str(s.options) for s in at.selectbox) + "\n".join(str(d.value) for d in at.dataframe)
    assert alices in shown and bobs not in shown
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    at.session_state[auth.SESSION_KEY] = auth.User("teach", "teacher")
    at.switch_page("pages/history.py").run()
    shown = "\n".join(str(s.options) for s in at.selectbox) + "\n".join(str(d.value) for d in at.dataframe)
    assert alices in shown and bobs in shown


def test_the_lab_offers_a_student_only_their_own_saved_workflows(lab: Path) -> None:
    from storage import Store

    with Store() as store:
        store.save_workflow(workflow([sleep("secret_node")], name="bob-private"), owner="bob")
        store.save_workflow(workflow([sleep("mine")], name="alice-own"), owner="alice")

    def offered(user: auth.User) -> str:
        at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
        at.session_state[auth.SESSION_KEY] = user
        at.switch_page("pages/lab.py").run()
        at.segmented_control(key="lab.source").set_value("Saved workflow").run()
        assert not at.exception, at.exception
        return str(at.selectbox(key="lab.saved").options)

    mine = offered(auth.User("alice"))
    assert "alice-own" in mine and "bob-private" not in mine
    everyone = offered(auth.User("teach", "teacher"))
    assert "alice-own" in everyone and "bob-private" in everyone


def test_lab_mode_without_users_says_how_to_add_them(lab: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SERVICEGRID_USERS", str(lab.parent / "missing.json"))
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60).run()
    assert "no users are configured" in _texts(at)
    assert "python -m ui.auth add-user" in _texts(at)
