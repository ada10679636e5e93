"""Specification of ``asyncflow.integrations.aiohttp``: the sub-application, on a real server.

Each test mounts ``subapp(runtime)`` under ``/api/`` in an application served by aiohttp's own
``AppRunner``/``TCPSite`` on a free loopback port, and drives it with an aiohttp client.
"""

from __future__ import annotations

import contextlib
import functools
import json
from typing import TYPE_CHECKING, Any

import aiohttp
import anyio
import pytest
from aiohttp import web

from asyncflow import Flow, Parameter, task
from asyncflow.engine.state import Paused, Running
from asyncflow.integrations import Runtime, serialize
from asyncflow.integrations.aiohttp import RUNTIME, subapp
from asyncflow.triggers import manual_only

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable

    from asyncflow import EventBus, StateChange
    from asyncflow.integrations import RunRecord
    from asyncflow.testing import EventRecorder


def gated_flow(gate: anyio.Event) -> Flow:
    """``n -> wait(n) -> double``: ``wait`` returns ``n`` once ``gate`` is set."""

    @task
    async def wait(n: int) -> int:
        await gate.wait()
        return n

    @task
    async def double(x: int) -> int:
        return 2 * x

    with Flow("gated") as flow:
        double(wait(Parameter("n", default=1)))
    return flow


def approval_flow() -> Flow:
    """``draft -> prepare -> publish``; ``publish`` waits for approval."""

    @task
    async def prepare(draft: str) -> str:
        return draft.upper()

    @task(trigger=manual_only)
    async def publish(text: str) -> str:
        return f"published {text}"

    with Flow("approval") as flow:
        publish(prepare(Parameter("draft")))
    return flow


def flows(gate: anyio.Event) -> dict[str, Flow]:
    return {"gated": gated_flow(gate), "approval": approval_flow()}


GATED_HISTORY = [
    (None, "Running"),
    ("n", "Running"),
    ("n", "Success"),
    ("wait", "Running"),
    ("wait", "Success"),
    ("double", "Running"),
    ("double", "Success"),
    (None, "Success"),
]


# -- a server and its client ------------------------------------------------------------------


async def until(predicate: Callable[[], Any], seconds: float = 2.0) -> None:
    """Wait until ``predicate()`` holds."""
    with anyio.fail_after(seconds):
        while not predicate():  # noqa: ASYNC110 (the runtime has no event for these)
            await anyio.sleep(0.002)


#: The origin each client of ``served`` talks to (for more clients of the same server).
BASES: dict[aiohttp.ClientSession, str] = {}


@contextlib.asynccontextmanager
async def served(
    runtime: Runtime, *, manage: bool = True, **options: Any
) -> AsyncIterator[aiohttp.ClientSession]:
    """``subapp(runtime)`` under ``/api/`` on aiohttp's server; a client; then cleanup."""
    app = web.Application()
    if not manage:
        app.cleanup_ctx.append(runtime.cleanup_ctx)
    app.add_subapp("/api/", subapp(runtime, manage=manage, **options))
    runner = web.AppRunner(app, shutdown_timeout=5)
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        async with aiohttp.ClientSession(f"http://127.0.0.1:{port}") as session:
            BASES[session] = f"http://127.0.0.1:{port}"
            yield session
    finally:
        # No cancel scope around this: the runtime's task group, entered by runner.setup() in
        # this task, must be left by runner.cleanup() in the same scope nesting.
        await runner.cleanup()


async def lines_of(response: aiohttp.ClientResponse) -> AsyncIterator[str]:
    async for raw in response.content:
        yield raw.decode().rstrip("\r\n")


async def read_sse(
    lines: AsyncIterator[str], limit: int | None = None, into: list[dict[str, Any]] | None = None
) -> list[dict[str, Any]]:
    """The next messages of an SSE stream (``data`` parsed as JSON), up to ``limit`` of them."""
    messages: list[dict[str, Any]] = []
    fields: dict[str, Any] = {}
    async for line in lines:
        if line.startswith(":"):
            fields["comment"] = line[1:].strip()
        elif line:
            name, _, value = line.partition(": ")
            fields[name] = json.loads(value) if name == "data" else value
        elif fields:
            messages.append(fields)
            if into is not None:
                into.append(fields)
            fields = {}
            if len(messages) == limit:
                break
    return messages


async def stream(
    api: aiohttp.ClientSession,
    run_id: str,
    *,
    limit: int | None = None,
    headers: dict[str, str] | None = None,
    params: dict[str, str] | None = None,
) -> list[dict[str, Any]]:
    async with api.get(f"/api/runs/{run_id}/events", headers=headers, params=params) as response:
        assert response.status == 200
        assert response.headers["Content-Type"] == "text/event-stream"
        return await read_sse(lines_of(response), limit)


def as_sse(events: list[StateChange]) -> list[dict[str, Any]]:
    return [{"id": str(e.seq), "event": "state", "data": serialize.event_json(e)} for e in events]


def end_message(record: RunRecord) -> dict[str, Any]:
    return {"event": "end", "data": serialize.run_summary(record)}


def of_run(recorder: EventRecorder, run_id: str) -> list[StateChange]:
    return [e for e in recorder.events if e.run_id == run_id]


def transitions(messages: list[dict[str, Any]]) -> list[tuple[str | None, str]]:
    return [
        (m["data"]["task_name"], m["data"]["new_state"]["type"])
        for m in messages
        if m.get("event") == "state"
    ]


async def post(
    api: aiohttp.ClientSession, path: str, body: Any = None, **params: str
) -> tuple[int, Any]:
    async with api.post(f"/api{path}", json=body, params=params) as response:
        return response.status, await response.json()


async def start(api: aiohttp.ClientSession, flow: str, **parameters: Any) -> str:
    status, body = await post(api, f"/flows/{flow}/runs", {"parameters": parameters})
    assert status == 201, body
    run_id: str = body["id"]
    return run_id


def has_events(record: RunRecord, n: int) -> Callable[[], bool]:
    return lambda: len(record.events) >= n


async def paused(runtime: Runtime, run_id: str) -> None:
    record = runtime.get(run_id)
    await until(lambda: any(isinstance(s, Paused) for s in record.task_states.values()))


# -- the specification --------------------------------------------------------------------------


class TestFlowsAndRuns:
    async def test_the_routes_answer_like_the_fastapi_router(self, bus: EventBus) -> None:
        gate = anyio.Event()
        runtime = Runtime(flows(gate), bus=bus)
        async with served(runtime) as api:
            async with api.get("/api/flows") as response:
                listed_flows = await response.json()
            status, started = await post(api, "/flows/gated/runs", {"parameters": {"n": 2}})
            run_id = started["id"]
            await until(has_events(runtime.get(run_id), 4))
            async with api.get("/api/runs") as response:
                runs = await response.json()
            async with api.get(f"/api/runs/{run_id}") as response:
                detail = await response.json()
            gate.set()
        assert listed_flows == [
            serialize.flow_json("gated", runtime.flows["gated"]),
            serialize.flow_json("approval", runtime.flows["approval"]),
        ]
        assert status == 201
        assert started == {
            "id": run_id,
            "flow": "gated",
            "state": serialize.state_json(Running("Running flow.")),
        }
        assert runs == [started]
        assert detail["tasks"]["wait"] == serialize.state_json(Running("Starting task run."))

    async def test_the_sub_application_keeps_its_runtime(self) -> None:
        runtime = Runtime({})
        assert subapp(runtime)[RUNTIME] is runtime

    @pytest.mark.parametrize(
        ("method", "path", "detail"),
        [
            ("POST", "/flows/nope/runs", "no flow named 'nope'; flows: ['approval', 'gated']"),
            ("GET", "/runs/nope", "no run with id 'nope'"),
            ("GET", "/runs/nope/events", "no run with id 'nope'"),
            ("POST", "/runs/nope/cancel", "no run with id 'nope'"),
            ("POST", "/runs/nope/tasks/publish/resume", "no run with id 'nope'"),
        ],
    )
    async def test_unknown_flows_and_runs_are_404(
        self, bus: EventBus, method: str, path: str, detail: str
    ) -> None:
        async with (
            served(Runtime(flows(anyio.Event()), bus=bus)) as api,
            api.request(method, f"/api{path}") as response,
        ):
            assert (response.status, await response.json()) == (404, {"detail": detail})


class TestBadParameters:
    @pytest.mark.parametrize(
        ("body", "detail", "unknown", "missing"),
        [
            (
                {"parameters": {"draft": "x", "color": "red"}},
                "flow 'approval': unknown parameter(s) ['color'] (its parameters: ['draft'])",
                ["color"],
                [],
            ),
            (
                None,
                "flow 'approval': missing required parameter(s) ['draft']"
                " (its parameters: ['draft'])",
                [],
                ["draft"],
            ),
            (
                {"parameters": {"colour": 1}},
                "flow 'approval': unknown parameter(s) ['colour']; missing required"
                " parameter(s) ['draft'] (its parameters: ['draft'])",
                ["colour"],
                ["draft"],
            ),
            ({"parameters": [1]}, "parameters must be an object, got [1]", [], []),
            ({"params": {}}, 'the body must be {"parameters": {...}}', [], []),
        ],
    )
    @pytest.mark.parametrize("wait", ["false", "true"])
    async def test_bad_parameters_are_422_naming_them(
        self,
        bus: EventBus,
        body: Any,
        detail: str,
        unknown: list[str],
        missing: list[str],
        wait: str,
    ) -> None:
        runtime = Runtime(flows(anyio.Event()), bus=bus)
        async with served(runtime) as api:
            status, answer = await post(api, "/flows/approval/runs", body, wait=wait)
        assert (status, answer) == (
            422,
            {"detail": detail, "unknown": unknown, "missing": missing},
        )
        assert runtime.runs() == []

    async def test_a_body_that_is_not_json_is_422(self, bus: EventBus) -> None:
        async with (
            served(Runtime(flows(anyio.Event()), bus=bus)) as api,
            api.post("/api/flows/approval/runs", data=b"{", headers={"Content-Type": "x"}) as r,
        ):
            assert r.status == 422
            assert (await r.json())["detail"].startswith("the body is not JSON: ")


class TestUnavailable:
    async def test_a_runtime_shutting_down_answers_503(self, bus: EventBus) -> None:
        runtime = Runtime(flows(anyio.Event()), bus=bus)
        async with served(runtime, manage=False) as api:
            await runtime.shutdown()
            status, body = await post(api, "/flows/approval/runs", {"parameters": {"draft": "x"}})
        assert (status, body) == (
            503,
            {"detail": "the runtime is shutting down; it takes no new run"},
        )

    async def test_a_runtime_full_of_runs_in_progress_answers_503(self, bus: EventBus) -> None:
        runtime = Runtime(flows(anyio.Event()), bus=bus, max_runs=1)
        async with served(runtime) as api:
            await start(api, "approval", draft="x")
            status, body = await post(api, "/flows/approval/runs", {"parameters": {"draft": "y"}})
        assert (status, body) == (503, {"detail": "1 runs are in progress; try again later"})


class TestEventStream:
    async def test_the_stream_is_the_runs_state_history_exactly_then_end(
        self, bus: EventBus, recorder: EventRecorder
    ) -> None:
        gate = anyio.Event()
        runtime = Runtime(flows(gate), bus=bus)
        async with served(runtime) as api:
            run_id = await start(api, "gated", n=3)
            async with api.get(f"/api/runs/{run_id}/events") as response:
                lines = lines_of(response)
                first = await read_sse(lines, limit=4)  # history, then waits on the gate
                gate.set()
                rest = await read_sse(lines)
        expected = [*as_sse(of_run(recorder, run_id)), end_message(runtime.get(run_id))]
        assert first + rest == expected
        assert transitions(first + rest) == GATED_HISTORY

    @pytest.mark.parametrize("how", ["header", "query"])
    async def test_reconnecting_with_last_event_id_gives_no_gap_and_no_duplicate(
        self, bus: EventBus, recorder: EventRecorder, how: str
    ) -> None:
        gate = anyio.Event()
        runtime = Runtime(flows(gate), bus=bus)
        async with served(runtime) as api:
            run_id = await start(api, "gated")
            first = await stream(api, run_id, limit=3)
            gate.set()
            last = first[-1]["id"]
            if how == "header":
                rest = await stream(api, run_id, headers={"Last-Event-ID": last})
            else:
                rest = await stream(api, run_id, params={"last_event_id": last})
        assert last == "3"
        assert first + rest == [*as_sse(of_run(recorder, run_id)), end_message(runtime.get(run_id))]

    @pytest.mark.realtime
    async def test_a_quiet_stream_sends_heartbeat_comments(self, bus: EventBus) -> None:
        runtime = Runtime(flows(anyio.Event()), bus=bus)
        async with served(runtime, heartbeat=0.05) as api:
            run_id = await start(api, "approval", draft="x")
            await paused(runtime, run_id)  # all six events are history: then silence
            messages = await stream(api, run_id, limit=7)
            await post(api, f"/runs/{run_id}/cancel")
        assert transitions(messages)[-1] == ("publish", "Paused")
        assert messages[-1] == {"comment": "ping"}


class TestCancelAndApprove:
    async def test_cancel_answers_202_and_the_run_ends_cancelled(
        self, bus: EventBus, recorder: EventRecorder
    ) -> None:
        gate = anyio.Event()
        runtime = Runtime(flows(gate), bus=bus)
        async with served(runtime) as api:
            run_id = await start(api, "gated")
            await until(has_events(runtime.get(run_id), 4))
            status, body = await post(api, f"/runs/{run_id}/cancel")
            messages = await stream(api, run_id)
            again, _ = await post(api, f"/runs/{run_id}/cancel")
        assert (status, body["id"], again) == (202, run_id, 409)
        assert messages == [*as_sse(of_run(recorder, run_id)), end_message(runtime.get(run_id))]
        assert transitions(messages)[-1] == (None, "Cancelled")

    async def test_approving_a_paused_task_lets_the_run_succeed(self, bus: EventBus) -> None:
        runtime = Runtime(flows(anyio.Event()), bus=bus)
        async with served(runtime) as api:
            run_id = await start(api, "approval", draft="post")
            await paused(runtime, run_id)
            status, _ = await post(api, f"/runs/{run_id}/tasks/publish/resume")
            messages = await stream(api, run_id)
        assert status == 202
        assert transitions(messages)[-4:] == [
            ("publish", "Resume"),
            ("publish", "Running"),
            ("publish", "Success"),
            (None, "Success"),
        ]

    @pytest.mark.parametrize(
        ("path", "params", "status", "detail"),
        [
            (
                "/tasks/prepare/resume",
                {},
                409,
                '<Task: prepare> is not paused (its state is Success("Task run succeeded."))',
            ),
            ("/tasks/nope/resume", {}, 404, "'nope' is not a task of <Flow: name=approval>"),
            (
                "/tasks/publish/resume",
                {"map_index": "x"},
                422,
                "map_index must be an integer, got 'x'",
            ),
        ],
    )
    async def test_resuming_what_is_not_paused_is_refused(
        self, bus: EventBus, path: str, params: dict[str, str], status: int, detail: str
    ) -> None:
        runtime = Runtime(flows(anyio.Event()), bus=bus)
        async with served(runtime) as api:
            run_id = await start(api, "approval", draft="post")
            await paused(runtime, run_id)
            answer = await post(api, f"/runs/{run_id}{path}", **params)
            await post(api, f"/runs/{run_id}/cancel")
        assert answer[0] == status
        assert answer[1]["detail"] == detail


class TestManyClients:
    async def test_fifty_runs_streamed_by_fifty_clients_lose_no_event(
        self, bus: EventBus, recorder: EventRecorder
    ) -> None:
        gate = anyio.Event()
        runtime = Runtime(flows(gate), bus=bus)
        streaming = 0
        got: dict[str, list[dict[str, Any]]] = {}

        async def client(base: str, n: int) -> None:
            nonlocal streaming
            async with aiohttp.ClientSession(base) as own:
                run_id = await start(own, "gated", n=n)
                async with own.get(f"/api/runs/{run_id}/events") as response:
                    lines = lines_of(response)
                    first = await read_sse(lines, limit=1)
                    streaming += 1
                    if streaming == 50:
                        gate.set()  # every run is live and streamed: let them all go
                    got[run_id] = first + await read_sse(lines)

        async with served(runtime) as api, anyio.create_task_group() as tg:
            for n in range(50):
                tg.start_soon(client, BASES[api], n)
        assert len(got) == 50
        for run_id, messages in got.items():
            expected = [*as_sse(of_run(recorder, run_id)), end_message(runtime.get(run_id))]
            assert messages == expected
            assert transitions(messages) == GATED_HISTORY


class TestClientsGoingAway:
    async def test_a_client_leaving_mid_stream_costs_the_run_nothing(
        self, bus: EventBus, recorder: EventRecorder
    ) -> None:
        gate = anyio.Event()
        runtime = Runtime(flows(gate), bus=bus)
        async with served(runtime) as api:
            run_id = await start(api, "gated")
            assert len(await stream(api, run_id, limit=2)) == 2  # and the client hangs up
            gate.set()
            record = runtime.get(run_id)
            await record.wait()
            after = await stream(api, run_id)
        assert record.state.is_successful()
        assert record.events == of_run(recorder, run_id)
        assert transitions(after) == GATED_HISTORY

    async def test_wait_true_runs_the_flow_in_the_request_and_answers_its_end(
        self, bus: EventBus
    ) -> None:
        gate = anyio.Event()
        gate.set()
        runtime = Runtime(flows(gate), bus=bus)
        async with served(runtime) as api:
            status, body = await post(api, "/flows/gated/runs", {"parameters": {"n": 5}}, wait="1")
        assert status == 201
        assert body == serialize.run_detail(runtime.get(body["id"]))
        assert body["tasks"]["double"]["result"] == 10

    async def test_wait_true_cancels_the_run_when_the_client_leaves(
        self, bus: EventBus, recorder: EventRecorder
    ) -> None:
        gate = anyio.Event()
        runtime = Runtime(flows(gate), bus=bus)
        async with served(runtime) as api:
            async with anyio.create_task_group() as tg:
                tg.start_soon(functools.partial(post, api, "/flows/gated/runs", wait="true"))
                await until(lambda: runtime.runs() and len(runtime.runs()[0].events) >= 4)
                tg.cancel_scope.cancel()  # the client goes away
            record = runtime.runs()[0]
            with anyio.fail_after(2):
                await record.wait()
        assert record.state.is_cancelled()
        assert record.events == of_run(recorder, record.id)


class TestShutdown:
    @pytest.mark.parametrize("manage", [True, False])
    async def test_cancel_mode_cancels_the_runs_in_flight_losing_no_event(
        self, bus: EventBus, recorder: EventRecorder, manage: bool
    ) -> None:
        runtime = Runtime(flows(anyio.Event()), bus=bus)
        async with served(runtime, manage=manage) as api:
            ids = [await start(api, "gated", n=n) for n in range(3)]
            ids.append(await start(api, "approval", draft="x"))
            for run_id in ids:
                await until(has_events(runtime.get(run_id), 4))
        for run_id in ids:
            record = runtime.get(run_id)
            assert record.state.is_cancelled()
            assert record.events == of_run(recorder, run_id)
            assert record.events[-1].new_state == record.state

    async def test_drain_mode_lets_the_runs_in_flight_finish(
        self, bus: EventBus, recorder: EventRecorder
    ) -> None:
        gate = anyio.Event()
        runtime = Runtime(flows(gate), bus=bus, on_shutdown="drain")

        async def open_the_gate_once_closing() -> None:
            await until(lambda: runtime.closing)
            gate.set()

        async with anyio.create_task_group() as tg, served(runtime) as api:
            ids = [await start(api, "gated", n=n) for n in range(3)]
            tg.start_soon(open_the_gate_once_closing)
        for run_id in ids:
            assert runtime.get(run_id).state.is_successful()
            assert runtime.get(run_id).events == of_run(recorder, run_id)

    async def test_an_open_stream_gets_every_event_and_its_end_before_the_server_stops(
        self, bus: EventBus, recorder: EventRecorder
    ) -> None:
        """The sub-application shuts the runtime down in on_shutdown, before handlers drain."""
        runtime = Runtime(flows(anyio.Event()), bus=bus)
        received: list[dict[str, Any]] = []

        async def listen(base: str, run_id: str) -> None:
            async with (
                aiohttp.ClientSession(base) as own,
                own.get(f"/api/runs/{run_id}/events") as response,
            ):
                await read_sse(lines_of(response), into=received)

        async with anyio.create_task_group() as tg, served(runtime) as api:
            run_id = await start(api, "gated")
            tg.start_soon(listen, BASES[api], run_id)
            await until(lambda: len(received) >= 4)
        record = runtime.get(run_id)
        assert record.state.is_cancelled()
        assert received == [*as_sse(of_run(recorder, run_id)), end_message(record)]
