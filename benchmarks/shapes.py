"""Dependency structures shared by asyncflow flows and the plain-asyncio baseline.

A :class:`Graph` is ``n`` tasks numbered ``0..n-1`` in topological order, each with the indexes of
the tasks it waits for. The same ``Graph`` is built into an :class:`asyncflow.Flow` (see
:mod:`benchmarks.flows`) and run by the hand-written executor (see :mod:`benchmarks.baseline`),
so both sides run exactly the same dependency structure.

- ``wide``: ``n`` independent tasks;
- ``chain``: ``n`` tasks in sequence, each waiting for the one before;
- ``lattice``: layers of ``width`` tasks; task ``j`` of layer ``k`` waits for tasks ``j`` and
  ``(j + 1) % width`` of layer ``k - 1`` (the last layer may be partial).
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ("SHAPES", "Graph", "chain", "lattice", "make", "wide")

#: Default lattice width.
LATTICE_WIDTH = 100


@dataclass(frozen=True)
class Graph:
    """``upstream[i]``: the tasks task ``i`` waits for (all lower than ``i``)."""

    shape: str
    upstream: tuple[tuple[int, ...], ...]
    downstream: tuple[tuple[int, ...], ...] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        down: list[list[int]] = [[] for _ in self.upstream]
        for i, ups in enumerate(self.upstream):
            for j in ups:
                down[j].append(i)
        object.__setattr__(self, "downstream", tuple(tuple(d) for d in down))

    @property
    def n(self) -> int:
        """How many tasks."""
        return len(self.upstream)

    @property
    def n_edges(self) -> int:
        """How many dependencies."""
        return sum(len(u) for u in self.upstream)

    @property
    def roots(self) -> tuple[int, ...]:
        """Tasks that wait for nothing."""
        return tuple(i for i, u in enumerate(self.upstream) if not u)

    @property
    def depth(self) -> int:
        """Tasks on the longest path (1 for ``wide``, ``n`` for ``chain``)."""
        level = [0] * self.n
        for i, ups in enumerate(self.upstream):
            level[i] = 1 + max((level[j] for j in ups), default=0)
        return max(level, default=0)


def wide(n: int) -> Graph:
    """``n`` independent tasks."""
    return Graph("wide", ((),) * n)


def chain(n: int) -> Graph:
    """``n`` tasks in sequence."""
    return Graph("chain", tuple(() if i == 0 else (i - 1,) for i in range(n)))


def lattice(n: int, width: int = LATTICE_WIDTH) -> Graph:
    """Layers of ``width`` tasks, each waiting for two neighbours in the layer before."""
    if width < 1:
        raise ValueError(f"lattice width must be at least 1, got {width}")
    upstream: list[tuple[int, ...]] = []
    for i in range(n):
        layer, j = divmod(i, width)
        if layer == 0:
            upstream.append(())
        else:
            prev = (layer - 1) * width
            a, b = prev + j, prev + (j + 1) % width
            upstream.append((a,) if a == b else (a, b))
    return Graph("lattice", tuple(upstream))


SHAPES = ("wide", "chain", "lattice")


def make(shape: str, n: int, width: int = LATTICE_WIDTH) -> Graph:
    """The graph called ``shape`` with ``n`` tasks."""
    if shape == "wide":
        return wide(n)
    if shape == "chain":
        return chain(n)
    if shape == "lattice":
        return lattice(n, width)
    raise ValueError(f"unknown shape {shape!r}; expected one of {SHAPES}")
