"""Benchmark: the browser's first draw of the monitor's Vega charts, all five vs the three a page
load draws now (status graph, Gantt and the open resource tab; CPU, memory and reserved share are
lazy tabs). A bare Streamlit page renders the monitor's real specs on a synthetic run; headless
Chromium loads it under a performance trace (tests/e2e/monitor_trace.py). Reported per load: the
longest main-thread task (wall and CPU ms) and the V8-sampled Vega time; the ratio 3/5 is the figure.
Needs Chromium (/usr/bin/chromium or $CHROMIUM).

Run: ``.venv/bin/python bench/monitor_browser_bench.py [--repeat 3]``
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.e2e import monitor_trace  # noqa: E402

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
SETS = {"five (before)": "graph,gantt,cpu,memory,utilisation", "three (now)": "graph,gantt,cpu"}
APP = f"""import dataclasses, sys
sys.path.insert(0, {str(ROOT)!r})
import streamlit as st
from tests.monitor.fakes import fake_snapshot
from ui.monitor import charts
from ui.monitor.status_graph import status_graph_spec
from ui.monitor.view import view_from_snapshot
st.set_page_config(layout="wide")
view = view_from_snapshot(fake_snapshot(nodes=3, samples=120, running=1))
edges = [{{"source": "n00", "target": "n01"}}, {{"source": "n01", "target": "n02"}}]
view = dataclasses.replace(view, workflow={{"nodes": [{{"id": n}} for n in view.nodes], "edges": edges}})
specs = {{**charts.all_specs(view), "graph": status_graph_spec(view)}}
for name in st.query_params.get("charts", "").split(","):
    if name in specs:
        st.vega_lite_chart(spec=specs[name], width="stretch", key=name)
st.write("drawn")
"""
VEGA_CHUNKS = ("embed.", "vega", "ArrowVegaLiteChart")


def start_server(script: Path) -> tuple[subprocess.Popen[bytes], str]:
    from tests.e2e.conftest import free_port

    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "streamlit", "run", str(script), "--server.headless=true",
                             f"--server.port={port}", "--server.address=127.0.0.1",
                             "--browser.gatherUsageStats=false", "--server.fileWatcherType=none"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            if urllib.request.urlopen(url + "/_stcore/health", timeout=1).status == 200:
                return proc, url
        except OSError:
            time.sleep(0.2)
    proc.kill()
    raise TimeoutError("the bench's streamlit server did not start in 60 s")


def measure(browser: object, page: object, url: str, charts: str) -> tuple[float, float, float]:
    """(longest task wall ms, its CPU ms, V8-sampled Vega ms) of one traced page load."""
    browser.start_tracing(page=page, categories=list(monitor_trace.CATEGORIES))  # type: ignore[attr-defined]
    page.wait_for_timeout(1000)  # type: ignore[attr-defined]  # the profiler's start-up task passes first
    page.evaluate(f"performance.mark('{monitor_trace.START_MARK}')")  # type: ignore[attr-defined]
    page.goto(f"{url}/?charts={charts}")  # type: ignore[attr-defined]
    page.get_by_text("drawn").wait_for()  # type: ignore[attr-defined]
    sel = "[data-testid=stVegaLiteChart] canvas, [data-testid=stVegaLiteChart] svg"
    page.locator(sel).nth(len(charts.split(",")) - 1).wait_for()  # type: ignore[attr-defined]
    page.wait_for_timeout(1500)  # type: ignore[attr-defined]
    raw = browser.stop_tracing()  # type: ignore[attr-defined]
    tasks = monitor_trace.analyse(raw)
    longest = max(tasks, key=lambda t: t["duration_ms"], default={"duration_ms": 0, "cpu_ms": 0})
    samples = monitor_trace.cpu_samples(monitor_trace.load_events(raw))
    vega = sum(weight for _pid, _tid, _t, weight, chunk, _fn in samples if chunk.startswith(VEGA_CHUNKS)) / 1000
    return float(longest["duration_ms"]), float(longest["cpu_ms"] or 0), vega


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    if not Path(CHROMIUM).exists():
        print(f"skipped: Chromium not found at {CHROMIUM} (set CHROMIUM)")
        return 0
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp) / "charts_app.py"
        script.write_text(APP)
        proc, url = start_server(script)
        results: dict[str, list[tuple[float, float, float]]] = {name: [] for name in SETS}
        try:
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=CHROMIUM, args=["--headless", "--no-sandbox",
                                                                             "--disable-gpu"])
                page = browser.new_context(viewport={"width": 1500, "height": 1000}).new_page()
                page.goto(f"{url}/?charts={SETS['five (before)']}")  # warm the HTTP and code caches
                page.get_by_text("drawn").wait_for()
                page.wait_for_timeout(2000)
                for _ in range(args.repeat):  # alternate, so both sets see the same machine load
                    for name, charts in SETS.items():
                        results[name].append(measure(browser, page, url, charts))
                browser.close()
        finally:
            proc.terminate()
            proc.wait(timeout=15)
    print(f"{'charts drawn on a page load':28} {'longest task wall ms':>22} {'its CPU ms':>12} {'Vega sampled ms':>16}")
    for name, rows in results.items():
        cols = [" / ".join(f"{r[i]:.0f}" for r in rows) for i in range(3)]
        print(f"{name:28} {cols[0]:>22} {cols[1]:>12} {cols[2]:>16}")
    five, three = (statistics.median(r[1] for r in results[n]) for n in SETS)
    print(f"median CPU of the longest task, three / five: {three / five:.2f}" if five else "no long task measured")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
