"""Public home of the executors: where task code runs (see :mod:`asyncflow.runtime.executors`)."""

from .runtime.dask import DaskExecutor as DaskExecutor
from .runtime.executors import DEFAULT_MAX_THREADS as DEFAULT_MAX_THREADS
from .runtime.executors import Executor as Executor
from .runtime.executors import ExecutorError as ExecutorError
from .runtime.executors import LocalExecutor as LocalExecutor
from .runtime.executors import ProcessExecutor as ProcessExecutor
from .runtime.executors import default_executor as default_executor

__all__ = (
    "DEFAULT_MAX_THREADS",
    "DaskExecutor",
    "Executor",
    "ExecutorError",
    "LocalExecutor",
    "ProcessExecutor",
    "default_executor",
)
