"""The run status table speaks to people: labelled columns with units, peak memory, "—" for gaps."""

from __future__ import annotations

from tests.monitor.fakes import fake_snapshot
from ui.monitor import live
from ui.monitor.view import view_from_snapshot


def test_status_rows_add_the_nodes_own_memory_and_keep_missing_values_missing() -> None:
    view = view_from_snapshot(fake_snapshot(nodes=3, samples=4, status="running", running=1))
    view.nodes["n02"]["memory_mb"] = None  # never measured
    rows = {r["node"]: r for r in live.node_rows(view)}
    assert rows["n00"]["memory_mb"] == 12.0  # the node's own, not the process's RSS (100 MB)
    assert "peak_rss_mb" not in rows["n00"]
    assert rows["n02"]["memory_mb"] is None  # drawn as the placeholder, never as the text "None"
    assert rows["n00"]["cpu_s"] is None  # still running: no CPU total yet
    assert list(rows["n00"])[-1] == "why"  # the wide free-text column stays last


def test_every_numeric_column_of_the_status_table_has_a_label_with_its_unit() -> None:
    view = view_from_snapshot(fake_snapshot(nodes=2, samples=4, status="succeeded"))
    columns = live.node_rows(view)[0].keys()
    raw = [c for c in columns if c.endswith(("_s", "_mb"))]
    assert raw, "the table has timing and memory columns"
    for name in raw:
        label = live.NODE_COLUMNS[name]["label"]
        assert "_" not in label, label
        assert label.endswith("(s)" if name.endswith("_s") else "(MB)"), label
    assert live.MISSING != "None"


def test_a_short_runs_cpu_and_memory_charts_say_why_they_are_a_dot() -> None:
    short = view_from_snapshot(fake_snapshot(nodes=3, samples=1, status="succeeded"))
    assert "so these charts have 1 reading;" in (live.few_samples_note(short) or "")
    assert live.few_samples_note(view_from_snapshot(fake_snapshot(nodes=3, samples=40, status="succeeded"))) is None
    assert live.few_samples_note(view_from_snapshot(fake_snapshot(nodes=3, samples=1, status="running",
                                                                  running=1))) is None  # more are coming
