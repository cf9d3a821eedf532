"""Security in a real browser (lab mode on): markup in labels and ids renders as text (no dialog
ever fires), and a student cannot open another student's workflow by its URL."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.e2e.conftest import LOG_FAILURES, start_server, stop_server

expect = pytest.importorskip("playwright.sync_api").expect
pytestmark = pytest.mark.e2e
XSS = "<img src=x onerror=alert(1)>"
SCRIPT = "<script>alert(2)</script>"


def _doc(nodes: list[dict[str, Any]], edges: list[tuple[str, str]], name: str) -> dict[str, Any]:
    return {"schema_version": 1, "name": name, "nodes": nodes,
            "edges": [{"source": s, "target": t} for s, t in edges]}


@pytest.fixture(scope="module")
def lab_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    from engine.workflow import Workflow
    from storage import Store
    from ui import auth

    tmp = tmp_path_factory.mktemp("e2e-lab")
    users = tmp / "users.json"
    auth.add_user(users, "alice", "alice-password")
    auth.add_user(users, "bob", "bob-password")
    marked = _doc([{"id": XSS, "agent": "test.source", "label": SCRIPT, "position": {"x": 80, "y": 80}},
                   {"id": "b\u202e<b>bold</b>", "agent": "test.echo", "label": XSS, "position": {"x": 380, "y": 80}},
                   {"id": "ghost", "agent": XSS, "position": {"x": 80, "y": 280}}],
                  [(XSS, "b\u202e<b>bold</b>")], name=f"markup {XSS}")
    with Store(f"sqlite:///{tmp / 'e2e.db'}") as store:
        alices, _ = store.save_workflow(Workflow.model_validate(marked), owner="alice")
        bobs, _ = store.save_workflow(Workflow.model_validate(_doc(
            [{"id": "bobs_secret_node", "agent": "test.source", "position": {"x": 80, "y": 80}}], [], "bob-private")),
            owner="bob")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SERVICEGRID_LAB_MODE", "1")
        mp.setenv("SERVICEGRID_USERS", str(users))
        proc, url = start_server(tmp, tmp / "server.log")
    try:
        yield {"url": url, "alice": alices, "bob": bobs}
    finally:
        stop_server(proc)
    text = (tmp / "server.log").read_text()
    assert not [m for m in LOG_FAILURES if m in text], text[-4000:]


@pytest.fixture
def lab_page(browser: Any) -> Iterator[tuple[Any, list[str]]]:
    context = browser.new_context(viewport={"width": 1500, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(30000)
    expect.set_options(timeout=20000)
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    yield page, dialogs
    context.close()


def _sign_in(page: Any, url: str, name: str, password: str) -> None:
    page.goto(url)
    page.get_by_role("textbox", name="User name").fill(name)
    page.get_by_role("textbox", name="Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_text(f"Signed in as {name}")).to_be_visible()


def test_markup_in_ids_and_labels_renders_as_text(lab_page: tuple[Any, list[str]], lab_server: dict[str, str]) -> None:
    page, dialogs = lab_page
    _sign_in(page, f"{lab_server['url']}/?wf={lab_server['alice']}", "alice", "alice-password")
    nodes = page.locator(".sg-node")
    expect(nodes).to_have_count(3)
    expect(page.locator(".sg-head", has_text=SCRIPT)).to_have_count(1)  # the label, shown literally
    expect(page.locator(".sg-head", has_text=XSS)).to_have_count(1)
    expect(page.get_by_text(f"no agent named {XSS!r}").first).to_be_visible()  # the finding, as text
    page.wait_for_timeout(1500)  # let any injected handler fire, if one had slipped through
    assert page.locator("img[src='x']").count() == 0
    assert page.locator(".sg-node b").count() == 0 and page.locator("script:has-text('alert(2)')").count() == 0
    assert dialogs == []


def test_a_student_cannot_open_another_students_workflow_by_url(lab_page: tuple[Any, list[str]],
                                                                 lab_server: dict[str, str]) -> None:
    page, dialogs = lab_page
    _sign_in(page, f"{lab_server['url']}/?wf={lab_server['bob']}", "alice", "alice-password")
    expect(page.get_by_text("not found or not yours").first).to_be_visible()
    expect(page.locator(".sg-node")).to_have_count(0)
    assert page.get_by_text("bobs_secret_node").count() == 0
    assert lab_server["bob"] not in page.url
    assert dialogs == []


def test_the_sign_in_page_shows_nothing_of_the_app(lab_page: tuple[Any, list[str]], lab_server: dict[str, str]) -> None:
    page, _ = lab_page
    page.goto(f"{lab_server['url']}/?wf={lab_server['bob']}")
    expect(page.get_by_role("button", name="Sign in")).to_be_visible()
    assert page.locator(".sg-canvas").count() == 0
    page.get_by_role("textbox", name="User name").fill("alice")
    page.get_by_role("textbox", name="Password").fill("bob-password")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_text("Unknown user name or wrong password")).to_be_visible()
