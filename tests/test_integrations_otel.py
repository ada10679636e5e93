"""OpenTelemetry tracing: spans from a bus's events, checked with the SDK's in-memory exporter."""

from __future__ import annotations

import importlib
import sys
from typing import TYPE_CHECKING, Any

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from asyncflow import Flow, task
from asyncflow.integrations.otel import instrument
from asyncflow.triggers import manual_only

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Iterator

    from asyncflow import EventBus
    from asyncflow.testing import FakeClock


@pytest.fixture
def exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
def provider(exporter: InMemorySpanExporter) -> TracerProvider:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider


@pytest.fixture
def traced(bus: EventBus, provider: TracerProvider) -> Iterator[None]:
    """The test's bus, instrumented."""
    subscription = instrument(bus, tracer_provider=provider)
    yield
    subscription.close()


def spans(exporter: InMemorySpanExporter) -> dict[str, ReadableSpan]:
    """Finished spans by a readable key: the span name, plus the map index of a child."""
    found = {}
    for s in exporter.get_finished_spans():
        assert s.attributes is not None
        index = s.attributes.get("asyncflow.task_run.map_index")
        found[s.name if index is None else f"{s.name}[{index}]"] = s
    return found


def parent_of(span: ReadableSpan) -> int | None:
    return span.parent.span_id if span.parent is not None else None


def span_id(span: ReadableSpan) -> int:
    assert span.context is not None
    return span.context.span_id


@task
def extract() -> list[int]:
    return [1, 2]


@task
def load(rows: list[int]) -> int:
    return len(rows)


@task
def broken(rows: list[int]) -> None:
    raise ValueError("nope")


@pytest.mark.usefixtures("traced")
class TestSpansOfARun:
    async def test_one_span_per_flow_run_and_a_child_per_task_run(
        self, bus: EventBus, exporter: InMemorySpanExporter
    ) -> None:
        with Flow("etl") as flow:
            load(extract())

        await flow.run_async(bus=bus, run_id="run-1")

        found = spans(exporter)
        assert found.keys() == {"flow etl", "task extract", "task load"}
        root = found["flow etl"]
        assert root.parent is None
        assert root.kind is trace.SpanKind.INTERNAL
        assert dict(root.attributes or {}) == {
            "asyncflow.flow.name": "etl",
            "asyncflow.flow_run.id": "run-1",
            "asyncflow.state": "Success",
            "asyncflow.state.message": "All reference tasks succeeded.",
        }
        assert root.status.status_code is trace.StatusCode.UNSET
        extract_span = found["task extract"]
        assert parent_of(extract_span) == span_id(root)
        assert parent_of(found["task load"]) == span_id(root)
        attributes = dict(extract_span.attributes or {})
        assert attributes.pop("asyncflow.task_run.id")
        assert attributes == {
            "asyncflow.flow.name": "etl",
            "asyncflow.flow_run.id": "run-1",
            "asyncflow.task.name": "extract",
            "asyncflow.task.slug": "extract-1",
            "asyncflow.task_run.run_count": 1,
            "asyncflow.state": "Success",
            "asyncflow.state.message": "Task run succeeded.",
        }

    async def test_spans_nest_in_time(self, bus: EventBus, exporter: InMemorySpanExporter) -> None:
        with Flow("etl") as flow:
            load(extract())

        await flow.run_async(bus=bus)

        found = spans(exporter)
        root, first, second = found["flow etl"], found["task extract"], found["task load"]
        assert root.start_time is not None
        assert root.end_time is not None
        assert root.start_time <= first.start_time  # type: ignore[operator]
        assert first.end_time <= second.start_time  # type: ignore[operator]
        assert second.end_time <= root.end_time  # type: ignore[operator]

    async def test_a_failure_is_an_error_with_its_exception_recorded(
        self, bus: EventBus, exporter: InMemorySpanExporter
    ) -> None:
        with Flow("failing") as flow:
            load(broken(extract()))

        await flow.run_async(bus=bus)

        found = spans(exporter)
        failed = found["task broken"]
        assert failed.status.status_code is trace.StatusCode.ERROR
        assert failed.status.description == "Error during execution of task: ValueError('nope')"
        assert (failed.attributes or {})["error.type"] == "ValueError"
        [event] = failed.events
        assert event.name == "exception"
        assert event.attributes is not None
        assert event.attributes["exception.type"] == "ValueError"
        assert event.attributes["exception.message"] == "nope"
        assert "raise ValueError" in str(event.attributes["exception.stacktrace"])
        downstream = found["task load"]
        assert downstream.status.status_code is trace.StatusCode.ERROR
        assert (downstream.attributes or {})["error.type"] == "TriggerFailed"
        assert (downstream.attributes or {})["asyncflow.task_run.run_count"] == 0
        root = found["flow failing"]
        assert root.status.status_code is trace.StatusCode.ERROR
        assert root.status.description == "Some reference tasks failed."
        assert (root.attributes or {})["error.type"] == "Failed"

    async def test_retries_are_events_on_one_span_that_covers_every_attempt(
        self, bus: EventBus, exporter: InMemorySpanExporter, clock: FakeClock
    ) -> None:
        attempts = []

        @task(max_retries=2, retry_delay=60)
        def flaky() -> str:
            attempts.append(1)
            if len(attempts) < 3:
                raise ConnectionError(f"attempt {len(attempts)}")
            return "ok"

        with Flow("retrying") as flow:
            flaky()
        await flow.run_async(bus=bus, clock=clock)

        span = spans(exporter)["task flaky"]
        assert [e.name for e in span.events] == ["exception", "retry", "exception", "retry"]
        retry = span.events[1]
        assert retry.attributes is not None
        assert retry.attributes["asyncflow.task_run.run_count"] == 1
        assert retry.attributes["asyncflow.state.message"] == (
            "Retrying Task (after attempt 1 of 3)"
        )
        assert retry.timestamp == 0
        assert span.events[3].timestamp == 60 * 10**9
        assert (span.attributes or {})["asyncflow.task_run.run_count"] == 3
        assert (span.attributes or {})["asyncflow.state"] == "Success"
        assert span.status.status_code is trace.StatusCode.UNSET
        assert (span.start_time, span.end_time) == (0, 120 * 10**9)  # the run's clock

    async def test_mapped_children_are_spans_under_their_parents_span(
        self, bus: EventBus, exporter: InMemorySpanExporter
    ) -> None:
        @task
        def double(x: int) -> int:
            return 2 * x

        with Flow("mapped") as flow:
            double.map(extract())
        await flow.run_async(bus=bus)

        found = spans(exporter)
        parent = found["task double"]
        assert (parent.attributes or {})["asyncflow.state"] == "Mapped"
        for i in (0, 1):
            child = found[f"task double[{i}]"]
            assert parent_of(child) == span_id(parent)
            assert (child.attributes or {})["asyncflow.task_run.map_index"] == i
            assert child.end_time <= parent.end_time  # type: ignore[operator]
        assert parent_of(parent) == span_id(found["flow mapped"])

    async def test_a_cancelled_run_ends_its_spans(
        self, exporter: InMemorySpanExporter, cancelled_run: Callable[[], Awaitable[None]]
    ) -> None:
        await cancelled_run()

        found = spans(exporter)
        assert (found["task forever"].attributes or {})["asyncflow.state"] == "Cancelled"
        assert (found["flow cancelled"].attributes or {})["asyncflow.state"] == "Cancelled"

    async def test_a_task_left_paused_ends_with_the_flow_run(
        self, bus: EventBus, exporter: InMemorySpanExporter
    ) -> None:
        @task(trigger=manual_only)
        def approve(rows: list[int]) -> None:
            pass

        with Flow("paused") as flow:
            approve(extract())
        await flow.run_async(bus=bus)

        found = spans(exporter)
        assert (found["task approve"].attributes or {})["asyncflow.state"] == "Paused"
        assert found["task approve"].end_time == found["flow paused"].end_time

    async def test_the_flow_span_is_a_child_of_the_span_current_where_the_run_started(
        self, bus: EventBus, exporter: InMemorySpanExporter, provider: TracerProvider
    ) -> None:
        with Flow("etl") as flow:
            extract()

        with provider.get_tracer("app").start_as_current_span("POST /runs") as request:
            await flow.run_async(bus=bus)

        root = spans(exporter)["flow etl"]
        assert parent_of(root) == request.get_span_context().span_id
        assert root.context is not None
        assert root.context.trace_id == request.get_span_context().trace_id


class TestSubscription:
    async def test_closing_it_stops_tracing(
        self, bus: EventBus, exporter: InMemorySpanExporter, provider: TracerProvider
    ) -> None:
        with Flow("etl") as flow:
            extract()

        instrument(bus, tracer_provider=provider).close()
        await flow.run_async(bus=bus)

        assert exporter.get_finished_spans() == ()

    async def test_the_default_bus_and_global_provider_are_used_without_arguments(
        self, exporter: InMemorySpanExporter, provider: TracerProvider, monkeypatch: Any
    ) -> None:
        monkeypatch.setattr(trace, "get_tracer_provider", lambda: provider)
        with Flow("etl") as flow:
            extract()

        subscription = instrument()
        try:
            await flow.run_async()
        finally:
            subscription.close()

        assert "flow etl" in spans(exporter)

    def test_without_the_extra_the_import_error_names_it(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setitem(sys.modules, "opentelemetry", None)
        monkeypatch.delitem(sys.modules, "asyncflow.integrations.otel")

        with pytest.raises(ImportError, match=r"pip install 'asyncflow\[otel\]'"):
            importlib.import_module("asyncflow.integrations.otel")
