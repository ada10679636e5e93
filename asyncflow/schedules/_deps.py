"""The optional libraries behind schedules, imported with a clear error when missing."""

from __future__ import annotations

from ..exceptions import missing_dependency

try:
    import pendulum
except ImportError:
    raise missing_dependency("pendulum", "schedules", "asyncflow.schedules") from None

__all__ = ("pendulum",)
