"""``Result``: a value, where it is (or will be) stored, and how it is turned into bytes.

The Prefect 1.x interface: :meth:`Result.format` renders a location template with keyword
arguments (the engine passes the run context, the parameters and the task's inputs),
:meth:`~Result.exists`, :meth:`~Result.read` and :meth:`~Result.write` talk to the storage, and
each returns a *new* Result (``read`` with its ``value`` loaded, ``write`` with its ``location``
final), never changing the one it was called on. The base class stores nothing: subclasses such
as :class:`~asyncflow.engine.results.LocalResult` implement the storage. The engine calls these
methods in a worker thread, so a subclass may block (file or network I/O) freely.
"""

from __future__ import annotations

import copy
import uuid
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from ..exceptions import ResultNotImplementedError
from ..serializers import PickleSerializer, Serializer

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ("Result", "ResultNotImplementedError", "at_location", "is_result")

_NOT_IMPLEMENTED = (
    "{method}() is not implemented on {cls}: use a Result subclass that stores values, "
    "such as LocalResult"
)


class Result:
    """A value, a location template and a serializer.

    Args:
        value: the value the result holds.
        location: where the value is stored: a ``str.format`` template (rendered by
            :meth:`format` with the run context, parameters and task inputs), or a callable
            taking those keyword arguments and returning the location.
        serializer: turns the value into bytes and back (default:
            :class:`~asyncflow.serializers.PickleSerializer`).

    Raises:
        TypeError: ``location`` is neither a string nor callable, or ``serializer`` is not a
            :class:`~asyncflow.serializers.Serializer`.
    """

    def __init__(
        self,
        value: Any = None,
        location: str | Callable[..., str] | None = None,
        serializer: Serializer | None = None,
    ) -> None:
        self.value = value
        if serializer is None:
            serializer = PickleSerializer()
        if not isinstance(serializer, Serializer):
            raise TypeError(
                f"{type(self).__name__}: serializer must be a Serializer, got {serializer!r}"
            )
        self.serializer = serializer
        self._formatter: Callable[..., str] | None
        if location is None or isinstance(location, str):
            self.location: str | None = location
            self._formatter = None
        elif callable(location):
            self._formatter = location
            self.location = None
        else:
            raise TypeError(
                f"{type(self).__name__}: location must be a str template or a callable, "
                f"got {location!r}"
            )

    def __eq__(self, other: object) -> bool:
        if type(self) is not type(other):
            return False
        return {k: v for k, v in vars(self).items() if not k.startswith("_")} == {
            k: v for k, v in vars(other).items() if not k.startswith("_")
        }

    __hash__ = object.__hash__

    def __repr__(self) -> str:
        return f"<{type(self).__name__}: {self.value!r}>"

    def copy(self) -> Result:
        """A shallow copy."""
        return copy.copy(self)

    def from_value(self, value: Any) -> Result:
        """A copy holding ``value``, with no location."""
        new = self.copy()
        new.location = None
        new.value = value
        return new

    @property
    def default_location(self) -> str:
        """Where a value goes when no location was given: ``year/month/day/<uuid>``."""
        now = datetime.now(UTC)
        return f"{now.year}/{now.month}/{now.day}/{uuid.uuid4()}.asyncflow_result"

    def format(self, **kwargs: Any) -> Result:
        """A copy whose ``location`` is rendered with ``kwargs`` (or the default location).

        Raises:
            KeyError: the template names a key that ``kwargs`` does not have.
        """
        new = self.copy()
        if isinstance(new.location, str):
            new.location = new.location.format(**kwargs)
        elif new._formatter is not None:
            new.location = new._formatter(**kwargs)
        else:
            new.location = new.default_location
        return new

    def exists(self, location: str, **kwargs: Any) -> bool:
        """Whether a value is stored at ``location`` (rendered with ``kwargs``)."""
        raise ResultNotImplementedError(
            _NOT_IMPLEMENTED.format(method="exists", cls=type(self).__name__)
        )

    def read(self, location: str) -> Result:
        """A copy holding the value stored at ``location``."""
        raise ResultNotImplementedError(
            _NOT_IMPLEMENTED.format(method="read", cls=type(self).__name__)
        )

    def write(self, value_: Any, **kwargs: Any) -> Result:
        """Store ``value_`` at the location rendered with ``kwargs``; a copy that holds both."""
        raise ResultNotImplementedError(
            _NOT_IMPLEMENTED.format(method="write", cls=type(self).__name__)
        )


def at_location(result: Result, location: str | Callable[..., str]) -> Result:
    """A copy of ``result`` whose location (template or callable) is ``location``.

    A callable's return value is formatted like a template, so a target callable may return
    ``"{task_name}/{map_index}"``.
    """
    new = result.copy()
    if callable(location):
        # What the callable returns is a template too (as a target lookup formats it).
        def render(**kwargs: Any) -> str:
            return location(**kwargs).format(**kwargs)

        new._formatter, new.location = render, None
    else:
        new._formatter, new.location = None, location
    return new


_RESULT_METHODS = ("format", "exists", "read", "write", "copy")


def is_result(value: object) -> bool:
    """Whether ``value`` has the Result interface (a Result, or a look-alike)."""
    return all(callable(getattr(value, m, None)) for m in _RESULT_METHODS)
