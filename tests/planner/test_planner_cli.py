"""``servicegrid plan``: the two-stage example, JSON and text output, errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from servicegrid.cli import main

TWO_STAGE = {
    "schema_version": 1,
    "name": "two-stage",
    "nodes": [
        {"id": "pre", "agent": "sim.task", "params": {"duration_s": 120}, "resources": {"memory_mb": 1024}},
        {"id": "cls", "agent": "sim.task", "params": {"duration_s": 240}, "resources": {"memory_mb": 2048}},
    ],
    "edges": [{"source": "pre", "target": "cls"}],
    "capacity": {"memory_mb": 4096, "cpu": 2},
}
EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "two-stage.json"


@pytest.fixture
def two_stage(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("SERVICEGRID_DATA_DIR", str(tmp_path / "data"))
    path = tmp_path / "two-stage.json"
    path.write_text(json.dumps(TWO_STAGE))
    return path


@pytest.mark.parametrize("policy", ["auto", "fifo", "critical_path"])
def test_plan_json_of_the_two_stage_example(
    two_stage: Path, policy: str, capsys: pytest.CaptureFixture[str]
) -> None:
    source = EXAMPLE if EXAMPLE.is_file() else two_stage
    assert main(["plan", str(source), "--capacity", "memory_mb=4096", "--policy", policy, "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["makespan"] == 360
    assert out["critical_path"] == ["pre", "cls"]
    assert out["lower_bound"] == 360 and out["gap"] == 0
    assert [(n["id"], n["start"], n["end"], n["device"]) for n in out["nodes"]] == [
        ("pre", 0, 120, "cpu"),
        ("cls", 120, 360, "cpu"),
    ]
    assert out["peak"]["memory_mb"] == 2048


def test_plan_text_shows_a_gantt_and_the_figures(two_stage: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plan", str(two_stage), "--policy", "fifo"]) == 0
    out = capsys.readouterr().out
    assert "pre" in out and "cls" in out and "#" in out
    assert "makespan     360 s" in out and "critical path pre -> cls" in out


def test_a_demand_that_never_fits_names_the_node(two_stage: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plan", str(two_stage), "--capacity", "memory_mb=1500", "--json"]) == 1
    err = capsys.readouterr().err
    assert "cls" in err and "memory" in err


def test_stg_without_processors_is_an_error(benchdata: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plan", str(benchdata / "stg/50/rand0000.stg")]) == 1
    assert "--processors" in capsys.readouterr().err
    assert main(["plan", str(benchdata / "stg/50/rand0000.stg"), "--processors", "16", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["makespan"] == 55  # the proven optimum = critical path


def test_bad_numbers_are_refused_with_what_to_give(two_stage: Path, benchdata: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plan", str(benchdata / "stg/50/rand0000.stg"), "--processors", "0"]) == 1
    assert "needs at least 1 processor, not 0" in capsys.readouterr().err
    for budget in ("-1", "nan"):
        assert main(["plan", str(two_stage), "--budget-s", budget]) == 2
        assert "--budget-s must be a number of seconds >= 0" in capsys.readouterr().err
