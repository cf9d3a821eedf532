"""The simulated agent: does no real work and takes its declared duration.

It is what the original API's services and imported benchmark instances (PSPLIB, STG,
WfCommons) become. The planner advances a virtual clock by ``duration_s``; the executor waits
``duration_s * time_scale`` real seconds (``time_scale`` is a run option, 1.0 by default).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from engine.kinds import DataKind
from engine.registry import agent
from engine.resources import ResourceDemand
from engine.spec import Agent, PortSpec, RunContext


class SimParams(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)
    duration_s: float = Field(1.0, ge=0, le=10**9, description="how long the task takes, seconds")


@agent(
    "sim.task",
    category="simulation",
    label="Simulated task",
    description="A task that does no real work and takes its declared duration. "
    "Use it to model services and to import scheduling benchmarks.",
    inputs=[PortSpec("in", DataKind.ANY, "results of upstream tasks", required=False, multiple=True)],
    outputs=[PortSpec("out", DataKind.ANY, "a summary of what ran")],
    params=SimParams,
    resources=ResourceDemand(cpu=1, memory_mb=0),
    expected_duration_s=1.0,
    duration_fn=lambda p: p.duration_s,
    simulated=True,
    color="#94a3b8",
)
class SimTask(Agent):
    def run(self, inputs: dict[str, Any], ctx: RunContext) -> dict[str, Any]:
        ctx.wait(self.params.duration_s * ctx.time_scale)
        return {"out": {"node": ctx.node_id, "duration_s": self.params.duration_s}}
