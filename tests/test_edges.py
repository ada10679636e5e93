"""Specification of ``Edge`` and the markers ``unmapped`` / ``flatten`` (asyncflow/edges.py),
as Prefect 1.x's ``Edge``: its ends, its flags, and the edges it refuses."""

from __future__ import annotations

import pytest

from asyncflow import Edge, FlowValidationError, Task, flatten, unmapped


def named(name: str) -> Task:
    return Task(name=name)


class TestEdge:
    def test_an_edge_knows_both_its_tasks(self) -> None:
        a, b = named("a"), named("b")
        assert Edge(a, b).tasks == {a, b}

    def test_edges_compare_by_the_tasks_they_join_and_their_flags(self) -> None:
        a, b = named("a"), named("b")
        assert Edge(a, b, key="x") == Edge(a, b, key="x")
        assert hash(Edge(a, b, key="x")) == hash(Edge(a, b, key="x"))
        assert Edge(a, b, key="x") != Edge(a, b, key="y")
        assert Edge(a, b) != Edge(a, b, mapped=True)

    def test_a_flatten_marker_flattens_the_edge(self) -> None:
        a, b = named("a"), named("b")
        edge = Edge(flatten(a), b)
        assert (edge.upstream_task, edge.flattened, edge.mapped) == (a, True, False)
        assert Edge(flatten(a), b, mapped=True).mapped is True

    def test_an_unmapped_marker_wins_over_mapped_true(self) -> None:
        a, b = named("a"), named("b")
        edge = Edge(unmapped(a), b, mapped=True)
        assert (edge.upstream_task, edge.mapped) == (a, False)

    def test_markers_may_nest(self) -> None:
        a, b = named("a"), named("b")
        edge = Edge(flatten(unmapped(a)), b, mapped=True)
        assert (edge.upstream_task, edge.mapped, edge.flattened) == (a, False, True)

    def test_an_edge_from_a_task_to_itself_is_refused(self) -> None:
        a = named("a")
        with pytest.raises(ValueError, match="cannot join") as exc_info:
            Edge(a, a)
        assert str(exc_info.value) == "an edge cannot join <Task: a> to itself"

    @pytest.mark.parametrize("key", ["5number", "with space", "class", "a-b", ""])
    def test_a_key_that_is_not_an_identifier_is_refused(self, key: str) -> None:
        with pytest.raises(FlowValidationError) as exc_info:
            Edge(named("a"), named("b"), key=key)
        assert str(exc_info.value) == (f"edge key {key!r} (to <Task: b>) is not a valid identifier")

    def test_valid_keys_are_kept(self) -> None:
        assert Edge(named("a"), named("b"), key="x_1").key == "x_1"

    def test_the_repr_names_both_ends_and_the_key(self) -> None:
        assert repr(Edge(named("a"), named("b"), key="x")) == "<Edge (key=x): a to b>"
        assert repr(Edge(named("a"), named("b"))) == "<Edge: a to b>"
