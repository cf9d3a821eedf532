"""Base class of our torch-backed agents: place the model once (CUDA when asked and present, else
the CPU) and say in each run's log when a requested GPU was not available.
"""

from __future__ import annotations

from engine.agents import runtime
from engine.spec import Agent, RunContext


class TorchAgent(Agent):
    """Subclasses implement ``build(device)``; ``run`` calls ``ready(ctx)`` before computing."""

    requested_device = "cpu"
    loaded = False

    def load(self, device: str) -> None:
        self.requested_device = device
        self.device = runtime.resolve_device(device)
        self.build(self.device)
        self.loaded = True

    def build(self, device: str) -> None:
        """Create the model and load its weights onto ``device``."""
        raise NotImplementedError

    def ready(self, ctx: RunContext) -> None:
        """Load on first use and log a CUDA-to-CPU fallback."""
        if not self.loaded:
            self.load(self.device)
        if self.requested_device != self.device:
            runtime.resolve_device(self.requested_device, ctx)  # logs "running on the CPU instead"

    def unload(self) -> None:
        self.loaded = False
