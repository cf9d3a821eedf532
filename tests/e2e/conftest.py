"""Browser tests: a real ``streamlit run`` on a free loopback port, driven by headless Chromium.

Skipped when /usr/bin/chromium (or $CHROMIUM) is missing, unless CI=true. The server log must
not contain "missing ScriptRunContext" or "Traceback" (checked when the session ends).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
SCREENSHOTS = ROOT / "artifacts" / "screenshots"
LOG_FAILURES = ("missing ScriptRunContext", "Traceback")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    if Path(CHROMIUM).exists() or os.environ.get("CI") == "true":
        return
    skip = pytest.mark.skip(reason=f"Chromium not found at {CHROMIUM} (set CHROMIUM or install chromium)")
    for item in items:
        if "e2e" in item.keywords:
            item.add_marker(skip)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(tmp: Path, log_path: Path) -> tuple[subprocess.Popen[bytes], str]:
    """Start the app on a free loopback port and wait until it is healthy."""
    port = free_port()
    env = {**os.environ, "SERVICEGRID_DATA_DIR": str(tmp / "data"),
           "SERVICEGRID_DATABASE_URL": f"sqlite:///{tmp / 'e2e.db'}",
           "SERVICEGRID_AGENT_MODULES": "tests.e2e.typed_agents", "SERVICEGRID_NO_CUDA": "1"}
    log = open(log_path, "w")  # noqa: SIM115 - closed when the server stops
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", str(ROOT / "app.py"), "--server.headless=true",
         f"--server.port={port}", "--server.address=127.0.0.1", "--browser.gatherUsageStats=false",
         "--server.fileWatcherType=none", "--client.toolbarMode=minimal"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    url, deadline = f"http://127.0.0.1:{port}", time.time() + 60
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"streamlit exited early:\n{log_path.read_text()[-3000:]}")
        try:
            if urllib.request.urlopen(url + "/_stcore/health", timeout=1).status == 200:
                return proc, url
        except OSError:
            pass
        if time.time() > deadline:
            proc.kill()
            raise TimeoutError("streamlit did not become healthy in 60 s")
        time.sleep(0.2)


def stop_server(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@pytest.fixture(scope="session")
def app_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    tmp = tmp_path_factory.mktemp("e2e")
    log_path = tmp / "server.log"
    proc, url = start_server(tmp, log_path)
    try:
        yield url
    finally:
        stop_server(proc)
    text = log_path.read_text()
    bad = [marker for marker in LOG_FAILURES if marker in text]
    assert not bad, f"server log contains {bad}:\n{text[-4000:]}"


@pytest.fixture(scope="session")
def browser() -> Iterator[object]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield browser
        browser.close()


@pytest.fixture
def page(browser: object, app_url: str, request: pytest.FixtureRequest) -> Iterator[object]:
    context = browser.new_context(viewport={"width": 1500, "height": 1000}, accept_downloads=True)  # type: ignore[attr-defined]
    page = context.new_page()
    page.set_default_timeout(20000)
    from playwright.sync_api import expect

    expect.set_options(timeout=15000)  # the machine is shared: give Python's reruns time
    yield page
    if getattr(request.node, "call_failed", False):
        _record_failure(page, request.node.name)
    context.close()


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """Mark a test whose body failed, for the ``page`` fixture's teardown (it records the page)."""
    report = yield
    if report.when == "call" and report.failed:
        item.call_failed = True  # type: ignore[attr-defined]
    return report


def _record_failure(page: Any, name: str) -> None:
    """A failed browser test leaves a screenshot and prints what the page showed: a rare failure
    seen only in CI can then be read from its log."""
    try:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOTS / f"FAILED-{name}.png"), full_page=True)
        text = page.locator("body").inner_text(timeout=5000)
        print(f"\n--- the page at failure ({page.url}) ---\n{text[-6000:]}\n--- end of page ---")
    except Exception as exc:  # the diagnosis must not mask the failure
        print(f"could not record the page at failure: {exc!r}")
