"""The tasks operators build: Prefect 1.x's ``prefect.tasks.core.operators``.

``x + 1`` inside ``with Flow(...)`` builds an :class:`Add` bound to ``x`` and ``1``; ``x > 5`` a
:class:`GreaterThan`; ``t["k"]`` a :class:`GetItem`; ``a.is_equal(b)`` an :class:`Equal`. They
can be used directly too, like any task: ``Add()(x, 1)``.
"""

from __future__ import annotations

import operator
from typing import Any

from .._task_operators import OPERATOR_TASKS
from ..parameter import NO_DEFAULT
from ..task import Task

__all__ = (
    "Add",
    "And",
    "Div",
    "Equal",
    "FloorDiv",
    "GetAttr",
    "GetItem",
    "GreaterThan",
    "GreaterThanOrEqual",
    "LessThan",
    "LessThanOrEqual",
    "Mod",
    "Mul",
    "Not",
    "NotEqual",
    "Or",
    "Pow",
    "Sub",
)


class _Lookup(Task):
    """A lookup with an optional ``default`` for what is missing."""

    def __init__(self, default: Any = NO_DEFAULT, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.default = default

    def _or_default(self, default: Any, exc: Exception) -> Any:
        default = self.default if default is NO_DEFAULT else default
        if default is NO_DEFAULT:
            raise exc
        return default


class GetItem(_Lookup):
    """Returns ``task_result[key]``, or ``default`` (when given) if the key is missing.

    Args:
        default: the value for a missing key; without it a missing key fails the task.
        **kwargs: any other ``Task`` argument.
    """

    def run(self, task_result: Any, key: Any, default: Any = NO_DEFAULT) -> Any:
        """``task_result[key]``; ``default`` (else the task's) for a missing key."""
        try:
            return task_result[key]
        except KeyError as exc:
            return self._or_default(default, exc)


class GetAttr(_Lookup):
    """Returns ``task_result.attr`` (``attr`` may be dotted: ``"a.b"``), or ``default``.

    Args:
        default: the value for a missing attribute; without it a missing one fails the task.
        **kwargs: any other ``Task`` argument.
    """

    def run(self, task_result: Any, attr: str, default: Any = NO_DEFAULT) -> Any:
        """``task_result.attr``; ``default`` (else the task's) for a missing attribute."""
        try:
            return operator.attrgetter(attr)(task_result)
        except AttributeError as exc:
            return self._or_default(default, exc)


class Add(Task):
    """Evaluates ``x + y``."""

    def run(self, x: Any, y: Any) -> Any:
        return x + y


class Sub(Task):
    """Evaluates ``x - y``."""

    def run(self, x: Any, y: Any) -> Any:
        return x - y


class Mul(Task):
    """Evaluates ``x * y``."""

    def run(self, x: Any, y: Any) -> Any:
        return x * y


class Div(Task):
    """Evaluates ``x / y``."""

    def run(self, x: Any, y: Any) -> Any:
        return x / y


class FloorDiv(Task):
    """Evaluates ``x // y``."""

    def run(self, x: Any, y: Any) -> Any:
        return x // y


class Pow(Task):
    """Evaluates ``x ** y``."""

    def run(self, x: Any, y: Any) -> Any:
        return x**y


class Mod(Task):
    """Evaluates ``x % y``."""

    def run(self, x: Any, y: Any) -> Any:
        return x % y


class And(Task):
    """Evaluates ``x and y``."""

    def run(self, x: Any, y: Any) -> Any:
        return x and y


class Or(Task):
    """Evaluates ``x or y``."""

    def run(self, x: Any, y: Any) -> Any:
        return x or y


class Not(Task):
    """Evaluates ``not x``."""

    def run(self, x: Any) -> bool:
        return not x


class Equal(Task):
    """Evaluates ``x == y``."""

    def run(self, x: Any, y: Any) -> Any:
        return x == y


class NotEqual(Task):
    """Evaluates ``x != y``."""

    def run(self, x: Any, y: Any) -> Any:
        return x != y


class GreaterThanOrEqual(Task):
    """Evaluates ``x >= y``."""

    def run(self, x: Any, y: Any) -> Any:
        return x >= y


class GreaterThan(Task):
    """Evaluates ``x > y``."""

    def run(self, x: Any, y: Any) -> Any:
        return x > y


class LessThanOrEqual(Task):
    """Evaluates ``x <= y``."""

    def run(self, x: Any, y: Any) -> Any:
        return x <= y


class LessThan(Task):
    """Evaluates ``x < y``."""

    def run(self, x: Any, y: Any) -> Any:
        return x < y


OPERATOR_TASKS.update(
    (cls.__name__, cls)
    for cls in (
        GetItem,
        GetAttr,
        Add,
        Sub,
        Mul,
        Div,
        FloorDiv,
        Pow,
        Mod,
        And,
        Or,
        Not,
        Equal,
        NotEqual,
        GreaterThanOrEqual,
        GreaterThan,
        LessThanOrEqual,
        LessThan,
    )
)
