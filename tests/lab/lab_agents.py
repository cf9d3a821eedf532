"""A test agent whose declarations are deliberately wrong: it declares 1.5 s and 2,048 MB but
sleeps for ``seconds`` and allocates nothing (learned estimates must correct both)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from engine.kinds import DataKind
from engine.registry import Registry, agent
from engine.resources import ResourceDemand
from engine.spec import Agent, PortSpec, RunContext


class MisdeclaredParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    seconds: float = Field(0.1, ge=0, le=60)


@agent("lab.misdeclared", category="testing", description="Declares 1.5 s and 2 GB; really sleeps `seconds`.",
       inputs=[PortSpec("in", DataKind.ANY, "anything", required=False, multiple=True)],
       outputs=[PortSpec("out", DataKind.ANY, "anything")], params=MisdeclaredParams,
       resources=ResourceDemand(cpu=1, memory_mb=2048), expected_duration_s=1.5)
class Misdeclared(Agent):
    def run(self, inputs: dict[str, Any], ctx: RunContext) -> dict[str, Any]:
        ctx.wait(self.params.seconds)
        return {"out": self.params.seconds}


def lab_registry() -> Registry:
    registry = Registry()
    registry.register_module("engine.agents.sim")
    registry.register_module("engine.agents.testing")
    registry.register(Misdeclared)
    return registry
