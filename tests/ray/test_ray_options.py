"""How demands become Ray task options and how Ray's resource dictionaries become capacities."""

from __future__ import annotations

import pytest

from engine.backends.ray import _capacity_of, _gpu_memory_mb
from engine.backends.ray_nodes import build_nodes, task_options, unplaceable
from engine.registry import default_registry
from engine.resources import Capacity, GpuDevice, ResourceDemand
from engine.workflow import Workflow

pytestmark = pytest.mark.ray

H100_NODE = {"NodeID": "abc", "Alive": True, "Labels": {"ray.io/accelerator-type": "H100"},
             "Resources": {"CPU": 16.0, "GPU": 2.0, "memory": 64 * 2.0**30, "object_store_memory": 1e9,
                           "node:10.0.0.1": 1.0, "accelerator_type:H100": 1.0, "licence": 3.0}}


@pytest.mark.parametrize(("demand", "expected"), [
    (ResourceDemand(cpu=2, memory_mb=512), {"num_cpus": 2, "memory": 512 * 2**20}),
    (ResourceDemand(cpu=1, custom={"licence": 1}), {"num_cpus": 1, "resources": {"licence": 1}}),
    (ResourceDemand(cpu=1, device="cuda", gpu_memory_mb=4096), {"num_cpus": 1, "num_gpus": 0.25}),
    (ResourceDemand(cpu=1, device="cuda"), {"num_cpus": 1, "num_gpus": 1.0}),
    (ResourceDemand(cpu=1, device="any", gpu_memory_mb=4096), {"num_cpus": 1, "num_gpus": 0.25}),
    (ResourceDemand(cpu=1, device="any", gpu_memory_mb=40000), {"num_cpus": 1}),  # too big: CPU
    (ResourceDemand(cpu=1, device="cpu", gpu_memory_mb=4096), {"num_cpus": 1}),
])
def test_demands_become_ray_task_options(demand: ResourceDemand, expected: dict) -> None:
    assert task_options(demand, gpu_memory_mb=16384) == expected


def test_no_gpu_in_the_cluster_means_no_gpu_option() -> None:
    assert task_options(ResourceDemand(device="any", gpu_memory_mb=10), gpu_memory_mb=0) == {"num_cpus": 1}


def test_a_ray_node_becomes_a_capacity_with_its_gpus_and_custom_resources() -> None:
    cap = _capacity_of(H100_NODE["Resources"], _gpu_memory_mb([H100_NODE]))
    assert cap.cpu == 16 and cap.memory_mb == 64 * 1024
    assert [g.memory_mb for g in cap.gpus or ()] == [80 * 1024, 80 * 1024]
    assert cap.custom == {"licence": 3.0}


def test_gpu_memory_falls_back_to_the_setting_then_the_assumption(monkeypatch: pytest.MonkeyPatch) -> None:
    unknown = {**H100_NODE, "Labels": {}, "Resources": {"GPU": 1.0}}
    assert _gpu_memory_mb([unknown]) == 16384
    monkeypatch.setenv("SERVICEGRID_RAY_GPU_MEMORY_MB", "24000")
    assert _gpu_memory_mb([unknown]) == 24000


def test_an_unplaceable_demand_names_the_resource() -> None:
    wf = Workflow.model_validate({"nodes": [
        {"id": "big", "agent": "test.source", "resources": {"cpu": 8, "device": "cuda", "gpu_memory_mb": 100}},
        {"id": "small", "agent": "test.source"}]})
    nodes = build_nodes(wf, default_registry(), 0.0, 1.0)
    cluster = [Capacity(cpu=4, memory_mb=1000, gpus=(), custom={}),
               Capacity(cpu=2, memory_mb=1000, gpus=(GpuDevice(memory_mb=50),), custom={})]
    message = unplaceable(nodes["big"], cluster)
    assert message is not None and "cpu 8 (largest Ray node: 4)" in message
    assert "gpu_memory_mb 100 (largest Ray node: 50)" in message
    assert unplaceable(nodes["small"], cluster) is None
