"""OpenTelemetry tracing: one span per flow run, a child span per task run.

``instrument()`` subscribes to a bus and turns its :class:`~asyncflow.StateChange` events into
spans, with nothing added to the engine's path::

    from asyncflow.integrations.otel import instrument

    subscription = instrument()          # the default bus, the global tracer provider
    ...
    subscription.close()                 # stop tracing

A flow run's span is a child of the span that was current where the run started (a web
request's, say); each task run's span is a child of the flow run's, and each mapped child's a
child of its mapped parent's. Span times are the events' times (the run's clock). A span covers
every attempt of its task run and ends with the task run's final state, or with the flow run
(a task still paused then, or one the run never reached).

Span names are ``flow <flow name>`` and ``task <task name>`` (low cardinality: ids are
attributes). Attributes, in the ``asyncflow.`` namespace since no semantic convention covers
workflow runs:

- ``asyncflow.flow.name``, ``asyncflow.flow_run.id`` on every span;
- ``asyncflow.task.name``, ``asyncflow.task.slug``, ``asyncflow.task_run.id``,
  ``asyncflow.task_run.map_index`` (mapped children), ``asyncflow.task_run.run_count`` (how many
  times the task's code ran) on task spans;
- ``asyncflow.state`` (the final state's class, e.g. ``Success``, ``TriggerFailed``) and
  ``asyncflow.state.message``.

A failed run ends with status ``ERROR`` (the state's message as description) and the general
convention's ``error.type`` (the exception's class, else the state's). Each exception a task
raised is recorded as an ``exception`` event (type, message, stack trace; signals such as
``FAIL`` are states, not errors); each retry is a ``retry`` event with the attempt number and
when the next one starts. Success leaves the status unset, as instrumentation libraries should.

Needs the ``otel`` extra: ``pip install 'asyncflow[otel]'``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import attrs

from ..exceptions import missing_dependency

try:
    from opentelemetry import context as otel_context
    from opentelemetry import trace
except ImportError as exc:
    raise missing_dependency("opentelemetry", "otel", "asyncflow.integrations.otel") from exc

from .. import __version__
from ..bus import default_bus
from ..states import Mapped, Retrying, Running, State

if TYPE_CHECKING:
    from ..bus import EventBus, Subscription
    from ..events import StateChange

__all__ = ("instrument",)

_NS = 1_000_000_000
_INSTRUMENTATION = "asyncflow"


@attrs.define(eq=False)
class _TaskSpan:
    span: trace.Span
    last: State
    runs: int = 0
    # When it failed, if a retry may follow: it ends then unless a Retrying event comes.
    failed_at: int | None = None

    def end(self, when: int) -> None:
        self.span.set_attribute("asyncflow.task_run.run_count", self.runs)
        _end(self.span, self.last, self.failed_at if self.failed_at is not None else when)


@attrs.define(eq=False)
class _RunSpans:
    """The open spans of one flow run."""

    flow: trace.Span
    context: otel_context.Context  # the flow span as a parent
    tasks: dict[str, _TaskSpan] = attrs.Factory(dict)


def _ns(event: StateChange) -> int:
    return int(event.timestamp * _NS)


def _error_type(state: State) -> str:
    exc = state.result
    if isinstance(exc, Exception):  # not a signal (``FAIL``, ``TRIGGERFAIL``): they are states
        cls = type(exc)
        return (
            cls.__qualname__
            if cls.__module__ == "builtins"
            else f"{cls.__module__}.{cls.__qualname__}"
        )
    return type(state).__name__


def _end(span: trace.Span, state: State, when: int) -> None:
    span.set_attribute("asyncflow.state", type(state).__name__)
    if state.message:
        span.set_attribute("asyncflow.state.message", state.message)
    if state.is_failed():
        span.set_attribute("error.type", _error_type(state))
        span.set_status(trace.Status(trace.StatusCode.ERROR, state.message or None))
    span.end(end_time=when)


class _Tracer:
    """The subscriber: opens, annotates and ends spans as events arrive, run by run."""

    def __init__(self, tracer: trace.Tracer) -> None:
        self.tracer = tracer
        self.runs: dict[str, _RunSpans] = {}

    def __call__(self, event: StateChange) -> None:
        run = self.runs.get(event.run_id)
        if event.task_name is None:
            self.flow_event(run, event)
        elif run is not None:
            self.task_event(run, event)

    def flow_event(self, run: _RunSpans | None, event: StateChange) -> None:
        when, state = _ns(event), event.new_state
        # A flow run moves twice: into Running, and to its final state (which is Running
        # "Not all reference tasks finished." when a task is left paused).
        ends = run is not None or not state.is_running()
        if run is None:
            # The context current where the run started (the delivery pump inherits it).
            span = self.tracer.start_span(
                f"flow {event.flow_name}",
                context=otel_context.get_current(),
                kind=trace.SpanKind.INTERNAL,
                start_time=when,
                attributes={
                    "asyncflow.flow.name": event.flow_name,
                    "asyncflow.flow_run.id": event.run_id,
                },
            )
            run = self.runs[event.run_id] = _RunSpans(span, trace.set_span_in_context(span))
        if ends:
            # Task spans the flow run outlived (a paused task, a failure that might have been
            # retried): children before parents, so that none outlives its parent.
            for task_run_id in sorted(run.tasks, key=lambda i: -i.count("[")):
                run.tasks.pop(task_run_id).end(when)
            _end(run.flow, state, when)
            del self.runs[event.run_id]

    def task_event(self, run: _RunSpans, event: StateChange) -> None:
        assert event.task_run_id is not None
        when, state = _ns(event), event.new_state
        ts = run.tasks.get(event.task_run_id)
        if ts is None:
            ts = run.tasks[event.task_run_id] = _TaskSpan(self.start_task(run, event, when), state)
        span, ts.last, ts.failed_at = ts.span, state, None
        if isinstance(state, Running) and not event.old_state.is_running():
            ts.runs += 1
        elif isinstance(state, Retrying):
            span.add_event(
                "retry",
                {
                    "asyncflow.task_run.run_count": state.run_count,
                    "asyncflow.retry.start_time": str(state.start_time),
                    "asyncflow.state.message": state.message or "",
                },
                timestamp=when,
            )
        if state.is_failed() and isinstance(state.result, Exception):
            span.record_exception(
                state.result, {"asyncflow.task_run.run_count": ts.runs}, timestamp=when
            )
        if state.is_failed() and getattr(event.subject, "max_retries", 0) > 0:
            # The engine decides on a retry right after the failure (its event comes next
            # for this task run), so the span waits for it, or for the flow run's end.
            ts.failed_at = when
        elif state.is_finished() and not _ready_to_map(event):
            del run.tasks[event.task_run_id]
            ts.end(when)

    def start_task(self, run: _RunSpans, event: StateChange, when: int) -> trace.Span:
        parent = run.context
        if event.map_index is not None:
            assert event.task_run_id is not None
            owner = run.tasks.get(event.task_run_id.rsplit("[", 1)[0])
            if owner is not None:
                parent = trace.set_span_in_context(owner.span)
        attributes: dict[str, Any] = {
            "asyncflow.flow.name": event.flow_name,
            "asyncflow.flow_run.id": event.run_id,
            "asyncflow.task.name": event.task_name,
            "asyncflow.task_run.id": event.task_run_id,
        }
        slug = getattr(event.subject, "slug", None)
        if slug is not None:
            attributes["asyncflow.task.slug"] = slug
        if event.map_index is not None:
            attributes["asyncflow.task_run.map_index"] = event.map_index
        return self.tracer.start_span(
            f"task {event.task_name}",
            context=parent,
            kind=trace.SpanKind.INTERNAL,
            start_time=when,
            attributes=attributes,
        )


def _ready_to_map(event: StateChange) -> bool:
    """A mapped parent entering ``Mapped``: its span lasts until its children's states come in."""
    return isinstance(event.new_state, Mapped) and not isinstance(event.old_state, Mapped)


def instrument(
    bus: EventBus | None = None, *, tracer_provider: trace.TracerProvider | None = None
) -> Subscription:
    """Trace every flow run published on ``bus``.

    Args:
        bus: the bus to follow; :func:`asyncflow.default_bus` by default.
        tracer_provider: where spans go; the global tracer provider by default.

    Returns:
        The bus subscription; ``close()`` it to stop tracing. It blocks rather than drops, so
        that no span is left open for a lost event.
    """
    tracer = trace.get_tracer(_INSTRUMENTATION, __version__, tracer_provider=tracer_provider)
    return (bus or default_bus()).subscribe(_Tracer(tracer), overflow="block")
