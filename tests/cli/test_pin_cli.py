"""`servicegrid pin`: pin a node's output from a stored run, list pins, unpin; `run` then reads the
pin and says so, and `validate` reports a pin whose output this machine lacks."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from servicegrid.cli import main

WF = {"schema_version": 1, "name": "pin-cli",
      "nodes": [{"id": "src", "agent": "test.source", "params": {"value": [1, 2, 3]}},
                {"id": "mid", "agent": "test.echo"},
                {"id": "end", "agent": "test.echo"},
                {"id": "csv", "agent": "flow.sink_csv", "params": {"path": "out.csv"}}],
      "edges": [{"source": "src", "target": "mid"}, {"source": "mid", "target": "end"}]}


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_pin_run_and_unpin(data_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = data_dir / "wf.json"
    wf = json.loads(json.dumps(WF))
    wf["nodes"] = wf["nodes"][:3]  # the sink has its own test below
    path.write_text(json.dumps(wf))
    code, _, err = cli(capsys, "pin", str(path), "mid")
    assert code == 1 and "no stored run of workflow 'pin-cli'" in err and f"servicegrid run {path}" in err
    code, out, _ = cli(capsys, "run", "--json", str(path))
    assert code == 0
    first = json.loads(out)["run_id"]
    code, out, _ = cli(capsys, "pin", str(path), "mid")
    assert code == 0 and f"pinned mid to its output from run {first}" in out
    assert json.loads(path.read_text())["nodes"][1]["pin"]["run_id"] == first
    code, out, _ = cli(capsys, "pin", str(path))
    assert code == 0 and out.startswith("mid: ") and first in out
    # change the source: mid keeps its pinned output, src (which only feeds mid) is not run
    doc = json.loads(path.read_text())
    doc["nodes"][0]["params"]["value"] = [7]
    path.write_text(json.dumps(doc))
    code, out, err = cli(capsys, "run", str(path))
    assert code == 0
    assert f"pinned: mid takes its output from run {first} (stale" in err
    rows = {line.split()[0]: line.split()[1:3] for line in out.splitlines()[1:] if line[:1].strip()}
    rows.pop("run", None), rows.pop("see", None)
    assert rows == {"src": ["skipped", "-"], "mid": ["cached", "pinned"], "end": ["cached", "cache"]}
    assert "not run: its outputs only feed pinned nodes" in out
    run_id = re.search(r"^run (\w+): succeeded", out, re.M).group(1)
    code, out, _ = cli(capsys, "runs", "show", run_id)
    assert code == 0 and f"pinned: mid (from run {first})" in out
    code, out, _ = cli(capsys, "pin", str(path), "mid", "--clear")
    assert code == 0 and "unpinned mid" in out and "pin" not in json.loads(path.read_text())["nodes"][1]
    code, out, _ = cli(capsys, "run", "--json", str(path))
    nodes = {n["id"]: n["status"] for n in json.loads(out)["nodes"]}
    assert nodes == {"src": "done", "mid": "done", "end": "done"}  # computed again from [7]


def test_what_cannot_be_pinned(data_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = data_dir / "wf.json"
    path.write_text(json.dumps(WF))
    code, _, err = cli(capsys, "pin", str(path), "csv")
    assert code == 1 and "cannot be pinned" in err and "side effect" in err
    code, _, err = cli(capsys, "pin", str(path), "nope")
    assert code == 2 and "no node 'nope'" in err and "src, mid, end, csv" in err
    code, _, err = cli(capsys, "pin", str(path), "mid", "--run", "0123abcd")
    assert code == 2 and "no stored run '0123abcd'" in err
    assert json.loads(path.read_text()) == WF  # nothing was written


def test_validate_reports_a_pinned_output_this_machine_lacks(data_dir: Path, capsys) -> None:
    path = data_dir / "wf.json"
    doc = json.loads(json.dumps(WF))
    doc["nodes"][1]["pin"] = {"key": "e" * 32, "run_id": "elsewhere"}
    path.write_text(json.dumps(doc))
    code, out, _ = cli(capsys, "validate", "--json", str(path))
    assert code == 1
    assert ("pin_missing", "mid") in [(f["code"], f["node"]) for f in json.loads(out)]
    code, _, err = cli(capsys, "run", str(path))
    assert code == 1 and "pin_missing" in err and "elsewhere" in err


def test_run_rerun_recomputes_a_node_and_what_follows(data_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = data_dir / "wf.json"
    wf = json.loads(json.dumps(WF))
    wf["nodes"] = wf["nodes"][:3]
    path.write_text(json.dumps(wf))
    assert cli(capsys, "run", "--json", str(path))[0] == 0
    code, out, _ = cli(capsys, "run", "--json", "--rerun", "mid", str(path))
    assert code == 0
    assert {n["id"]: n["status"] for n in json.loads(out)["nodes"]} == {"src": "cached", "mid": "done", "end": "done"}
    code, _, err = cli(capsys, "run", "--rerun", "nope", str(path))
    assert code == 2 and "no node 'nope' to re-run" in err


def test_run_leaves_out_a_disabled_node_and_says_so(data_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = data_dir / "wf.json"
    wf = json.loads(json.dumps(WF))
    wf["nodes"] = wf["nodes"][:3]
    wf["nodes"][1]["disabled"] = True
    path.write_text(json.dumps(wf))
    code, out, err = cli(capsys, "run", str(path))
    assert code == 0 and "disabled: mid; not run either, as they follow it: end" in err
    assert [line.split()[0] for line in out.splitlines()[1:2]] == ["src"] and "mid " not in out
    run_id = re.search(r"^run (\w+): succeeded", out, re.M).group(1)
    assert "left out (disabled, or after a disabled node): mid, end" in cli(capsys, "runs", "show", run_id)[1]
