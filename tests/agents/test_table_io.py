"""A user's CSV table (``tabular.csv``): read with its delimiter, numbers as numbers, ids and ground
truth; every malformed file refused with the file and the line; planned (rows, columns) before the
run; and a real scorer run on a CSV written from the generated transactions beats chance."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import torch

from engine.agents import table_io
from engine.agents.table_io import TableFileError, parse_table, read_table
from engine.agents.tabular import CsvTable, CsvTableParams, FraudScore
from engine.registry import default_registry
from engine.spec import RunContext
from engine.validation import validate
from engine.workflow import Workflow


def test_numbers_are_read_as_numbers_whatever_the_delimiter():
    for sep in (",", ";", "\t", "|"):
        text = sep.join(["id", "amount", "count", "zip", "city"]) + "\n" + "\n".join(
            sep.join(row) for row in [["a1", "1.5", "3", "0123", "Lyon"], ["a2", "NA", "-4", "75001", ""],
                                      ["a3", "2e3", "", "98000", "Nice"]])
        table = parse_table(text, "t.csv")
        assert table.ids == ["a1", "a2", "a3"] and table.delimiter == sep
        assert table.columns == {"amount": [1.5, None, 2000.0], "count": [3, -4, None],
                                 "zip": ["0123", "75001", "98000"], "city": ["Lyon", None, "Nice"]}
        assert table.types == {"amount": "float", "count": "int", "zip": "str", "city": "str"}


def test_ids_come_from_the_id_column_or_the_row_numbers():
    text = "name,score\nann,1\nbob,2\n\n"
    assert parse_table(text, "t.csv").ids == ["row-1", "row-2"]  # the blank line is not a row
    by_name = parse_table(text, "t.csv", id_column="name")
    assert by_name.ids == ["ann", "bob"] and list(by_name.columns) == ["score"]
    assert parse_table(text, "t.csv", max_rows=1).columns == {"name": ["ann"], "score": [1]}
    with pytest.raises(TableFileError, match=r"no column 'key' for the ids; its columns are name, score"):
        parse_table(text, "t.csv", id_column="key")


@pytest.mark.parametrize(("text", "message"), [
    ("", r"t\.csv is empty; the first line must name the columns"),
    ("a,b\n", r"t\.csv has a header but no rows"),
    ("a,,c\n1,2,3\n", r"t\.csv, line 1: column 2 of the header has no name"),
    ("a,b,a\n1,2,3\n", r"t\.csv, line 1: the header names 'a' more than once"),
    ("a,b,c\n1,2,3\n4,5\n", r"t\.csv, line 3: 2 field\(s\) but the header has 3; check the quoting and the "
                            r"delimiter \(comma\)"),
])
def test_malformed_tables_are_refused_with_the_line(text: str, message: str):
    with pytest.raises(TableFileError, match=message):
        parse_table(text, "t.csv")


def test_files_are_checked_before_they_are_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    with pytest.raises(TableFileError, match="does not exist"):
        read_table(str(tmp_path / "none.csv"))
    (tmp_path / "t.xlsx").write_bytes(b"PK")
    with pytest.raises(TableFileError, match=r"t\.xlsx: a table file must be a \.csv or \.tsv file"):
        read_table(str(tmp_path / "t.xlsx"))
    latin = tmp_path / "latin.csv"
    latin.write_bytes("ville\nSète\n".encode("latin-1"))
    with pytest.raises(TableFileError, match=r"latin\.csv is not UTF-8 \(byte 7\); save it as UTF-8"):
        read_table(str(latin))
    excel = tmp_path / "excel.csv"
    excel.write_bytes("\ufeffid;amount\nx;1,5\n".encode())  # Excel's BOM and semicolons
    assert read_table(str(excel)).columns == {"amount": ["1,5"]}  # a decimal comma stays text
    monkeypatch.setattr(table_io, "MAX_TABLE_FILE_BYTES", 10)
    with pytest.raises(TableFileError, match="the limit is 0 MB"):
        read_table(str(excel))


def _transactions_csv(path: Path, n: int = 400) -> Path:
    from engine.agents.tabular_data import transactions_table

    table = transactions_table(n, 7, 50)
    names = list(table["columns"])
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["id", *names])
        for i, row_id in enumerate(table["ids"]):
            writer.writerow([row_id, *(table["columns"][c][i] for c in names)])
    return path


def test_a_scorer_on_a_users_csv_beats_chance_and_reads_its_truth(tmp_path: Path):
    """Transactions written to a CSV the way a user's export looks, read back and scored by the
    fraud MLP: the truth column gives accuracy, well above always saying 'legit'."""
    path = _transactions_csv(tmp_path / "tx.csv")
    ctx = RunContext()
    table = CsvTable(CsvTableParams(path=str(path), target="is_fraud")).run({}, ctx)["table"]
    assert len(table["ids"]) == 400 and table["ids"][0].startswith("tx-") and table["target"] == "is_fraud"
    assert any("read 400 rows x 9 columns (8 numeric)" in line for line in ctx.logs)
    scored = RunContext()
    scores = FraudScore(FraudScore.spec.params()).run({"table": table}, scored)["scores"]
    truth = scores["labels"]
    assert truth is not None and len(truth) == 400
    predicted = scores["scores"].argmax(1)
    accuracy = float((predicted == truth).float().mean())
    always_legit = float((truth == 0).float().mean())  # fraud is rare: the baseline to beat
    recall = float(predicted[truth == 1].float().mean())
    false_alarms = float(predicted[truth == 0].float().mean())
    assert accuracy > always_legit and recall > 0.5 and false_alarms < 0.05, (accuracy, recall, false_alarms)
    assert scores["entities"][:2] == table["columns"]["customer"][:2]
    found, actual = int((predicted[truth == 1] == 1).sum()), int((truth == 1).sum())
    assert scored.logs[-1] == (f"accuracy against ground truth: {accuracy:.3f} (400 rows); fraud: {found} of "
                               f"{actual} found, {int((predicted[truth == 0] == 1).sum())} flagged wrongly")


def test_a_missing_cell_in_a_feature_names_the_row(tmp_path: Path):
    path = _transactions_csv(tmp_path / "tx.csv", 20)
    lines = path.read_text(encoding="utf-8").splitlines()
    cells = lines[3].split(",")
    cells[1] = ""  # amount of the third transaction
    lines[3] = ",".join(cells)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    table = CsvTable(CsvTableParams(path=str(path))).run({}, RunContext())["table"]
    with pytest.raises(ValueError, match=r"column 'amount' is empty at tx-7-2; the model needs a number"):
        FraudScore(FraudScore.spec.params()).run({"table": table}, RunContext())
    table["target"] = "customer"  # truth that is not a class: no accuracy, no crash
    table["columns"]["amount"][2] = 10.0
    assert FraudScore(FraudScore.spec.params()).run({"table": table}, RunContext())["scores"]["labels"] is None


def test_validation_plans_the_files_rows_and_checks_its_columns(tmp_path: Path):
    from engine.items import planned_items

    path = _transactions_csv(tmp_path / "tx.csv", 30)
    renamed = tmp_path / "renamed.csv"
    renamed.write_text(path.read_text(encoding="utf-8").replace("merchant_risk", "merchant_risks", 1),
                       encoding="utf-8")

    def flow(csv_path: str, **params: object) -> Workflow:
        return Workflow.model_validate({"schema_version": 1, "name": "own", "nodes": [
            {"id": "t", "agent": "tabular.csv", "params": {"path": csv_path, **params}},
            {"id": "s", "agent": "tabular.fraud_score"}], "edges": [{"source": "t", "target": "s"}]})

    registry = default_registry()
    assert [i.code for i in validate(flow(str(path)), registry) if i.severity == "error"] == []
    planned = planned_items(flow(str(path), max_rows=12), registry)
    assert planned.items_in["s"] == 12 and planned.columns_out["t"][:2] == ("amount", "hour")
    (issue,) = [i for i in validate(flow(str(renamed)), registry) if i.severity == "error"]
    assert issue.code == "missing_columns" and issue.hint.startswith("did you mean 'merchant_risks'?")
    (issue,) = [i for i in validate(flow(str(tmp_path / "gone.csv")), registry) if i.severity == "error"]
    assert issue.code == "missing_file"


def test_a_csv_is_checked_when_uploaded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    from engine import uploads

    monkeypatch.setenv("SERVICEGRID_DATA_DIR", str(tmp_path))
    stored = uploads.store_upload("tables", "my data.csv", b"id,amount,city\na,1.5,Lyon\nb,2,Nice\n")
    assert stored.detail == "table, 2 rows x 2 columns (1 numeric); columns amount, city"
    assert stored.path.startswith("uploads/tables/") and stored.name == "my_data.csv"
    with pytest.raises(TableFileError, match=r"line 3: 2 field\(s\)"):
        uploads.store_upload("tables", "bad.csv", b"a,b,c\n1,2,3\n4,5\n")
    assert [f.name for f in uploads.list_uploads("tables")] == ["my_data.csv"]
    table = CsvTable(CsvTableParams(path=stored.path)).run({}, RunContext())["table"]
    assert table["columns"]["amount"] == [1.5, 2] and torch.tensor(table["columns"]["amount"]).dtype == torch.float32


def test_the_sample_tables_read_back_and_their_scorers_beat_the_majority_class(tmp_path: Path):
    """The designer's sample buttons keep these files: each reads back as a table whose truth
    column its scorer is measured against, and the scorer does better than always saying 'no'."""
    from engine.agents.table_io import SAMPLES, sample_csv
    from engine.agents.tabular import CreditScore

    for dataset, scorer in (("transactions", FraudScore), ("credit_applicants", CreditScore)):
        path = tmp_path / SAMPLES[dataset].name
        path.write_bytes(sample_csv(dataset))
        assert sample_csv(dataset) == path.read_bytes()  # generated with a fixed seed
        table = CsvTable(CsvTableParams(path=str(path), target=SAMPLES[dataset].target)).run({}, RunContext())["table"]
        scores = scorer(scorer.spec.params()).run({"table": table}, RunContext())["scores"]
        truth, predicted = scores["labels"], scores["scores"].argmax(1)
        accuracy = float((predicted == truth).float().mean())
        majority = max(float((truth == 0).float().mean()), float((truth == 1).float().mean()))
        assert accuracy > majority and float(predicted[truth == 1].float().mean()) > 0.3, (dataset, accuracy, majority)


def test_a_text_column_of_few_values_is_offered_and_checked_by_name(tmp_path: Path):
    """A user's 'region' column (3 values) is a name to pick in a branch, and a typo of it is a
    warning; free text (40 values) and numbers are not names. (The designer's picker offering
    them: tests/ui/test_ui_model.py.)"""
    from engine.items import planned_items

    path = tmp_path / "sales.csv"
    rows = [f"r{i},{['North', 'South', 'East'][i % 3]},{i * 1.5},note {i}" for i in range(40)]
    path.write_text("id,region,amount,note\n" + "\n".join(rows) + "\n")
    assert table_io.table_names(str(path)) == {"region": ("North", "South", "East")}
    flow = Workflow.model_validate({"schema_version": 1, "nodes": [
        {"id": "t", "agent": "tabular.csv", "params": {"path": str(path), "max_rows": 2}},
        {"id": "b", "agent": "flow.branch", "params": {"field": "region", "op": "in", "value": "North, Sout"}}],
        "edges": [{"source": "t", "target": "b"}]})
    registry = default_registry()
    assert planned_items(flow, registry).values_on("t", "table") == {"region": ("North", "South", "East")}
    (issue,) = validate(flow, registry)
    assert issue.code == "never_matches" and issue.hint == "did you mean 'South'?"
