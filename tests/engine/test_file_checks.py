"""Validation reads the files a workflow names before it runs (``unreadable_file``): a malformed
CSV table, a text file without the column asked for or not UTF-8, an image that is not PNG/JPEG, a
model file that is not what its suffix says; a good file gives nothing, and a corrected file is
read again (each version of a file is read once)."""

from __future__ import annotations

import os
from pathlib import Path

from engine.registry import default_registry
from engine.validation import validate
from engine.workflow import Workflow

REGISTRY = default_registry()


def _problems(node: dict) -> list[tuple[str, str]]:
    wf = Workflow.model_validate({"schema_version": 1, "name": "w", "nodes": [{"id": "a", **node}]})
    return [(i.code, i.message) for i in validate(wf, REGISTRY) if i.code in ("unreadable_file", "missing_file")]


def test_a_malformed_table_is_found_before_the_run_and_a_fixed_one_is_read_again(tmp_path: Path):
    table = tmp_path / "t.csv"
    table.write_text("a,b,c\n1,2,3\n4,5\n", encoding="utf-8")
    assert _problems({"agent": "tabular.csv", "params": {"path": str(table)}}) == [
        ("unreadable_file", "node 'a' (tabular.csv): t.csv, line 3: 2 field(s) but the header has 3; check the "
                            "quoting and the delimiter (comma)")]
    table.write_text("a,b,c\n1,2,3\n4,5,6\n", encoding="utf-8")
    os.utime(table, ns=(table.stat().st_atime_ns, table.stat().st_mtime_ns + 10**9))  # a new version
    assert _problems({"agent": "tabular.csv", "params": {"path": str(table)}}) == []
    assert _problems({"agent": "tabular.csv", "params": {"path": str(table), "target": "label"}}) == [
        ("unreadable_file", "node 'a' (tabular.csv): the table has no column 'label' for `target`; its columns "
                            "are a, b, c")]


def test_a_text_file_without_its_column_or_text_is_found(tmp_path: Path):
    tickets = tmp_path / "tickets.csv"
    tickets.write_text("id,body\n1,hello\n", encoding="utf-8")
    node = {"agent": "text.source", "params": {"mode": "file", "path": str(tickets)}}
    assert _problems(node) == [("unreadable_file", "node 'a' (text.source): tickets.csv has no column 'text'; "
                                                   "its columns are id, body; set `column`")]
    node["params"]["column"] = "body"
    assert _problems(node) == []
    latin = tmp_path / "latin.txt"
    latin.write_bytes("très bien\n".encode("latin-1"))
    assert [c for c, _ in _problems({"agent": "text.source", "params": {"mode": "file", "path": str(latin)}})] == [
        "unreadable_file"]
    blank = tmp_path / "blank.txt"
    blank.write_text("\n  \n", encoding="utf-8")
    assert _problems({"agent": "text.source", "params": {"mode": "file", "path": str(blank)}}) == [
        ("unreadable_file", "node 'a' (text.source): blank.txt holds no text (every line or cell is empty)")]


def test_an_image_or_a_model_that_is_not_what_it_says_is_found(tmp_path: Path):
    fake = tmp_path / "scan.png"
    fake.write_text("not an image")
    assert _problems({"agent": "vision.source", "params": {"dataset": "uploads", "paths": [str(fake)]}}) == [
        ("unreadable_file", "node 'a' (vision.source): image 'scan.png' is not a PNG or JPEG file (checked by its "
                            "first bytes); convert it to PNG or JPEG")]
    model = tmp_path / "model.pt"
    model.write_bytes(b"\x80\x04pickle")
    ((code, message),) = _problems({"agent": "custom.model", "params": {"path": str(model)}})
    assert code == "unreadable_file" and "model.pt is not a TorchScript archive (it is not a zip file)" in message


def test_a_path_with_a_name_too_long_for_any_file_system_is_a_finding_not_a_crash():
    """Every check of such a path raises OSError (ENAMETOOLONG): validation raised it."""
    long = "x" * 300 + ".csv"
    for node in ({"agent": "tabular.csv", "params": {"path": long}},
                 {"agent": "text.source", "params": {"mode": "file", "path": "uploads/" + long}},
                 {"agent": "custom.model", "params": {"path": long}},
                 {"agent": "vision.source", "params": {"dataset": "uploads", "paths": [long]}}):
        ((code, message),) = _problems(node)
        assert code == "missing_file" and "a name in the path is 304 bytes long" in message, node
