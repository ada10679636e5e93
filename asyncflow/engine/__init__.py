"""Prefect 1.x import paths: ``asyncflow.engine.state``, ``.signals``, ``.result``, ``.results``
and ``.serializers``."""

from . import result as result
from . import results as results
from . import serializers as serializers
from . import signals as signals
from . import state as state

__all__ = ("result", "results", "serializers", "signals", "state")
