"""Serializers: how a :class:`~asyncflow.engine.result.Result` turns values into bytes and back.

The Prefect 1.x set, at the Prefect 1.x path ``asyncflow.engine.serializers`` too:
:class:`PickleSerializer` (cloudpickle, the default of every Result), :class:`JSONSerializer`,
:class:`DateTimeSerializer` (ISO 8601 text, read back as a pendulum ``DateTime``) and
:class:`CompressedSerializer`, which wraps another serializer with a compression library
(``format="gzip"``) or a pair of functions. Serializers compare equal when they would write the
same bytes.
"""

from __future__ import annotations

import base64
import importlib
import json
from typing import TYPE_CHECKING, Any

from .exceptions import missing_dependency

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

__all__ = (
    "Serializer",
    "PickleSerializer",
    "JSONSerializer",
    "DateTimeSerializer",
    "CompressedSerializer",
)


class Serializer:
    """Turns Python values into bytes and back; subclass it and implement both methods."""

    def __eq__(self, other: object) -> bool:
        return type(self) is type(other)

    def __hash__(self) -> int:
        return hash(type(self))

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"

    def serialize(self, value: Any) -> bytes:
        """The bytes that stand for ``value``."""
        raise NotImplementedError

    def deserialize(self, value: bytes) -> Any:
        """The value that ``value`` (bytes from :meth:`serialize`) stands for."""
        raise NotImplementedError


class PickleSerializer(Serializer):
    """Pickles with cloudpickle, so lambdas and locally defined classes survive too."""

    def serialize(self, value: Any) -> bytes:
        """Pickle ``value``."""
        import cloudpickle  # imported on first use: ``import asyncflow`` stays light

        return cloudpickle.dumps(value)  # type: ignore[no-any-return]

    def deserialize(self, value: bytes) -> Any:
        """Unpickle ``value``; base64-wrapped pickles (older writers) are read as well."""
        import cloudpickle

        try:
            return cloudpickle.loads(value)
        except Exception as exc:
            try:
                return cloudpickle.loads(base64.b64decode(value, validate=True))
            except Exception:
                raise exc from None


class JSONSerializer(Serializer):
    """Writes JSON text (UTF-8)."""

    def serialize(self, value: Any) -> bytes:
        """``value`` as JSON; raises ``TypeError`` for what JSON cannot represent."""
        return json.dumps(value).encode()

    def deserialize(self, value: bytes) -> Any:
        """Parse JSON."""
        return json.loads(value)


class DateTimeSerializer(Serializer):
    """Writes a datetime as ISO 8601 text; reads it back as a pendulum ``DateTime``.

    Needs pendulum (``pip install 'asyncflow[schedules]'``).
    """

    def serialize(self, value: Any) -> bytes:
        """``value`` (a datetime) as ISO 8601."""
        return _pendulum().instance(value).to_iso8601_string().encode()  # type: ignore[no-any-return]

    def deserialize(self, value: bytes) -> Any:
        """Parse ISO 8601 into a pendulum ``DateTime``."""
        return _pendulum().parse(value.decode())


def _pendulum() -> Any:
    try:
        import pendulum
    except ImportError:  # pragma: no cover - pendulum comes with the dev extra
        raise missing_dependency("pendulum", "schedules", "DateTimeSerializer") from None
    return pendulum


_COMPRESSION_LIBS = ("bz2", "gzip", "lzma", "zlib")


class CompressedSerializer(Serializer):
    """Wraps another serializer and compresses what it writes.

    Args:
        serializer: the serializer whose bytes are compressed.
        format: a module with ``compress``/``decompress`` functions, typically one of the
            standard library's ``bz2``, ``gzip``, ``lzma`` or ``zlib``.
        compress: a compression function (with ``decompress``, instead of ``format``).
        decompress: the matching decompression function.
        compress_kwargs: keyword arguments for the compression function.
        decompress_kwargs: keyword arguments for the decompression function.

    Raises:
        ValueError: neither or both of ``format`` and ``compress``/``decompress`` are given,
            or the module has no ``compress``/``decompress``.
        ImportError: the ``format`` module is not installed.
    """

    def __init__(
        self,
        serializer: Serializer,
        format: str | None = None,  # the Prefect 1.x argument name
        compress: Callable[..., bytes] | None = None,
        decompress: Callable[..., bytes] | None = None,
        compress_kwargs: Mapping[str, Any] | None = None,
        decompress_kwargs: Mapping[str, Any] | None = None,
    ) -> None:
        self._serializer = serializer
        if format and (compress or decompress):
            raise ValueError(
                "CompressedSerializer takes either `format` or `compress`/`decompress`, not both"
            )
        if format:
            self._compress, self._decompress = self.compression_from_lib(format)
        elif compress and decompress:
            self._compress, self._decompress = compress, decompress
        else:
            raise ValueError(
                "CompressedSerializer needs either `format` or both `compress` and `decompress`"
            )
        self._compress_kwargs = dict(compress_kwargs or {})
        self._decompress_kwargs = dict(decompress_kwargs or {})

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, CompressedSerializer)
            and type(self) is type(other)
            and self._serializer == other._serializer
            and self._compress == other._compress
            and self._decompress == other._decompress
            and self._compress_kwargs == other._compress_kwargs
            and self._decompress_kwargs == other._decompress_kwargs
        )

    def __hash__(self) -> int:
        return hash((type(self), self._serializer))

    def __repr__(self) -> str:
        return f"CompressedSerializer({self._serializer!r}, {self._compress.__module__})"

    def serialize(self, value: Any) -> bytes:
        """Serialize ``value`` with the wrapped serializer, then compress."""
        return self._compress(self._serializer.serialize(value), **self._compress_kwargs)

    def deserialize(self, value: bytes) -> Any:
        """Decompress, then deserialize with the wrapped serializer."""
        return self._serializer.deserialize(self._decompress(value, **self._decompress_kwargs))

    @staticmethod
    def compression_from_lib(
        compression_format: str,
    ) -> tuple[Callable[..., bytes], Callable[..., bytes]]:
        """The ``(compress, decompress)`` functions of the module ``compression_format``.

        Raises:
            ImportError: no such module (the message suggests the standard ones).
            ValueError: the module has no ``compress``/``decompress`` functions.
        """
        others = sorted(set(_COMPRESSION_LIBS) - {compression_format})
        try:
            module = importlib.import_module(compression_format)
        except ImportError as exc:
            raise ImportError(
                f"Compression module {compression_format!r} is not installed; "
                f"did you mean one of {others}?"
            ) from exc
        try:
            return module.compress, module.decompress
        except AttributeError as exc:
            raise ValueError(
                f"Compression module {compression_format!r} has no compress/decompress "
                f"functions; did you mean one of {others}?"
            ) from exc
