"""The run monitor in a real browser: start the medical-imaging template and watch it, open a node's
outputs, reload mid-run, cancel a run midway, resume a cancelled run from the cache, then History
(both runs, comparison, HTML report). Screenshots go to artifacts/screenshots/; browser long tasks
(> 200 ms, PerformanceObserver('longtask'); the scripts to blame from 'long-animation-frame') are
reported in artifacts/monitor_longtasks_journey.json, not asserted
(test_monitor_longtasks.py splits page load from live updates and attributes each task): a benchmark figure on a noisy machine.
The live charts' point cap is asserted."""

from __future__ import annotations

import csv
import io
import json
import re
import time
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import ROOT, SCREENSHOTS
from ui.monitor.frames import MAX_POINTS

expect = pytest.importorskip("playwright.sync_api").expect
pytestmark = pytest.mark.e2e

LONGTASKS_JS = """
window.__longtasks = [];
window.__loafs = [];
try {
  new PerformanceObserver((list) => {
    for (const e of list.getEntries()) window.__longtasks.push(e.duration);
  }).observe({type: 'longtask', buffered: true});
} catch (e) {}
try {  // long animation frames name the scripts that made a frame long (Chromium 123+)
  new PerformanceObserver((list) => {
    for (const e of list.getEntries()) {
      if (e.duration <= 200) continue;
      window.__loafs.push({duration: e.duration, render: e.renderStart ? e.startTime + e.duration - e.renderStart : 0,
        scripts: (e.scripts || []).map((s) => ({duration: s.duration, invoker: s.invoker,
          source: (s.sourceURL || '').split('/').pop() + ':' + (s.sourceFunctionName || '')}))});
    }
  }).observe({type: 'long-animation-frame', buffered: true});
} catch (e) {}
"""
RESUME_FLOW = {"schema_version": 1, "name": "e2e-resume", "nodes": [
    {"id": "src", "agent": "test.source", "params": {"value": "e2e"}},
    {"id": "mid", "agent": "test.sleep", "params": {"seconds": 0.3}},
    {"id": "last", "agent": "test.hang"}],
    "edges": [{"source": "src", "target": "mid"}, {"source": "mid", "target": "last"}]}


def progress(page: Any) -> Any:
    return page.get_by_test_id("stProgress")


def choose(page: Any, label: str, option: str | re.Pattern[str]) -> None:
    """Pick ``option`` in the Streamlit selectbox labelled ``label``."""
    box = page.get_by_test_id("stSelectbox").filter(has_text=label).first
    box.scroll_into_view_if_needed()
    box.locator("input").first.click()
    page.get_by_role("option", name=option).first.click()


def open_node(page: Any, option: re.Pattern[str]) -> None:
    """Pick a node in the node detail of a run that has just ended. Seen once in CI (1 run in ~30):
    after the rerun that stops the live timers, the node detail was missing from the page for 20 s,
    with no error in the server log. A person would reload; the test does too (once), and prints
    what the page showed, so a detail that never comes back still fails."""
    box = page.get_by_test_id("stSelectbox").filter(has_text="Node").first
    try:
        box.wait_for(timeout=20000)
    except Exception:
        print("the node detail was missing after the run ended; the page showed:\n"
              + page.locator("body").inner_text()[-3000:])
        page.reload()
        expect(progress(page)).to_contain_text("succeeded", timeout=30000)
    choose(page, "Node", option)


def options_of(page: Any, label: str) -> list[str]:
    """The option texts of a selectbox (retried: a live fragment's tick may close the list)."""
    box = page.get_by_test_id("stSelectbox").filter(has_text=label).first
    texts: list[str] = []
    for _ in range(10):
        box.click()
        try:
            page.get_by_role("option").first.wait_for(timeout=2000)
            texts = page.get_by_role("option").all_inner_texts()
        except Exception:
            texts = []
        page.keyboard.press("Escape")
        if texts:
            return texts
    return texts


def cancel_run(page: Any) -> None:
    """Press Cancel run (again if a live tick swallowed the click) until the run says cancelled."""
    for _ in range(5):
        button = page.get_by_role("button", name="Cancel run")
        if button.count():
            button.first.click()
        try:
            expect(progress(page)).to_contain_text("cancelled", timeout=4000)
            return
        except AssertionError:
            continue


def settled(page: Any, status: str) -> None:
    """Wait for the run's final state and the one rerun that stops the live timer."""
    expect(progress(page)).to_contain_text(status, timeout=90000)
    expect(page.get_by_role("button", name="Cancel run")).to_have_count(0, timeout=20000)
    page.wait_for_timeout(1500)


def points(page: Any, chart: str) -> int:
    text = page.get_by_text(re.compile(r"^Points drawn:")).first.inner_text()
    match = re.search(rf"{chart} (\d+)", text)
    return int(match.group(1)) if match else 0


def assert_point_cap(page: Any) -> None:
    """Every live chart draws at most MAX_POINTS points (the browser's cost per tick grows with them).
    The resource charts are lazy tabs (only the open one is drawn): open each in turn, CPU last."""
    assert points(page, "gantt") <= MAX_POINTS, f"the Gantt draws more than {MAX_POINTS} points"
    for tab, chart in (("Memory", "memory"), ("Reserved share", "utilisation"), ("CPU", "cpu")):
        page.get_by_role("tab", name=tab).first.click()
        assert 0 < wait_more_points(page, chart, 0) <= MAX_POINTS, f"{chart}: none or more than {MAX_POINTS} points"


def start_run(page: Any, app_url: str, source: str, scale: float | None = None) -> str:
    page.goto(f"{app_url}/run")
    expect(page.get_by_text("Predicted makespan")).to_be_visible(timeout=30000)
    choose(page, "Workflow", source)
    if scale is not None:
        field = page.get_by_role("spinbutton", name="Time scale")
        field.fill(str(scale))
        field.press("Enter")
        expect(field).to_have_value(re.compile(str(scale)))
    expect(page.get_by_test_id("stVegaLiteChart").first).to_be_visible()  # the predicted Gantt
    page.get_by_role("button", name="Start run").click()
    expect(page).to_have_url(re.compile(r"[?&]run=\w+"), timeout=20000)
    return re.search(r"run=(\w+)", page.url).group(1)


def collect(page: Any, tasks: dict[str, list[float]], phase: str, frames: list[dict[str, Any]]) -> None:
    """Add the long tasks (and long frames) this document saw to ``phase``; the observers restart on
    every navigation."""
    tasks.setdefault(phase, []).extend(page.evaluate("window.__longtasks || []"))
    frames.extend({**f, "phase": phase} for f in page.evaluate("window.__loafs || []"))
    page.evaluate("window.__longtasks = []; window.__loafs = []")


def longtask_report(tasks: dict[str, list[float]], frames: list[dict[str, Any]]) -> dict[str, Any]:
    """The browser figures: long tasks > 200 ms (count, longest, total), per phase, and the scripts
    that the long animation frames blame most."""
    every = [t for phase in tasks.values() for t in phase]
    long = [t for t in every if t > 200]
    blame: dict[str, float] = {}
    for f in frames:
        for s in f["scripts"]:
            name = f"{s['invoker']} @ {s['source']}"
            blame[name] = blame.get(name, 0.0) + s["duration"]
    return {"long_tasks_over_200ms": len(long), "longest_ms": round(max(every, default=0.0)),
            "total_over_200ms_ms": round(sum(long)), "all": len(every), "total_ms": round(sum(every)),
            "by_phase": {p: {"over_200ms": sum(t > 200 for t in ts), "longest_ms": round(max(ts, default=0.0)),
                             "total_ms": round(sum(ts)), "all": len(ts)} for p, ts in tasks.items()},
            "long_frames_render_ms": round(sum(f["render"] for f in frames)),
            "top_scripts_ms": dict(sorted(((k, round(v)) for k, v in blame.items()), key=lambda kv: -kv[1])[:8])}


def wait_more_points(page: Any, chart: str, before: int, timeout: float = 15.0) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        now = points(page, chart)
        if now > before:
            return now
        page.wait_for_timeout(300)
    return points(page, chart)


def test_monitor_live_cancel_resume_history(page, app_url, tmp_path):
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.add_init_script(LONGTASKS_JS)
    page.goto(app_url)  # the entry point first: it switches the server to st.navigation pages
    # st.navigation's labels are capitalised ("History"); the plain pages/ listing is not ("history")
    page.get_by_test_id("stSidebarNav").get_by_text("History", exact=True).wait_for(timeout=30000)
    tasks: dict[str, list[float]] = {}
    frames: list[dict[str, Any]] = []

    # 1. the real medical-imaging template: the charts gain data while it runs
    real = start_run(page, app_url, "Template: medical-imaging")
    expect(progress(page)).to_contain_text(real, timeout=20000)
    expect(page.get_by_role("button", name="Start run")).to_have_count(0)  # the start form is gone
    first = points(page, "gantt") + points(page, "cpu")
    page.screenshot(path=str(SCREENSHOTS / "monitor-live-medical.png"), full_page=True)
    later = wait_more_points(page, "gantt", points(page, "gantt"))
    assert later + points(page, "cpu") > first, "the Gantt and CPU charts gained no data"
    assert_point_cap(page)
    settled(page, "succeeded")
    page.get_by_role("tab", name="Planned vs measured").click()  # each node against its plan, in a chart and words
    assert wait_more_points(page, "fit", 0) >= 2 * 6, "time and memory of the six nodes"
    expect(page.get_by_text(re.compile(r"^(Furthest from the plan: |No node was far from its plan)"))).to_be_visible()
    page.get_by_role("tab", name="CPU").first.click()
    open_node(page, re.compile(r"^scans"))
    page.get_by_role("tab", name="Outputs").click()
    expect(page.get_by_test_id("stImage").first).to_be_visible()  # thumbnails of the image batch
    open_node(page, re.compile(r"^classification"))
    page.get_by_role("tab", name="Outputs").click()
    with page.expect_download() as download:  # every row, made when the button is clicked
        page.get_by_role("button", name="Download all rows (CSV)").first.click()
    rows = list(csv.reader(io.StringIO(Path(download.value.path()).read_text(encoding="utf-8"))))
    assert rows[0] == ["id", "no_lesion", "lesion"] and len(rows) == 1 + 128, rows[:2]

    # 2. the simulated template: reload mid-run lands back on the live view; then cancel midway
    collect(page, tasks, "1 live medical-imaging", frames)
    sim = start_run(page, app_url, "Template: medical-imaging-simulated", scale=0.06)
    expect(progress(page)).to_contain_text("running", timeout=20000)
    collect(page, tasks, "2 live simulated", frames)
    page.reload()
    expect(page).to_have_url(re.compile(rf"run={sim}"))
    expect(progress(page)).to_contain_text(sim, timeout=30000)
    expect(progress(page)).to_contain_text("running")
    before = points(page, "cpu")
    assert wait_more_points(page, "cpu", before) > before, "the CPU chart gained no data after the reload"
    assert_point_cap(page)
    expect(progress(page)).to_contain_text("1/2", timeout=30000)  # preprocessing finished
    page.screenshot(path=str(SCREENSHOTS / "monitor-live-simulated.png"), full_page=True)
    cancel_run(page)
    settled(page, "cancelled")
    assert any(o.startswith("preprocessing (done)") for o in options_of(page, "Node")), "finished node lost"

    # 3. a cancelled run resumes without recomputing its finished nodes
    flow = tmp_path / "e2e-resume.json"
    flow.write_text(json.dumps(RESUME_FLOW))
    collect(page, tasks, "2 live simulated", frames)
    page.goto(f"{app_url}/run")  # a new session with no run in the URL: the start form
    expect(page.get_by_text("Predicted makespan")).to_be_visible(timeout=30000)
    page.locator("input[type=file]").first.set_input_files(str(flow))
    expect(page.get_by_role("combobox", name="Workflow")).to_have_value("Uploaded: e2e-resume.json")
    page.get_by_role("button", name="Start run").click()
    expect(progress(page)).to_contain_text("2/3", timeout=30000)
    cancel_run(page)
    expect(progress(page)).to_contain_text("cancelled", timeout=20000)
    page.goto(f"{app_url}/history")
    choose(page, "Open run", re.compile(r"e2e-resume · cancelled"))
    page.get_by_role("button", name="Resume").click()
    expect(progress(page)).to_contain_text("running", timeout=30000)
    for _ in range(30):  # the run page may draw the resumed run before its cached nodes are taken
        node_options = options_of(page, "Node")
        if any(o.startswith("mid (") and "queued" not in o and "waiting" not in o for o in node_options):
            break
        page.wait_for_timeout(500)
    assert any(o.startswith("src (cached)") for o in node_options), node_options
    assert any(o.startswith("mid (cached)") for o in node_options), node_options
    cancel_run(page)
    expect(progress(page)).to_contain_text("cancelled", timeout=20000)

    # 4. history: both monitored runs, the comparison and the HTML report
    collect(page, tasks, "3 resume", frames)
    page.goto(f"{app_url}/history")
    runs = options_of(page, "Open run")
    assert any(o.startswith(real) for o in runs) and any(o.startswith(sim) for o in runs), runs
    choose(page, "Open run", re.compile(rf"^{real}"))
    page.get_by_role("tab", name="Compare").click()
    choose(page, "Compare with", re.compile(rf"^{sim}"))
    panel = page.get_by_role("tabpanel", name="Compare")
    # durations + 2 × (Gantt + the open resource tab)
    expect(panel.get_by_test_id("stVegaLiteChart")).to_have_count(5, timeout=20000)
    page.screenshot(path=str(SCREENSHOTS / "history-compare.png"), full_page=True)
    page.get_by_role("tab", name="Export").click()
    with page.expect_download() as info:
        page.get_by_role("button", name="HTML report").click()
    report = Path(info.value.path()).read_text(encoding="utf-8")
    collect(page, tasks, "4 history", frames)
    assert real in report and "<svg" in report and "<script" not in report
    page.set_content(report)
    expect(page.get_by_role("heading", level=1)).to_contain_text(real)
    expect(page.locator("svg").first).to_be_visible()
    page.screenshot(path=str(SCREENSHOTS / "history-report.png"), full_page=True)

    result = longtask_report(tasks, frames)
    (ROOT / "artifacts").mkdir(exist_ok=True)
    (ROOT / "artifacts" / "monitor_longtasks_journey.json").write_text(json.dumps(result, indent=1))
    print(f"browser long tasks: {json.dumps(result)}")


def test_a_recorded_run_file_is_imported_into_history(page, app_url, tmp_path):
    from playwright.sync_api import expect

    from engine.registry import default_registry
    from engine.runs import RunManager, RunOptions
    from engine.workflow import load_workflow
    from storage import Store
    from storage.transfer import run_document
    from tests.recording import record_runs

    other = Store(f"sqlite:///{tmp_path / 'other.db'}")  # another machine's database
    try:
        [run_id] = record_runs(other, RunManager(registry=default_registry(), machine=None),
                               [load_workflow(ROOT / "examples" / "two-stage.json")], RunOptions(time_scale=0.001))
        path = tmp_path / f"run-{run_id}.json"
        path.write_text(run_document(other.get_run(run_id), other.run_events(run_id), other.run_samples(run_id)))
    finally:
        other.close()
    page.goto(f"{app_url}/history")
    page.get_by_text("Import a recorded run").click()
    page.locator("input[type=file]").set_input_files(str(path))
    page.get_by_role("button", name="Import", exact=True).click()
    expect(page.get_by_text(f"Imported run {run_id}")).to_be_visible(timeout=30000)
    choose(page, "Open run", re.compile(rf"^{run_id} · two-stage · succeeded"))  # listed with the others
    expect(page.get_by_text("Node detail")).to_be_visible(timeout=30000)
