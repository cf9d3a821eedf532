"""The bad-input corpus: every malformed file gets a clear error through the public entry points."""

from __future__ import annotations

import json
import pickle
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from corpus_check import CORPUS, answer

from engine.errors import ModelFileError, WorkflowFileError
from engine.validation import validate_text
from engine.workflow import MAX_FILE_BYTES, Workflow, load_workflow, parse_document, workflow_from_data
from servicegrid.cli import main

INDEX: list[dict[str, Any]] = json.loads((CORPUS / "index.json").read_text(encoding="utf-8"))
CAP = {"cpu": 4, "memory_mb": 4096, "gpus": []}


def test_the_corpus_holds_at_least_sixty_indexed_files() -> None:
    on_disk = {p.name for p in CORPUS.iterdir()} - {"index.json"}
    assert {e["file"] for e in INDEX} == on_disk
    assert len(on_disk) >= 60


@pytest.mark.parametrize("entry", INDEX, ids=[e["file"] for e in INDEX])
def test_each_bad_input_gets_its_documented_error(entry: dict[str, Any]) -> None:
    codes, message = answer(entry)
    assert entry["expected"] in codes, f"{entry['file']} ({entry['description']}): got {codes}"
    assert entry["fragment"] in message
    if entry["entry"] == "validate" and entry["expected"] != "UnicodeDecodeError":
        assert "Traceback" not in message


@pytest.mark.parametrize(("file", "code"), [
    ("truncated.json", 1), ("future_schema.json", 1), ("cycle3.json", 1), ("nan_param.json", 1),
    ("latin1.json", 2), ("binary.json", 2), ("xss_agent.json", 1),
])
def test_cli_exit_codes(file: str, code: int, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", str(CORPUS / file)]) == code
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    assert ("invalid" in out) if code == 1 else ("cannot read" in err)


def test_cli_reads_a_directory_as_an_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", str(tmp_path)]) == 2
    assert "directory" in capsys.readouterr().err


def _chain(n: int, agent: str = "sim.task") -> str:
    nodes = [{"id": f"n{i}", "agent": agent} for i in range(n)]
    edges = [{"source": f"n{i}", "target": f"n{i + 1}"} for i in range(n - 1)]
    return json.dumps({"schema_version": 1, "name": "big", "nodes": nodes, "edges": edges, "capacity": CAP})


def test_a_20000_deep_chain_validates_without_recursion() -> None:
    low = sys.getrecursionlimit()
    assert low < 20000  # the chain is deeper than any recursive walk could go
    workflow, issues = validate_text(_chain(20000))
    assert workflow is not None and len(workflow.nodes) == 20000
    assert not [i for i in issues if i.is_error]


def test_a_20000_deep_cycle_is_found_and_its_message_stays_short() -> None:
    doc = json.loads(_chain(20000))
    doc["edges"].append({"source": "n19999", "target": "n0"})
    _, issues = validate_text(json.dumps(doc))
    (cycle,) = [i for i in issues if i.code == "cycle"]
    assert "n0 -> n1" in cycle.message


@pytest.mark.slow
def test_a_100000_node_workflow_validates() -> None:
    start = time.perf_counter()
    workflow, issues = validate_text(_chain(100_000))
    elapsed = time.perf_counter() - start
    assert workflow is not None and len(workflow.nodes) == 100_000
    assert not [i for i in issues if i.is_error]
    print(f"100,000-node chain validated in {elapsed:.1f} s")  # reported, not asserted


@pytest.mark.parametrize(("fmt", "depth"), [("json", 5_000), ("json", 100_000), ("yaml", 5_000)])
def test_deeply_nested_values_are_refused_not_crashed(depth: int, fmt: str) -> None:
    nest = "[" * depth + "]" * depth
    text = ('{"schema_version":1,"nodes":[{"id":"a","agent":"test.source","params":{"value":' + nest + "}}]}"
            if fmt == "json" else f"schema_version: 1\nnodes:\n- id: a\n  agent: test.source\n  params:\n    value: {nest}\n")
    workflow, issues = validate_text(text)
    assert workflow is None
    assert issues[0].code == "invalid_file" and "nests lists or objects too deeply" in issues[0].message
    with pytest.raises(WorkflowFileError, match="too deeply"):  # the path of the Run page's upload
        workflow_from_data(parse_document(text, fmt=fmt))


_LAUGHS = "".join(f"{a}: &{a} [{', '.join([f'*{p}' if p else '0'] * 9)}]\n"
                  for p, a in zip(["", *"abcdefgh"], "abcdefghi", strict=True))


@pytest.mark.parametrize("aliases", [_LAUGHS + "bomb: *i\n", "loop: &loop [*loop]\n"],
                         ids=["billion-laughs", "self-reference"])
def test_yaml_aliases_that_expand_without_end_are_refused_quickly(aliases: str) -> None:
    text = aliases + "schema_version: 1\nnodes: []\nedges: []\n"  # 9**9 values, or endless
    workflow, issues = validate_text(text)
    assert workflow is None
    assert issues[0].code == "invalid_file" and "expands to more than" in issues[0].message
    with pytest.raises(WorkflowFileError, match="aliases"):  # the Run page's and the import's path
        workflow_from_data(parse_document(text, fmt="yaml"))


@pytest.mark.timeout(60)  # without the guard, validation walks 387 million values
def test_yaml_alias_guard_in_the_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "laughs.yaml"
    path.write_text(_LAUGHS + "schema_version: 1\nname: *i\nnodes: []\nedges: []\n")
    assert main(["validate", str(path)]) == 1
    assert "aliases" in capsys.readouterr().out


def test_yaml_anchors_within_reason_still_load() -> None:
    text = ("schema_version: 1\nnodes:\n- id: a\n  agent: test.source\n  lifecycle: &rules {execution: {retries: 2}}\n"
            "- id: b\n  agent: test.echo\n  lifecycle: *rules\nedges:\n- {source: a, target: b}\n")
    workflow = workflow_from_data(parse_document(text, fmt="yaml"))
    assert [n.lifecycle for n in workflow.nodes] == [{"execution": {"retries": 2}}] * 2


def test_an_oversized_file_is_refused_before_reading(tmp_path: Path) -> None:
    big = tmp_path / "big.json"
    with big.open("wb") as fh:  # sparse: the size is checked before a byte is read
        fh.truncate(MAX_FILE_BYTES + 1)
    with pytest.raises(WorkflowFileError, match="workflow files are limited to"):
        load_workflow(big)
    _, issues = validate_text(big)
    assert issues[0].code == "invalid_file"


def test_oversized_text_is_refused() -> None:
    text = "{" + " " * MAX_FILE_BYTES + "}"
    with pytest.raises(WorkflowFileError, match="larger than"):
        load_workflow(text)


def test_a_pickle_renamed_pt_is_refused_and_never_executed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from engine.agents.model_files import load_model

    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self) -> tuple[Any, tuple[str, str]]:
            return (open, (str(marker), "w"))

    raw = pickle.dumps(Payload())
    for name in ("model.pt", "model.pth", "model.onnx"):
        (tmp_path / name).write_bytes(raw)
        with pytest.raises(ModelFileError):
            load_model(str(tmp_path / name))
    import torch

    torch.save({"x": Payload()}, tmp_path / "saved.pt")  # a zip archive holding the payload in data.pkl
    marker.unlink(missing_ok=True)  # torch.save itself does not run __reduce__'s result, but be sure
    with pytest.raises(ModelFileError, match="could not be loaded as TorchScript"):
        load_model(str(tmp_path / "saved.pt"))
    assert not marker.exists()


def test_an_oversized_model_is_refused(tmp_path: Path) -> None:
    from engine.agents.model_files import MAX_MODEL_BYTES, load_model

    big = tmp_path / "big.pt"
    with big.open("wb") as fh:
        fh.write(b"PK\x03\x04")
        fh.truncate(MAX_MODEL_BYTES + 1)
    with pytest.raises(ModelFileError, match="the limit is"):
        load_model(str(big))


def test_an_unreadable_file_never_reaches_the_store(data_dir: Path) -> None:
    from storage import Store

    with Store() as store:
        before = store.list_workflows(include_deleted=True)
        for entry in INDEX:
            if entry["entry"] != "validate" or entry["expected"] not in ("invalid_file", "UnicodeDecodeError"):
                continue
            with pytest.raises((WorkflowFileError, UnicodeDecodeError)):
                store.save_workflow(load_workflow(CORPUS / entry["file"]))
        assert store.list_workflows(include_deleted=True) == before


def test_a_failed_save_leaves_no_half_written_workflow(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from storage import Store, workflows

    real = workflows.WorkflowVersionRecord

    class Broken:  # the version row fails after the workflow row was added to the session
        version = real.version
        workflow_id = real.workflow_id

        def __init__(self, **_kw: Any) -> None:
            raise RuntimeError("disk full")

    wf = Workflow.model_validate({"schema_version": 1, "name": "half", "nodes": [{"id": "a", "agent": "test.sleep"}]})
    with Store() as store:
        monkeypatch.setattr(workflows, "WorkflowVersionRecord", Broken)
        with pytest.raises(RuntimeError, match="disk full"):
            store.save_workflow(wf)
        monkeypatch.undo()
        assert store.list_workflows(include_deleted=True) == []


def test_the_cli_leaves_no_partial_output(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    from servicegrid.commands.schema import schema_text

    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    for entry in INDEX[:20]:
        main(["validate", "--json", str(CORPUS / entry["file"])])
    assert list(work.iterdir()) == []  # validate writes nothing
    missing = work / "no-such-dir" / "schema.json"
    assert main(["schema", "-o", str(missing)]) == 2
    assert not missing.exists() and not missing.parent.exists()
    assert "Traceback" not in capsys.readouterr().err
    out = work / "schema.json"
    assert main(["schema", "-o", str(out)]) == 0
    assert out.read_text(encoding="utf-8") == schema_text()
