"""Web integrations: run flows inside FastAPI and aiohttp services and stream their events.

:class:`Runtime` is framework-free; the routes live in :mod:`asyncflow.integrations.fastapi`
(``router(runtime)``) and :mod:`asyncflow.integrations.aiohttp` (``subapp(runtime)``), which
import their framework only when imported themselves. See ``README.md`` beside this file.
"""

from .record import RunRecord as RunRecord
from .record import UnknownTask as UnknownTask
from .runtime import InvalidParameters as InvalidParameters
from .runtime import Runtime as Runtime
from .runtime import RuntimeUnavailable as RuntimeUnavailable
from .runtime import UnknownFlow as UnknownFlow
from .runtime import UnknownRun as UnknownRun

__all__ = (
    "Runtime",
    "RunRecord",
    "UnknownFlow",
    "UnknownRun",
    "UnknownTask",
    "InvalidParameters",
    "RuntimeUnavailable",
)
