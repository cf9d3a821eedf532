"""A fresh server whose very first request is a page URL (/history) still shows our app shell.

Streamlit's legacy ``pages/`` auto-discovery would otherwise run pages/history.py alone: a plain
file list for navigation, no machine sidebar and, in lab mode, no sign-in gate.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import SCREENSHOTS, start_server, stop_server

expect = pytest.importorskip("playwright.sync_api").expect
pytestmark = pytest.mark.e2e


def nav_links(page: Any) -> Any:
    return page.get_by_test_id("stSidebarNav").get_by_role("link")


@pytest.fixture
def fresh_server(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    log_path = tmp_path / "server.log"
    proc, url = start_server(tmp_path, log_path)
    try:
        yield url, log_path
    finally:
        stop_server(proc)
    assert "Traceback" not in log_path.read_text()


def test_first_request_to_history_shows_our_navigation(browser: Any, fresh_server: tuple[str, Path]) -> None:
    url, _ = fresh_server
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    try:
        page = context.new_page()
        page.goto(url + "/history")  # nothing has run app.py on this server yet
        expect(page.get_by_role("heading", name="History")).to_be_visible(timeout=30000)
        titles = [re.compile(f"{title}$") for title in ("Designer", "Agents", "Run", "History", "Lab")]
        expect(nav_links(page)).to_have_text(titles, timeout=15000)  # not the file list (app, agents, ...)
        expect(page.get_by_test_id("stSidebar")).to_contain_text("This machine")
        page.screenshot(path=str(SCREENSHOTS / "qa-first-request-history.png"))
        nav_links(page).filter(has_text="Designer").click()  # normal navigation keeps working
        expect(page.get_by_role("heading", name="Designer")).to_be_visible(timeout=20000)
        expect(nav_links(page)).to_have_count(5)
        page.goto(url + "/run")  # a second first-visit URL in the same session
        expect(page.get_by_role("heading", name="Run", exact=True)).to_be_visible(timeout=20000)
        expect(nav_links(page)).to_have_count(5)
    finally:
        context.close()


def test_first_request_in_lab_mode_asks_to_sign_in(browser: Any, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SERVICEGRID_LAB_MODE", "1")
    monkeypatch.setenv("SERVICEGRID_USERS", str(tmp_path / "no-users.json"))
    log_path = tmp_path / "server.log"
    proc, url = start_server(tmp_path, log_path)
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    try:
        page = context.new_page()
        page.goto(url + "/history")
        expect(page.get_by_role("heading", name="Sign in to ServiceGrid Studio")).to_be_visible(timeout=30000)
        expect(page.get_by_role("heading", name="History")).to_have_count(0)
    finally:
        context.close()
        stop_server(proc)
    assert "Traceback" not in log_path.read_text()
