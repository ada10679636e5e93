"""The base ``Result`` under its Prefect 1.x path (an alias of :mod:`asyncflow.results`)."""

from ..results.base import Result as Result
from ..results.base import ResultNotImplementedError as ResultNotImplementedError

__all__ = ("Result", "ResultNotImplementedError")
