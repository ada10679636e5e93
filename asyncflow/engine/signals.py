"""Alias of :mod:`asyncflow.signals` under its Prefect 1.x path."""

from ..signals import *  # noqa: F403
from ..signals import __all__ as __all__
