"""Pure algorithms over a directed graph given as ``{node: set(upstream nodes)}``.

Nothing here knows about tasks; :mod:`asyncflow.flow` uses it for sorting and cycle checks.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Hashable, Iterable, Mapping
from typing import TypeVar

__all__ = ("find_cycle", "topological_sort")

N = TypeVar("N", bound=Hashable)


def topological_sort(nodes: Iterable[N], upstream: Mapping[N, Iterable[N]]) -> list[N] | None:
    """Kahn's algorithm, stable in the order of ``nodes``; ``None`` if the graph has a cycle."""
    order = list(nodes)
    pending = dict.fromkeys(order, 0)
    downstream: dict[N, list[N]] = {n: [] for n in order}
    for node in order:
        for up in set(upstream.get(node, ())):
            pending[node] += 1
            downstream[up].append(node)
    ready = deque(n for n in order if pending[n] == 0)
    result: list[N] = []
    while ready:
        node = ready.popleft()
        result.append(node)
        for down in downstream[node]:
            pending[down] -= 1
            if pending[down] == 0:
                ready.append(down)
    return result if len(result) == len(order) else None


def find_cycle(nodes: Iterable[N], upstream: Mapping[N, Iterable[N]]) -> list[N] | None:
    """One cycle as a path ``[a, b, ..., a]`` (edges pointing downstream), or ``None``."""
    white, grey, black = 0, 1, 2
    colour = dict.fromkeys(nodes, white)
    for start in list(colour):
        if colour[start] != white:
            continue
        # Iterative DFS over upstream edges; the path is kept to report the cycle.
        path: list[N] = [start]
        iters = [iter(upstream.get(start, ()))]
        colour[start] = grey
        while iters:
            nxt = next(iters[-1], None)
            if nxt is None:
                colour[path.pop()] = black
                iters.pop()
                continue
            if colour.get(nxt, black) == grey:
                cycle = [*path[path.index(nxt) :], nxt]
                cycle.reverse()  # report in downstream direction
                return cycle
            if colour.get(nxt) == white:
                colour[nxt] = grey
                path.append(nxt)
                iters.append(iter(upstream.get(nxt, ())))
    return None
