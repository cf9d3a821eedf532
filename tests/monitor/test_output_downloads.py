"""A node's outputs can be taken away: every row as CSV (not only the 50 shown), and the files a
sink wrote. Pure tests of the CSV and of which files may be offered, then the Run page after a
real run of the NLP template, and the same run's outputs on the History page (AppTest)."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

import torch

from tests.monitor.conftest import poll
from tests.monitor.test_run_page import progress_text, start
from ui.monitor.outputs import MAX_ROWS, port_csv, written_files


def rows(text: str | None) -> list[list[str]]:
    assert text is not None
    return list(csv.reader(io.StringIO(text)))


def test_scores_become_one_row_per_item_with_every_row_kept() -> None:
    n = MAX_ROWS + 30
    scores = torch.linspace(0, 1, n).unsqueeze(1).repeat(1, 2)
    got = rows(port_csv({"scores": scores, "classes": ["neg", "pos"], "ids": [f"r{i}" for i in range(n)],
                         "predicted": ["pos"] * n}))
    assert got[0] == ["id", "neg", "pos", "predicted"] and len(got) == n + 1  # not cut at the 50 shown
    assert got[-1][0] == f"r{n - 1}" and float(got[-1][1]) == 1.0 and got[-1][3] == "pos"


def test_tables_labels_and_texts() -> None:
    table = rows(port_csv({"columns": {"user": ["u1", "u2"], "score": torch.tensor([0.5, 0.25])}, "ids": ["a", "b"]}))
    assert table == [["id", "user", "score"], ["a", "u1", "0.5"], ["b", "u2", "0.25"]]
    labels = rows(port_csv({"labels": ["spam", "ham"], "confidence": [0.9, 0.6], "ids": ["m1", "m2"]}))
    assert labels == [["id", "label", "confidence"], ["m1", "spam", "0.9"], ["m2", "ham", "0.6"]]
    texts = rows(port_csv({"texts": ['he said "hi", then left', "line\nbreak"], "ids": ["t1", "t2"]}))
    assert texts[1] == ["t1", 'he said "hi", then left'] and texts[2] == ["t2", "line\nbreak"]  # quoted, not split
    assert port_csv({"images": torch.zeros(1, 1, 2, 2)}) is None and port_csv(3.0) is None


def test_user_text_cannot_become_a_spreadsheet_formula() -> None:
    evil = ['=HYPERLINK("http://x","click")', "+1+1", "@SUM(A1)", "-2+3", "plain"]
    got = rows(port_csv({"texts": evil, "ids": list("abcde")}))
    assert [r[1] for r in got[1:]] == ["'" + e for e in evil[:4]] + ["plain"]
    assert rows(port_csv({"columns": {"x": [-0.5]}}))[1] == ["-0.5"]  # numbers stay numbers


def test_only_files_in_the_outputs_folder_are_offered(data_dir: Path, tmp_path: Path) -> None:
    from engine.agents.sinks import write_csv

    written = write_csv("reviews", {"text": ["ok"]}, ["r1"])
    outside = tmp_path / "secret.csv"
    outside.write_text("x\n")
    value: dict[str, Any] = {"columns": {"path": [str(written), str(outside), "/etc/passwd",
                                                   str(written.parent / ".." / ".." / "servicegrid.db")],
                                          "rows": [1, 1, 1, 1]}}
    assert written_files(value) == [written.resolve()]
    assert written_files({"columns": {"rows": [1]}}) == [] and written_files("x") == []


def test_the_run_page_offers_every_output_for_download(app: Any) -> None:
    at = start(app.run(), "Template: nlp-sentiment")
    at = poll(at, lambda a: "succeeded" in progress_text(a), timeout=60)
    assert "succeeded" in progress_text(at), progress_text(at)
    # the detail opens on the result: the last output nothing reads (the sinks here), until one is picked
    assert at.selectbox(key="live.node").value == "all_csv"

    def labels(node: str) -> set[str]:
        at.selectbox(key="live.node").select(node).run()
        assert not at.exception, at.exception
        return {b.label for b in at.get("download_button")}

    assert "Download all rows (CSV)" in labels("sentiment")
    assert {"Download reviews_scored.csv", "Download all rows (CSV)"} <= labels("all_csv")
    labels("sentiment")
    assert at.run().selectbox(key="live.node").value == "sentiment"  # a person's pick stays

    # the same run from History: outputs come back from the result cache by its workflow's keys
    at.switch_page("pages/history.py").run()
    assert not at.exception, at.exception
    at.selectbox(key="history.node").select("sentiment").run()
    assert not at.exception, at.exception
    assert "Download all rows (CSV)" in {b.label for b in at.get("download_button")}
    shown = [df.value for df in at.dataframe]
    assert any({"negative", "positive"} <= set(map(str, frame.columns)) for frame in shown)  # score bars
