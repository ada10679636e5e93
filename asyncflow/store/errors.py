"""The run stores' errors (each names the path, DSN or run it is about)."""

from __future__ import annotations

from ..exceptions import AsyncflowError

__all__ = ("FlowMismatch", "OwnershipLost", "RunNotFound", "StoreError")


class StoreError(AsyncflowError, RuntimeError):
    """The store cannot be opened, read or written (the message names the path or run)."""


class RunNotFound(StoreError, LookupError):
    """No run with that id is in the store."""


class FlowMismatch(StoreError, ValueError):
    """``resume=`` names a run made by another flow, or by a different graph of this one."""


class OwnershipLost(StoreError):
    """Another owner took the run over (its lease expired): this one may not write to it."""
