"""Fake agents for tests and CPU-only demos: source, echo, sleep, fail, hang, hold memory.

They honour cancellation and timeouts through the run context, so the executor's lifecycle
rules can be tested in milliseconds without models.
"""

from __future__ import annotations

import os
import threading
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from engine.kinds import DataKind
from engine.registry import agent
from engine.resources import ResourceDemand
from engine.spec import Agent, PortSpec, RunContext

_CFG = ConfigDict(extra="forbid", allow_inf_nan=False)
_ANY_IN = PortSpec("in", DataKind.ANY, "anything", required=False, multiple=True)
_ANY_OUT = PortSpec("out", DataKind.ANY, "anything")


class SourceParams(BaseModel):
    model_config = _CFG
    value: Any = Field(1, description="the value to emit (JSON)")


@agent("test.source", category="testing", label="Value source",
       description="Emits a fixed value.", outputs=[_ANY_OUT], params=SourceParams,
       resources=ResourceDemand(cpu=0.1), expected_duration_s=0.001)
class Source(Agent):
    def run(self, inputs: dict[str, Any], ctx: RunContext) -> dict[str, Any]:
        return {"out": self.params.value}


@agent("test.echo", category="testing", label="Echo",
       description="Returns its inputs as a list (or the single input as is).",
       inputs=[_ANY_IN], outputs=[_ANY_OUT], resources=ResourceDemand(cpu=0.1),
       expected_duration_s=0.001)
class Echo(Agent):
    def run(self, inputs: dict[str, Any], ctx: RunContext) -> dict[str, Any]:
        value = inputs.get("in", [])
        return {"out": value[0] if isinstance(value, list) and len(value) == 1 else value}


class SleepParams(BaseModel):
    model_config = _CFG
    seconds: float = Field(0.05, ge=0, le=86400, description="how long to sleep")
    steps: int = Field(1, ge=1, le=10_000, description="sleep in this many steps, reporting progress after each")


@agent("test.sleep", category="testing", label="Sleep",
       description="Sleeps for a while (wakes early on cancel), then passes its input on.",
       inputs=[_ANY_IN], outputs=[_ANY_OUT], params=SleepParams,
       resources=ResourceDemand(cpu=1), expected_duration_s=0.05,
       duration_fn=lambda p: p.seconds)
class Sleep(Agent):
    def run(self, inputs: dict[str, Any], ctx: RunContext) -> dict[str, Any]:
        steps = self.params.steps
        if steps == 1:
            ctx.wait(self.params.seconds)
        for done in range(1, steps + 1) if steps > 1 else ():
            ctx.wait(self.params.seconds / steps)
            ctx.progress(done, steps)
        return {"out": inputs.get("in")}


class FailParams(BaseModel):
    model_config = _CFG
    message: str = Field("deliberate failure", max_length=1000)
    fail_times: int = Field(-1, ge=-1, description="fail the first N attempts (-1: always)")


@agent("test.fail", category="testing", label="Fail",
       description="Raises RuntimeError (always, or for the first N attempts of a node).",
       inputs=[_ANY_IN], outputs=[_ANY_OUT], params=FailParams,
       resources=ResourceDemand(cpu=0.1), expected_duration_s=0.001)
class Fail(Agent):
    def run(self, inputs: dict[str, Any], ctx: RunContext) -> dict[str, Any]:
        n = ctx.attempt  # set by every executor, so it counts across processes (isolation, Ray)
        if self.params.fail_times < 0 or n <= self.params.fail_times:
            raise RuntimeError(f"{self.params.message} (attempt {n})")
        return {"out": inputs.get("in")}


class HangParams(BaseModel):
    model_config = _CFG
    ignore_cancel: bool = Field(False, description="block without checking for cancel")


@agent("test.hang", category="testing", label="Hang",
       description="Never finishes on its own; stopped only by cancel, timeout or isolation.",
       inputs=[_ANY_IN], outputs=[_ANY_OUT], params=HangParams,
       resources=ResourceDemand(cpu=0.1), expected_duration_s=3600)
class Hang(Agent):
    def run(self, inputs: dict[str, Any], ctx: RunContext) -> dict[str, Any]:
        if self.params.ignore_cancel:
            threading.Event().wait()
        while True:
            ctx.wait(3600)


class HoldMemoryParams(BaseModel):
    model_config = _CFG
    mb: float = Field(16, ge=0, le=1_000_000, description="megabytes to allocate")
    seconds: float = Field(0.05, ge=0, le=86400, description="how long to hold them")


@agent("test.hold_memory", category="testing", label="Hold memory",
       description="Allocates and touches the given megabytes, holds them, then frees them.",
       inputs=[_ANY_IN], outputs=[_ANY_OUT], params=HoldMemoryParams,
       resources=ResourceDemand(cpu=1, memory_mb=16), expected_duration_s=0.05,
       duration_fn=lambda p: p.seconds)
class HoldMemory(Agent):
    def run(self, inputs: dict[str, Any], ctx: RunContext) -> dict[str, Any]:
        size = int(self.params.mb * 2**20)
        block = bytearray(size)
        for i in range(0, size, 4096):  # touch every page so RSS really grows
            block[i] = 1
        ctx.wait(self.params.seconds)
        del block
        return {"out": {"held_mb": self.params.mb, "pid": os.getpid()}}


class TextsParams(BaseModel):
    model_config = _CFG
    n: int = Field(10, ge=0, le=100_000, description="how many texts")


@agent("test.texts", category="testing", label="Numbered texts",
       description="Emits n texts 'item-0' ... with ids (a text batch).",
       outputs=[PortSpec("texts", DataKind.TEXT_BATCH, "texts with ids")], params=TextsParams,
       resources=ResourceDemand(cpu=0.1), expected_duration_s=0.001, items_fn=lambda p, _: p.n)
class Texts(Agent):
    def run(self, inputs: dict[str, Any], ctx: RunContext) -> dict[str, Any]:
        ids = [f"item-{i}" for i in range(self.params.n)]
        return {"texts": {"texts": list(ids), "ids": ids, "labels": None}}


class TagParams(BaseModel):
    model_config = _CFG
    suffix: str = Field("+", max_length=20, description="appended to every text")
    fail_on: str | None = Field(None, description="raise on the batch holding this id")
    wait_s: float = Field(0.0, ge=0, le=60, description="wait per batch (wakes on cancel)")


@agent("test.tag", category="testing", label="Tag texts (itemwise)",
       description="Appends a suffix to every text, batch by batch; can fail on one item.",
       inputs=[PortSpec("texts", DataKind.TEXT_BATCH)], outputs=[PortSpec("texts", DataKind.TEXT_BATCH)],
       params=TagParams, resources=ResourceDemand(cpu=1, memory_mb=10), expected_duration_s=0.001,
       itemwise=True)
class Tag(Agent):
    def run(self, inputs: dict[str, Any], ctx: RunContext) -> dict[str, Any]:
        from engine.agents.batching import run_itemwise

        return run_itemwise(self, inputs, ctx)

    def run_batch(self, inputs: dict[str, Any], ctx: RunContext, start: int) -> dict[str, Any]:
        batch = inputs["texts"]
        if self.params.fail_on in batch["ids"]:
            raise ValueError(f"cannot tag {self.params.fail_on}")
        if self.params.wait_s:
            ctx.wait(self.params.wait_s)
        return {"texts": {**batch, "texts": [t + self.params.suffix for t in batch["texts"]]}}

    def finish(self, inputs: dict[str, Any], outputs: dict[str, Any], ctx: RunContext) -> None:
        ctx.log(f"tagged {len(outputs['texts']['texts'])} texts")
