"""The lifecycle diagram: the rules as states, the state a node is in filled, the ones it went
through outlined, how it ended named; the rules a run's node ran by, from its agent and overrides."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

from engine.registry import default_registry
from engine.spec import Lifecycle
from ui.lifecycle_svg import FILL, lifecycle_svg, node_lifecycle

SVG = "{http://www.w3.org/2000/svg}"
RULES = Lifecycle.model_validate({"execution": {"retries": 2, "timeout_s": 5, "batch_size": 32},
                                  "exit": {"max_items": 100}})


def _boxes(svg: str) -> dict[str, dict[str, str]]:
    """Each box's title -> its rect's attributes and its sub text (from the tooltip)."""
    out = {}
    for g in ET.fromstring(svg).iter(f"{SVG}g"):
        title, sub = g.find(f"{SVG}title").text.split(": ", 1)
        out[title] = {**g.find(f"{SVG}rect").attrib, "sub": sub}
    return out


def test_the_rules_are_drawn_as_states_without_a_run() -> None:
    boxes = _boxes(lifecycle_svg(RULES, inputs=2))
    assert boxes["Start"]["sub"] == "on all of 2 inputs"
    assert boxes["Run"]["sub"] == "3 attempts · timeout 5 s · batch 32"
    assert boxes["Retry"]["sub"] == "after 0.5 s × 2ⁿ" and boxes["Done"]["sub"] == "after 100 items"
    assert {b["fill"] for b in boxes.values()} == {"#ffffff"}  # nothing is in a state


def test_a_run_fills_the_state_it_is_in_and_outlines_the_ones_it_went_through() -> None:
    boxes = _boxes(lifecycle_svg(RULES, inputs=1, status="running", attempts=2))
    assert boxes["Run"]["fill"] == FILL["run"] and boxes["Run"]["sub"].startswith("attempt 2 of 3")
    assert boxes["Retry"]["stroke"] == FILL["retry"]  # it retried once
    assert boxes["Done"]["stroke"] != FILL["done"]
    ended = _boxes(lifecycle_svg(RULES, inputs=1, status="failed", attempts=3, error_type="AgentTimeoutError"))
    assert ended["Timed out"]["fill"] == FILL["end"]
    once = _boxes(lifecycle_svg(Lifecycle(), inputs=0, status="done", attempts=1))
    assert once["Done"]["fill"] == FILL["done"] and once["Retry"]["sub"] == "no retries"
    assert once["Start"]["sub"] == "when it is started" and once["Retry"]["fill"] == "#ffffff"


def test_the_rules_of_a_run_s_node_come_from_its_agent_and_overrides() -> None:
    workflow = {"nodes": [{"id": "a", "agent": "test.source"},
                          {"id": "b", "agent": "test.echo", "lifecycle": {"execution": {"retries": 4}}},
                          {"id": "c", "agent": "no.such"}],
                "edges": [{"source": "a", "target": "b"}]}
    rules, inputs = node_lifecycle(workflow, "b", default_registry())
    assert (rules.execution.retries, inputs) == (4, 1)
    assert node_lifecycle(workflow, "c", default_registry()) is None
    assert node_lifecycle(workflow, "zz", default_registry()) is None
    assert not re.search(r"<script", lifecycle_svg(rules, inputs))
