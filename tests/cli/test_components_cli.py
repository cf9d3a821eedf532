"""``servicegrid components``: list, group, ungroup and expand, rewriting the file atomically."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from engine.workflow import load_workflow, workflow_from_data
from servicegrid.cli import main

ROOT = Path(__file__).resolve().parents[2]


def _cli(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_group_list_expand_and_ungroup_a_file(tmp_path: Path, capsys) -> None:
    path = tmp_path / "cs.json"
    shutil.copy(ROOT / "examples" / "customer-service.json", path)
    original = json.loads(path.read_text())
    assert _cli(capsys, "components", str(path))[1].endswith("no components (group nodes with "
                                                              f"`servicegrid components {path} --group NODE ...`)\n")
    code, out, _ = _cli(capsys, "components", str(path), "--group", "intent", "entities", "route", "--name", "triage")
    assert code == 0 and out == "grouped intent, entities, route into component 'triage', drawn as node 'triage'\n"
    grouped = json.loads(path.read_text())
    assert [n["id"] for n in grouped["nodes"]][:2] == ["requests", "triage"]
    code, out, _ = _cli(capsys, "components", str(path))
    assert out == ("triage: 3 nodes (intent, entities, route); inputs texts; outputs tickets; used by triage\n")
    code, out, _ = _cli(capsys, "components", str(path), "--expand")
    expanded = json.loads(out)
    assert "triage/route" in [n["id"] for n in expanded["nodes"]] and "components" not in expanded
    code, out, _ = _cli(capsys, "validate", str(path))
    assert code == 0 and out.endswith("valid (0 error(s), 0 warning(s), 6 node(s), 8 with its components expanded)\n")
    code, out, _ = _cli(capsys, "components", str(path), "--ungroup", "triage")
    assert code == 0 and load_workflow(path).nodes == workflow_from_data(original).nodes


def test_what_cannot_be_grouped_is_said_and_the_file_is_kept(tmp_path: Path, capsys) -> None:
    path = tmp_path / "cs.json"
    shutil.copy(ROOT / "examples" / "customer-service.json", path)
    before = path.read_text()
    code, _, err = _cli(capsys, "components", str(path), "--group", "requests", "route")
    assert code == 1 and "'entities' takes from the selected nodes and feeds them too" in err
    assert "hint: select 'entities', 'intent' as well" in err
    code, _, err = _cli(capsys, "components", str(path), "--group", "requests", "nope")
    assert code == 1 and "no node 'nope'" in err and "hint: its nodes are: requests, intent" in err
    code, _, err = _cli(capsys, "components", str(path), "--ungroup", "requests")
    assert code == 1 and "not an instance of a component" in err
    assert _cli(capsys, "components", str(path), "--name", "x")[0] == 2
    assert path.read_text() == before


def test_save_to_the_library_and_list_it(tmp_path: Path, capsys, monkeypatch) -> None:
    monkeypatch.setenv("SERVICEGRID_DATABASE_URL", f"sqlite:///{tmp_path / 'cli.db'}")
    path = ROOT / "examples" / "support-desks.json"
    assert _cli(capsys, "components", "--library")[1] == \
        "the component library is empty (save one with `servicegrid components FILE --save NAME`)\n"
    code, out, _ = _cli(capsys, "components", str(path), "--save", "triage")
    assert code == 0 and out.startswith("saved component 'triage' to the library at sqlite:///")
    code, out, _ = _cli(capsys, "components", "--library")
    assert out == "triage: 3 nodes; Reads customer requests: intent and entities, then routing rules give each a " \
                  "queue and a priority\n"
    code, _, err = _cli(capsys, "components", str(path), "--save", "triag")
    assert code == 1 and "no component named 'triag'; its components are: triage" in err
    assert _cli(capsys, "components")[0] == 2


def test_runs_show_sums_up_each_component(tmp_path: Path, capsys, monkeypatch) -> None:
    import re

    monkeypatch.setenv("SERVICEGRID_DATABASE_URL", f"sqlite:///{tmp_path / 'runs.db'}")
    monkeypatch.setenv("SERVICEGRID_DATA_DIR", str(tmp_path / "data"))
    assert main(["run", str(ROOT / "examples" / "support-desks.json")]) == 0
    run_id = re.search(r"^run (\w+): succeeded", capsys.readouterr().out, re.M).group(1)
    assert main(["runs", "show", run_id]) == 0
    text = capsys.readouterr().out
    assert re.search(r"^components:\n  general \(triage\): 3 nodes done, span \d+\.\d\d s, busy \d+\.\d\d s, "
                     r"cpu \d+\.\d{3} s, memory \d+\.\d MB\n  payments \(triage\): 3 nodes done", text, re.M), text


def test_export_a_component_and_add_it_to_another_file(tmp_path: Path, capsys) -> None:
    code, out, _ = _cli(capsys, "components", str(ROOT / "examples" / "support-desks.json"), "--export", "triage")
    doc = json.loads(out)
    assert code == 0 and doc["name"] == "triage" and doc["nodes"] == [] and doc["metadata"] == {"kind": "component"}
    assert [c["name"] for c in doc["components"]] == ["triage"]
    shared = tmp_path / "triage.component.json"
    shared.write_text(out)
    target = tmp_path / "two.json"
    shutil.copy(ROOT / "examples" / "two-stage.json", target)
    code, out, _ = _cli(capsys, "components", str(target), "--add", str(shared))
    assert (code, out) == (0, f"added triage from {shared} to {target}\n")
    assert load_workflow(target).component("triage") == load_workflow(shared).components[0]
    changed = json.loads(shared.read_text())
    changed["components"][0]["description"] = "another triage"
    shared.write_text(json.dumps(changed))
    code, out, _ = _cli(capsys, "components", str(target), "--add", str(shared))  # same name, other content
    assert out.endswith("(renamed: triage -> triage 2)\n")
    assert [c.name for c in load_workflow(target).components] == ["triage", "triage 2"]
    code, _, err = _cli(capsys, "components", str(target), "--export", "nope")
    assert code == 1 and "no component named 'nope'" in err and "its components are: triage, triage 2" in err
