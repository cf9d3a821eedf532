"""A recorded run as a file and back: exported (History's JSON, `servicegrid runs export`), imported
into another database with its nodes, events and samples; refused with a clear reason when the
file is not a finished run's export."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from engine.registry import default_registry
from engine.runs import RunManager, RunOptions
from engine.workflow import load_workflow
from servicegrid.cli import main
from storage import Store
from storage.transfer import RunImportError, parse_run_file, run_document
from tests.recording import record_runs

ROOT = Path(__file__).resolve().parents[2]


def _recorded(store: Store) -> str:
    wf = load_workflow(ROOT / "examples" / "two-stage.json")
    [run_id] = record_runs(store, RunManager(registry=default_registry(), machine=None), [wf],
                           RunOptions(time_scale=0.001, user="teacher"))
    return run_id


def test_a_run_exported_from_one_database_is_the_same_run_in_another(tmp_path: Path) -> None:
    source = Store(f"sqlite:///{tmp_path / 'a.db'}")
    try:
        run_id = _recorded(source)
        before = source.get_run(run_id)
        text = run_document(before, source.run_events(run_id), source.run_samples(run_id))
    finally:
        source.close()
    target = Store(f"sqlite:///{tmp_path / 'b.db'}")
    try:
        assert target.import_run(text) == run_id
        after = target.get_run(run_id)
        assert after.summary.status == before.summary.status == "succeeded"
        assert (after.summary.user, after.summary.policy) == ("teacher", before.summary.policy)
        assert [(n.node_id, n.status, n.wall_s) for n in after.nodes] == [
            (n.node_id, n.status, n.wall_s) for n in before.nodes]
        assert after.workflow == before.workflow  # the workflow travels with it: History can re-run it
        assert len(target.run_events(run_id)) == len(json.loads(text)["events"])
        again = target.import_run(text)  # the same run twice: the second gets an id of its own
        assert again != run_id and target.get_run(again).summary.status == "succeeded"
    finally:
        target.close()


@pytest.mark.parametrize("text, reason", [
    ("not json", "not JSON"),
    ('{"run": {}}', "no `events` list"),
    ('{"events": [{"kind": "Nope", "run_id": "r"}]}', "events[0] is not an event this version knows"),
    ('{"events": [{"kind": "RunFinished", "run_id": "r", "status": "succeeded"}]}', "holds 0 RunStarted"),
])
def test_what_is_not_a_run_file_is_refused_with_the_reason(text: str, reason: str) -> None:
    with pytest.raises(RunImportError, match=re.escape(reason)):
        parse_run_file(text)


def test_an_unfinished_run_is_refused(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'a.db'}")
    try:
        run_id = _recorded(store)
        doc = json.loads(run_document(store.get_run(run_id), store.run_events(run_id), []))
    finally:
        store.close()
    doc["events"] = [e for e in doc["events"] if e["kind"] != "RunFinished"]
    with pytest.raises(RunImportError, match="had not finished"):
        parse_run_file(json.dumps(doc))


def test_servicegrid_runs_export_and_import(tmp_path: Path, capsys, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SERVICEGRID_DATABASE_URL", f"sqlite:///{tmp_path / 'a.db'}")
    store = Store()
    try:
        run_id = _recorded(store)
    finally:
        store.close()
    out = tmp_path / "run.json"
    assert main(["runs", "export", run_id, "-o", str(out)]) == 0
    assert capsys.readouterr().out == f"wrote run {run_id} to {out}\n"
    monkeypatch.setenv("SERVICEGRID_DATABASE_URL", f"sqlite:///{tmp_path / 'b.db'}")
    assert main(["runs", "import", str(out)]) == 0
    said = capsys.readouterr().out
    assert said.startswith(f"imported run {run_id} of 'two-stage' by teacher (succeeded, ")
    assert main(["runs", "show", run_id]) == 0 and "succeeded" in capsys.readouterr().out
    bad = tmp_path / "bad.json"
    bad.write_text("{}")
    assert main(["runs", "import", str(bad)]) == 1
    assert "no `events` list" in capsys.readouterr().err
    assert main(["runs", "import", str(tmp_path / "missing.json")]) == 2
    assert main(["runs", "export", "nope"]) == 1
