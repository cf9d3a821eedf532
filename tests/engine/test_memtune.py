"""glibc malloc thresholds (engine/memtune.py): once a RunManager starts, blocks the size of a
batch's tensors come from the heap, where freed memory is reused, instead of fresh ``mmap``s
that fault in every page again. Each case runs in its own interpreter: the settings are
process-wide and cannot be undone."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys

import pytest

pytestmark = pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc",
                                reason="glibc malloc only")

SCRIPT = """
import ctypes, json
from engine import memtune
from engine.resources import Capacity
from engine.runs import RunManager
RunManager(machine=Capacity(cpu=1, memory_mb=1024, gpus=())).shutdown()
libc = ctypes.CDLL(None)
libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, [ctypes.c_size_t]
address = libc.malloc(24 * 2**20)  # the pipeline benchmark's kept intermediate: 24 MB
heap = next(line.split()[0] for line in open("/proc/self/maps") if line.rstrip().endswith("[heap]"))
low, high = (int(x, 16) for x in heap.split("-"))
print(json.dumps({"tuned": memtune.tune_malloc(), "in_heap": low <= address < high}))
"""


def _run(tuning: str) -> dict:
    env = {**os.environ, "SERVICEGRID_MALLOC_TUNING": tuning}
    out = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, env=env, timeout=120,
                         check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_a_run_manager_keeps_batch_sized_blocks_on_the_heap() -> None:
    assert _run("1") == {"tuned": True, "in_heap": True}


def test_the_tuning_can_be_switched_off() -> None:
    """The control: with glibc's defaults the same block is a fresh mapping."""
    assert _run("0") == {"tuned": False, "in_heap": False}
