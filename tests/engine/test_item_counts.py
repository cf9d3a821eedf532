"""What a run counted along each wire: ``RunManager.item_counts`` (from the outputs in memory) and
``engine.payloads.rows_of``; the designer draws them over the planned counts (``counted_labels``)."""

from __future__ import annotations

from pathlib import Path

import torch

from engine.kinds import DataKind
from engine.payloads import rows_of
from engine.registry import default_registry
from engine.results import ResultStore
from engine.runs import RunManager, RunOptions
from engine.workflow import load_workflow
from ui.graphmodel import counted_labels

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def test_rows_of_counts_per_item_kinds_tables_and_passed_on_payloads() -> None:
    assert rows_of({"texts": ["a", "b"], "ids": ["1", "2"]}, DataKind.TEXT_BATCH) == 2
    assert rows_of({"columns": {"x": [1, 2, 3]}, "ids": ["a", "b", "c"]}, DataKind.TABLE) == 3
    assert rows_of({"columns": {"x": [1, 2, 3, 4]}}, DataKind.TABLE) == 4  # no ids: its first column
    assert rows_of({"scores": torch.zeros(5, 2), "ids": list("abcde")}, DataKind.ANY) == 5  # a branch passes it on
    assert rows_of(torch.zeros(3, 3), DataKind.TENSOR) is None and rows_of({"ids": "abc"}, DataKind.ANY) is None


def test_a_branch_s_split_is_counted_on_each_of_its_outputs(tmp_path: Path) -> None:
    manager = RunManager(results=ResultStore(tmp_path / "results"))
    try:
        workflow = load_workflow(EXAMPLES / "nlp-sentiment.json")
        handle = manager.submit(workflow, RunOptions())
        handle.wait(120)
        predicted = handle.outputs("sentiment")["scores"]["predicted"]
        negative = sum(p == "negative" for p in predicted)
        counts = {nid: manager.item_counts(handle.run_id, nid) for nid in workflow.node_ids()}
    finally:
        manager.shutdown()
    assert counts["reviews"] == {"texts": 90} and counts["sentiment"] == {"scores": 90}
    assert counts["negative"] == {"match": negative, "rest": 90 - negative} and 0 < negative < 90
    assert counts["all_csv"] == {"written": 1}  # a sink's one row: where the rows went
    labels = counted_labels(workflow, default_registry(), {(n, p): c for n, ports in counts.items()
                                                           for p, c in ports.items()})
    assert labels["negative.match->negative_csv.in"] == f"{negative} items (planned 90)"
    assert labels["reviews.texts->sentiment.texts"] == "90 items"  # as planned: no second number
    assert counted_labels(workflow, default_registry(), {}) == {}
