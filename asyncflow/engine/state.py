"""Alias of :mod:`asyncflow.states` under its Prefect 1.x path."""

from ..states import *  # noqa: F403
from ..states import __all__ as __all__
