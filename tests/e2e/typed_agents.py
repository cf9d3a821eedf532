"""Typed agents for the browser tests (registered via SERVICEGRID_AGENT_MODULES by the server fixture).

They declare distinct data kinds so the canvas's type checks can be exercised whatever built-in
agents happen to be installed.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from engine.kinds import DataKind
from engine.registry import agent
from engine.resources import ResourceDemand
from engine.spec import Agent, PortSpec, RunContext

_CFG = ConfigDict(extra="forbid", allow_inf_nan=False)


class ReadTextParams(BaseModel):
    model_config = _CFG
    count: int = Field(4, ge=1, le=100, description="how many sentences to emit")


@agent("e2e.read_text", category="e2e", label="Read text", description="Emits a few sentences.",
       outputs=[PortSpec("text", DataKind.TEXT_BATCH)], params=ReadTextParams,
       resources=ResourceDemand(cpu=0.1), expected_duration_s=0.01)
class ReadText(Agent):
    def run(self, inputs: dict[str, Any], ctx: RunContext) -> dict[str, Any]:
        return {"text": ["good"] * self.params.count}


@agent("e2e.load_images", category="e2e", label="Load images", description="Emits an image batch.",
       outputs=[PortSpec("images", DataKind.IMAGE_BATCH)], resources=ResourceDemand(cpu=0.1),
       expected_duration_s=0.01)
class LoadImages(Agent):
    def run(self, inputs: dict[str, Any], ctx: RunContext) -> dict[str, Any]:
        return {"images": [[0.0]]}


class ClassifyParams(BaseModel):
    model_config = _CFG
    model: Literal["tiny", "small"] = Field("tiny", description="which classifier")
    top_k: int = Field(1, ge=1, le=10, description="labels per image")


@agent("e2e.classify_image", category="e2e", label="Classify images", description="Labels images.",
       inputs=[PortSpec("images", DataKind.IMAGE_BATCH)], outputs=[PortSpec("labels", DataKind.LABELS)],
       params=ClassifyParams, resources=ResourceDemand(cpu=0.1), expected_duration_s=0.01)
class ClassifyImage(Agent):
    def run(self, inputs: dict[str, Any], ctx: RunContext) -> dict[str, Any]:
        return {"labels": ["cat"] * len(inputs["images"])}


class SentimentParams(BaseModel):
    model_config = _CFG
    threshold: float = Field(0.5, ge=0, le=1, description="decision threshold")
    tag: str = Field("run", max_length=8, description="a short tag (at most 8 characters)")


@agent("e2e.sentiment", category="e2e", label="Sentiment", description="Scores text.",
       inputs=[PortSpec("text", DataKind.TEXT_BATCH)], outputs=[PortSpec("scores", DataKind.SCORES)],
       params=SentimentParams, resources=ResourceDemand(cpu=0.1), expected_duration_s=0.01)
class Sentiment(Agent):
    def run(self, inputs: dict[str, Any], ctx: RunContext) -> dict[str, Any]:
        return {"scores": [1.0] * len(inputs["text"])}


@agent("e2e.write_rows", category="e2e", label="Write rows", description="Writes a table-like payload.",
       inputs=[PortSpec("rows", DataKind.ANY, accepts=(DataKind.TABLE, DataKind.SCORES, DataKind.LABELS))],
       resources=ResourceDemand(cpu=0.1), expected_duration_s=0.01)
class WriteRows(Agent):
    def run(self, inputs: dict[str, Any], ctx: RunContext) -> dict[str, Any]:
        return {}
