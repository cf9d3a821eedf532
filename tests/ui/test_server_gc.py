"""The server does not stall runs with full garbage collections (.streamlit/config.toml,
ui/shell.py). Streamlit ran ``gc.collect(2)`` after every script run, live-monitor ticks included:
150-400 ms with the GIL held, during which every engine thread of a run in progress waited (a
0.04 s finance run took 0.4-0.9 s from the Run page, 0.08-0.2 s without)."""

from __future__ import annotations

import argparse
import gc
import tomllib
from pathlib import Path

from servicegrid.commands import ui as ui_command
from ui import shell

ROOT = Path(__file__).resolve().parents[2]


def test_the_server_runs_without_streamlits_collection_after_each_script_run() -> None:
    config = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())
    assert config["runner"]["postScriptGC"] is False
    parser = argparse.ArgumentParser()
    ui_command.add_parser(parser.add_subparsers())
    cmd = ui_command.command(parser.parse_args(["ui"]))
    assert cmd[cmd.index("--runner.postScriptGC") + 1] == "false"  # wherever it is started from


def test_the_start_up_heap_is_frozen_once_in_a_served_app(monkeypatch) -> None:
    garbage = [[i, {"n": i}] for i in range(50_000)]  # objects the collector tracks
    assert shell.freeze_startup_heap() is False  # no Streamlit Runtime here (tests): left alone
    monkeypatch.setattr(shell.runtime, "exists", lambda: True)
    shell._frozen.clear()
    try:
        assert shell.freeze_startup_heap() is True
        assert gc.get_freeze_count() >= len(garbage)  # out of every later collection's scan
        assert shell.freeze_startup_heap() is False  # once per process
    finally:
        gc.unfreeze()
        shell._frozen.clear()
