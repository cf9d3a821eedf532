"""Graph helpers: orders, cycles, critical paths and layers, checked against networkx and by hand."""

from __future__ import annotations

import itertools

import networkx as nx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.graphs import critical_path, find_cycle, find_cycles, format_cycle, layers, topological_order


def test_topological_order_keeps_the_given_order_where_free():
    assert topological_order("dcba", [("a", "b")]) == ["d", "c", "a", "b"]
    assert topological_order("ab", [("a", "b"), ("b", "a")]) is None


def test_edges_to_unknown_nodes_are_ignored():
    assert topological_order("ab", [("a", "zz"), ("zz", "a"), ("a", "b")]) == ["a", "b"]


def test_cycles_are_named_in_edge_order_from_the_earliest_node():
    edges = [("a", "b"), ("c", "a"), ("b", "c"), ("x", "y"), ("y", "x"), ("s", "s"), ("c", "x")]
    assert find_cycles(["y", "a", "b", "c", "x", "s"], edges) == [["y", "x"], ["a", "b", "c"], ["s"]]
    assert find_cycle("ab", [("a", "b")]) is None
    assert format_cycle(["a", "b", "c"]) == "a -> b -> c -> a"


def test_deep_chain_does_not_recurse():
    n = 20_000
    ids = [f"n{i}" for i in range(n)]
    chain = [(ids[i], ids[i + 1]) for i in range(n - 1)]
    assert topological_order(ids, chain) == ids
    assert critical_path(dict.fromkeys(ids, 1.0), chain) == (float(n), ids)
    assert len(layers(ids, chain)) == n
    assert find_cycle(ids, [*chain, (ids[-1], ids[0])]) == ids


def test_critical_path_by_hand():
    durations = {"a": 1, "b": 5, "c": 2, "d": 1}
    edges = [("a", "b"), ("a", "c"), ("b", "d"), ("c", "d")]
    assert critical_path(durations, edges) == (7.0, ["a", "b", "d"])
    assert critical_path({}, []) == (0.0, [])
    with pytest.raises(ValueError, match=r"a -> b -> a"):
        critical_path({"a": 1, "b": 1}, [("a", "b"), ("b", "a")])


def test_layers_put_cycles_last():
    assert layers("abcde", [("a", "b"), ("a", "c"), ("b", "d"), ("c", "d")]) == [["a", "e"], ["b", "c"], ["d"]]
    assert layers("abc", [("a", "b"), ("b", "c"), ("c", "b")]) == [["a"], ["b", "c"]]


@st.composite
def graphs(draw: st.DrawFn) -> tuple[list[str], list[tuple[str, str]]]:
    n = draw(st.integers(1, 12))
    ids = [f"v{i}" for i in range(n)]
    edges = draw(st.lists(st.tuples(st.sampled_from(ids), st.sampled_from(ids)), max_size=30))
    return ids, edges


@settings(max_examples=200, deadline=None)
@given(graphs())
def test_agrees_with_networkx(graph):
    ids, edges = graph
    g = nx.DiGraph()
    g.add_nodes_from(ids)
    g.add_edges_from(edges)
    order = topological_order(ids, edges)
    assert (order is not None) == nx.is_directed_acyclic_graph(g)
    if order is not None:
        position = {n: i for i, n in enumerate(order)}
        assert sorted(order) == sorted(ids)
        assert all(position[s] < position[t] for s, t in edges)
        durations = {n: float(i % 3) for i, n in enumerate(ids)}
        nx.set_node_attributes(g, durations, "d")
        length, path = critical_path(durations, edges)
        assert length == sum(durations[n] for n in path)
        assert all(g.has_edge(a, b) for a, b in itertools.pairwise(path))
        best = max(sum(durations[n] for n in p) for s in ids for t in ids for p in nx.all_simple_paths(g, s, t)) \
            if len(ids) <= 8 else length
        assert length >= max(durations.values()) and length >= best
        assert [n for layer in layers(ids, edges) for n in layer] != [] and \
            sum(len(layer) for layer in layers(ids, edges)) == len(ids)
    else:
        cycles = find_cycles(ids, edges)
        assert cycles
        for cycle in cycles:
            assert all(g.has_edge(a, b) for a, b in zip(cycle, [*cycle[1:], cycle[0]], strict=True))
        assert len(cycles) == sum(1 for c in nx.strongly_connected_components(g)
                                  if len(c) > 1 or g.has_edge(next(iter(c)), next(iter(c))))
