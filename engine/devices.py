"""What this machine has: CPU threads and memory (psutil), CUDA devices (torch, when present)."""

from __future__ import annotations

import functools
import importlib.util
import os

import psutil

from engine.resources import Capacity, GpuDevice


def cuda_devices() -> tuple[GpuDevice, ...]:
    """The CUDA devices torch can see; () when torch is absent or has no CUDA."""
    if importlib.util.find_spec("torch") is None or os.environ.get("SERVICEGRID_NO_CUDA"):
        return ()
    import torch

    if not torch.cuda.is_available():
        return ()
    devices = []
    for index in range(torch.cuda.device_count()):
        props = torch.cuda.get_device_properties(index)
        devices.append(
            GpuDevice(index=index, name=props.name, memory_mb=props.total_memory / 2**20)
        )
    return tuple(devices)


@functools.cache
def machine_capacity() -> Capacity:
    """The detected capacity of this machine (cached for the process)."""
    cpu = float(len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)
    memory_mb = psutil.virtual_memory().total / 2**20
    return Capacity(cpu=cpu, memory_mb=memory_mb, gpus=cuda_devices())
