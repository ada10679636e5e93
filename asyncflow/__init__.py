"""asyncflow: the Prefect 1.x Core programming model on a native asyncio engine."""

from . import triggers as triggers
from ._log import get_logger as get_logger
from ._logsetup import configure_logging as configure_logging
from .bus import EventBus as EventBus
from .bus import Subscription as Subscription
from .bus import by_flow as by_flow
from .bus import by_run as by_run
from .bus import by_state as by_state
from .bus import by_task as by_task
from .bus import default_bus as default_bus
from .context import context as context
from .decorators import task as task
from .edges import Edge as Edge
from .edges import flatten as flatten
from .edges import unmapped as unmapped
from .events import StateChange as StateChange
from .exceptions import AsyncflowError as AsyncflowError
from .exceptions import FlowValidationError as FlowValidationError
from .exceptions import ParameterError as ParameterError
from .exceptions import TaskBindError as TaskBindError
from .flow import Flow as Flow
from .parameter import Parameter as Parameter
from .runtime.flow_run import FlowRun as FlowRun
from .runtime.retries import exponential_backoff as exponential_backoff
from .runtime.retries import jitter as jitter
from .task import Task as Task
from .tasks.control_flow import FilterTask as FilterTask
from .tasks.control_flow import case as case
from .tasks.control_flow import ifelse as ifelse
from .tasks.control_flow import merge as merge
from .tasks.control_flow import switch as switch

__version__ = "0.1.0"

__all__ = (
    "Flow",
    "Task",
    "task",
    "Parameter",
    "Edge",
    "unmapped",
    "flatten",
    "case",
    "merge",
    "switch",
    "ifelse",
    "FilterTask",
    "FlowRun",
    "EventBus",
    "Subscription",
    "StateChange",
    "default_bus",
    "by_flow",
    "by_task",
    "by_state",
    "by_run",
    "context",
    "get_logger",
    "configure_logging",
    "exponential_backoff",
    "jitter",
    "triggers",
    "AsyncflowError",
    "FlowValidationError",
    "ParameterError",
    "TaskBindError",
)
