""""Why did it wait?" in plain words: a node that did not wait says when and why it could start."""

from __future__ import annotations

from engine.explain import why_waited
from engine.planner import plan
from engine.resources import Capacity
from tests.lab.lab_checks import make_problem
from ui.lab.steps import WAIT_KINDS, wait_text

CAP = Capacity(cpu=2, memory_mb=4096)


def test_nodes_that_did_not_wait_are_explained_in_plain_words() -> None:
    problem = make_problem([("a", 2.0, {"cpu": 1}, ()), ("b", 0.0, {"cpu": 1}, ()),
                            ("c", 1.0, {"cpu": 1}, ("b",)), ("d", 1.0, {"cpu": 1}, ("a",))], CAP)
    why = why_waited(problem, plan(problem, "fifo"))
    assert why["a"].kind == "none" and why["c"].kind == "none"  # c's only input took no time
    assert "no inputs" in wait_text(why["a"]) and "(none)" not in wait_text(why["a"])
    assert "as soon as its inputs were ready" in wait_text(why["c"])
    assert WAIT_KINDS["none"] == "no wait"
    assert wait_text(why["d"]) == why["d"].text  # real waits keep the engine's explanation
