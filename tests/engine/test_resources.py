"""Resource demands, capacities, the CLI capacity syntax and the admission ledger."""

from __future__ import annotations

import pytest

from engine.errors import CapacityError
from engine.resources import Capacity, GpuDevice, ResourceDemand, ResourceLedger, parse_capacity

MACHINE = Capacity(cpu=8, memory_mb=16384, gpus=(GpuDevice(index=0, name="A", memory_mb=8000),))


def test_parse_capacity_reads_the_cli_form_and_keeps_units() -> None:
    cap = parse_capacity("memory_mb=4096,cpu=2")
    assert (cap.cpu, cap.memory_mb, cap.gpus) == (2, 4096, None)
    assert parse_capacity("memory_gb=4").memory_mb == 4096


def test_parse_capacity_turns_unknown_keys_into_custom_resources() -> None:
    assert parse_capacity("license=3").custom == {"license": 3}


def test_parse_capacity_simulates_gpus_the_machine_lacks_and_labels_them() -> None:
    cap = parse_capacity("gpus=2,gpu_memory_mb=8000", base=Capacity(gpus=()))
    assert [g.simulated for g in cap.gpus] == [True, True]
    assert "simulated" in cap.describe()


def test_parse_capacity_limits_real_gpus_without_simulating_them() -> None:
    cap = parse_capacity("gpu_memory_mb=4000", base=MACHINE)
    assert cap.gpus[0].memory_mb == 4000 and not cap.gpus[0].simulated


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("memory_mb", "name=value"),
        ("memory_mb=lots", "not a number"),
        ("cpu=-1", ">= 0"),
        ("cpu=nan", "finite"),
        ("gpus=2", "simulate them"),
    ],
)
def test_parse_capacity_rejects_bad_items_with_a_clear_message(text: str, fragment: str) -> None:
    with pytest.raises(CapacityError, match=fragment):
        parse_capacity(text, base=Capacity(gpus=()))


def test_resolved_capacity_fills_only_unset_dimensions() -> None:
    cap = Capacity(memory_mb=4096).resolved(MACHINE)
    assert (cap.cpu, cap.memory_mb, len(cap.gpus)) == (8, 4096, 1)


def test_demand_overrides_are_validated() -> None:
    base = ResourceDemand(cpu=1, memory_mb=100)
    assert base.merged({"memory_mb": 2048}).memory_mb == 2048
    with pytest.raises(CapacityError, match="memory_mb"):
        base.merged({"memory_mb": -5})
    with pytest.raises(CapacityError, match="gpu_mem"):
        base.merged({"gpu_mem": 5})


def test_ledger_admits_only_what_fits_in_every_dimension() -> None:
    ledger = ResourceLedger(Capacity(cpu=2, memory_mb=4096, gpus=()))
    big = ResourceDemand(cpu=1, memory_mb=3000)
    assert ledger.place(big) == "cpu"
    ledger.acquire(big, "cpu")
    assert ledger.place(ResourceDemand(cpu=1, memory_mb=2000)) is None
    assert ledger.blocking(ResourceDemand(cpu=1, memory_mb=2000)) == "memory_mb"
    assert ledger.place(ResourceDemand(cpu=1, memory_mb=1000)) == "cpu"
    with pytest.raises(CapacityError):
        ledger.acquire(ResourceDemand(cpu=2), "cpu")
    ledger.release(big, "cpu")
    assert ledger.free() == {"cpu": 2, "memory_mb": 4096}
    assert ledger.peak["memory_mb"] == 3000


def test_ledger_places_gpu_work_on_a_gpu_and_falls_back_to_cpu_for_any() -> None:
    ledger = ResourceLedger(MACHINE.resolved(MACHINE))
    cuda = ResourceDemand(cpu=1, gpu_memory_mb=6000, device="cuda")
    anyd = ResourceDemand(cpu=1, gpu_memory_mb=6000, device="any")
    assert ledger.place(cuda) == "cuda:0"
    ledger.acquire(cuda, "cuda:0")
    assert ledger.place(cuda) is None
    assert ledger.blocking(cuda) == "cuda:0.gpu_memory_mb"
    assert ledger.place(anyd) == "cpu"


def test_ledger_knows_demands_that_can_never_fit() -> None:
    ledger = ResourceLedger(Capacity(cpu=2, memory_mb=1000, gpus=(), custom={"license": 1}))
    assert not ledger.could_ever_fit(ResourceDemand(memory_mb=2000))
    assert not ledger.could_ever_fit(ResourceDemand(device="cuda"))
    assert not ledger.could_ever_fit(ResourceDemand(custom={"license": 2}))
    assert ledger.could_ever_fit(ResourceDemand(custom={"license": 1}))
