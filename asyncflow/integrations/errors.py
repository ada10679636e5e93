"""The errors of the web integrations' requests, besides those of the :class:`Runtime` API.

Each maps to one HTTP status (:func:`asyncflow.integrations.serialize.error_status`).
"""

from __future__ import annotations

from ..exceptions import AsyncflowError

__all__ = ("InvalidQuery", "RequestRefused")


class InvalidQuery(AsyncflowError, ValueError):
    """A query argument of the wrong form (HTTP 422); ``field`` names it."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


class RequestRefused(AsyncflowError, ValueError):
    """A request refused before it is read: cross-site, too large, not JSON; ``status`` says why.

    403 for a request from another site, 413 for a body over the size limit, 415 for a body
    that is not ``application/json``.
    """

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
