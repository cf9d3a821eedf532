"""Unit tests of the monitor's data: RunView, chart rows and binning, replay, outputs, report, exports."""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import re

import pytest

from tests.monitor.fakes import fake_snapshot
from ui.monitor import charts, compare, exports, frames, report
from ui.monitor.outputs import port_view, summary_lines, thumbnails
from ui.monitor.view import replay_view, state_at, view_from_snapshot


def test_gantt_rows_scale_the_plan_and_place_actual_bars_from_the_start():
    snap = fake_snapshot(nodes=3, samples=8, status="succeeded")
    snap.options["time_scale"] = 0.5
    view = view_from_snapshot(snap)
    rows = frames.gantt_rows(view)
    predicted = {r["node"]: r for r in rows if r["kind"] == "predicted"}
    actual = {r["node"]: r for r in rows if r["kind"] == "actual"}
    assert predicted["n01"]["start"] == pytest.approx(0.1 * 0.5) and predicted["n01"]["end"] == pytest.approx(1.3 * 0.5)
    assert actual["n02"]["start"] == pytest.approx(0.2) and actual["n02"]["end"] == pytest.approx(1.2)
    assert predicted["n00"]["critical"] and not predicted["n02"]["critical"]
    assert frames.node_order(view) == ["n00", "n01", "n02"]


@pytest.mark.parametrize(("nodes", "samples"), [(50, 2000), (3, 10), (1, 7000)])
def test_every_chart_stays_under_the_point_budget(nodes, samples):
    view = view_from_snapshot(fake_snapshot(nodes=nodes, samples=samples, gpus=2))
    for name, spec in charts.all_specs(view).items():
        assert charts.point_count(spec) <= frames.MAX_POINTS, name
    assert {r["node"] for r in frames.cpu_rows(view)} == set(view.nodes)  # binning keeps every agent


def test_cpu_bins_average_the_samples_they_cover():
    snap = fake_snapshot(nodes=1, samples=4)
    for k, s in enumerate(snap.samples):
        s["per_node"] = {"n00": {"cpu_percent": [10.0, 30.0, 50.0, 70.0][k]}}
    rows = frames.cpu_rows(view_from_snapshot(snap), max_points=2)
    assert [r["cpu_percent"] for r in rows] == [20.0, 60.0]


def test_a_fused_chain_is_one_cpu_series_named_after_its_nodes():
    snap = fake_snapshot(nodes=2, samples=4)
    snap.nodes["n00"]["chain"], snap.nodes["n01"]["fused_into"] = ["n01"], "n00"
    for s in snap.samples:  # the sampler counts a chain once, at its head
        s["per_node"] = {"n00": {"cpu_percent": 180.0}}
    rows = frames.cpu_rows(view_from_snapshot(snap))
    assert {r["node"] for r in rows} == {"n00 + n01"} and {r["cpu_percent"] for r in rows} == {180.0}


def test_utilisation_is_reserved_demand_over_capacity():
    view = view_from_snapshot(fake_snapshot(nodes=2, samples=4, status="succeeded"))
    at_half = [r for r in frames.utilisation_rows(view) if r["t"] == pytest.approx(0.1)]
    cpu = next(r for r in at_half if r["resource"] == "CPU threads")
    assert cpu["percent"] == pytest.approx(100 * 0.08 / 2.0)  # both nodes hold 0.04 of 2 threads


def test_capacity_rules_follow_the_capacity():
    rules = frames.capacity_rules(view_from_snapshot(fake_snapshot(nodes=1, samples=2, gpus=1)))
    assert rules["cpu"][0]["value"] == 200.0
    assert [r["value"] for r in rules["memory"]] == [4096.0, 8192.0]
    assert "simulated" in rules["memory"][1]["label"]


def test_replay_gives_each_node_its_state_at_that_time():
    view = view_from_snapshot(fake_snapshot(nodes=3, samples=8, status="succeeded"))
    t0 = view.t0
    assert state_at(view.nodes["n02"], t0 + 0.1) == "waiting_inputs"
    assert state_at(view.nodes["n02"], t0 + 0.5) == "running"
    assert state_at(view.nodes["n02"], t0 + 2.0) == "done"
    mid = replay_view(view, 0.5)
    assert {n["status"] for n in mid.nodes.values()} == {"running"}
    assert mid.status == "running" and all(s["time"] <= t0 + 0.5 for s in mid.samples)
    assert replay_view(view, view.elapsed_s + 1).status == "succeeded"


def test_outputs_render_images_scores_labels_and_tables():
    torch = pytest.importorskip("torch")
    images = port_view({"images": torch.rand(12, 1, 8, 8), "ids": [f"i{k}" for k in range(12)]})
    assert images["kind"] == "images" and len(images["images"]) == 8 and images["images"][0].shape == (8, 8)
    assert images["images"][0].dtype.name == "uint8"
    rgb = thumbnails(torch.rand(2, 3, 4, 5) * 4 - 2)  # normalised values are stretched to 0..255
    assert rgb[0].shape == (4, 5, 3) and rgb[0].max() == 255 and rgb[0].min() == 0
    scores = port_view({"scores": torch.tensor([[0.2, 0.8]]), "classes": ["healthy", "lesion"], "ids": ["a"]})
    assert scores["rows"] == [{"id": "a", "predicted": "lesion", "healthy": pytest.approx(0.2),
                               "lesion": pytest.approx(0.8)}]
    # a person checks a sentiment by its text, what was predicted and the truth beside the bars
    scored = port_view({"scores": torch.tensor([[0.9, 0.1], [0.3, 0.7]]), "classes": ["negative", "positive"],
                        "ids": ["r1", "r2"], "texts": ["awful", "lovely"], "labels": torch.tensor([0, 0])})
    assert scored["rows"][1] == {"id": "r2", "text": "lovely", "predicted": "positive", "truth": "negative",
                                 "negative": pytest.approx(0.3), "positive": pytest.approx(0.7)}
    risk = port_view({"scores": torch.tensor([[0.4]] * 60), "classes": ["risk"], "ids": [f"c{i}" for i in range(60)],
                      "components": {"fraud": [0.5] * 60, "default": [None] * 60}})
    assert len(risk["rows"]) == 50 and risk["rows"][0] == {"id": "c0", "risk": pytest.approx(0.4),  # one class:
                                                           "fraud": 0.5, "default": None}  # nothing predicted
    labels = port_view({"labels": ["lesion"], "confidence": [0.9], "ids": ["a"]})
    assert labels["rows"] == [{"id": "a", "label": "lesion", "confidence": 0.9}]
    table = port_view({"columns": {"x": torch.tensor([1, 2]), "y": ["a", "b"]}})
    assert table["rows"] == [{"x": 1, "y": "a"}, {"x": 2, "y": "b"}]
    flagged = port_view({"columns": {"score": [0.9, 0.7]}, "ids": ["cust-4", "cust-8"]})  # who was flagged
    assert flagged["rows"] == [{"id": "cust-4", "score": 0.9}, {"id": "cust-8", "score": 0.7}]
    own = port_view({"columns": {"id": ["u1"], "n": [3]}, "ids": ["0"]})  # a table's own id column wins
    assert own["rows"] == [{"id": "u1", "n": 3}]
    texts = port_view({"texts": ["good", "bad"], "ids": ["r1"]})
    assert texts["rows"] == [{"id": "r1", "text": "good"}, {"text": "bad"}]
    assert port_view("hello")["kind"] == "text" and port_view(3)["kind"] == "number"
    assert summary_lines({"out": {"type": "tensor", "shape": [2, 3], "dtype": "float32"}}) == [
        "out: tensor [2, 3] float32"]


def test_html_report_is_self_contained_and_escapes_user_text():
    snap = fake_snapshot(nodes=3, samples=20)
    snap.status = "failed"
    snap.nodes["n01"]["status"] = "failed"
    snap.nodes["n01"]["error"] = {"type": "ValueError", "message": "<img src=x onerror=alert(1)>", "traceback": "tb"}
    text = report.html_report(view_from_snapshot(snap))
    assert "<script" not in text and "<img" not in text
    assert "&lt;img src=x onerror=alert(1)&gt;" in text and "fake &lt;flow&gt;" in text
    assert text.count("<svg") == 4
    assert not re.search(r"(src|href)=\"https?://", text)  # nothing is fetched
    assert "<h2>Planned vs measured</h2><p>No node ran" in text  # all three still running
    done = report.html_report(view_from_snapshot(fake_snapshot(nodes=2, samples=20, status="succeeded")))
    assert "<p>Furthest from the plan: n00 used 12 MB against 10 MB reserved (120%); n01 used 12 MB" in done
    assert done.count("<td>near plan</td>") == 2 and done.count("<td>above plan</td>") == 2  # time; memory


def test_compare_rows_pair_nodes_and_differences():
    a = view_from_snapshot(fake_snapshot(nodes=2, samples=4, status="succeeded"))
    b_snap = fake_snapshot(nodes=3, samples=4, status="succeeded")
    b_snap.nodes["n00"]["end"] = b_snap.nodes["n00"]["start"] + 3.0
    rows = {r["node"]: r for r in compare.node_rows(a, view_from_snapshot(b_snap))}
    assert rows["n00"]["B − A (s)"] == pytest.approx(2.0)
    assert rows["n02"]["status A"] == "—" and rows["n02"]["wall A (s)"] is None
    assert len(compare.duration_rows(a, view_from_snapshot(b_snap))) == 5


def test_exports_write_one_csv_row_per_node_and_sample():
    view = view_from_snapshot(fake_snapshot(nodes=3, samples=5, status="succeeded"))
    nodes = list(csv.DictReader(io.StringIO(exports.nodes_csv(view))))
    assert [r["node"] for r in nodes] == ["n00", "n01", "n02"] and nodes[0]["status"] == "done"
    samples = list(csv.reader(io.StringIO(exports.samples_csv(view))))
    assert len(samples) == 6 and samples[0][:4] == ["time", "t_s", "cpu_percent", "rss_mb"]
    json.loads(json.dumps(charts.all_specs(view)))  # the specs are plain JSON


def test_planned_vs_measured_rows_compare_each_finished_node_with_its_plan():
    snap = fake_snapshot(nodes=4, samples=8, status="succeeded")
    snap.options["time_scale"] = 0.5
    snap.nodes["n00"]["memory_mb"], snap.nodes["n00"]["demand"]["memory_mb"] = 40.0, 100.0  # under half
    snap.nodes["n01"]["cached"] = True  # ran nothing: left out
    snap.nodes["n02"]["chain"], snap.nodes["n03"]["fused_into"] = ["n03"], "n02"  # memory counted at the head
    snap.nodes["n02"]["demand"].update(gpu_memory_mb=500.0)
    snap.nodes["n02"]["metrics"]["peak_gpu_mb"] = 650.0
    rows = frames.fit_rows(view_from_snapshot(snap))
    got = {(r["node"], r["measure"]): r for r in rows}
    assert set(got) == {("n00", "time (s)"), ("n00", "memory (MB)"), ("n02", "time (s)"), ("n02", "memory (MB)"),
                        ("n02", "GPU memory (MB)"), ("n03", "time (s)")}
    time_row = got[("n00", "time (s)")]
    assert time_row["planned"] == pytest.approx(1.2 * 0.5) and time_row["measured"] == pytest.approx(1.0)
    assert time_row["verdict"] == "above plan"  # 1.0 s against 0.6 s planned at this time scale
    assert got[("n00", "memory (MB)")]["verdict"] == "under half the plan"
    assert got[("n02", "memory (MB)")]["verdict"] == "above plan"  # 12 MB used, 10 reserved: any more is above
    assert got[("n02", "GPU memory (MB)")]["ratio"] == pytest.approx(1.3)
    assert "fused chain n02 -> n03" in got[("n02", "memory (MB)")]["note"]
    assert [r["node"] for r in rows if r["measure"] == "time (s)"] == ["n00", "n02", "n03"]  # the Gantt's order


def test_planned_vs_measured_words_put_memory_beyond_its_reservation_first_and_skip_trifles():
    snap = fake_snapshot(nodes=3, samples=40, status="succeeded")  # a 10 s run on 4,096 MB
    snap.plan["nodes"][0]["end"] = 0.0 + 0.5  # n00: planned 0.5 s, took 1.0 s: 5 % of the run -> worth a line
    snap.nodes["n00"]["memory_mb"] = 9.0  # within its reservation
    snap.nodes["n01"]["memory_mb"] = 11.0  # 1 MB beyond its 10 MB reservation: always worth a line
    snap.nodes["n02"]["memory_mb"] = 0.5  # 9.5 MB of 4,096 unused: a trifle
    snap.nodes["n01"]["metrics"]["cold"] = True  # its agent's first run in the process
    view = view_from_snapshot(snap)
    lines = frames.fit_summary(view)
    assert lines[0] == "n01 used 11 MB against 10 MB reserved (110%) on its first run in this process"
    assert lines[1].startswith("n00 took 1 s against 0.5 s planned (200%)")
    assert not any(line.startswith("n02 used") for line in lines)
    nothing = view_from_snapshot(fake_snapshot(nodes=2, samples=40, status="succeeded"))
    for node in nothing.nodes.values():
        node["memory_mb"] = 9.0
    assert frames.fit_summary(nothing) == []  # 1.0 s against 1.2 s planned and within the reservation
    spec = charts.fit_spec(view)
    assert spec["datasets"]["fit"] == [{**r, "rank": i // 2} for i, r in enumerate(frames.fit_rows(view))]
    assert spec["spec"]["width"] == charts.FIT_WIDTH // 2  # two measures: time and memory


def test_what_changed_between_two_runs_names_options_capacity_nodes_settings_and_wires():
    base = view_from_snapshot(fake_snapshot(nodes=2, samples=4, status="succeeded"))
    a = dataclasses.replace(base, workflow={"nodes": [{"id": "src", "agent": "text.source", "params": {"n": 90, "seed": 1}, "label": "old"},
                            {"id": "score", "agent": "text.sentiment", "resources": {"memory_mb": 64}},
                            {"id": "gone", "agent": "flow.limit"}],
                  "edges": [{"source": "src", "target": "score"}, {"source": "src", "target": "gone"}]})
    b = dataclasses.replace(base, options={**base.options, "policy": "fifo", "time_scale": 0.01}, workflow={"nodes": [{"id": "src", "agent": "text.source", "params": {"n": 12, "seed": 1}, "label": "new",
                             "position": {"x": 99}},
                            {"id": "score", "agent": "text.sentiment", "lifecycle": {"retries": 2}},
                            {"id": "sink", "agent": "flow.sink_csv"}],
                  "edges": [{"source": "src", "target": "score"}, {"source": "score", "target": "sink"}],
                  "capacity": {"memory_mb": 2048}, "notes": [{"id": "n", "text": "ignored"}]})
    assert compare.workflow_changes(a, b) == [
        "run option policy: 'critical_path' -> 'fifo'", "run option time scale: 1.0 -> 0.01",
        'capacity: \'the machine\' -> {"memory_mb": 2048}',
        "node removed: gone (flow.limit)", "node added: sink (flow.sink_csv)",
        "src: n 90 -> 12", "score: resources.memory_mb 64 -> (default)", "score: lifecycle.retries (default) -> 2",
        "wire removed: src -> gone", "wire added: score -> sink"]
    assert compare.workflow_changes(a, a) == []  # labels, positions and notes do not count
    pinned = json.loads(json.dumps(a.workflow))
    pinned["nodes"][1]["pin"] = {"key": "a" * 32, "run_id": "r7"}
    p = dataclasses.replace(a, workflow=pinned)
    assert compare.workflow_changes(a, p) == ["score: pinned to its output from run r7"]
    assert compare.workflow_changes(p, a) == ["score: unpinned (computed again)"]


def test_the_report_draws_the_workflow_with_each_node_in_its_status_colour():
    import xml.etree.ElementTree as ET

    snap = fake_snapshot(nodes=2, samples=8, status="failed")
    snap.nodes["n01"]["status"] = "failed"
    base = view_from_snapshot(snap)
    view = dataclasses.replace(base, workflow={
        "schema_version": 1, "name": "r", "nodes": [{"id": "n00", "agent": "sim.task", "label": "<b>first</b>"},
                                                    {"id": "n01", "agent": "sim.task"}],
        "edges": [{"source": "n00", "target": "n01"}]})
    text = report.html_report(view)
    assert text.count("<svg") == report.html_report(base).count("<svg") + 1  # the graph's picture
    assert "<h2>Workflow by node status</h2>" in text and "<b>" not in text
    svg = report.status_graph_svg(view)
    root = ET.fromstring(svg[:svg.index("</svg>") + 6])
    ns = "{http://www.w3.org/2000/svg}"
    boxes = {g.find(f"{ns}title").text: g.findall(f"{ns}rect")[0].get("fill") for g in root.iter(f"{ns}g")}
    assert boxes == {"<b>first</b>": charts.STATUS_COLORS["done"], "n01": charts.STATUS_COLORS["failed"]}
    assert len(root.findall(f"{ns}path")) == 1
    assert report.status_graph_svg(base) == ""  # no stored workflow: no picture


def test_the_gantt_shades_when_the_run_was_paused() -> None:
    from engine.events import RunPaused, RunResumed
    from engine.runstate import pauses_of

    view = view_from_snapshot(fake_snapshot(nodes=2, samples=4, status="succeeded"))
    t0 = view.t0
    events = [RunResumed(run_id="r", time=t0 + 0.5), RunPaused(run_id="r", time=t0 + 0.2),
              RunPaused(run_id="r", time=t0 + 0.7, at="b", why="amount > 5 holds for 2 of 3 rows")]  # out of order, the last never resumed
    why = "breakpoint before b: amount > 5 holds for 2 of 3 rows"
    assert pauses_of(events) == [(t0 + 0.2, t0 + 0.5, "Pause"), (t0 + 0.7, None, why)]
    paused = dataclasses.replace(view, pauses=pauses_of(events))
    rows = charts.gantt_spec(paused)["datasets"]["paused"]
    assert rows == [{"start": 0.2, "end": 0.5, "why": "Pause"}, {"start": 0.7, "end": round(view.now - t0, 3), "why": why}]
    assert charts.gantt_spec(view)["datasets"]["paused"] == []
    early = replay_view(paused, 0.6)  # replayed to a time before the second pause
    assert frames.pause_rows(early) == [{"start": 0.2, "end": 0.5, "why": "Pause"}]
    from ui.monitor.live import pauses_said

    said = pauses_said(paused).replace("\\", "")
    assert said.startswith(":material/pause_circle: Paused twice (the shaded spans): Pause for 0.3 s; breakpoint before b: ")
    assert "amount > 5 holds for 2 of 3 rows for" in said and pauses_said(view) == ""


def test_settings_changed_during_the_run_are_said_under_the_gantt() -> None:
    from engine.amend import CHANGED_LOG
    from ui.monitor.live import changes_said

    view = view_from_snapshot(fake_snapshot(nodes=2, samples=4, status="succeeded"))
    assert changes_said(view) == ""
    nid = next(iter(view.nodes))
    view.nodes[nid]["logs"] = ["started", CHANGED_LOG + "min_confidence 0.5 -> 0.8; resources.memory_mb (default) -> 64"]
    said = changes_said(view).replace("\\", "")
    assert said == (f":material/edit_note: Changed during the run, before the node started: `{nid}`: "
                    "min_confidence 0.5 -> 0.8; resources.memory_mb (default) -> 64")


def test_the_report_says_what_happened_during_the_run_escaped() -> None:
    from engine.amend import CHANGED_LOG

    view = view_from_snapshot(fake_snapshot(nodes=2, samples=4, status="succeeded"))
    assert "During the run" not in report.html_report(view)
    nid = next(iter(view.nodes))
    view.nodes[nid]["logs"] = [CHANGED_LOG + "label '<b>' -> 'x'"]
    view = dataclasses.replace(view, pauses=[(view.t0 + 0.1, view.t0 + 0.6, "check failed: RuntimeError: <oops>")])
    text = report.html_report(view)
    assert "<h2>During the run</h2>" in text
    assert "<li>Paused (check failed: RuntimeError: &lt;oops&gt;) for 0.5 s</li>" in text
    assert f"<li>{nid}: label &#x27;&lt;b&gt;&#x27; -&gt; &#x27;x&#x27; (changed during the run, before it started)</li>" in text


def test_what_changed_names_nodes_left_out_as_disabled_or_bypassed_not_removed() -> None:
    base = view_from_snapshot(fake_snapshot(nodes=2, samples=4, status="succeeded"))
    full = {"nodes": [{"id": "a", "agent": "test.source"}, {"id": "b", "agent": "test.echo"},
                      {"id": "c", "agent": "test.echo"}],
            "edges": [{"source": "a", "target": "b"}, {"source": "b", "target": "c"}]}
    passed = {"nodes": [full["nodes"][0], full["nodes"][2]], "edges": [{"source": "a", "target": "c"}],
              "metadata": {"bypassed": ["b"]}}
    off = {"nodes": [full["nodes"][0]], "edges": [], "metadata": {"disabled": ["b", "c"]}}
    a = dataclasses.replace(base, workflow=full)
    assert compare.workflow_changes(a, dataclasses.replace(base, workflow=passed)) == [
        "run B left out (bypassed): b", "wire removed: a -> b", "wire removed: b -> c", "wire added: a -> c"]
    assert compare.workflow_changes(a, dataclasses.replace(base, workflow=off))[:1] == [
        "run B left out (disabled, or after a disabled node): b, c"]
    assert compare.workflow_changes(dataclasses.replace(base, workflow=off), a)[:1] == [
        "run A left out (disabled, or after a disabled node): b, c"]


def test_a_succeeded_run_with_nodes_skipped_for_pins_shows_whole(tmp_path) -> None:
    """A run whose node only fed a pinned one skips it and succeeds: the stored view's progress is
    whole, as the live snapshot counts every ended node (a failed run counts what finished)."""
    from engine.registry import default_registry
    from engine.results import ResultStore, pin_from_run
    from engine.runs import RunManager
    from engine.workflow import Workflow, with_pin
    from storage import Store
    from ui.monitor.view import view_from_store

    wf = Workflow.model_validate({"name": "pins", "nodes": [
        {"id": "a", "agent": "test.source", "params": {"value": [1]}}, {"id": "b", "agent": "test.echo"}],
        "edges": [{"source": "a", "target": "b"}]})
    with Store(f"sqlite:///{tmp_path / 'runs.db'}") as store:
        manager = RunManager(results=ResultStore(tmp_path / "results"))
        manager.bus.subscribe(store.observer())
        try:
            first = manager.submit(wf)
            first.wait(30)
            pinned = with_pin(wf, "b", pin_from_run(wf, "b", first.run_id, default_registry(), manager.results))
            second = manager.submit(pinned)
            second.wait(30)
            assert second.snapshot().progress == (2, 2)
        finally:
            manager.shutdown()
            store.flush()
        view = view_from_store(store.get_run(second.run_id))
    assert {n["status"] for n in view.nodes.values()} == {"skipped", "cached"}
    assert view.progress == (2, 2) and replay_view(view, 60.0).progress == (2, 2)
