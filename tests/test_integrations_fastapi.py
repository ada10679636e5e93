"""Specification of ``asyncflow.integrations.fastapi``: the routes, against a real uvicorn server.

Each test serves ``router(runtime)`` under ``/api`` with uvicorn on a free loopback port, in the
test's own event loop, and drives it with httpx.
"""

from __future__ import annotations

import contextlib
import json
from typing import TYPE_CHECKING, Any

import anyio
import httpx
import pytest
import uvicorn
from fastapi import FastAPI

from asyncflow import Flow, Parameter, task
from asyncflow.engine.state import Paused, Pending, Running, Success
from asyncflow.integrations import Runtime, serialize
from asyncflow.integrations.fastapi import router
from asyncflow.triggers import manual_only

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable

    from asyncflow import EventBus, StateChange
    from asyncflow.integrations import RunRecord
    from asyncflow.testing import EventRecorder


# -- flows --------------------------------------------------------------------------------------


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
    """``draft -> prepare -> publish``; ``publish`` waits for approval; also a mapped one."""

    @task
    async def prepare(draft: str) -> list[str]:
        return [draft, draft.upper()]

    @task(trigger=manual_only)
    async def publish(text: Any) -> str:
        return f"published {text}"

    with Flow("approval") as flow:
        publish(prepare(Parameter("draft")))
    return flow


def mapped_approval_flow() -> Flow:
    """``items -> publish.map``: each mapped child waits for its own approval."""

    @task
    async def items() -> list[str]:
        return ["a", "b"]

    @task(trigger=manual_only)
    async def publish(text: str) -> str:
        return text.upper()

    with Flow("mapped") as flow:
        publish.map(items())
    return flow


def flows(gate: anyio.Event) -> dict[str, Flow]:
    return {"gated": gated_flow(gate), "approval": approval_flow()}


# -- a server and its client ------------------------------------------------------------------


async def until(predicate: Callable[[], Any], seconds: float = 2.0) -> None:
    """Wait until ``predicate()`` holds (uvicorn and the runtime offer nothing to await)."""
    with anyio.fail_after(seconds):
        while not predicate():  # noqa: ASYNC110
            await anyio.sleep(0.002)


@contextlib.asynccontextmanager
async def served(
    runtime: Runtime, *, graceful: float | None = None, **options: Any
) -> AsyncIterator[httpx.AsyncClient]:
    """``router(runtime)`` under ``/api`` on a uvicorn server; a client for it; then shutdown."""
    app = FastAPI(lifespan=runtime.lifespan)
    app.include_router(router(runtime, **options), prefix="/api")
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=0,
        lifespan="on",
        ws="none",
        log_config=None,
        log_level="warning",
        timeout_graceful_shutdown=graceful,
    )
    server = uvicorn.Server(config)
    stopped = anyio.Event()

    async def serve() -> None:
        try:
            await server.serve()
        finally:
            stopped.set()

    async with anyio.create_task_group() as tg:
        tg.start_soon(serve)
        await until(lambda: server.started)
        port = server.servers[0].sockets[0].getsockname()[1]
        base = f"http://127.0.0.1:{port}/api"
        try:
            async with httpx.AsyncClient(base_url=base, timeout=10, verify=False) as client:
                yield client
        finally:
            # Stop the way a deployment does, even when the test failed: the lifespan ends.
            server.should_exit = True
            with anyio.fail_after(5, shield=True):
                await stopped.wait()


async def read_sse(
    lines: AsyncIterator[str], limit: int | None = None, into: list[dict[str, Any]] | None = None
) -> list[dict[str, Any]]:
    """The next messages of an SSE stream (``data`` parsed as JSON), up to ``limit`` of them.

    ``lines`` is the response's ``aiter_lines()``, so that reading can go on where it stopped;
    each message is also appended to ``into`` as soon as it arrives, when given.
    """
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
    client: httpx.AsyncClient,
    run_id: str,
    *,
    limit: int | None = None,
    headers: dict[str, str] | None = None,
    params: dict[str, str] | None = None,
) -> list[dict[str, Any]]:
    async with client.stream(
        "GET", f"/runs/{run_id}/events", headers=headers, params=params
    ) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        return await read_sse(response.aiter_lines(), limit)


def as_sse(events: list[StateChange]) -> list[dict[str, Any]]:
    """The SSE messages the events must become."""
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


async def start(client: httpx.AsyncClient, flow: str, **parameters: Any) -> str:
    response = await client.post(f"/flows/{flow}/runs", json={"parameters": parameters})
    assert response.status_code == 201, response.text
    run_id: str = response.json()["id"]
    return run_id


def has_events(record: RunRecord, n: int) -> Callable[[], bool]:
    return lambda: len(record.events) >= n


async def paused(runtime: Runtime, run_id: str) -> None:
    record = runtime.get(run_id)
    await until(lambda: any(isinstance(s, Paused) for s in record.task_states.values()))


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


# -- the specification --------------------------------------------------------------------------


class TestFlowsAndRuns:
    async def test_get_flows_lists_each_flow_with_its_parameters_and_tasks(
        self, bus: EventBus
    ) -> None:
        async with served(Runtime(flows(anyio.Event()), bus=bus)) as api:
            response = await api.get("/flows")
        assert response.status_code == 200
        assert response.json() == [
            {
                "name": "gated",
                "parameters": [{"name": "n", "required": False, "default": 1}],
                "tasks": ["n", "wait", "double"],
            },
            {
                "name": "approval",
                "parameters": [{"name": "draft", "required": True, "default": None}],
                "tasks": ["draft", "prepare", "publish"],
            },
        ]

    async def test_post_answers_201_at_once_while_the_run_goes_on(self, bus: EventBus) -> None:
        gate = anyio.Event()
        runtime = Runtime(flows(gate), bus=bus)
        async with served(runtime) as api:
            response = await api.post("/flows/gated/runs", json={"parameters": {"n": 4}})
            assert response.status_code == 201
            run_id = response.json()["id"]
            assert response.json() == {
                "id": run_id,
                "flow": "gated",
                "state": serialize.state_json(Running("Running flow.")),
            }
            await until(lambda: len(runtime.get(run_id).events) >= 4)
            listed = (await api.get("/runs")).json()
            detail = (await api.get(f"/runs/{run_id}")).json()
            gate.set()
        assert listed == [response.json()]
        assert detail == {
            **response.json(),
            "tasks": {
                "n": serialize.state_json(Success("Task run succeeded.", 4)),
                "wait": serialize.state_json(Running("Starting task run.")),
                "double": serialize.state_json(Pending()),
            },
        }

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
        async with served(Runtime(flows(anyio.Event()), bus=bus)) as api:
            response = await api.request(method, path)
        assert (response.status_code, response.json()) == (404, {"detail": detail})


class TestBadParameters:
    @pytest.mark.parametrize(
        ("parameters", "unknown", "missing", "detail"),
        [
            (
                {"draft": "x", "color": "red"},
                ["color"],
                [],
                "flow 'approval': unknown parameter(s) ['color'] (its parameters: ['draft'])",
            ),
            (
                {},
                [],
                ["draft"],
                "flow 'approval': missing required parameter(s) ['draft']"
                " (its parameters: ['draft'])",
            ),
            (
                {"colour": 1},
                ["colour"],
                ["draft"],
                "flow 'approval': unknown parameter(s) ['colour']; missing required"
                " parameter(s) ['draft'] (its parameters: ['draft'])",
            ),
        ],
    )
    @pytest.mark.parametrize("wait", ["false", "true"])
    async def test_unknown_or_missing_parameters_are_422_naming_them(
        self,
        bus: EventBus,
        parameters: dict[str, Any],
        unknown: list[str],
        missing: list[str],
        detail: str,
        wait: str,
    ) -> None:
        runtime = Runtime(flows(anyio.Event()), bus=bus)
        async with served(runtime) as api:
            response = await api.post(
                "/flows/approval/runs", params={"wait": wait}, json={"parameters": parameters}
            )
        assert response.status_code == 422
        assert response.json() == {"detail": detail, "unknown": unknown, "missing": missing}
        assert runtime.runs() == []

    @pytest.mark.parametrize("body", [{"parameters": [1]}, {"params": {}}, [1]])
    async def test_a_body_of_the_wrong_shape_is_422(self, bus: EventBus, body: Any) -> None:
        async with served(Runtime(flows(anyio.Event()), bus=bus)) as api:
            response = await api.post("/flows/approval/runs", json=body)
        assert response.status_code == 422


class TestEventStream:
    async def test_the_stream_is_the_runs_state_history_exactly_then_end(
        self, bus: EventBus, recorder: EventRecorder
    ) -> None:
        gate = anyio.Event()
        runtime = Runtime(flows(gate), bus=bus)
        async with served(runtime) as api:
            run_id = await start(api, "gated", n=3)
            async with api.stream("GET", f"/runs/{run_id}/events") as response:
                lines = response.aiter_lines()
                first = await read_sse(lines, limit=4)  # history, then waits on the gate
                gate.set()
                rest = await read_sse(lines)
        record = runtime.get(run_id)
        assert first + rest == [*as_sse(of_run(recorder, run_id)), end_message(record)]
        assert transitions(first + rest) == GATED_HISTORY
        assert rest[-1]["data"]["state"]["type"] == "Success"

    @pytest.mark.parametrize("how", ["header", "query"])
    async def test_reconnecting_with_last_event_id_gives_no_gap_and_no_duplicate(
        self, bus: EventBus, recorder: EventRecorder, how: str
    ) -> None:
        gate = anyio.Event()
        runtime = Runtime(flows(gate), bus=bus)
        async with served(runtime) as api:
            run_id = await start(api, "gated")
            first = await stream(api, run_id, limit=3)
            last = first[-1]["id"]
            gate.set()
            if how == "header":
                rest = await stream(api, run_id, headers={"Last-Event-ID": last})
            else:
                rest = await stream(api, run_id, params={"last_event_id": last})
        assert last == "3"
        assert first + rest == [*as_sse(of_run(recorder, run_id)), end_message(runtime.get(run_id))]

    async def test_a_finished_runs_stream_replays_its_history_and_ends(
        self, bus: EventBus, recorder: EventRecorder
    ) -> None:
        gate = anyio.Event()
        gate.set()
        runtime = Runtime(flows(gate), bus=bus)
        async with served(runtime) as api:
            run_id = await start(api, "gated")
            await runtime.get(run_id).wait()
            replay = await stream(api, run_id)
            after_the_end = await stream(api, run_id, headers={"Last-Event-ID": "8"})
        assert replay == [*as_sse(of_run(recorder, run_id)), end_message(runtime.get(run_id))]
        assert after_the_end == [end_message(runtime.get(run_id))]

    @pytest.mark.realtime
    async def test_a_quiet_stream_sends_heartbeat_comments(self, bus: EventBus) -> None:
        runtime = Runtime(flows(anyio.Event()), bus=bus)
        async with served(runtime, heartbeat=0.05) as api:
            run_id = await start(api, "approval", draft="x")
            await paused(runtime, run_id)  # all six events are history: then silence
            messages = await stream(api, run_id, limit=7)
            await api.post(f"/runs/{run_id}/cancel")
        assert transitions(messages)[-1] == ("publish", "Paused")
        assert messages[-1] == {"comment": "ping"}


class TestCancel:
    async def test_cancel_answers_202_and_the_run_ends_cancelled(
        self, bus: EventBus, recorder: EventRecorder
    ) -> None:
        gate = anyio.Event()
        runtime = Runtime(flows(gate), bus=bus)
        async with served(runtime) as api:
            run_id = await start(api, "gated")
            await until(lambda: len(runtime.get(run_id).events) >= 4)
            response = await api.post(f"/runs/{run_id}/cancel")
            messages = await stream(api, run_id)
            again = await api.post(f"/runs/{run_id}/cancel")
        assert response.status_code == 202
        assert response.json()["id"] == run_id
        assert messages == [*as_sse(of_run(recorder, run_id)), end_message(runtime.get(run_id))]
        assert transitions(messages)[-3:] == [
            ("wait", "Cancelled"),
            ("double", "Cancelled"),
            (None, "Cancelled"),
        ]
        assert messages[-1]["data"]["state"]["message"] == "Flow run was cancelled."
        assert again.status_code == 409
        assert again.json()["detail"].endswith("it cannot be cancelled")


class TestApproval:
    async def test_approving_a_paused_task_lets_the_run_succeed(self, bus: EventBus) -> None:
        runtime = Runtime(flows(anyio.Event()), bus=bus)
        async with served(runtime) as api:
            run_id = await start(api, "approval", draft="post")
            await paused(runtime, run_id)
            response = await api.post(f"/runs/{run_id}/tasks/publish/resume")
            messages = await stream(api, run_id)
            detail = (await api.get(f"/runs/{run_id}")).json()
        assert response.status_code == 202
        assert transitions(messages)[-5:] == [
            ("publish", "Paused"),
            ("publish", "Resume"),
            ("publish", "Running"),
            ("publish", "Success"),
            (None, "Success"),
        ]
        assert detail["tasks"]["publish"]["result"] == "published ['post', 'POST']"

    @pytest.mark.parametrize(
        ("path", "status", "detail"),
        [
            (
                "/tasks/prepare/resume",
                409,
                '<Task: prepare> is not paused (its state is Success("Task run succeeded."))',
            ),
            ("/tasks/nope/resume", 404, "'nope' is not a task of <Flow: name=approval>"),
            (
                "/tasks/publish/resume?map_index=0",
                404,
                "<Task: publish> has no mapped child 0",
            ),
        ],
    )
    async def test_resuming_what_is_not_paused_is_refused(
        self, bus: EventBus, path: str, status: int, detail: str
    ) -> None:
        runtime = Runtime(flows(anyio.Event()), bus=bus)
        async with served(runtime) as api:
            run_id = await start(api, "approval", draft="post")
            await paused(runtime, run_id)
            response = await api.post(f"/runs/{run_id}{path}")
            await api.post(f"/runs/{run_id}/cancel")
        assert (response.status_code, response.json()) == (status, {"detail": detail})

    async def test_a_paused_mapped_child_is_approved_by_its_map_index(self, bus: EventBus) -> None:
        """Prefect 1.x checks a mapped task's trigger in each child, never in the parent."""
        runtime = Runtime({"mapped": mapped_approval_flow()}, bus=bus)
        async with served(runtime) as api:
            run_id = await start(api, "mapped")
            record = runtime.get(run_id)
            await until(lambda: sum(e.new_state.is_paused() for e in record.events) == 2, 1)
            first = await api.post(f"/runs/{run_id}/tasks/publish/resume?map_index=1")
            second = await api.post(f"/runs/{run_id}/tasks/publish/resume?map_index=0")
            messages = await stream(api, run_id)
        assert (first.status_code, second.status_code) == (202, 202)
        assert messages[-1]["data"]["state"]["type"] == "Success"
        publish = [m["data"] for m in messages[:-1] if m["data"]["task_name"] == "publish"]
        by_index = {
            i: [e["new_state"]["type"] for e in publish if e["map_index"] == i]
            for i in (None, 0, 1)
        }
        assert by_index == {
            None: ["Running", "Mapped"],
            0: ["Paused", "Resume", "Running", "Success"],
            1: ["Paused", "Resume", "Running", "Success"],
        }


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
            async with httpx.AsyncClient(base_url=base, timeout=10, verify=False) as own:
                run_id = await start(own, "gated", n=n)
                async with own.stream("GET", f"/runs/{run_id}/events") as response:
                    lines = response.aiter_lines()
                    first = await read_sse(lines, limit=1)
                    streaming += 1
                    if streaming == 50:
                        gate.set()  # every run is live and streamed: let them all go
                    got[run_id] = first + await read_sse(lines)

        async with served(runtime) as api, anyio.create_task_group() as tg:
            for n in range(50):
                tg.start_soon(client, str(api.base_url), n)
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
            response = await api.post("/flows/gated/runs?wait=true", json={"parameters": {"n": 5}})
        assert response.status_code == 201
        body = response.json()
        assert body == serialize.run_detail(runtime.get(body["id"]))
        assert body["state"]["type"] == "Success"
        assert body["tasks"]["double"]["result"] == 10

    async def test_wait_true_cancels_the_run_when_the_client_leaves(
        self, bus: EventBus, recorder: EventRecorder
    ) -> None:
        gate = anyio.Event()
        runtime = Runtime(flows(gate), bus=bus)
        async with served(runtime) as api:
            async with anyio.create_task_group() as tg:
                tg.start_soon(api.post, "/flows/gated/runs?wait=true")
                await until(lambda: runtime.runs() and len(runtime.runs()[0].events) >= 4)
                tg.cancel_scope.cancel()  # the client goes away
            record = runtime.runs()[0]
            with anyio.fail_after(2):
                await record.wait()
        assert record.state.is_cancelled()
        assert record.events == of_run(recorder, record.id)
        assert [type(e.new_state).__name__ for e in record.events][-1] == "Cancelled"


class TestShutdown:
    async def test_cancel_mode_cancels_the_runs_in_flight_losing_no_event(
        self, bus: EventBus, recorder: EventRecorder
    ) -> None:
        runtime = Runtime(flows(anyio.Event()), bus=bus)
        async with served(runtime) as api:
            ids = [await start(api, "gated", n=n) for n in range(3)]
            ids.append(await start(api, "approval", draft="x"))
            for run_id in ids:
                await until(has_events(runtime.get(run_id), 4))
        for run_id in ids:
            record = runtime.get(run_id)
            assert record.done
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
            record = runtime.get(run_id)
            assert record.state.is_successful()
            assert record.events == of_run(recorder, run_id)

    @pytest.mark.realtime
    async def test_an_open_stream_is_cut_after_the_graceful_timeout_and_the_run_cancelled(
        self, bus: EventBus, recorder: EventRecorder
    ) -> None:
        """uvicorn waits for open responses before the lifespan ends: bound it."""
        runtime = Runtime(flows(anyio.Event()), bus=bus)
        received: list[dict[str, Any]] = []

        async def listen(base: str, run_id: str) -> None:
            async with httpx.AsyncClient(base_url=base, timeout=10, verify=False) as own:
                with contextlib.suppress(httpx.HTTPError):
                    async with own.stream("GET", f"/runs/{run_id}/events") as response:
                        await read_sse(response.aiter_lines(), into=received)

        async with anyio.create_task_group() as tg, served(runtime, graceful=0.1) as api:
            run_id = await start(api, "gated")
            tg.start_soon(listen, str(api.base_url), run_id)
            await until(lambda: len(received) >= 4)
        record = runtime.get(run_id)
        assert record.state.is_cancelled()
        assert record.events == of_run(recorder, run_id)
        assert received == as_sse(record.events)[: len(received)]
