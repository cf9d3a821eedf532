"""Fixtures of the agent tests: one run manager per template test module."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from engine.resources import Capacity
from engine.results import ResultStore
from engine.runs import RunManager


@pytest.fixture(scope="module")
def manager(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunManager]:
    m = RunManager(machine=Capacity(cpu=2, memory_mb=8192, gpus=()),
                   results=ResultStore(tmp_path_factory.mktemp("results")))
    yield m
    m.shutdown()
