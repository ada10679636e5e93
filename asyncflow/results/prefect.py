"""``PrefectResult``: a small JSON value that *is* its own location.

The location is the JSON text itself, so nothing is written anywhere: the value travels with
the state (and with a run store's journal). Only JSON (or ISO datetime) serializers fit.
"""

from __future__ import annotations

from typing import Any

from ..serializers import DateTimeSerializer, JSONSerializer, Serializer
from .base import Result

__all__ = ("PrefectResult",)


class PrefectResult(Result):
    """A Result whose location is the JSON serialization of its value.

    Args:
        **kwargs: ``value``, ``location`` and ``serializer`` (default
            :class:`~asyncflow.serializers.JSONSerializer`), as for
            :class:`~asyncflow.engine.result.Result`.

    Raises:
        TypeError: the serializer is not a JSONSerializer or DateTimeSerializer.
    """

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("serializer", JSONSerializer())
        super().__init__(**kwargs)

    @property
    def serializer(self) -> Serializer:
        """The serializer: a JSONSerializer or a DateTimeSerializer."""
        return self._serializer

    @serializer.setter
    def serializer(self, value: Serializer) -> None:
        if not isinstance(value, JSONSerializer | DateTimeSerializer):
            raise TypeError(
                f"PrefectResult only supports JSONSerializer or DateTimeSerializer, got {value!r}"
            )
        self._serializer = value

    def read(self, location: str) -> Result:
        """A copy holding the value that ``location`` (JSON text) encodes."""
        new = self.copy()
        new.value = self.serializer.deserialize(location.encode("utf-8"))
        new.location = location
        return new

    def write(self, value_: Any, **kwargs: Any) -> Result:
        """A copy holding ``value_`` whose location is its JSON text (``kwargs`` are unused).

        Raises:
            TypeError: ``value_`` cannot be represented in JSON.
        """
        new = self.copy()
        new.value = value_
        new.location = self.serializer.serialize(value_).decode("utf-8")
        return new

    def exists(self, location: str, **kwargs: Any) -> bool:
        """Whether ``location`` is text the serializer can read."""
        try:
            self.serializer.deserialize(location.encode("utf-8"))
        except Exception:
            return False
        return True
