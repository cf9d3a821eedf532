"""`servicegrid run --step`: the run starts paused and is walked node by node from the terminal:
Enter starts the next node, r resumes the rest, q cancels, the end of input resumes."""

from __future__ import annotations

import io
import json
import re
import sys
from pathlib import Path

import pytest

from servicegrid.cli import main

CHAIN = {"schema_version": 1, "name": "steps", "nodes": [
    {"id": "a", "agent": "test.source", "params": {"value": [1]}},
    {"id": "b", "agent": "test.sleep", "params": {"seconds": 0.01}},
    {"id": "c", "agent": "test.echo"}], "edges": [{"source": "a", "target": "b"}, {"source": "b", "target": "c"}]}


@pytest.fixture
def chain(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("SERVICEGRID_DATABASE_URL", f"sqlite:///{tmp_path / 'runs.db'}")
    monkeypatch.setenv("SERVICEGRID_DATA_DIR", str(tmp_path / "data"))
    path = tmp_path / "chain.json"
    path.write_text(json.dumps(CHAIN))
    return path


def _run(chain: Path, answers: str, monkeypatch: pytest.MonkeyPatch, capsys) -> tuple[int, str]:
    monkeypatch.setattr(sys, "stdin", io.StringIO(answers))
    code = main(["run", str(chain), "--step", "--no-cache"])
    return code, capsys.readouterr().err


def test_enter_starts_each_node_in_turn(chain: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    code, err = _run(chain, "\n\n\n", monkeypatch, capsys)
    assert code == 0
    prompts = re.findall(r"paused: Enter starts (\w+)", err)
    assert prompts == ["a", "b", "c"]  # one node per Enter, in order
    assert err.index("done    a") < err.index("Enter starts b") < err.index("done    b") < err.index("Enter starts c")


def test_r_resumes_the_rest_and_the_end_of_input_too(chain: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    code, err = _run(chain, "\nr\n", monkeypatch, capsys)
    assert code == 0 and re.findall(r"paused: Enter starts (\w+)", err) == ["a", "b"]
    code, err = _run(chain, "", monkeypatch, capsys)
    assert code == 0 and "(end of input: resuming)" in err


def test_q_cancels_the_run(chain: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    code, err = _run(chain, "\nq\n", monkeypatch, capsys)
    assert code == 1
    assert "done    a" in err and "done    b" not in err


def test_break_pauses_before_the_node_and_asks(chain: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO("\nr\n"))
    assert main(["run", str(chain), "--break", "b", "--no-cache"]) == 0
    err = capsys.readouterr().err
    assert "breakpoint: the run paused before b" in err
    assert err.index("done    a") < err.index("paused before b") < err.index("done    b")
    assert re.findall(r"paused: Enter starts (\w+)", err) == ["b", "c"]  # the step started b; r resumed c


def test_a_breakpoint_in_the_file_without_a_terminal_goes_on(chain: Path, monkeypatch: pytest.MonkeyPatch,
                                                             capsys) -> None:
    data = json.loads(chain.read_text())
    data["nodes"][2]["breakpoint"] = True
    chain.write_text(json.dumps(data))
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))
    assert main(["run", str(chain), "--no-cache"]) == 0
    err = capsys.readouterr().err
    assert "breakpoint: the run paused before c" in err and "(end of input: resuming)" in err


def test_break_names_an_unknown_node(chain: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))
    assert main(["run", str(chain), "--break", "nope"]) == 2
    assert "no node 'nope' to pause before" in capsys.readouterr().err


def test_break_if_pauses_only_when_its_condition_holds(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    table = {"columns": {"amount": [20, 950]}, "ids": ["t1", "t2"]}
    path = tmp_path / "tickets.json"
    path.write_text(json.dumps({
        "schema_version": 1, "name": "tickets",
        "nodes": [{"id": "src", "agent": "test.source", "params": {"value": table}},
                  {"id": "check", "agent": "test.echo"}],
        "edges": [{"source": "src", "target": "check"}]}))
    monkeypatch.setattr(sys, "stdin", io.StringIO("r\n"))
    assert main(["run", str(path), "--break-if", "check", "amount > 500", "--no-cache"]) == 0
    err = capsys.readouterr().err
    assert "breakpoint: the run paused before check (amount > 500 holds for 1 of 2 rows)" in err
    caught = err.split("what it caught at input in (1 row):\n", 1)[1].splitlines()[:2]  # the rows, as in the designer
    assert caught[0].split() == ["id", "amount"] and caught[1].split() == ["t2", "950"]
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))
    assert main(["run", str(path), "--break-if", "check", "amount > 5000", "--no-cache"]) == 0
    assert "paused" not in capsys.readouterr().err
    assert main(["run", str(path), "--break-if", "check", "amount 5000"]) == 2
    assert "breakpoint on 'check': cannot read the condition 'amount 5000'" in capsys.readouterr().err


def _flow(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, nodes: list[dict], pairs: list[tuple[str, str]]) -> Path:
    """A workflow file of ``nodes`` wired by ``pairs``, with the database and data folder in ``tmp_path``."""
    monkeypatch.setenv("SERVICEGRID_DATABASE_URL", f"sqlite:///{tmp_path / 'runs.db'}")
    monkeypatch.setenv("SERVICEGRID_DATA_DIR", str(tmp_path / "data"))
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps({"schema_version": 1, "name": name, "nodes": nodes,
                                "edges": [{"source": a, "target": b} for a, b in pairs]}))
    return path


def test_set_changes_a_node_at_the_pause_before_it_starts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                         capsys) -> None:
    """Edit and continue from the terminal: `set NODE PARAM=VALUE` at the step prompt; the run then
    computes with it, and the stored run says what changed."""
    path = _flow(tmp_path, monkeypatch, "tags", [
        {"id": "src", "agent": "test.texts", "params": {"n": 3}},
        {"id": "tag", "agent": "test.tag", "params": {"suffix": "+"}, "breakpoint": True},
        {"id": "out", "agent": "flow.sink_csv", "params": {"filename": "tags.csv"}}], [("src", "tag"), ("tag", "out")])
    answers = "set tag suffix=-x\nset tag suffix=\"" + "y" * 30 + "\"\nset src n=5\nset tag\nr\n"
    monkeypatch.setattr(sys, "stdin", io.StringIO(answers))
    assert main(["run", str(path), "--no-cache"]) == 0
    err = capsys.readouterr().err
    assert "changed tag: suffix '+' -> '-x'" in err
    assert "not changed: the new settings of 'tag' do not validate" in err and "at most 20 characters" in err
    assert "not changed: node 'src' of run" in err and "has ended (done)" in err
    assert "not changed: write `set NODE PARAM=VALUE`, for example `set route threshold=0.7`" in err
    written = (tmp_path / "data" / "outputs" / "tags.csv").read_text()
    assert "item-0-x" in written and "item-0+" not in written
    run_id = re.search(r"run (\w{12})", err).group(1)
    assert main(["runs", "show", run_id]) == 0
    shown = capsys.readouterr().out
    assert "settings changed during the run: suffix '+' -> '-x'" in shown


def test_pause_on_failure_from_the_terminal_fix_retry_or_go_on(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                               capsys) -> None:
    """--pause-on-failure: the run holds the failed node; `retry` runs it again (fails again
    unfixed), `set` fixes it, `retry` then succeeds; with `r` the run goes on without it."""
    path = _flow(tmp_path, monkeypatch, "flaky", [
        {"id": "src", "agent": "test.texts", "params": {"n": 3}},
        {"id": "check", "agent": "test.fail", "params": {"fail_times": -1, "message": "bad rule"}},
        {"id": "out", "agent": "test.echo"}], [("src", "check"), ("check", "out")])
    monkeypatch.setattr(sys, "stdin", io.StringIO("\nretry\nset check fail_times=0\nretry\n"))
    assert main(["run", str(path), "--no-cache", "--pause-on-failure"]) == 0
    err = capsys.readouterr().err
    held = "failed: the run holds check and what follows it (RuntimeError: node 'check' (agent 'test.fail') failed"
    assert err.count(held) == 2  # the first failure, then the retry before the fix
    assert "nothing is ready to start: retry the failed node, r goes on without it, q cancels" in err
    assert "changed check: fail_times -1 -> 0" in err
    assert err.index("changed check") < err.index("done    check") < err.index("done    out")
    monkeypatch.setattr(sys, "stdin", io.StringIO("r\n"))
    assert main(["run", str(path), "--no-cache", "--pause-on-failure"]) == 1
    err = capsys.readouterr().err
    assert "  skipped out: upstream node 'check' failed" in err and "end of input" not in err  # r, not the end
