"""The original library API: the article's program verbatim, and what the Graph adds to it."""

from __future__ import annotations

import os
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.registry import default_registry
from engine.resources import Capacity
from engine.validation import validate
from engine.workflow import dump_workflow, load_workflow
from servicegrid.graph import Graph
from servicegrid.service import Service

ROOT = Path(__file__).resolve().parents[1]

ARTICLE = '''
from servicegrid.service import Service
from servicegrid.graph import Graph

class ImagePreprocessingService(Service):
    def __init__(self, compute_resource=1, execution_time=2):
        self.compute_resource = compute_resource
        self.execution_time = execution_time

class ImageClassificationService(Service):
    def __init__(self, compute_resource=2, execution_time=4):
        self.compute_resource = compute_resource
        self.execution_time = execution_time

preprocessing_service = ImagePreprocessingService()
classification_service = ImageClassificationService()
graph = Graph()
graph.add_node("preprocessing", preprocessing_service)
graph.add_node("classification", classification_service)
graph.add_edge("preprocessing", "classification")
graph.set_node_resource("preprocessing", compute_resource=1, execution_time=2)
graph.set_node_resource("classification", compute_resource=2, execution_time=4)
graph.execute()
print(f"Resource demand: {graph.get_total_resource()}, Execution time: {graph.get_total_time()}")
'''


def test_the_article_program_prints_exactly_its_line(tmp_path):
    script = tmp_path / "article.py"
    script.write_text(ARTICLE, encoding="utf-8")
    shipped = (ROOT / "examples" / "article.py").read_text(encoding="utf-8").splitlines()
    assert "\n".join(line for line in shipped if not line.startswith("#")).strip() == ARTICLE.strip()
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, cwd=tmp_path,
                          env={**os.environ, "SERVICEGRID_NO_CUDA": "1"}, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "Resource demand: 3, Execution time: 6\n"
    assert proc.stderr == ""


def article_graph() -> Graph:
    graph = Graph()
    graph.add_node("preprocessing", Service(1, 2))
    graph.add_node("classification", Service(2, 4))
    graph.add_edge("preprocessing", "classification")
    return graph


def fan_in() -> Graph:
    """Three parallel services of demand 2 feeding one sink."""
    graph = Graph()
    for name, (demand, minutes) in {"a": (2, 3), "b": (2, 2), "c": (2, 4), "sink": (1, 1)}.items():
        graph.add_node(name, Service(demand, minutes))
    for name in "abc":
        graph.add_edge(name, "sink")
    return graph


def test_execute_simulates_in_dependency_order():
    graph = article_graph()
    assert graph.execute() == ["preprocessing", "classification"]
    assert graph.schedule == {"preprocessing": (0, 2), "classification": (2, 6)}
    assert (graph.get_peak_resource(), graph.get_makespan(), graph.get_critical_path()) == (
        2, 6, ["preprocessing", "classification"])


def test_what_the_article_could_not_answer():
    graph = fan_in()
    assert (graph.get_total_resource(), graph.get_total_time()) == (7, 10)
    graph.execute()
    assert graph.get_peak_resource() == 6  # a, b and c run together
    assert graph.get_makespan() == 5 and graph.get_critical_path() == ["c", "sink"]
    assert graph.get_makespan(capacity=4) == 6  # c and a first (longest path), b when a ends
    graph.execute(capacity=4)
    assert graph.schedule["b"] == (3, 5) and graph.schedule["sink"] == (5, 6)
    assert graph.get_peak_resource() == 4
    with pytest.raises(ValueError, match=r"node 'a' needs 2 compute units but the capacity is 1"):
        graph.get_makespan(capacity=1)


def test_run_hooks_get_their_parents_results():
    class Upper(Service):
        def __init__(self) -> None:
            self.compute_resource, self.execution_time = 1, 1

        def run(self, inputs: dict[str, Any]) -> Any:
            return "seen:" + ",".join(sorted(inputs))

    graph = Graph()
    graph.add_node("load", Service(1, 1))
    graph.add_node("upper", Upper())
    graph.add_edge("load", "upper")
    graph.execute()
    assert graph.results == {"load": None, "upper": "seen:load"}


def test_mistakes_give_clear_errors():
    graph = article_graph()
    with pytest.raises(ValueError, match=r"^add_node: a node named 'preprocessing' already exists"):
        graph.add_node("preprocessing", Service())
    with pytest.raises(ValueError) as info:
        graph.set_node_resource("clasification", compute_resource=1)
    assert str(info.value) == ("set_node_resource: there is no node named 'clasification'. Did you mean "
                               "'classification'? Add it first with graph.add_node('clasification', service).")
    with pytest.raises(ValueError, match=r"would create a cycle: classification -> preprocessing -> classification"):
        graph.add_edge("classification", "preprocessing")
    with pytest.raises(ValueError, match="execution_time must be a number >= 0"):
        graph.set_node_resource("preprocessing", execution_time=-1)
    with pytest.raises(TypeError, match="has no 'compute_resource'"):
        graph.add_node("x", object())
    graph.add_edge("preprocessing", "classification")  # an existing edge again is a no-op
    assert graph.edges == [("preprocessing", "classification")]


BRIEF = '''
from servicegrid.service import Service
from servicegrid.graph import Graph
class Pre(Service):
    def __init__(self, compute_resource=1, execution_time=2):
        self.compute_resource = compute_resource
        self.execution_time = execution_time
graph = Graph(); graph.add_node("preprocessing", Pre()); graph.add_edge("preprocessing", "classification")
graph.set_node_resource("preprocessing", compute_resource=1, execution_time=2)
print(graph.execute(), graph.get_total_resource(), graph.get_total_time())
'''


def test_the_briefs_short_form_runs_verbatim_and_says_what_it_lacks(tmp_path):
    """The project brief's condensed program wires an edge to 'classification' before (without)
    adding it: it runs, the unadded node an empty step, and Python's warning says so."""
    script = tmp_path / "brief.py"
    script.write_text(BRIEF, encoding="utf-8")
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, cwd=tmp_path,
                          env={**os.environ, "SERVICEGRID_NO_CUDA": "1"}, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "['preprocessing', 'classification'] 1 2\n"
    assert "node 'classification' was named by add_edge but never added" in proc.stderr
    assert "graph.add_node('classification', service)" in proc.stderr


def test_edges_may_name_nodes_before_they_are_added():
    graph = Graph()
    graph.add_edge("preprocessing", "classification")  # wired first, as networkx allows
    graph.set_node_resource("classification", execution_time=4)
    graph.add_node("preprocessing", Service(1, 2))
    graph.add_node("classification", Service(2, 9))  # keeps its edge and the time set above
    with pytest.raises(ValueError, match="a node named 'classification' already exists"):
        graph.add_node("classification", Service())
    assert graph.edges == [("preprocessing", "classification")]
    assert graph.node_resource("classification") == (2, 4)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # every node has its service: no warning
        assert graph.execute() == ["preprocessing", "classification"]
    assert (graph.get_total_resource(), graph.get_total_time()) == (3, 6)
    typo = article_graph()
    typo.add_edge("preprocessing", "clasification")
    with pytest.warns(UserWarning, match=r"'clasification' was named by add_edge but never added.*"
                                         r"Did you mean 'classification'\?"):
        typo.execute()
    assert typo.service("clasification") is None and typo.schedule["clasification"] == (2, 2)
    with pytest.raises(ValueError, match="would create a cycle"):
        typo.add_edge("clasification", "preprocessing")


def test_longer_cycle_is_named_in_order():
    graph = Graph()
    for name in "abcd":
        graph.add_node(name, Service(1, 1))
    graph.add_edge("a", "b")
    graph.add_edge("b", "c")
    graph.add_edge("c", "d")
    with pytest.raises(ValueError, match=r"add_edge\('d', 'a'\) would create a cycle: d -> a -> b -> c -> d$"):
        graph.add_edge("d", "a")


def test_set_node_resource_overrides_the_service_only_in_the_graph():
    service = Service(5, 5)
    graph = Graph()
    graph.add_node("x", service)
    graph.set_node_resource("x", compute_resource=1)
    assert graph.node_resource("x") == (1, 5)
    assert service.compute_resource == 5


def test_to_workflow_maps_minutes_and_gigabytes():
    workflow = article_graph().to_workflow(name="article", capacity=4)
    pre, cls = workflow.nodes
    assert (pre.params, pre.resources) == ({"duration_s": 120}, {"cpu": 0, "memory_mb": 1024})
    assert (cls.params, cls.resources) == ({"duration_s": 240}, {"cpu": 0, "memory_mb": 2048})
    assert workflow.capacity == Capacity(memory_mb=4096)
    assert [(e.source, e.target) for e in workflow.edges] == [("preprocessing", "classification")]
    assert pre.position is not None and cls.position is not None and pre.position.x < cls.position.x
    assert validate(workflow, default_registry(), Capacity(cpu=1, memory_mb=4096, gpus=())) == []
    assert load_workflow(dump_workflow(workflow)) == workflow


def test_from_workflow_inverts_to_workflow():
    graph = fan_in()
    back = Graph.from_workflow(fan_in().to_workflow())
    assert back.nodes == graph.nodes and back.edges == graph.edges
    assert [back.node_resource(n) for n in back.nodes] == [graph.node_resource(n) for n in graph.nodes]
    assert (back.get_total_resource(), back.get_total_time()) == (7, 10)


def test_from_the_issue_example_file():
    graph = Graph.from_workflow(load_workflow(ROOT / "examples" / "two-stage.json"), default_registry())
    assert (graph.get_total_resource(), graph.get_total_time(), graph.get_makespan()) == (3, 6, 6)


@st.composite
def random_graphs(draw: st.DrawFn) -> Graph:
    n = draw(st.integers(1, 9))
    graph = Graph()
    for i in range(n):
        graph.add_node(f"s{i}", Service(draw(st.integers(0, 4)), draw(st.integers(0, 5))))
    for j in range(1, n):
        for i in draw(st.lists(st.integers(0, j - 1), max_size=3, unique=True)):
            graph.add_edge(f"s{i}", f"s{j}")
    return graph


@settings(max_examples=150, deadline=None)
@given(random_graphs(), st.integers(4, 10))
def test_list_schedule_respects_dependencies_and_capacity(graph, capacity):
    order = graph.execute(capacity=capacity)
    assert sorted(order) == sorted(graph.nodes)
    for a, b in graph.edges:
        assert graph.schedule[a][1] <= graph.schedule[b][0]
    assert graph.get_peak_resource() <= capacity
    makespan = graph.get_makespan(capacity)
    assert graph.get_makespan() <= makespan <= graph.get_total_time()
    assert makespan * capacity >= sum(d * t for d, t in map(graph.node_resource, graph.nodes))
