"""The Scheduling Lab in a real browser: compare three policies on a template, change a capacity,
step through decisions, and open a node's wait explanation."""

from __future__ import annotations

import re

import pytest

from tests.e2e.conftest import SCREENSHOTS

expect = pytest.importorskip("playwright.sync_api").expect
pytestmark = pytest.mark.e2e


def _metric(page, label: str | re.Pattern):
    return page.get_by_test_id("stMetric").filter(has=page.get_by_test_id("stMetricLabel").get_by_text(label, exact=True))


def _makespan(page, label: str | re.Pattern) -> float:
    return float(_metric(page, label).get_by_test_id("stMetricValue").inner_text().split()[0])


def test_lab_compare_capacity_step_and_why(page, app_url):
    page.goto(app_url)
    page.get_by_role("link", name="Lab").click()
    expect(page.get_by_role("heading", name="Scheduling Lab")).to_be_visible(timeout=30000)
    expect(_metric(page, "fifo")).to_be_visible(timeout=30000)
    expect(_metric(page, "smallest_demand")).to_be_visible()
    expect(_metric(page, "critical_path")).to_be_visible()
    expect(_metric(page, re.compile(r"^optimum"))).to_be_visible()
    optimum = _makespan(page, re.compile(r"^optimum"))
    before = {p: _makespan(page, p) for p in ("fifo", "smallest_demand", "critical_path")}
    assert all(v >= optimum for v in before.values())

    cpu = page.get_by_role("spinbutton", name="CPU threads")
    cpu.fill("2")
    cpu.press("Enter")
    expect(_metric(page, "fifo").get_by_test_id("stMetricValue")).not_to_have_text(
        f"{before['fifo']:g} s", timeout=20000)
    assert _makespan(page, "fifo") > before["fifo"]  # half the threads: more waiting

    page.get_by_role("radio", name="Step mode", exact=True).click()
    expect(page.get_by_text(re.compile(r"Decision 1 of \d+"))).to_be_visible()
    page.get_by_role("button", name=re.compile("Next decision")).click()
    expect(page.get_by_text(re.compile(r"Decision 2 of \d+"))).to_be_visible()
    page.get_by_role("button", name=re.compile("Next decision")).click()
    expect(page.get_by_text(re.compile(r"Decision 3 of \d+"))).to_be_visible()

    page.get_by_role("radio", name="Why did it wait?", exact=True).click()
    page.get_by_label("Why did it wait? Node").click()
    page.get_by_role("option", name=re.compile(r"^summarize · ")).click()
    explanation = page.get_by_test_id("stAlertContentInfo").filter(has_text="summarize")
    expect(explanation).to_be_visible()
    expect(explanation).to_contain_text(re.compile(r"waited|started"))
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "lab.png"), full_page=True)
