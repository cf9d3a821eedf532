"""Designer benchmark in headless Chromium against a real ``streamlit run`` (reported, not asserted).

Measures, each next to a baseline taken in the same run:
  * draw: a 200-node workflow opened by URL until all 200 nodes are on the canvas
    (baseline: the same page with an empty workflow until the palette is drawn);
  * drag: moves per second while dragging one node of the 200-node graph 40 steps
    (baseline: the same 40-step mouse move over the inert page header);
  * round trip: dropping an agent on a 50-node workflow until Python's findings for the new node
    are drawn on it (drop -> rerun -> validate -> save -> redraw), median of 5.

    .venv/bin/python bench/designer_bench.py            # prints a table (about a minute)
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from engine.workflow import Workflow, workflow_from_data  # noqa: E402
from tests.e2e.canvas_driver import drag_from_palette  # noqa: E402
from tests.e2e.conftest import CHROMIUM, CHROMIUM_ARGS, start_server, stop_server  # noqa: E402


def chain_workflow(n: int, name: str) -> Workflow:
    """n sim.task nodes in 10 parallel chains, laid out on a grid."""
    nodes = [{"id": f"t{i}", "agent": "sim.task", "params": {"duration_s": 1},
              "position": {"x": (i // 10) * 240, "y": (i % 10) * 110}} for i in range(n)]
    edges = [{"source": f"t{i - 10}", "target": f"t{i}"} for i in range(10, n)]
    return workflow_from_data({"schema_version": 1, "name": name, "nodes": nodes, "edges": edges})


def moves_per_second(page, x0: float, y0: float, steps: int = 40) -> float:
    page.mouse.move(x0, y0)
    page.mouse.down()
    start = time.perf_counter()
    for i in range(1, steps + 1):
        page.mouse.move(x0 + i * 4, y0 + i * 2)
    elapsed = time.perf_counter() - start
    page.mouse.up()
    return steps / elapsed


def main() -> int:
    from playwright.sync_api import sync_playwright

    from storage import Store

    tmp = Path(tempfile.mkdtemp(prefix="designer-bench-"))
    os.environ["SERVICEGRID_DATABASE_URL"] = f"sqlite:///{tmp / 'e2e.db'}"
    with Store(os.environ["SERVICEGRID_DATABASE_URL"]) as store:
        big_id, _ = store.save_workflow(chain_workflow(200, "bench-200"))
        mid_id, _ = store.save_workflow(chain_workflow(50, "bench-50"))
    proc, url = start_server(tmp, tmp / "server.log")
    results: dict[str, float] = {}
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1500, "height": 1000})
            page.set_default_timeout(60000)
            page.goto(url)  # warm-up: imports, first script run
            page.locator(".sg-pal-item").first.wait_for()

            t0 = time.perf_counter()
            page.goto(url + "/?wf=none-empty")
            page.locator(".sg-pal-item").first.wait_for()
            results["empty page: palette drawn (s)"] = time.perf_counter() - t0

            t0 = time.perf_counter()
            page.goto(f"{url}/?wf={big_id}")
            page.wait_for_function("() => document.querySelector('[data-testid=stApp]') && "
                                   "[...document.querySelectorAll('*')].some(e => e.shadowRoot && "
                                   "e.shadowRoot.querySelectorAll('.sg-node').length === 200)")
            results["200 nodes drawn (s)"] = time.perf_counter() - t0

            header = page.locator("h3").first.bounding_box()
            results["baseline mouse moves/s"] = moves_per_second(page, header["x"] + 5, header["y"] + 5)
            head = page.locator('.sg-node[data-id="t0"] .sg-head').bounding_box()
            results["200-node drag moves/s"] = moves_per_second(page, head["x"] + 10, head["y"] + 8)

            page.goto(f"{url}/?wf={mid_id}")
            page.wait_for_function("() => [...document.querySelectorAll('*')].some(e => e.shadowRoot && "
                                   "e.shadowRoot.querySelectorAll('.sg-node').length === 50)")
            trips = []
            for i in range(1, 6):
                drag_from_palette(page, "test.echo", 60 + 10 * i, 480)
                t0 = time.perf_counter()
                page.locator(f'.sg-node[data-id="echo_{i}"].has-warning').wait_for()
                trips.append(time.perf_counter() - t0)
                time.sleep(0.3)
            results["50-node edit round trip, median (ms)"] = statistics.median(trips) * 1000
            results["50-node edit round trip, max (ms)"] = max(trips) * 1000
            browser.close()
    finally:
        stop_server(proc)
    results["drag smoothness (ratio to baseline)"] = results["200-node drag moves/s"] / results["baseline mouse moves/s"]
    results["200-node draw (ratio to empty page)"] = results["200 nodes drawn (s)"] / results["empty page: palette drawn (s)"]
    width = max(map(len, results))
    for key, value in results.items():
        print(f"{key:<{width}}  {value:8.2f}")
    print("targets: 200 nodes drawn <= 2.5 s; edit round trip <= 300 ms (50 nodes)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
