"""The operators of a task, as Prefect 1.x's ``Task`` has them.

Inside ``with Flow(...)``, ``x + 1``, ``x > 5``, ``t["key"]``, ``a.is_equal(b)`` and the rest
each build a task of :mod:`asyncflow.tasks.operators` bound to the operands (tasks become edges,
other values constants), so ``y = x + 1`` is a task. ``a | b`` is not an operator task: as in
1.x it makes ``b`` run after ``a``. ``==`` and ``hash`` keep identity semantics, so tasks stay
usable as dict keys; ``is_equal`` builds the comparison instead. None of this touches a run.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Self

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from .task import Task

__all__ = ("OPERATOR_TASKS", "TaskOperators")

#: The tasks operators build, by class name. :mod:`asyncflow.tasks.operators` registers them
#: when it is imported, which importing ``asyncflow`` does (through ``flow`` and ``tasks.core``).
OPERATOR_TASKS: dict[str, type[Task]] = {}


class TaskOperators:
    """Operator overloading and the named operator methods of :class:`~asyncflow.Task`."""

    __slots__ = ()

    if TYPE_CHECKING:
        name: str
        nout: int | None
        checkpoint: bool | None
        result: Any

        set_dependencies: Callable[..., Any]

    def _operator(self, _op: str, *args: Any, **task_kwargs: Any) -> Task:
        return OPERATOR_TASKS[_op](**task_kwargs).bind(*args)

    def __getitem__(self, key: Any) -> Task:
        """A task that returns ``self``'s result ``[key]``."""
        label = key.name if isinstance(key, TaskOperators) else repr(key)
        return self._operator(
            "GetItem",
            self,
            key,
            name=f"{self.name}[{label}]",
            checkpoint=self.checkpoint,
            result=self.result,
        )

    def __iter__(self) -> Iterator[Task]:
        """Unpack into ``nout`` tasks ``self[0], self[1], ...``."""
        if self.nout is None:
            raise TypeError(
                f"{self!r} is not iterable: give the task nout=N (or a tuple[...] return "
                "annotation) to unpack its result into N tasks"
            )
        return (self[i] for i in range(self.nout))

    def is_equal(self, other: object) -> Task:
        """A task that returns ``self == other`` (``==`` itself compares tasks by identity)."""
        return self._operator("Equal", self, other)

    def is_not_equal(self, other: object) -> Task:
        """A task that returns ``self != other``."""
        return self._operator("NotEqual", self, other)

    def not_(self) -> Task:
        """A task that returns ``not self``."""
        return self._operator("Not", self)

    def or_(self, other: object) -> Task:
        """A task that returns ``self or other``."""
        return self._operator("Or", self, other)

    def and_(self, other: object) -> Task:
        """A task that returns ``self and other`` (the same as ``self & other``)."""
        return self._operator("And", self, other)

    def __or__(self, other: object) -> object:
        """``self | other``: make ``other`` run after ``self`` (a state dependency); returns it."""
        self.set_dependencies(downstream_tasks=[other])
        return other

    def __ror__(self, other: object) -> Self:
        """``other | self``: make ``self`` run after ``other``; returns ``self``."""
        self.set_dependencies(upstream_tasks=[other])
        return self

    def __add__(self, other: object) -> Task:
        return self._operator("Add", self, other)

    def __radd__(self, other: object) -> Task:
        return self._operator("Add", other, self)

    def __sub__(self, other: object) -> Task:
        return self._operator("Sub", self, other)

    def __rsub__(self, other: object) -> Task:
        return self._operator("Sub", other, self)

    def __mul__(self, other: object) -> Task:
        return self._operator("Mul", self, other)

    def __rmul__(self, other: object) -> Task:
        return self._operator("Mul", other, self)

    def __truediv__(self, other: object) -> Task:
        return self._operator("Div", self, other)

    def __rtruediv__(self, other: object) -> Task:
        return self._operator("Div", other, self)

    def __floordiv__(self, other: object) -> Task:
        return self._operator("FloorDiv", self, other)

    def __rfloordiv__(self, other: object) -> Task:
        return self._operator("FloorDiv", other, self)

    def __mod__(self, other: object) -> Task:
        return self._operator("Mod", self, other)

    def __rmod__(self, other: object) -> Task:
        return self._operator("Mod", other, self)

    def __pow__(self, other: object) -> Task:
        return self._operator("Pow", self, other)

    def __rpow__(self, other: object) -> Task:
        return self._operator("Pow", other, self)

    def __and__(self, other: object) -> Task:
        return self._operator("And", self, other)

    def __rand__(self, other: object) -> Task:
        return self._operator("And", other, self)

    def __gt__(self, other: object) -> Task:
        return self._operator("GreaterThan", self, other)

    def __ge__(self, other: object) -> Task:
        return self._operator("GreaterThanOrEqual", self, other)

    def __lt__(self, other: object) -> Task:
        return self._operator("LessThan", self, other)

    def __le__(self, other: object) -> Task:
        return self._operator("LessThanOrEqual", self, other)

    # Identity semantics, as in 1.x: tasks are dict keys and set members.
    __eq__ = object.__eq__
    __hash__ = object.__hash__
