"""Prefect 1.x import paths: ``asyncflow.engine.state`` and ``asyncflow.engine.signals``."""

from . import signals as signals
from . import state as state

__all__ = ("signals", "state")
