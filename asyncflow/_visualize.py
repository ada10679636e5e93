"""``flow.visualize()``: the flow's graph drawn by Graphviz, as Prefect 1.x draws it.

Tasks are ellipses (mapped tasks boxes labelled ``name <map>``), edges carry their argument name
and mapped edges are dashed. Given a flow state, each node is filled with its state's colour
(Prefect 1.x's palette) and a mapped task becomes one node per child. Needs the ``viz`` extra
(the ``graphviz`` package) and Graphviz's ``dot`` program.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .exceptions import AsyncflowError
from .states import (
    Cached,
    Cancelled,
    Cancelling,
    Failed,
    Finished,
    Mapped,
    Paused,
    Pending,
    Resume,
    Retrying,
    Running,
    Scheduled,
    Skipped,
    State,
    Success,
    TimedOut,
    TriggerFailed,
)

if TYPE_CHECKING:
    from .flow import Flow
    from .task import Task

__all__ = ("visualize", "GraphvizError", "STATE_COLORS")

#: Prefect 1.x's state colours; the most specific class a state is an instance of wins.
STATE_COLORS: tuple[tuple[type[State], str], ...] = (
    (Cached, "#34d058"),
    (Mapped, "#003ccb"),
    (Skipped, "#62757f"),
    (Success, "#28a745"),
    (TimedOut, "#ff4e33"),
    (TriggerFailed, "#ff5131"),
    (Failed, "#eb0000"),
    (Cancelled, "#bdbdbd"),
    (Finished, "#003ccb"),
    (Cancelling, "#E8E8E8"),
    (Running, "#3d67ff"),
    (Retrying, "#f66a0a"),
    (Resume, "#f58c0c"),
    (Paused, "#99a8e8"),
    (Scheduled, "#ffab00"),
    (Pending, "#7ebdff"),
    (State, "#696969"),
)

_FORMATS = frozenset({"svg", "png", "pdf", "jpg", "jpeg", "gif", "dot", "gv", "json", "ps"})


class GraphvizError(AsyncflowError, RuntimeError):
    """The ``graphviz`` package or Graphviz's ``dot`` program is missing."""


def _color(state: State | None) -> str:
    if state is None:
        return "#00000080"
    for cls, color in STATE_COLORS:
        if isinstance(state, cls):
            return color + "80"
    raise AssertionError("every state is a State")  # pragma: no cover


def _import_graphviz() -> Any:
    try:
        import graphviz
    except ImportError as exc:
        raise GraphvizError(
            "flow.visualize() needs the graphviz package: pip install 'asyncflow[viz]'"
        ) from exc
    return graphviz


def _graph(flow: Flow, flow_state: State | None, horizontal: bool) -> Any:
    graphviz = _import_graphviz()
    states: dict[Task, State] = {}
    if flow_state is not None:
        if not isinstance(flow_state.result, dict):
            raise ValueError(
                f"flow_state must be a finished flow state of {flow!r} "
                f"(its result maps tasks to states), got {flow_state!r}"
            )
        states = flow_state.result
    graph = graphviz.Digraph(name=flow.name)
    if horizontal:
        graph.graph_attr["rankdir"] = "LR"
    mapped = {t for t in flow.tasks if any(e.mapped for e in flow.edges_to(t))}

    def children(t: Task) -> int | None:
        state = states.get(t)
        return len(state.map_states) if isinstance(state, Mapped) else None

    def node_ids(t: Task) -> list[str]:
        n = children(t) if t in mapped else None
        return [str(t.slug)] if n is None else [f"{t.slug}[{i}]" for i in range(n)]

    for t in flow.sorted_tasks():
        label = graphviz.escape(f"{t.name} <map>" if t in mapped else t.name)
        shape = "box" if t in mapped else "ellipse"
        n = children(t) if t in mapped else None
        if n is not None:
            map_states = states[t].map_states  # type: ignore[attr-defined]
            for i, node in enumerate(node_ids(t)):
                graph.node(node, label, shape=shape, style="filled", color=_color(map_states[i]))
        elif flow_state is not None:
            graph.node(str(t.slug), label, shape=shape, style="filled", color=_color(states.get(t)))
        else:
            graph.node(str(t.slug), label, shape=shape)
    for e in sorted(flow.edges, key=lambda e: (str(e.upstream_task.slug), str(e.key))):
        style = "dashed" if e.mapped else None
        ups, downs = node_ids(e.upstream_task), node_ids(e.downstream_task)
        if len(ups) > 1 and len(downs) > 1:  # a mapped child feeds the child with its index
            pairs = list(zip(ups, downs, strict=False))
        else:  # one to many (a map), many to one (a reduce), or one to one
            pairs = [(u, d) for u in ups for d in downs]
        for u, d in pairs:
            graph.edge(u, d, e.key, style=style)
    return graph


def visualize(
    flow: Flow,
    flow_state: State | None = None,
    filename: str | Path | None = None,
    format: str | None = None,
    horizontal: bool = False,
) -> Any:
    """Draw ``flow`` with Graphviz; see :meth:`asyncflow.Flow.visualize`.

    Returns:
        The ``graphviz.Digraph``.
    """
    graphviz = _import_graphviz()
    graph = _graph(flow, flow_state, horizontal)
    try:
        if filename is not None:
            path = Path(filename)
            suffix = path.suffix.lstrip(".").lower()
            if format is None and suffix in _FORMATS:
                graph.render(outfile=path, cleanup=True)
            else:  # as Prefect 1.x: the format's extension is added to the name
                graph.render(str(path), format=format or "pdf", cleanup=True)
        elif not _in_notebook():
            with tempfile.NamedTemporaryFile(delete=False) as tmp:
                tmp.close()
                graph.render(tmp.name, format=format or "pdf", view=True)
    except graphviz.ExecutableNotFound as exc:
        raise GraphvizError(
            "Graphviz's `dot` program was not found on PATH; install Graphviz "
            "(e.g. `apt-get install graphviz` or `brew install graphviz`): the graphviz Python "
            "package alone cannot draw"
        ) from exc
    return graph


def _in_notebook() -> bool:
    try:
        from IPython import get_ipython  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and "IPKernelApp" in getattr(shell, "config", {})
