"""Specification of asyncflow._graph: topological sort and cycle search over ``{node: ups}``."""

from __future__ import annotations

import itertools
import random
from collections.abc import Hashable, Iterable, Mapping

import pytest

from asyncflow._graph import find_cycle, topological_sort

Graph = Mapping[str, Iterable[str]]


def assert_topological(order: list[str], nodes: list[str], upstream: Graph) -> None:
    """``order`` holds every node once and puts each upstream before its downstream."""
    assert sorted(order) == sorted(nodes)
    position = {n: i for i, n in enumerate(order)}
    for node, ups in upstream.items():
        for up in ups:
            assert position[up] < position[node], (up, node)


def assert_cycle(
    path: list[Hashable] | None, upstream: Mapping[Hashable, Iterable[Hashable]]
) -> None:
    """``path`` is ``[a, b, ..., a]``: each node upstream of the next, no node twice inside."""
    assert path is not None
    assert len(path) >= 2
    assert path[0] == path[-1]
    assert len(set(path[:-1])) == len(path) - 1
    for up, down in itertools.pairwise(path):
        assert up in set(upstream.get(down, ())), (up, down)


class TestTopologicalSort:
    def test_an_empty_graph_sorts_to_an_empty_list(self) -> None:
        assert topological_sort([], {}) == []

    def test_independent_nodes_keep_the_given_order(self) -> None:
        assert topological_sort(["c", "a", "d", "b"], {}) == ["c", "a", "d", "b"]

    def test_a_chain_given_backwards_comes_out_in_dependency_order(self) -> None:
        upstream = {"b": {"a"}, "c": {"b"}}
        assert topological_sort(["c", "b", "a"], upstream) == ["a", "b", "c"]

    @pytest.mark.parametrize(
        ("nodes", "expected"),
        [
            (["a", "b", "c", "d"], ["a", "b", "c", "d"]),
            (["a", "c", "b", "d"], ["a", "c", "b", "d"]),
            (["d", "c", "b", "a"], ["a", "c", "b", "d"]),
        ],
    )
    def test_a_diamond_orders_its_middle_nodes_as_given(
        self, nodes: list[str], expected: list[str]
    ) -> None:
        upstream = {"b": {"a"}, "c": {"a"}, "d": {"b", "c"}}
        assert topological_sort(nodes, upstream) == expected

    def test_the_sort_is_deterministic(self) -> None:
        nodes = [f"n{i}" for i in range(30)]
        rng = random.Random(0)
        upstream = {
            n: {nodes[j] for j in range(i) if rng.random() < 0.2} for i, n in enumerate(nodes)
        }
        shuffled = nodes[:]
        rng.shuffle(shuffled)
        first = topological_sort(shuffled, upstream)
        assert first == topological_sort(shuffled, upstream)
        assert first is not None
        assert_topological(first, nodes, upstream)

    def test_nodes_missing_from_the_upstream_mapping_are_roots(self) -> None:
        assert topological_sort(["b", "a"], {"b": ["a"]}) == ["a", "b"]

    def test_a_repeated_upstream_counts_once(self) -> None:
        assert topological_sort(["b", "a"], {"b": ["a", "a"]}) == ["a", "b"]

    def test_any_hashable_nodes_are_sorted(self) -> None:
        assert topological_sort([3, 1, 2], {3: {2}, 2: {1}}) == [1, 2, 3]

    @pytest.mark.parametrize(
        ("nodes", "upstream"),
        [
            (["a"], {"a": {"a"}}),
            (["a", "b"], {"a": {"b"}, "b": {"a"}}),
            (["a", "b", "c"], {"b": {"a"}, "c": {"b"}, "a": {"c"}}),
            (["s", "a", "b", "t"], {"a": {"s", "b"}, "b": {"a"}, "t": {"s"}}),
        ],
        ids=["self-loop", "two-cycle", "three-cycle", "cycle-beside-a-dag"],
    )
    def test_a_graph_with_a_cycle_has_no_order(self, nodes: list[str], upstream: Graph) -> None:
        assert topological_sort(nodes, upstream) is None


class TestFindCycle:
    @pytest.mark.parametrize(
        ("nodes", "upstream"),
        [
            ([], {}),
            (["a"], {}),
            (["a", "b", "c"], {"b": {"a"}, "c": {"b"}}),
            (["a", "b", "c", "d"], {"b": {"a"}, "c": {"a"}, "d": {"b", "c"}}),
            (["d", "c", "b", "a"], {"b": ["a"], "c": ["a", "b"], "d": ["a", "b", "c"]}),
        ],
        ids=["empty", "single", "chain", "diamond", "dense-dag"],
    )
    def test_a_dag_has_no_cycle(self, nodes: list[str], upstream: Graph) -> None:
        assert find_cycle(nodes, upstream) is None

    def test_a_self_loop_is_a_cycle_of_one(self) -> None:
        assert find_cycle(["a"], {"a": ["a"]}) == ["a", "a"]

    def test_a_three_cycle_is_reported_in_downstream_direction(self) -> None:
        upstream = {"b": ["a"], "c": ["b"], "a": ["c"]}
        path = find_cycle(["a", "b", "c"], upstream)
        assert_cycle(path, upstream)
        assert path is not None
        assert set(path) == {"a", "b", "c"}

    @pytest.mark.parametrize(
        ("nodes", "upstream", "members"),
        [
            (["a", "b"], {"a": ["b"], "b": ["a"]}, {"a", "b"}),
            (
                ["s", "a", "b", "c", "t"],
                {"a": ["s", "c"], "b": ["a"], "c": ["b"], "t": ["c"]},
                {"a", "b", "c"},
            ),
            (
                ["t", "c", "b", "a", "s"],
                {"a": ["s", "c"], "b": ["a"], "c": ["b"], "t": ["c"]},
                {"a", "b", "c"},
            ),
            (
                ["r", "x", "y", "z"],
                {"x": ["r"], "y": ["x", "z"], "z": ["y"]},
                {"y", "z"},
            ),
        ],
        ids=["two-cycle", "cycle-with-tails", "cycle-with-tails-reversed", "cycle-behind-a-chain"],
    )
    def test_the_cycle_is_a_real_path_through_exactly_the_cycle_nodes(
        self, nodes: list[str], upstream: Graph, members: set[str]
    ) -> None:
        path = find_cycle(nodes, upstream)
        assert_cycle(path, upstream)
        assert path is not None
        assert set(path) == members

    def test_find_cycle_and_topological_sort_agree_on_random_graphs(self) -> None:
        rng = random.Random(2024)
        for _ in range(200):
            nodes = list(range(rng.randint(1, 8)))
            upstream = {n: {m for m in nodes if rng.random() < 0.2} for n in nodes}
            path = find_cycle(nodes, upstream)
            order = topological_sort(nodes, upstream)
            assert (path is None) == (order is not None)
            if path is not None:
                assert_cycle(path, upstream)
