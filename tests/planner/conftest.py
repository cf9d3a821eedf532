"""Fixtures of the planner tests: the benchmark data folder and a registry with sim.task only."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.registry import Registry

BENCHDATA = Path("/work/shared/benchdata")


@pytest.fixture(scope="session")
def benchdata() -> Path:
    if not BENCHDATA.is_dir():
        pytest.skip("benchmark data (/work/shared/benchdata) is not available")
    return BENCHDATA


@pytest.fixture(scope="session")
def sim_registry() -> Registry:
    registry = Registry()
    registry.register_module("engine.agents.sim")
    return registry
