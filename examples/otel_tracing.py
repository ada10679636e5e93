"""Trace flow runs with OpenTelemetry, printed by the SDK's console exporter.

``instrument()`` follows the bus: one span per flow run (``flow nightly``), a child span per
task run (``task fetch``), mapped children under their parent's span, retries as ``retry``
events, failures as ``ERROR`` with the exception recorded. In a service, give it the tracer
provider that exports to your collector; here every span is printed as JSON when it ends.
Needs ``pip install 'asyncflow[otel]'``.

Expected output contains:
    "name": "task fetch",
    "name": "retry",
    "asyncflow.task_run.run_count": 2,
    "name": "task clean",
    "asyncflow.task_run.map_index": 1,
    "name": "task publish",
    "status_code": "ERROR",
    "error.type": "PermissionError"
    "name": "flow nightly",
    "asyncflow.state": "Failed",
    flow run: Failed("Some reference tasks failed.")
"""

from __future__ import annotations

import anyio
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import ConsoleSpanExporter, SimpleSpanProcessor

from asyncflow import EventBus, Flow, task
from asyncflow.integrations.otel import instrument

attempts = 0


@task(max_retries=1, retry_delay=0.05)
async def fetch() -> list[str]:
    global attempts
    attempts += 1
    if attempts == 1:
        raise ConnectionError("upstream not ready")
    return ["  a ", " b"]


@task
def clean(row: str) -> str:
    return row.strip()


@task
def publish(rows: list[str]) -> None:
    raise PermissionError(f"no write access for {len(rows)} rows")


with Flow("nightly") as flow:
    publish(clean.map(fetch()))


async def main() -> None:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(ConsoleSpanExporter()))
    bus = EventBus()
    subscription = instrument(bus, tracer_provider=provider)
    state = await flow.run_async(bus=bus)
    subscription.close()
    print("flow run:", state)


if __name__ == "__main__":
    anyio.run(main)
