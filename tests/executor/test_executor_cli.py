"""`servicegrid run` and `servicegrid runs`: exit codes, summary, and the run recorded in SQLite."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from servicegrid.cli import main

FAILING = {
    "schema_version": 1, "name": "failing branch",
    "nodes": [{"id": "src", "agent": "test.source"},
              {"id": "bad", "agent": "test.fail"},
              {"id": "after_bad", "agent": "test.echo"},
              {"id": "ok", "agent": "test.sleep", "params": {"seconds": 0.01}}],
    "edges": [{"source": "src", "target": "bad"}, {"source": "bad", "target": "after_bad"},
              {"source": "src", "target": "ok"}],
}


@pytest.fixture
def db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    url = f"sqlite:///{tmp_path / 'runs.db'}"
    monkeypatch.setenv("SERVICEGRID_DATABASE_URL", url)
    monkeypatch.setenv("SERVICEGRID_DATA_DIR", str(tmp_path / "data"))
    return url


def test_run_with_a_failing_node_exits_1_and_is_stored(db: str, tmp_path: Path, capsys) -> None:
    from storage import Store

    path = tmp_path / "wf.json"
    path.write_text(json.dumps(FAILING))
    assert main(["run", str(path), "--json"]) == 1
    result = json.loads(capsys.readouterr().out)
    status = {n["id"]: n["status"] for n in result["nodes"]}
    assert result["status"] == "failed"
    assert status == {"src": "done", "bad": "failed", "after_bad": "skipped", "ok": "done"}
    with Store(db) as store:
        detail = store.get_run(result["run_id"])
        assert detail is not None and detail.status == "failed"
        stored = {n.node_id: n for n in detail.nodes}
        assert set(stored) == set(status)
        assert stored["bad"].error_type == "RuntimeError"
        for nid in ("src", "bad", "ok"):
            assert stored[nid].wall_s is not None and stored[nid].metrics, nid


def test_run_summary_table_and_runs_listing(db: str, tmp_path: Path, capsys) -> None:
    path = tmp_path / "wf.json"
    ok = dict(FAILING, nodes=[FAILING["nodes"][0], FAILING["nodes"][3]], edges=[FAILING["edges"][2]])
    path.write_text(json.dumps(ok))
    assert main(["run", str(path)]) == 0
    out = capsys.readouterr().out
    assert "node" in out and "wall s" in out and "mem MB" in out and ": succeeded" in out
    assert "GPU MB" not in out  # no node measured GPU memory: no empty column
    run_id = re.search(r"^run (\w+): succeeded", out, re.M).group(1)
    assert main(["runs"]) == 0
    assert run_id in capsys.readouterr().out
    assert main(["runs", "show", run_id, "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["summary"]["id"] == run_id and len(shown["nodes"]) == 2
    assert main(["runs", "show", "no-such-run"]) == 1


def test_gpu_memory_is_shown_per_node_where_it_was_measured(db: str) -> None:
    """The run summary and ``runs show`` get a GPU MB column when a node measured GPU memory; the
    stored run keeps the figure. (A simulated GPU and a fake probe: CUDA is absent here; the real
    probe runs in tests/agents/test_templates_gpu.py on a GPU machine.)"""
    from executor_kit import FakeGpu

    from engine.resources import Capacity, GpuDevice
    from engine.runs import RunManager, RunOptions
    from engine.workflow import Workflow
    from servicegrid.commands.run import format_summary, result_json
    from servicegrid.commands.runs import format_detail
    from storage import Store

    machine = Capacity(cpu=2, memory_mb=4096, gpus=(GpuDevice(index=0, memory_mb=1000, simulated=True),))
    wf = Workflow.model_validate({"name": "gpu column", "nodes": [
        {"id": "on_gpu", "agent": "test.source", "resources": {"device": "cuda", "gpu_memory_mb": 100}},
        {"id": "on_cpu", "agent": "test.source", "resources": {"device": "cpu"}}], "edges": []})
    with Store(db) as store:
        manager = RunManager(machine=machine, gpu=FakeGpu())
        manager.bus.subscribe(store.observer())
        try:
            handle = manager.submit(wf, RunOptions(use_cache=False))
            handle.wait(30)
            snap = handle.snapshot()
        finally:
            manager.shutdown()
            store.flush()
        nodes = {n["id"]: n for n in result_json(snap)["nodes"]}
        assert nodes["on_gpu"]["peak_gpu_mb"] == 123.0 and nodes["on_cpu"]["peak_gpu_mb"] is None
        for table in (format_summary(snap), format_detail(store.get_run(snap.run_id))):
            lines = table.splitlines()
            header = next(line for line in lines if line.startswith("node"))
            assert "GPU MB" in header
            column = header.index("GPU MB") + len("GPU MB")  # right-aligned under its header
            row = {line.split()[0]: line for line in lines if line.startswith(("on_gpu", "on_cpu"))}
            assert row["on_gpu"][:column].endswith("123.0") and row["on_cpu"][:column].endswith("-")


def test_unreadable_file_exits_2(db: str, tmp_path: Path) -> None:
    assert main(["run", str(tmp_path / "missing.json")]) == 2


def test_runs_filters_say_when_nothing_matches(db: str, tmp_path: Path, capsys) -> None:
    path = tmp_path / "wf.json"
    ok = dict(FAILING, nodes=[FAILING["nodes"][0], FAILING["nodes"][3]], edges=[FAILING["edges"][2]])
    path.write_text(json.dumps(ok))
    assert main(["run", str(path), "--json"]) == 0
    capsys.readouterr()
    assert main(["runs", "--status", "failed"]) == 0
    assert capsys.readouterr().out.startswith("no stored run has status 'failed'")
    assert main(["runs", "--status", "succeeded"]) == 0
    assert "failing branch" in capsys.readouterr().out
    with pytest.raises(SystemExit) as exit_:  # a status that does not exist is a usage error
        main(["runs", "--status", "faild"])
    assert exit_.value.code == 2


def test_invalid_workflow_exits_1_with_hints_and_no_empty_progress_bar(db: str, tmp_path: Path, capsys) -> None:
    path = tmp_path / "wf.json"
    path.write_text(json.dumps({"schema_version": 1, "name": "typo",
                                "nodes": [{"id": "a", "agent": "test.sorce"}], "edges": []}))
    assert main(["run", str(path)]) == 1
    err = capsys.readouterr().err
    assert "[unknown_agent] node 'a': no agent named 'test.sorce'" in err
    assert "hint: did you mean 'test.source'" in err
    assert "node/s" not in err and "0%" not in err  # refused before it started: no bar was drawn


CHAIN = {
    "schema_version": 1, "name": "itemwise chain",
    "nodes": [{"id": "src", "agent": "test.texts", "params": {"n": 9}},
              {"id": "a", "agent": "test.tag", "lifecycle": {"execution": {"batch_size": 4}}},
              {"id": "b", "agent": "test.tag", "lifecycle": {"execution": {"batch_size": 4}}}],
    "edges": [{"source": "src", "target": "a"}, {"source": "a", "target": "b"}],
}


@pytest.mark.parametrize("flags, fused", [([], True), (["--no-fuse"], False)])
def test_run_fuses_itemwise_chains_unless_told_not_to(db: str, tmp_path: Path, flags: list[str], fused: bool) -> None:
    from storage import Store

    path = tmp_path / "chain.json"
    path.write_text(json.dumps(CHAIN))
    assert main(["run", str(path), "--no-cache", *flags]) == 0
    with Store(db) as store:
        run_id = store.list_runs()[0].id
        detail = store.get_run(run_id)
        assert detail is not None and detail.options["fuse"] is fused
        assert {n.node_id: n.status for n in detail.nodes} == {"src": "done", "a": "done", "b": "done"}
        logs = " ".join(e.message for e in store.run_events(run_id, ["NodeLog"]))
        assert ("fused a -> b" in logs) is fused


def test_runs_show_prints_what_each_node_logged(db: str, tmp_path: Path, capsys) -> None:
    """A scorer's accuracy against the table's truth is in its log: `runs show` prints it under
    the node table (and `--json` gives every line by node)."""
    path = tmp_path / "credit.json"
    path.write_text(json.dumps({"schema_version": 1, "name": "credit", "nodes": [
        {"id": "applicants", "agent": "tabular.source", "params": {"n_items": 60}},
        {"id": "credit", "agent": "tabular.credit_score"}], "edges": [{"source": "applicants", "target": "credit"}]}))
    assert main(["run", str(path)]) == 0
    run_id = re.search(r"^run (\w+): succeeded", capsys.readouterr().out, re.M).group(1)
    assert main(["runs", "show", run_id]) == 0
    text = capsys.readouterr().out
    assert re.search(r"^logs:\n(?:.*\n)*  credit: accuracy against ground truth: 0\.\d{3} \(60 rows\); default: ", text, re.M)
    assert main(["runs", "show", run_id, "--json"]) == 0
    logs = json.loads(capsys.readouterr().out)["logs"]
    assert any(line.startswith("accuracy against ground truth") for line in logs["credit"])


def test_run_to_a_node_runs_only_what_it_needs_and_the_next_whole_run_reuses_it(db: str, tmp_path: Path,
                                                                                 capsys) -> None:
    path = tmp_path / "wf.json"
    path.write_text(json.dumps(FAILING))  # bad fails, but ok needs only src
    assert main(["run", str(path), "--to", "ok", "--json"]) == 0
    first = json.loads(capsys.readouterr().out)
    assert {n["id"]: n["status"] for n in first["nodes"]} == {"src": "done", "ok": "done"}
    assert main(["run", str(path), "--json"]) == 1  # the whole workflow: bad fails as before
    second = {n["id"]: n["status"] for n in json.loads(capsys.readouterr().out)["nodes"]}
    assert second == {"src": "cached", "ok": "cached", "bad": "failed", "after_bad": "skipped"}
    assert main(["run", str(path), "--to", "nope"]) == 2
    err = capsys.readouterr().err
    assert "--to: no node 'nope' in workflow 'failing branch'" in err and "hint: its nodes are: after_bad, bad" in err


def test_upstream_workflow_keeps_a_node_its_ancestors_and_their_wires() -> None:
    from engine.workflow import upstream_workflow, workflow_from_data

    wf = workflow_from_data(FAILING)
    part = upstream_workflow(wf, ["after_bad", "after_bad"])
    assert part.node_ids() == ["src", "bad", "after_bad"] and part.metadata["run_to"] == ["after_bad"]
    assert [(e.source, e.target) for e in part.edges] == [("src", "bad"), ("bad", "after_bad")]
    assert upstream_workflow(wf, ["src", "ok"]).node_ids() == ["src", "ok"]


def _shown_after_a_pause(db: str, capsys, workflow: dict, options: dict, wait_paused: float) -> str:
    """What ``runs show`` prints of a stored run of ``workflow`` that paused once (``wait_paused``
    seconds after it did) and was then resumed."""
    import time

    from engine.runs import RunManager, RunOptions
    from engine.workflow import Workflow
    from servicegrid.cli import main
    from storage import Store
    from tests.executor.executor_kit import until

    with Store(db) as store:
        manager = RunManager()
        manager.bus.subscribe(store.observer())
        try:
            handle = manager.submit(Workflow.model_validate(workflow), RunOptions(use_cache=False, **options))
            until(lambda: handle.snapshot().paused)
            time.sleep(wait_paused)
            handle.resume()
            handle.wait(30)
        finally:
            manager.shutdown()
            store.flush()
    assert main(["runs", "show", handle.run_id]) == 0
    return capsys.readouterr().out


def test_runs_show_says_how_long_a_run_was_paused(db: str, capsys) -> None:
    """A run stepped and resumed from the UI: its record keeps the pauses, and ``runs show`` sums them."""
    out = _shown_after_a_pause(db, capsys, {"name": "paused", "nodes": [{"id": "a", "agent": "test.source"}]},
                               {"start_paused": True}, 0.3)
    line = next(x for x in out.splitlines() if x.startswith("paused"))
    held = float(line.split(", ")[1].split()[0])
    assert line.startswith("paused 1 time, ") and 0.25 <= held < 2.0


def test_runs_show_names_the_breakpoints_a_run_paused_at(db: str, capsys) -> None:
    """A stored run keeps why it paused: ``runs show`` lists each breakpoint with what its condition found."""
    table = {"columns": {"amount": [20, 950]}, "ids": ["t1", "t2"]}
    out = _shown_after_a_pause(db, capsys, {"name": "tickets", "nodes": [
        {"id": "src", "agent": "test.source", "params": {"value": table}},
        {"id": "check", "agent": "test.echo", "breakpoint": True,
         "break_when": {"field": "amount", "op": ">", "value": 500}}], "edges": [{"source": "src", "target": "check"}]},
        {}, 0.0)
    assert "paused 1 time, " in out and "  breakpoint before check: amount > 500 holds for 1 of 2 rows" in out
