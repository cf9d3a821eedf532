"""Resource demands, capacities and the ledger that admits demands without over-committing.

Units are explicit in every name: ``cpu`` is CPU threads, ``*_mb`` is megabytes, ``*_s`` seconds.
The same ledger serves the planner (on a virtual clock) and the executor (in real time).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from engine.errors import CapacityError

DevicePreference = Literal["cpu", "cuda", "any"]
EPS = 1e-9

_FINITE = {"allow_inf_nan": False}


class ResourceDemand(BaseModel):
    """What one node holds while it runs. Admission requires every dimension to fit."""

    model_config = ConfigDict(frozen=True, extra="forbid", **_FINITE)

    cpu: float = Field(1.0, ge=0, le=1e6, description="CPU threads")
    memory_mb: float = Field(0.0, ge=0, le=1e9, description="host memory, MB")
    gpu_memory_mb: float = Field(0.0, ge=0, le=1e9, description="GPU memory on its device, MB")
    device: DevicePreference = Field(
        "cpu", description="cpu, cuda (a GPU is required) or any (GPU when one fits, else CPU)"
    )
    custom: dict[str, float] = Field(default_factory=dict, description="named resources")

    @field_validator("custom")
    @classmethod
    def _custom_non_negative(cls, value: dict[str, float]) -> dict[str, float]:
        for key, amount in value.items():
            if not key or amount < 0 or amount != amount or amount > 1e9:
                raise ValueError(f"custom resource {key!r} must be a name with 0 <= amount <= 1e9")
        return value

    def merged(self, overrides: Mapping[str, Any] | None) -> ResourceDemand:
        """This demand with some fields replaced (a node's ``resources`` block).

        Raises:
            CapacityError: when an override names an unknown field or has a bad value.
        """
        if not overrides:
            return self
        data = self.model_dump()
        data.update(overrides)
        try:
            return ResourceDemand.model_validate(data)
        except ValidationError as exc:
            raise CapacityError(_pydantic_message("resources", exc)) from None

    def amounts(self) -> dict[str, float]:
        """Every non-zero dimension by name (``cpu``, ``memory_mb``, ``gpu_memory_mb``, custom)."""
        out = {"cpu": self.cpu, "memory_mb": self.memory_mb, "gpu_memory_mb": self.gpu_memory_mb}
        out.update(self.custom)
        return {k: v for k, v in out.items() if v > 0}


class GpuDevice(BaseModel):
    """One GPU: a real CUDA device or a simulated one for CPU-only classrooms."""

    model_config = ConfigDict(frozen=True, extra="forbid", **_FINITE)

    index: int = Field(0, ge=0)
    name: str = "GPU"
    memory_mb: float = Field(..., gt=0, le=1e9)
    simulated: bool = False

    @property
    def device_id(self) -> str:
        return f"cuda:{self.index}"

    @property
    def label(self) -> str:
        kind = "simulated" if self.simulated else self.name
        return f"{self.device_id} ({kind}, {self.memory_mb / 1024:.1f} GB)"


class Capacity(BaseModel):
    """What may be in use at once. ``None`` means "take the machine's value" (see ``resolved``)."""

    model_config = ConfigDict(frozen=True, extra="forbid", **_FINITE)

    cpu: float | None = Field(None, gt=0, le=1e6, description="CPU threads")
    memory_mb: float | None = Field(None, gt=0, le=1e12, description="host memory, MB")
    gpus: tuple[GpuDevice, ...] | None = Field(None, description="GPU devices; () for none")
    custom: dict[str, float] = Field(default_factory=dict)

    def resolved(self, machine: Capacity) -> Capacity:
        """Fill every unset dimension from ``machine`` (normally the detected capacity)."""
        return Capacity(
            cpu=self.cpu if self.cpu is not None else machine.cpu,
            memory_mb=self.memory_mb if self.memory_mb is not None else machine.memory_mb,
            gpus=self.gpus if self.gpus is not None else (machine.gpus or ()),
            custom={**machine.custom, **self.custom},
        )

    @property
    def has_gpu(self) -> bool:
        return bool(self.gpus)

    def describe(self) -> str:
        parts = []
        if self.cpu is not None:
            parts.append(f"{self.cpu:g} CPU threads")
        if self.memory_mb is not None:
            parts.append(f"{self.memory_mb:,.0f} MB memory")
        for gpu in self.gpus or ():
            parts.append(gpu.label)
        parts += [f"{v:g} {k}" for k, v in sorted(self.custom.items())]
        return ", ".join(parts) or "unbounded"


def parse_capacity(text: str, base: Capacity | None = None) -> Capacity:
    """Parse ``memory_mb=4096,cpu=2`` (CLI form) on top of ``base``.

    Keys: ``cpu``, ``memory_mb``, ``memory_gb``, ``gpus`` (a count), ``gpu_memory_mb`` /
    ``gpu_memory_gb`` (per GPU); any other key is a custom named resource. GPUs declared here
    that the machine does not have are simulated (and labelled so).

    Raises:
        CapacityError: with the offending item and an example of the right form.
    """
    base = base or Capacity()
    values: dict[str, Any] = {
        "cpu": base.cpu,
        "memory_mb": base.memory_mb,
        "gpus": base.gpus,
        "custom": dict(base.custom),
    }
    gpu_count: int | None = None
    gpu_mem: float | None = None
    for raw in filter(None, (p.strip() for p in text.split(","))):
        key, sep, val = raw.partition("=")
        key = key.strip()
        if not sep or not key:
            raise CapacityError(
                f"capacity item {raw!r} is not of the form name=value; "
                "write it like `memory_mb=4096,cpu=2`"
            )
        try:
            number = float(val)
        except ValueError:
            raise CapacityError(
                f"capacity item {raw!r}: {val.strip()!r} is not a number; "
                "write it like `memory_mb=4096`"
            ) from None
        if number != number or number in (float("inf"), float("-inf")) or number < 0:
            raise CapacityError(f"capacity item {raw!r} must be a finite number >= 0")
        if key == "memory_gb":
            key, number = "memory_mb", number * 1024
        if key == "gpu_memory_gb":
            key, number = "gpu_memory_mb", number * 1024
        if key in ("cpu", "memory_mb"):
            values[key] = number
        elif key == "gpus":
            gpu_count = int(number)
        elif key == "gpu_memory_mb":
            gpu_mem = number
        else:
            values["custom"][key] = number
    if gpu_count is not None or gpu_mem is not None:
        values["gpus"] = _declared_gpus(base.gpus or (), gpu_count, gpu_mem)
    try:
        return Capacity.model_validate(values)
    except ValidationError as exc:
        raise CapacityError(_pydantic_message("capacity", exc)) from None


def _declared_gpus(
    real: tuple[GpuDevice, ...], count: int | None, memory_mb: float | None
) -> tuple[GpuDevice, ...]:
    count = len(real) if count is None else count
    if count and memory_mb is None and len(real) < count:
        raise CapacityError(
            f"capacity asks for {count} GPU(s) but this machine has {len(real)}; "
            "give their memory to simulate them, e.g. `gpus=2,gpu_memory_mb=8000`"
        )
    gpus = []
    for i in range(count):
        if i < len(real):
            dev = real[i]
            mem = min(dev.memory_mb, memory_mb) if memory_mb is not None else dev.memory_mb
            gpus.append(dev.model_copy(update={"memory_mb": mem}))
        else:
            gpus.append(
                GpuDevice(index=i, name="simulated GPU", memory_mb=memory_mb, simulated=True)
            )
    return tuple(gpus)


def _pydantic_message(where: str, exc: ValidationError) -> str:
    parts = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"])
        parts.append(f"{where}.{loc}: {err['msg']} (got {err.get('input')!r})")
    return "; ".join(parts)


class ResourceLedger:
    """Free capacity per device; admits a demand only when every dimension fits.

    Devices are ``cpu`` (CPU threads, host memory) and ``cuda:N`` (GPU memory). A node placed on
    a GPU also holds its CPU threads and host memory. Custom resources are global. Not
    thread-safe: the executor serialises access under its own lock.
    """

    def __init__(self, capacity: Capacity) -> None:
        if capacity.cpu is None or capacity.memory_mb is None:
            raise CapacityError("the ledger needs a resolved capacity (cpu and memory_mb set)")
        self.capacity = capacity
        self.total: dict[str, float] = {"cpu": capacity.cpu, "memory_mb": capacity.memory_mb}
        for gpu in capacity.gpus or ():
            self.total[f"{gpu.device_id}.gpu_memory_mb"] = gpu.memory_mb
        for key, amount in capacity.custom.items():
            self.total[f"custom.{key}"] = amount
        self.used: dict[str, float] = dict.fromkeys(self.total, 0.0)
        self.peak: dict[str, float] = dict.fromkeys(self.total, 0.0)

    # -- what a demand needs on a device ------------------------------------------------
    @staticmethod
    def needs(demand: ResourceDemand, device: str) -> dict[str, float]:
        """The ledger keys and amounts ``demand`` holds when placed on ``device``."""
        need = {"cpu": demand.cpu, "memory_mb": demand.memory_mb}
        if device.startswith("cuda"):
            need[f"{device}.gpu_memory_mb"] = demand.gpu_memory_mb
        for key, amount in demand.custom.items():
            need[f"custom.{key}"] = amount
        return {k: v for k, v in need.items() if v > 0}

    def candidate_devices(self, demand: ResourceDemand) -> list[str]:
        """Devices this demand may use, in order of preference."""
        gpus = [g.device_id for g in self.capacity.gpus or ()]
        if demand.device == "cuda":
            return gpus
        if demand.device == "any":
            return [*gpus, "cpu"]
        return ["cpu"]

    def could_ever_fit(self, demand: ResourceDemand) -> bool:
        """Whether the demand fits on some device of an empty ledger."""
        return any(
            all(amount <= self.total.get(key, 0.0) + EPS for key, amount in self.needs(demand, d).items())
            for d in self.candidate_devices(demand)
        )

    def fits_on(self, demand: ResourceDemand, device: str) -> bool:
        return all(
            self.used.get(key, 0.0) + amount <= self.total.get(key, 0.0) + EPS
            for key, amount in self.needs(demand, device).items()
        )

    def place(self, demand: ResourceDemand) -> str | None:
        """The first preferred device on which ``demand`` fits now, or None."""
        for device in self.candidate_devices(demand):
            if self.fits_on(demand, device):
                return device
        return None

    def blocking(self, demand: ResourceDemand) -> str | None:
        """Name of a resource that keeps ``demand`` from fitting now (for "waiting for ...")."""
        for device in self.candidate_devices(demand) or ["cpu"]:
            for key, amount in self.needs(demand, device).items():
                if self.used.get(key, 0.0) + amount > self.total.get(key, 0.0) + EPS:
                    return key
        return None

    def acquire(self, demand: ResourceDemand, device: str) -> None:
        need = self.needs(demand, device)
        if not self.fits_on(demand, device):
            raise CapacityError(f"demand {need} does not fit on {device}: free {self.free()}")
        for key, amount in need.items():
            self.used[key] += amount
            self.peak[key] = max(self.peak[key], self.used[key])

    def release(self, demand: ResourceDemand, device: str) -> None:
        for key, amount in self.needs(demand, device).items():
            self.used[key] = max(0.0, self.used[key] - amount)

    def free(self) -> dict[str, float]:
        return {k: self.total[k] - self.used[k] for k in self.total}
