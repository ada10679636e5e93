"""Public home of the executors: where task code runs."""

from .runtime.executors import DEFAULT_MAX_THREADS as DEFAULT_MAX_THREADS
from .runtime.executors import Executor as Executor
from .runtime.executors import LocalExecutor as LocalExecutor

__all__ = ("DEFAULT_MAX_THREADS", "Executor", "LocalExecutor")
