"""`servicegrid validate`, `agents` and `schema`: one fixture workflow per validation code."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from engine.issues import IssueCode
from engine.registry import default_registry
from servicegrid.cli import main
from servicegrid.commands.schema import schema_text

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures"
WARNINGS = {IssueCode.ISOLATED_NODE, IssueCode.UNUSED_OUTPUT, IssueCode.EMPTY_WORKFLOW,
            IssueCode.OUTPUTS_NOT_KEPT, IssueCode.MEMORY_BELOW_NEED, IssueCode.NEVER_MATCHES, IssueCode.PIN_STALE,
            IssueCode.FAULT_DRILL, IssueCode.AGENT_UPGRADED, IssueCode.AGENT_NEWER}


def _fixture_specs() -> tuple:
    spec = importlib.util.spec_from_file_location("sg_fixture_agents", FIXTURES / "fixture_agents.py")
    assert spec and spec.loader
    module = sys.modules.get("sg_fixture_agents") or importlib.util.module_from_spec(spec)
    if "sg_fixture_agents" not in sys.modules:
        sys.modules["sg_fixture_agents"] = module
        spec.loader.exec_module(module)
    return module.SPECS


@pytest.fixture
def typed_agents(monkeypatch: pytest.MonkeyPatch) -> None:
    """The fixture agents, added to the default registry for this test only."""
    registry = default_registry()
    for spec in _fixture_specs():
        monkeypatch.setitem(registry._specs, spec.name, spec)


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("code", list(IssueCode), ids=str)
def test_each_code_has_a_fixture_that_validate_json_reports(code, typed_agents, capsys):
    path = FIXTURES / f"{code.value}.json"
    assert path.exists(), f"no fixture workflow for {code.value}"
    if code != IssueCode.PIN_MISSING:  # pinned outputs are in this machine's result cache, except there
        from engine.results import ResultStore

        for node in json.loads(path.read_text()).get("nodes", []) if path.suffix == ".json" and code != "invalid_file" else []:
            if "pin" in node:
                ResultStore().save(node["pin"]["key"], {"out": [1, 2]})
    exit_code, out, err = run_cli(capsys, "validate", "--json", str(path))
    findings = json.loads(out)
    assert code.value in [f["code"] for f in findings], findings
    for finding in findings:
        assert set(finding) == {"code", "node", "port", "message", "hint", "severity"}
        assert finding["message"] and finding["hint"]
    assert exit_code == (0 if code in WARNINGS else 1)
    assert err == ""


def test_the_issue_example_is_valid(capsys):
    exit_code, out, _ = run_cli(capsys, "validate", str(ROOT / "examples" / "two-stage.json"))
    assert exit_code == 0
    assert "valid (0 error(s), 0 warning(s), 2 node(s))" in out
    exit_code, out, _ = run_cli(capsys, "validate", "--json", str(ROOT / "examples" / "two-stage.json"))
    assert (exit_code, json.loads(out)) == (0, [])


def test_human_output_lists_node_port_and_hint(typed_agents, capsys):
    exit_code, out, _ = run_cli(capsys, "validate", str(FIXTURES / "type_mismatch.json"))
    assert exit_code == 1
    assert "error   type_mismatch (node 'c', port 'images'):" in out
    assert "'text_batch'" in out and "'image_batch'" in out
    assert "hint: connect an output of kind 'image_batch'" in out


def test_invalid_file_names_the_line(capsys):
    exit_code, out, _ = run_cli(capsys, "validate", "--json", str(FIXTURES / "invalid_file.json"))
    (finding,) = json.loads(out)
    assert exit_code == 1
    assert finding["code"] == "invalid_file"
    assert finding["message"] == "the file is not valid JSON: Expecting ',' delimiter (at line 4, column 3)"
    assert finding["hint"] == "check for a missing comma, quote or bracket near that place"


@pytest.mark.parametrize("make", ["missing", "directory", "latin1"])
def test_unreadable_files_exit_2_with_one_line(make, tmp_path, capsys):
    path = tmp_path / "wf.json"
    if make == "directory":
        path.mkdir()
    elif make == "latin1":
        path.write_bytes('{"schema_version": 1, "name": "caf\xe9"}'.encode("latin-1"))
    exit_code, out, err = run_cli(capsys, "validate", str(path))
    assert exit_code == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith(f"servicegrid validate: cannot read {path}: ")
    assert "Traceback" not in err


def test_capacity_option_overrides_the_workflow(capsys):
    example = str(ROOT / "examples" / "two-stage.json")
    exit_code, out, _ = run_cli(capsys, "validate", "--json", "--capacity", "memory_mb=1500", example)
    findings = json.loads(out)
    assert exit_code == 1
    assert [(f["code"], f["node"]) for f in findings] == [("capacity_exceeded", "cls")]
    assert "2,048 MB" in findings[0]["message"] and "1,500 MB" in findings[0]["message"]
    exit_code, _, err = run_cli(capsys, "validate", "--capacity", "memory_mb=lots", example)
    assert exit_code == 2 and "not a number" in err


def test_validate_runs_as_a_subprocess():
    env = {**os.environ, "SERVICEGRID_NO_CUDA": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "servicegrid.cli", "validate", "--json", str(FIXTURES / "cycle.json")],
        capture_output=True, text=True, env=env, cwd=ROOT, timeout=120,
    )
    assert proc.returncode == 1, proc.stderr
    assert proc.stdout.startswith("["), f"stdout is not the JSON list:\n{proc.stdout}\n{proc.stderr}"
    cycles = [f for f in json.loads(proc.stdout) if f["code"] == "cycle"]
    assert [c["message"] for c in cycles] == ["the edges form a cycle: a -> b -> c -> a"]


def test_agents_lists_the_registry(capsys):
    exit_code, out, _ = run_cli(capsys, "agents")
    assert exit_code == 0
    assert out.splitlines()[0].split() == ["NAME", "CATEGORY", "INPUTS", "OUTPUTS", "RESOURCES", "EXPECTED"]
    assert any(line.startswith("sim.task ") for line in out.splitlines())
    assert f"{len(default_registry())} agent(s)" in out
    rows = {line.split()[0]: line for line in out.splitlines()[1:-1]}
    assert "gpu=34MB+0.25MB/item device=any" in rows["vision.classify"]  # its GPU memory: once, and per item of a batch
    assert "gpu=" not in rows["vision.source"]


def test_agents_json_and_category_filter(capsys):
    exit_code, out, _ = run_cli(capsys, "agents", "--json", "--category", "testing")
    agents = json.loads(out)
    assert exit_code == 0 and agents
    assert {a["category"] for a in agents} == {"testing"}
    assert {"name", "inputs", "outputs", "resources", "expected_duration_s"} <= set(agents[0])
    exit_code, _, err = run_cli(capsys, "agents", "--category", "testng")
    assert exit_code == 2 and "Did you mean 'testing'?" in err


def test_schema_prints_the_published_schema(capsys):
    exit_code, out, _ = run_cli(capsys, "schema")
    schema = json.loads(out)
    assert exit_code == 0
    assert schema["title"] == "ServiceGrid workflow"
    assert {"nodes", "edges", "schema_version"} <= set(schema["properties"])


def test_docs_schema_is_up_to_date():
    published = (ROOT / "docs" / "workflow-schema.json").read_text(encoding="utf-8")
    assert published == schema_text(), "regenerate it: servicegrid schema -o docs/workflow-schema.json"
