"""Small tasks the functional API creates for you.

``t["key"]`` becomes a :class:`GetItem`; a list, tuple, set or dict *containing tasks* passed as
an argument becomes a :class:`List`, :class:`Tuple`, :class:`Set` or :class:`Dict` task that
assembles the upstream results.
"""

from __future__ import annotations

from typing import Any

from ..task import Task
from .operators import GetItem

__all__ = (
    "Constant",
    "GetItem",
    "List",
    "Tuple",
    "Set",
    "Dict",
    "collection_task",
    "constant_task",
)


def _ordered(items: dict[str, Any]) -> list[Any]:
    return [items[f"arg_{i}"] for i in range(len(items))]


class List(Task):
    """Collects its keyword arguments ``arg_0 .. arg_n`` into a list."""

    def run(self, **items: Any) -> list[Any]:
        return _ordered(items)


class Tuple(Task):
    """Collects its keyword arguments ``arg_0 .. arg_n`` into a tuple."""

    def run(self, **items: Any) -> tuple[Any, ...]:
        return tuple(_ordered(items))


class Set(Task):
    """Collects its keyword arguments ``arg_0 .. arg_n`` into a set."""

    def run(self, **items: Any) -> set[Any]:
        return set(_ordered(items))


class Dict(Task):
    """Builds a dict from ``keys`` and ``values`` (each a list)."""

    def run(self, keys: list[Any], values: list[Any]) -> dict[Any, Any]:
        return dict(zip(keys, values, strict=True))


class Constant(Task):
    """Returns ``value``: a plain value standing where a task is needed (as 1.x's ``Constant``).

    Args:
        value: what the task returns.
        **kwargs: any other ``Task`` argument.
    """

    def __init__(self, value: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.value = value

    def run(self) -> Any:
        return self.value


def constant_task(value: Any) -> Constant:
    """A :class:`Constant` for ``value``, named after its repr."""
    return Constant(value, name=repr(value)[:40])


def contains_task(value: Any) -> bool:
    """Whether ``value`` is a list/tuple/set/dict holding a task anywhere inside."""
    if isinstance(value, Task):
        return True
    if isinstance(value, dict):
        return any(contains_task(k) or contains_task(v) for k, v in value.items())
    if isinstance(value, list | tuple | set | frozenset):
        return any(contains_task(v) for v in value)
    return False


def collection_task(value: Any, flow: Any) -> Task:
    """A task in ``flow`` that rebuilds ``value`` (a collection holding tasks) at run time."""
    if isinstance(value, dict):
        keys = collection_task(list(value.keys()), flow)
        values = collection_task(list(value.values()), flow)
        return Dict(name="Dict").bind(keys=keys, values=values, flow=flow)
    cls: type[Task] = {list: List, tuple: Tuple, set: Set, frozenset: Set}[type(value)]  # type: ignore[index]
    items = {
        f"arg_{i}": collection_task(v, flow) if contains_task(v) and not isinstance(v, Task) else v
        for i, v in enumerate(value)
    }
    return cls(name=cls.__name__).bind(flow=flow, **items)  # type: ignore[arg-type]
