"""Size-aware planning: planned item counts through a workflow, declared durations that grow with
them, and learned durations scaled from the sizes they were measured at, checked against real
runs of the image pipeline at two sizes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from engine.agents import tabular_data, vision_data
from engine.agents.tabular import CANCER_ROWS
from engine.agents.vision import DIGITS_HELD_OUT
from engine.estimates import Estimates, scale_to_size
from engine.items import planned_items
from engine.problem import problem_from_workflow
from engine.registry import default_registry
from engine.resources import Capacity
from engine.results import ResultStore
from engine.runs import RunManager, RunOptions
from engine.spec import TYPICAL_ITEMS, RunContext
from engine.workflow import Workflow
from storage import Store
from tests.recording import record_runs

ROOT = Path(__file__).resolve().parents[2]
MACHINE = Capacity(cpu=2, memory_mb=4096, gpus=())


def _template(name: str) -> dict[str, Any]:
    return json.loads((ROOT / "examples" / f"{name}.json").read_text())


def _images(n: int) -> Workflow:
    data = _template("image-pipeline")
    for node in data["nodes"]:
        if node["agent"] == "vision.source":
            node["params"]["n_items"] = n
    return Workflow.model_validate(data)


# -- planned counts ----------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["image-pipeline", "medical-imaging", "finance-risk", "nlp-sentiment",
                                  "customer-service"])
def test_planned_counts_of_the_sources_are_what_they_emit(name: str) -> None:
    registry = default_registry()
    workflow = Workflow.model_validate(_template(name))
    planned = planned_items(workflow, registry)
    sources = [n for n in workflow.nodes if not any(e.target == n.id for e in workflow.edges)]
    assert sources
    for node in sources:
        spec = registry.get(node.agent)
        agent = spec.build(spec.parse_params(node.params))
        agent.load("cpu")
        out = agent.run({}, RunContext())
        payload = next(iter(out.values()))
        assert planned.items_out[node.id] == len(payload["ids"]), node.id
        for child in [e.target for e in workflow.edges if e.source == node.id]:
            assert planned.items_in[child] is not None


def test_counts_pass_through_limits_and_stop_at_what_cannot_be_known() -> None:
    registry = default_registry()
    wf = {"name": "w", "nodes": [
        {"id": "texts", "agent": "text.source", "params": {"mode": "list", "texts": ["a", "b", "c"]}},
        {"id": "file", "agent": "text.source", "params": {"mode": "file", "path": "x.txt"}},
        {"id": "first2", "agent": "flow.limit", "params": {"n": 2}},
        {"id": "sent", "agent": "text.sentiment"}, {"id": "sent_file", "agent": "text.sentiment"},
        {"id": "bad", "agent": "vision.source", "params": {"n_items": -5}}],
        "edges": [{"source": "texts", "target": "first2"}, {"source": "first2", "target": "sent"},
                  {"source": "file", "target": "sent_file"}]}
    for workflow in (wf, Workflow.model_validate(wf)):  # a stored run's dict, or a Workflow
        planned = planned_items(workflow, registry)
        assert planned.items_out["texts"] == 3 and planned.items_in["first2"] == 3
        assert planned.items_out["first2"] == 2 and planned.items_in["sent"] == 2
        assert planned.items_out["file"] is None and planned.items_in["sent_file"] is None
        assert planned.items_out["bad"] is None  # bad params: unknown, validation says why


def test_the_size_constants_match_the_data_sets() -> None:
    assert len(vision_data.digits_split()[1]) == DIGITS_HELD_OUT
    for split, rows in CANCER_ROWS.items():
        assert len(tabular_data.cancer_table(split, 10**6, 42)["ids"]) == rows


# -- declared durations --------------------------------------------------------------------------
def test_declared_durations_grow_with_the_planned_items() -> None:
    registry = default_registry()
    small = problem_from_workflow(_images(256), registry, MACHINE).tasks
    large = problem_from_workflow(_images(4096), registry, MACHINE).tasks
    spec = registry.get("vision.classify")
    for nid in ("preprocess", "classify"):
        agent = registry.get(next(n.agent for n in _images(256).nodes if n.id == nid))
        assert agent.per_item_s > 0
        assert large[nid].duration - small[nid].duration == pytest.approx(agent.per_item_s * (4096 - 256))
    assert small["classify"].duration == pytest.approx(spec.expected_duration_s + spec.per_item_s * 256)
    assert large["scans"].duration > 10 * small["scans"].duration
    # no count known: the typical number of items
    assert spec.expected_duration(spec.parse_params({})) == pytest.approx(
        spec.expected_duration_s + spec.per_item_s * TYPICAL_ITEMS)


def _shop(n_users: int) -> Workflow:
    data = _template("recommendation")
    data["nodes"][0]["params"]["n_users"] = n_users
    return Workflow.model_validate(data)


def test_a_recommendation_run_has_the_counts_planned_per_port(tmp_path: Path) -> None:
    """The behaviour node's two outputs differ in size (its log's events, one row per user) and
    are counted apart; the ranking's rows are planned from the log's size. Checked against a real
    run: the users and the ranking exactly, the log within its random spread."""
    registry = default_registry()
    workflow = _shop(300)
    planned = planned_items(workflow, registry)
    assert planned.on_port("behaviour", "users") == 300
    assert planned.on_port("behaviour", "interactions") == planned.items_out["behaviour"] == 300 * 30
    manager = RunManager(registry, results=ResultStore(tmp_path / "cache"))
    try:
        handle = manager.submit(workflow, RunOptions(use_cache=False))
        assert str(handle.wait(120)) == "succeeded"
        outputs = {nid: handle.outputs(nid) for nid in ("behaviour", "cf", "rank", "with_users")}
    finally:
        manager.shutdown()
    assert len(outputs["behaviour"]["users"]["ids"]) == planned.on_port("behaviour", "users")
    events = len(outputs["behaviour"]["interactions"]["ids"])
    assert abs(events / planned.on_port("behaviour", "interactions") - 1) < 0.05
    rows = len(outputs["rank"]["recommendations"]["ids"])
    assert rows == planned.items_out["rank"] == 300 * 10  # k = 10 per user
    assert planned.items_in["with_users"] == rows  # the larger of its inputs: the ranking, not the log
    assert planned.items_out["cf"] == len(outputs["cf"]["scores"]["ids"]) == 300  # a row of scores per user


def test_recommendation_and_flow_declarations_grow_with_the_data() -> None:
    """Every agent of the recommendation template declares time that grows with the items planned
    for it, so a shop ten times larger is not planned as the default one (before, every node
    declared one time whatever the size: 0.63 s planned against 3.6 s measured)."""
    registry = default_registry()
    small = problem_from_workflow(_shop(300), registry, MACHINE).tasks
    large = problem_from_workflow(_shop(3000), registry, MACHINE).tasks
    for nid, task in small.items():
        assert large[nid].duration > 5 * task.duration, nid
    assert large["behaviour"].demand.memory_mb > small["behaviour"].demand.memory_mb
    mf = registry.get("recommend.mf")
    fit = [mf.expected_duration(mf.parse_params({"mode": "fit", "epochs": e}), 9000) for e in (60, 120)]
    assert fit[1] - mf.expected_duration_s == pytest.approx(2 * (fit[0] - mf.expected_duration_s))
    assert mf.expected_duration(mf.parse_params({"mode": "pretrained"}), 9000) < fit[0] / 4
    assert mf.duration_text(mf.parse_params({"mode": "fit", "epochs": 60, "dim": 16})).endswith("ms per item")


# -- scaling learned durations ---------------------------------------------------------------------
def test_scale_to_size_keeps_fits_or_scales() -> None:
    assert scale_to_size([0.1, 0.12, 0.11], [256, 256, 256], 256) == (0.11, "")
    assert scale_to_size([0.1, 0.12, 0.11], [256, 256, 256], None) == (0.11, "")
    # one size: between "all per item" (x4) and the declared shape (here fixed 1 + 0.01/item: x1.96)
    declared = lambda n: 1.0 + 0.01 * n  # noqa: E731
    value, how = scale_to_size([0.1, 0.12, 0.11], [256, 256, 256], 1024, declared)
    assert value == pytest.approx(0.11 * (4 * 11.24 / 3.56) ** 0.5) and "scaled from 256 to 1,024 items" in how
    assert scale_to_size([0.1, 0.12, 0.11], [256, 256, 256], 1024)[0] == pytest.approx(0.22)  # no shape: x2
    # fixed 0.02 s + 0.5 ms per item, measured at 100 and 400 items (one outlier)
    walls, sizes = [0.07, 0.07, 0.22, 0.22, 0.9], [100, 100, 400, 400, 100]
    value, how = scale_to_size(walls, sizes, 2000)
    assert value == pytest.approx(0.02 + 0.0005 * 2000, rel=0.01) and "fitted to 2 sizes" in how
    assert scale_to_size(walls, sizes, 400)[0] == pytest.approx(0.22)  # measured at that size
    assert scale_to_size([0.1], [None], 4096) == (0.1, "")  # size unknown when measured


def _record(wf: Workflow, run_id: str, walls: dict[str, float]) -> dict[str, Any]:
    return {"summary": {"id": run_id, "status": "succeeded"}, "workflow": wf.model_dump(mode="json"),
            "nodes": [{"node_id": n, "status": "done", "wall_s": w, "device": "cpu"} for n, w in walls.items()]}


def test_learned_durations_follow_the_source_size() -> None:
    registry = default_registry()
    runs = [_record(_images(256), f"r{i}", {"scans": 0.05, "preprocess": 0.01, "classify": 0.1}) for i in range(3)]
    learned = Estimates.from_runs(runs, registry=registry).durations_for(_images(4096))
    spec = registry.get("vision.classify")
    shape = spec.expected_duration(spec.parse_params({}), 4096) / spec.expected_duration(spec.parse_params({}), 256)
    assert learned.scaled["classify"] == pytest.approx((16 * shape) ** 0.5)
    assert learned.durations["classify"] == pytest.approx(0.1 * (16 * shape) ** 0.5)
    assert 1 < shape < learned.scaled["classify"] < 16
    assert "scaled from 256 to 4,096 items" in learned.source["classify"]
    assert "scans" not in learned.durations  # other params: its own (size-aware) declaration
    same = Estimates.from_runs(runs, registry=registry).durations_for(_images(256))
    assert same.durations["classify"] == pytest.approx(0.1) and same.source["classify"] == "learned (3 runs)"
    blind = Estimates.from_runs(runs).durations_for(_images(4096))  # no registry: as measured
    assert blind.durations["classify"] == pytest.approx(0.1)


def test_scaled_estimates_predict_a_larger_real_run(tmp_path: Path) -> None:
    """Three real runs at 64 images, then one at 512: the learned classify time scaled to 512 is
    closer to what the 512-image run took than the unscaled median, and within 3x of it."""
    registry = default_registry()
    store = Store(f"sqlite:///{tmp_path / 'sizes.db'}")
    try:
        manager = RunManager(registry=registry, machine=MACHINE, results=ResultStore(tmp_path / "results"))
        ids = record_runs(store, manager, [_images(n) for n in (64, 64, 64, 512)],
                          RunOptions(use_cache=False, fuse=False), timeout=120)
        runs = [store.get_run(run_id) for run_id in ids]
    finally:
        store.close()
    small, large = runs[:3], runs[3].to_dict()
    actual = next(r["wall_s"] for r in large["nodes"] if r["node_id"] == "classify")
    scaled = Estimates.from_runs(small, registry=registry).durations_for(_images(512)).durations["classify"]
    plain = Estimates.from_runs(small).durations_for(_images(512)).durations["classify"]
    assert abs(scaled / actual - 1) < abs(plain / actual - 1)
    assert actual / 3 <= scaled <= actual * 3


# -- memory that grows with the data ---------------------------------------------------------------
def test_demands_grow_with_the_items_unless_the_node_sets_its_memory() -> None:
    registry = default_registry()
    small = problem_from_workflow(_images(256), registry, MACHINE).tasks
    large = problem_from_workflow(_images(4096), registry, MACHINE).tasks
    source = registry.get("vision.source")
    assert small["scans"].demand.memory_mb > source.resources.memory_mb
    assert large["scans"].demand.memory_mb - source.resources.memory_mb == pytest.approx(
        16 * (small["scans"].demand.memory_mb - source.resources.memory_mb))
    assert large["classify"].demand.memory_mb == small["classify"].demand.memory_mb  # batches bound it
    assert large["preprocess"].demand.memory_mb == small["preprocess"].demand.memory_mb == 128  # the template's own
    data = _images(4096).model_dump(mode="json")
    data["nodes"][0]["resources"] = {"memory_mb": 100}
    data["nodes"][1]["resources"].pop("memory_mb")
    pinned = problem_from_workflow(Workflow.model_validate(data), registry, MACHINE).tasks
    assert pinned["scans"].demand.memory_mb == 100
    preprocess = registry.get("vision.preprocess")
    assert pinned["preprocess"].demand.memory_mb == pytest.approx(
        preprocess.resources.memory_mb + 4096 * 3 * 64 * 64 * 4 / 2**20  # the images it keeps
        + 32 * 3 * 64 * 64 * 16 / 2**20)  # and the copies of one batch in flight


def test_validation_says_how_much_memory_the_items_need() -> None:
    from engine.validation import validate

    issues = validate(_images(4096), default_registry(), Capacity(cpu=2, memory_mb=512, gpus=()))
    found = [i for i in issues if i.code == "capacity_exceeded" and i.node == "scans"]
    assert found and "for the 4,096 items it handles" in found[0].message
    assert "fewer items" in found[0].hint
    assert not [i for i in validate(_images(64), default_registry(), Capacity(cpu=2, memory_mb=512, gpus=()))
                if i.code == "capacity_exceeded"]


def _peak_growth_mb(setup: str, measured: str) -> float:
    """How far a fresh process's RSS rises (peak, sampled every ms) while it runs ``measured``,
    after ``setup`` (no allocator reuse from earlier work, unlike in the test process)."""
    import subprocess
    import sys

    code = ("import threading, psutil\n"
            "from engine.registry import default_registry\nfrom engine.spec import RunContext\n" + setup +
            "proc, stop, peak = psutil.Process(), threading.Event(), [0]\n"
            "def sample():\n"
            "    while not stop.wait(0.001): peak[0] = max(peak[0], proc.memory_info().rss)\n"
            "before = proc.memory_info().rss; t = threading.Thread(target=sample); t.start()\n" + measured +
            "stop.set(); t.join()\n"
            "print((max(peak[0], proc.memory_info().rss) - before) / 2**20)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    return float(out.stdout.strip().splitlines()[-1])


def test_the_source_declares_at_least_the_memory_it_takes() -> None:
    """In a fresh process (no allocator reuse), the peak RSS growth of generating 1,024 scans stays
    under what vision.source declares for them."""
    grown = _peak_growth_mb(
        "s = default_registry().get('vision.source'); a = s.build(s.parse_params({'n_items': 8})); a.load('cpu')\n"
        "a.run({}, RunContext())\n",
        "a = s.build(s.parse_params({'n_items': 1024, 'channels': 3})); out = a.run({}, RunContext())\n")
    spec = default_registry().get("vision.source")
    declared = spec.demand_for(None, spec.parse_params({"n_items": 1024, "channels": 3}), 1024).memory_mb
    assert 100 < grown <= declared, (grown, declared)


def test_memory_advice_scales_what_was_measured_to_the_planned_items() -> None:
    """Preprocess kept 100 MB of images at 256 items under its template's 128 MB: for 4,096 items
    the advice is to raise it (the measurement scaled as the declared memory grows), not silence."""
    from engine.rightsizing import advise

    registry = default_registry()

    def record(wf: Workflow, run_id: str) -> dict[str, Any]:
        rec = _record(wf, run_id, {"scans": 0.05, "preprocess": 0.01, "classify": 0.1})
        for r in rec["nodes"]:
            r["metrics"] = {"memory_mb": {"scans": 60.0, "preprocess": 100.0, "classify": 40.0}[r["node_id"]]}
        return rec

    est = Estimates.from_runs([record(_images(256), f"m{i}") for i in range(3)], registry=registry)
    assert not [a for a in advise(_images(256), registry, MACHINE, est) if a.node == "preprocess"]
    advice = {a.node: a for a in advise(_images(4096), registry, MACHINE, est)}
    raise_it = advice["preprocess"]
    assert raise_it.suggested > raise_it.declared == 128
    assert raise_it.measured_p95 > 100 * 3 and "measured at 256 items, scaled to 4,096" in raise_it.text


# -- image sizes -------------------------------------------------------------------------------
def _medical(size: int | None, channels: int = 1, n: int = 128, source_size: int = 64) -> Workflow:
    data = _template("medical-imaging")
    for node in data["nodes"]:
        if node["agent"] == "vision.preprocess":
            node["params"]["size"] = size
        if node["agent"] == "vision.source":
            node["params"].update(channels=channels, n_items=n, size=source_size)
    return Workflow.model_validate(data)


def test_image_shapes_are_planned_as_a_real_run_gives(tmp_path: Path) -> None:
    """The planner follows each image's shape as it follows the counts: the source's channels and
    size, the resize of preprocess, the explainer's overlay. Checked against a real run's payloads."""
    registry = default_registry()
    workflow = _medical(96, channels=3, n=16)
    planned = planned_items(workflow, registry)
    assert planned.images("preprocessing").received == (3, 64, 64)
    assert planned.images("explanation").received == (3, 96, 96)
    manager = RunManager(registry, results=ResultStore(tmp_path / "cache"))
    try:
        handle = manager.submit(workflow, RunOptions(use_cache=False))
        assert str(handle.wait(120)) == "succeeded"
        shapes = {"scans": handle.outputs("scans")["images"]["images"].shape,
                  "preprocessing": handle.outputs("preprocessing")["images"]["images"].shape,
                  "explanation": handle.outputs("explanation")["heatmaps"]["images"].shape}
    finally:
        manager.shutdown()
    for node_id, shape in shapes.items():
        assert tuple(shape[1:]) == planned.images(node_id).emitted, node_id
    assert planned.images("classification").emitted is None  # scores, not images


def test_declarations_grow_with_the_image_size() -> None:
    """Before, a 256 px run was planned as a 64 px one: explanation 0.66 s and 102 MB declared,
    5.0 s and 304 MB measured (its top region scanned every square: 44 ms a map at 256 px)."""
    registry = default_registry()
    small = problem_from_workflow(_medical(64), registry, MACHINE).tasks
    large = problem_from_workflow(_medical(256), registry, MACHINE).tasks
    for node_id in ("preprocessing", "explanation"):
        assert large[node_id].duration > 2 * small[node_id].duration, node_id
        assert large[node_id].demand.memory_mb > small[node_id].demand.memory_mb, node_id
    assert large["classification"].duration > small["classification"].duration  # resizing down
    assert large["classification"].demand.memory_mb > small["classification"].demand.memory_mb  # a batch of them
    assert large["scans"].duration == small["scans"].duration  # its own images did not change
    keep = problem_from_workflow(_medical(None), registry, MACHINE).tasks  # no resize: the source's size
    assert keep["explanation"].duration == small["explanation"].duration


def test_the_explainer_declares_at_least_the_memory_it_takes_at_256_px() -> None:
    """In a fresh process, the peak RSS growth of explaining 64 scans of 256 px stays under what
    vision.explain declares for them (it declared 99 MB before image sizes counted; it takes ~140)."""
    grown = _peak_growth_mb(
        "reg = default_registry(); src = reg.get('vision.source'); ex = reg.get('vision.explain')\n"
        "images = src.build(src.parse_params({'n_items': 64, 'size': 256})).run({}, RunContext())['images']\n"
        "a = ex.build(ex.parse_params({})); a.load('cpu')\n"
        "small = {**images, 'images': images['images'][:2], 'ids': images['ids'][:2]}\n"
        "a.run({'images': small}, RunContext(lifecycle=ex.lifecycle))\n",
        "out = a.run({'images': images}, RunContext(lifecycle=ex.lifecycle))\n")
    registry = default_registry()
    workflow = _medical(None, n=64, source_size=256)
    spec, sized = registry.get("vision.explain"), planned_items(workflow, registry)
    assert sized.images("explanation").received == (1, 256, 256)
    declared = spec.demand_for(None, spec.parse_params({}), 64, images=sized.images("explanation")).memory_mb
    assert 64 * 256 * 256 * 16 / 2**20 < grown <= declared, (grown, declared)  # more than the kept output


def test_validation_names_the_image_size_and_warns_of_a_fixed_reservation_below_it() -> None:
    from engine.validation import validate

    registry = default_registry()
    issues = validate(_medical(1024), registry)
    found = [i for i in issues if i.code == "capacity_exceeded"]
    assert [i.node for i in found] == ["explanation"]
    assert "128 items of 1024 x 1024 px" in found[0].message and "smaller images" in found[0].hint
    data = _images(256).model_dump(mode="json")
    data["nodes"][1]["params"]["size"] = 512  # the template keeps its own memory_mb: 128 and 64
    warned = [i for i in validate(Workflow.model_validate(data), registry) if i.code == "memory_below_need"]
    assert [(i.node, i.severity) for i in warned] == [("preprocess", "warning"), ("classify", "warning")]
    assert "256 items of 512 x 512 px" in warned[0].message
    assert not [i for i in validate(_images(256), registry) if i.code == "memory_below_need"]


def test_learned_estimates_are_not_carried_to_other_image_sizes() -> None:
    """The explainer's params are the same for 64 and 256 px images, so its runs at 64 px had the
    same key; their 0.07 s would have planned a 256 px run (measured 5 s). Samples now keep the
    images planned for them, and only those measured at the planned images count."""
    registry = default_registry()
    walls = {"scans": 0.05, "preprocessing": 0.01, "classification": 0.02, "explanation": 0.07, "diagnosis": 0.01}
    runs = [_record(_medical(64), f"r{i}", walls) for i in range(3)]
    estimates = Estimates.from_runs(runs, registry=registry)
    same = estimates.durations_for(_medical(64))
    assert same.durations["explanation"] == pytest.approx(0.07) and same.source["explanation"] == "learned (3 runs)"
    larger = estimates.durations_for(_medical(256))
    for node_id in ("explanation", "classification"):  # their cost grows with the images they receive
        assert node_id not in larger.durations
        assert larger.source[node_id] == "declared (its runs had other image sizes)"
    assert larger.durations["diagnosis"] == pytest.approx(0.01)  # no images: learned as before
    memory = [{**run, "nodes": [{**n, "metrics": {"memory_mb": 50.0}} for n in run["nodes"]]} for run in runs]
    estimates = Estimates.from_runs(memory, registry=registry)
    node = _medical(64).node("explanation")
    sized = {size: planned_items(_medical(size), registry) for size in (64, 256)}
    assert estimates.memory_for(node, 128, None, sized[64].images("explanation")) == (50.0, "")
    assert estimates.memory_for(node, 128, None, sized[256].images("explanation")) is None


def test_a_text_files_texts_are_counted_when_planned(tmp_path: Path) -> None:
    """A file's texts were an unknown count, planned as 64: a 300,000-line file's merge was
    planned at 16 MB and took 800. They are counted now, once per version of the file."""
    registry = default_registry()
    lines = tmp_path / "reviews.txt"
    lines.write_text("great\n\nawful\n" * 500, encoding="utf-8")  # blank lines are not texts
    table = tmp_path / "reviews.csv"
    table.write_text('id,text\n1,"two\nlines"\n2,fine\n3,\n', encoding="utf-8")  # one quoted text over two lines; one empty

    def with_file(path: Path, column: str = "text") -> Workflow:
        data = _template("nlp-sentiment")
        data["nodes"][0]["params"] = {"mode": "file", "path": str(path), "column": column}
        return Workflow.model_validate(data)

    assert planned_items(with_file(lines), registry).items_out["reviews"] == 1000
    assert planned_items(with_file(table), registry).items_out["reviews"] == 2
    assert planned_items(with_file(table, "nope"), registry).items_out["reviews"] is None  # the run says why
    assert planned_items(with_file(tmp_path / "gone.txt"), registry).items_out["reviews"] is None
    lines.write_text("great\n" * 3000, encoding="utf-8")  # a new version: counted again
    sized = planned_items(with_file(lines), registry)
    assert sized.items_out["reviews"] == sized.items_in["with_vectors"] == 3000
    small = problem_from_workflow(with_file(table), registry, MACHINE).tasks
    large = problem_from_workflow(with_file(lines), registry, MACHINE).tasks
    assert large["with_vectors"].demand.memory_mb > small["with_vectors"].demand.memory_mb + 5
    assert large["sentiment"].duration > 10 * small["sentiment"].duration
