"""Learned estimates from real runs recorded in a Store: after five runs of a workflow with wrong
declarations the predicted makespan is within 10 % of the actual, and right-sizing advice appears."""

from __future__ import annotations

import statistics
from pathlib import Path

import pytest

from engine.estimates import Estimates, Stat, accuracy, actual_makespan
from engine.resources import Capacity
from engine.results import ResultStore
from engine.rightsizing import advise, apply_advice, predict_makespan
from engine.runs import RunManager, RunOptions
from engine.workflow import Workflow
from storage import Store
from tests.lab.lab_agents import lab_registry
from tests.recording import record_runs

MACHINE = Capacity(cpu=4, memory_mb=3072, gpus=())


def _workflow() -> Workflow:
    def node(nid: str, seconds: float) -> dict:
        return {"id": nid, "agent": "lab.misdeclared", "params": {"seconds": seconds}}

    return Workflow.model_validate({
        # long enough that scheduling gaps on a busy machine stay small next to the work
        "name": "misdeclared", "nodes": [node("a", 0.3), node("b", 0.5), node("c", 0.25), node("d", 0.3)],
        "edges": [{"source": "a", "target": "b"}, {"source": "a", "target": "c"},
                  {"source": "b", "target": "d"}, {"source": "c", "target": "d"}],
    })


@pytest.fixture(scope="module")
def five_runs(tmp_path_factory: pytest.TempPathFactory) -> list:
    tmp: Path = tmp_path_factory.mktemp("lab")
    registry = lab_registry()
    store = Store(f"sqlite:///{tmp / 'lab.db'}")
    try:
        manager = RunManager(registry=registry, machine=MACHINE, results=ResultStore(tmp / "results"), sample_hz=20)
        record_runs(store, manager, [_workflow() for _ in range(5)], RunOptions(policy="critical_path", use_cache=False))
        runs = [store.get_run(s.id) for s in store.list_runs(workflow="misdeclared")]
    finally:
        store.close()
    assert len(runs) == 5
    return runs


def test_learned_prediction_is_within_ten_percent(five_runs: list) -> None:
    registry = lab_registry()
    workflow = _workflow()
    declared = predict_makespan(workflow, registry, MACHINE)
    estimates = Estimates.from_runs(five_runs)
    learned = estimates.durations_for(workflow)
    assert set(learned.durations) == {"a", "b", "c", "d"}
    assert learned.source["b"] == "learned (5 runs)"
    assert learned.source["a"] == "learned (5 runs)"  # a and d share agent and params: 10 samples
    predicted = predict_makespan(workflow, registry, MACHINE, estimates)
    actual = statistics.median(actual_makespan(r) for r in five_runs)
    assert abs(declared / actual - 1) > 0.5, "the declarations really are wrong"
    assert abs(predicted / actual - 1) <= 0.10, (predicted, actual)


def test_too_few_runs_fall_back_to_declarations(five_runs: list) -> None:
    estimates = Estimates.from_runs(five_runs[:2])
    learned = estimates.durations_for(_workflow())
    assert learned.durations == {}
    assert set(learned.source.values()) == {"declared"}
    assert learned.counts["a"] == 2


def test_right_sizing_advice_appears_and_applies(five_runs: list) -> None:
    registry = lab_registry()
    workflow = _workflow()
    estimates = Estimates.from_runs(five_runs)
    advice = advise(workflow, registry, MACHINE, estimates)
    assert {a.node for a in advice} == {"a", "b", "c", "d"}
    b = next(a for a in advice if a.node == "b")
    assert b.declared == 2048 and b.suggested < 2048 * 0.8
    assert b.at_once_after > b.at_once_before
    assert "declared 2,048 MB, p95 measured" in b.text and "more agent" in b.text
    assert b.makespan_after is not None and b.makespan_before is not None
    # lowering b alone never slows the plan; whether it alone lets b and c overlap depends on how
    # much memory this test process already holds (non-isolated peaks are process-wide)
    assert b.makespan_after <= b.makespan_before
    changed = apply_advice(workflow, advice)
    assert changed.node("b").resources["memory_mb"] == b.suggested
    assert workflow.node("b").resources == {}  # the original is untouched
    before = predict_makespan(workflow, registry, MACHINE, estimates)
    after = predict_makespan(changed, registry, MACHINE, estimates)
    assert after < before  # with every node right-sized, b and c no longer wait for each other's memory


def test_accuracy_improves_as_runs_accumulate(five_runs: list) -> None:
    registry = lab_registry()

    def predict(workflow: Workflow, est: Estimates, _run: dict) -> float:
        return predict_makespan(workflow, registry, MACHINE, est)

    points = accuracy(five_runs, predict)
    assert len(points) == 5
    assert all(p.predicted_learned is None for p in points[:3])
    assert all(p.error_stored and p.error_stored > 0.5 for p in points)
    assert all(p.error_learned is not None and p.error_learned < 0.15 for p in points[3:])


def test_robust_statistics() -> None:
    s = Stat.of([1.0, 1.1, 0.9, 1.0, 50.0])
    assert s.count == 5 and s.median == 1.0
    assert s.mad == pytest.approx(0.1)
    assert s.p95 > 10  # the outlier shows in the tail, not in the median
    assert Stat.of([]).count == 0


def test_simulated_durations_are_divided_by_time_scale() -> None:
    def run(i: int) -> dict:
        return {"summary": {"id": f"r{i}", "status": "succeeded", "created": float(i)},
                "workflow": {"nodes": [{"id": "x", "agent": "sim.task", "params": {"duration_s": 10}}], "edges": []},
                "options": {"time_scale": 0.01},
                "nodes": [{"node_id": "x", "status": "done", "wall_s": 0.1, "started_at": 0.0, "finished_at": 0.1,
                           "peak_rss_mb": 100.0, "cached": False}]}

    assert Estimates.from_runs([run(0), run(0), run(0)]).duration({"agent": "sim.task", "params": {"duration_s": 10}}) \
        is None  # one run recorded three times is still one run
    est = Estimates.from_runs([run(0), run(1), run(2)])
    assert est.duration({"agent": "sim.task", "params": {"duration_s": 10}}) == pytest.approx(10.0)
    assert est.duration({"agent": "sim.task", "params": {"duration_s": 11}}) is None  # other params
    assert actual_makespan(run(0)) == pytest.approx(10.0)


def test_the_learned_table_labels_every_measured_column_with_its_unit() -> None:
    from ui.lab.learned import LEARNED_COLUMNS

    wf = Workflow.model_validate({"name": "w", "nodes": [{"id": "x", "agent": "sim.task"}], "edges": []})
    columns = Estimates().table(wf)[0].keys()
    for name in (c for c in columns if c.endswith(("_s", "_mb"))):
        label = LEARNED_COLUMNS[name]["label"]
        assert "_" not in label and label.endswith("(s)" if name.endswith("_s") else "(MB)"), label
