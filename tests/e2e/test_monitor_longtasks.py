"""Where the run monitor's browser long tasks come from, split into page load and live updates.

Phases, each measured twice: plainly (PerformanceObserver('longtask'), the figure) and under a
Chromium performance trace (tests/e2e/monitor_trace.py: each task's wall and CPU time, trace events
by self time, V8 samples by bundle chunk). Baselines in the same run, same browser and flags: an
empty Streamlit page, and a page with one dataframe and one Vega-Lite chart (Streamlit's own
component bundles). Then the Run page's start form, a reload into the live view of a running run
(page load: until every chart is drawn), the live phase (only the 1 s / 3 s fragment ticks), and
History with a run open (page load).
Figures go to artifacts/monitor_longtasks.json; nothing about time is asserted.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.e2e import monitor_trace
from tests.e2e.conftest import ROOT, free_port, stop_server
from tests.e2e.test_monitor import cancel_run, choose, progress

expect = pytest.importorskip("playwright.sync_api").expect
pytestmark = pytest.mark.e2e

OBSERVER_JS = """
window.__longtasks = [];
try {
  new PerformanceObserver((list) => {
    for (const e of list.getEntries()) window.__longtasks.push({at: e.startTime, duration: e.duration});
  }).observe({type: 'longtask', buffered: true});
} catch (e) {}
"""
BASELINE_APP = """import streamlit as st
st.set_page_config(layout="wide")
st.write("baseline page")
if st.query_params.get("with") == "components":
    st.dataframe([{"node": f"n{i}", "status": "running", "wall_s": i * 1.5} for i in range(6)])
    st.vega_lite_chart(spec={"data": {"values": [{"t": i, "v": i % 7} for i in range(300)]},
                             "mark": "line", "encoding": {"x": {"field": "t", "type": "quantitative"},
                                                          "y": {"field": "v", "type": "quantitative"}}},
                       width="stretch")
    st.write("components drawn")
"""
LIVE_S = 8.0  # seconds of live ticks per pass (run_every 1 s; the node detail 3 s)
MONITOR_CHARTS = 3  # status graph, Gantt and the open resource tab (CPU)


@pytest.fixture(scope="module")
def baseline_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A bare Streamlit server on BASELINE_APP with the same flags as the app's."""
    import urllib.request

    tmp = tmp_path_factory.mktemp("baseline")
    script = tmp / "baseline.py"
    script.write_text(BASELINE_APP)
    port = free_port()
    log = open(tmp / "server.log", "w")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", str(script), "--server.headless=true", f"--server.port={port}",
         "--server.address=127.0.0.1", "--browser.gatherUsageStats=false", "--server.fileWatcherType=none",
         "--client.toolbarMode=minimal"], cwd=tmp, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            try:
                if urllib.request.urlopen(url + "/_stcore/health", timeout=1).status == 200:
                    break
            except OSError:
                if proc.poll() is not None:
                    raise RuntimeError((tmp / "server.log").read_text()[-2000:]) from None
                time.sleep(0.2)
        yield url
    finally:
        stop_server(proc)
        log.close()


def drain(page: Any) -> list[dict[str, float]]:
    """The long tasks this document's observer saw since the last drain."""
    tasks = page.evaluate("window.__longtasks || []")
    page.evaluate("window.__longtasks = []")
    return tasks


def summary(durations: list[float]) -> dict[str, Any]:
    return {"over_200ms": sum(d > 200 for d in durations), "longest_ms": round(max(durations, default=0.0)),
            "all": len(durations), "durations_ms": sorted((round(d) for d in durations), reverse=True)}


class Recorder:
    """Runs a phase twice (plain, then traced) and keeps both measurements."""

    def __init__(self, browser: Any, page: Any) -> None:
        self.browser, self.page = browser, page
        self.phases: dict[str, dict[str, Any]] = {}

    def phase(self, name: str, act: Callable[[], None], passes: tuple[str, ...] = ("plain", "traced")) -> None:
        entry: dict[str, Any] = {}
        if "plain" in passes:
            drain(self.page)
            act()
            entry["observer"] = summary([t["duration"] for t in drain(self.page)])
        if "traced" in passes:
            self.browser.start_tracing(page=self.page, categories=list(monitor_trace.CATEGORIES))
            try:  # starting V8's sampling profiler is itself a long task: let it pass, then mark the start
                self.page.wait_for_timeout(1000)
                self.page.evaluate(f"performance.mark('{monitor_trace.START_MARK}')")
                drain(self.page)
                act()
            finally:
                raw = self.browser.stop_tracing()
            entry["traced_observer"] = summary([t["duration"] for t in drain(self.page)])
            entry["trace_long_tasks"] = monitor_trace.analyse(raw)
        self.phases[name] = entry


GROUPS = (("baseline", "baseline (empty Streamlit pages)"), ("page load", "page load"), ("rerun", "page load"),
          ("live", "live updates"))


def grouped(phases: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Page load vs live updates (and the baselines): long tasks > 200 ms in the plain and traced
    passes, the longest, and every traced task over 100 ms with its CPU time and what it was."""
    out: dict[str, dict[str, Any]] = {}
    for name, phase in phases.items():
        group = next(label for prefix, label in GROUPS if name.startswith(prefix))
        g = out.setdefault(group, {"over_200ms_plain": 0, "over_200ms_traced": 0, "longest_ms": 0,
                                   "traced_over_200ms_cpu": 0, "longest_cpu_ms": 0, "tasks_over_100ms": []})
        for key, target in (("observer", "over_200ms_plain"), ("traced_observer", "over_200ms_traced")):
            if key in phase:
                g[target] += phase[key]["over_200ms"]
                g["longest_ms"] = max(g["longest_ms"], phase[key]["longest_ms"])
        for task in phase.get("trace_long_tasks", []):
            g["traced_over_200ms_cpu"] += (task["cpu_ms"] or 0) > 200
            g["longest_cpu_ms"] = max(g["longest_cpu_ms"], task["cpu_ms"] or 0)
            if task["duration_ms"] > 100:
                g["tasks_over_100ms"].append(f"{task['duration_ms']} ms (CPU {task['cpu_ms']}) {name}: "
                                             f"{task['what']}")
    return out


def charts_drawn(page: Any, count: int) -> None:
    """Wait until ``count`` Vega charts have drawn (a canvas or svg inside each), then settle."""
    expect(page.locator("[data-testid=stVegaLiteChart] canvas, [data-testid=stVegaLiteChart] svg")
           ).to_have_count(count, timeout=30000)
    page.wait_for_timeout(1500)


def test_monitor_longtasks_by_phase(browser, page, app_url, baseline_url):
    page.add_init_script(OBSERVER_JS)
    rec = Recorder(browser, page)

    def empty_page() -> None:
        page.goto(baseline_url)
        expect(page.get_by_text("baseline page")).to_be_visible(timeout=30000)
        page.wait_for_timeout(1500)

    def component_page() -> None:
        page.goto(f"{baseline_url}/?with=components")
        expect(page.get_by_text("components drawn")).to_be_visible(timeout=30000)
        charts_drawn(page, 1)

    rec.phase("baseline: empty Streamlit page load", empty_page)
    rec.phase("baseline: Streamlit page with one dataframe and one Vega-Lite chart", component_page)

    page.goto(app_url)  # the entry point first: it switches the server to st.navigation pages
    page.get_by_test_id("stSidebarNav").get_by_text("History", exact=True).wait_for(timeout=30000)

    def start_form() -> None:
        page.goto(f"{app_url}/run")
        expect(page.get_by_text("Predicted makespan")).to_be_visible(timeout=30000)
        charts_drawn(page, 1)  # the predicted Gantt

    rec.phase("page load: Run page start form", start_form)
    choose(page, "Workflow", "Template: medical-imaging-simulated")
    field = page.get_by_role("spinbutton", name="Time scale")
    field.fill("0.25")  # 90 s: long enough for every phase below; cancelled at the end
    field.press("Enter")
    expect(field).to_have_value(re.compile("0.25"))

    def start() -> None:
        page.get_by_role("button", name="Start run").click()
        expect(progress(page)).to_contain_text("running", timeout=30000)
        charts_drawn(page, MONITOR_CHARTS)

    rec.phase("rerun: Start run -> live view", start, passes=("traced",))  # once: it starts the run
    run_id = re.search(r"run=(\w+)", page.url).group(1)

    def reload_live() -> None:
        page.reload()
        expect(progress(page)).to_contain_text(run_id, timeout=30000)
        expect(page.get_by_test_id("stDataFrame").first).to_be_visible()
        charts_drawn(page, MONITOR_CHARTS)

    rec.phase("page load: reload into the live view", reload_live)
    rec.phase("live updates", lambda: page.wait_for_timeout(LIVE_S * 1000))
    expect(progress(page)).to_contain_text("running")  # the live phase really was live
    cancel_run(page)

    def history() -> None:
        page.goto(f"{app_url}/history")
        expect(page.get_by_test_id("stSelectbox").filter(has_text="Open run")).to_be_visible(timeout=30000)
        expect(page.locator("[data-testid=stVegaLiteChart] canvas, [data-testid=stVegaLiteChart] svg").nth(1)
               ).to_be_visible(timeout=30000)  # the View tab: status graph, Gantt and the open resource tab
        page.wait_for_timeout(2000)

    rec.phase("page load: History, a run open", history)

    report = {
        "method": "observer: PerformanceObserver('longtask') durations (> 50 ms) in a plain pass; trace: the same "
                  "phase again under a Chromium trace (tests/e2e/monitor_trace.py), each main-thread task > 50 ms "
                  "with wall and CPU (thread) ms, trace events by self time, V8 samples by bundle chunk. The trace "
                  "adds overhead; the plain pass is the figure. Wall time far above CPU time = the task waited "
                  "for a core (other processes on the machine).",
        "live_seconds_per_pass": LIVE_S,
        "summary": grouped(rec.phases),
        "phases": rec.phases,
    }
    (ROOT / "artifacts").mkdir(exist_ok=True)
    (ROOT / "artifacts" / "monitor_longtasks.json").write_text(json.dumps(report, indent=1))
    print("monitor long tasks:", json.dumps(report["summary"], indent=1))
