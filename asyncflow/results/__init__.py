"""Results: where task return values are checkpointed, and read back from.

``Task(result=...)`` or ``Flow(result=...)`` gives a task a :class:`Result`; after the task
succeeds, its return value is written through it (unless ``checkpoint=False``), and with
``target=`` a task whose location already exists is not run again. The Prefect 1.x paths
``asyncflow.engine.result`` and ``asyncflow.engine.results`` re-export these classes.
"""

from .base import Result as Result
from .base import ResultNotImplementedError as ResultNotImplementedError
from .local import LocalResult as LocalResult
from .prefect import PrefectResult as PrefectResult

__all__ = ("Result", "LocalResult", "PrefectResult", "ResultNotImplementedError")
