"""The web integrations' shared specification: the scenarios every server passes, and its harness.

``router(runtime)`` (FastAPI) and ``subapp(runtime)`` (aiohttp) serve the same routes
(DESIGN.md "Web integration"), so each scenario is written once, here. This module is not a
test file: ``test_integrations_fastapi.py`` and ``test_integrations_aiohttp.py`` import its
``Test*`` classes and run them against their own real server by defining the ``framework``
fixture ("fastapi": uvicorn on a free loopback port; "aiohttp": aiohttp's own
``AppRunner``/``TCPSite``), in the test's own event loop, with the routes under ``/api``. What
only one framework does stays in its own file. The flows and a few helpers serve
``test_integrations_runtime.py`` too.
"""

from __future__ import annotations

import contextlib
import functools
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import anyio
import httpx
import pytest

from asyncflow import Flow, Parameter, task
from asyncflow.engine.state import Paused, Pending, Running, Success
from asyncflow.integrations import Runtime, serialize
from asyncflow.triggers import manual_only

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable
    from contextlib import AbstractAsyncContextManager

    from asyncflow import EventBus, StateChange
    from asyncflow.integrations import RunRecord
    from asyncflow.testing import EventRecorder

    Serve = Callable[..., AbstractAsyncContextManager["Server"]]


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
    """``draft -> prepare -> publish``; ``publish`` waits for approval (``manual_only``)."""

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


#: The whole history of a gated run, as ``(task name, new state type)``.
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


# -- helpers ------------------------------------------------------------------------------------


async def until(predicate: Callable[[], Any], seconds: float = 2.0) -> None:
    """Wait until ``predicate()`` holds (the servers and the runtime offer nothing to await)."""
    with anyio.fail_after(seconds):
        while not predicate():  # noqa: ASYNC110
            await anyio.sleep(0.002)


def of_run(recorder: EventRecorder, run_id: str) -> list[StateChange]:
    return [e for e in recorder.events if e.run_id == run_id]


def has_events(record: RunRecord, n: int) -> Callable[[], bool]:
    return lambda: len(record.events) >= n


def as_sse(events: list[StateChange]) -> list[dict[str, Any]]:
    """The SSE messages the events must become."""
    return [{"id": str(e.seq), "event": "state", "data": serialize.event_json(e)} for e in events]


def end_message(record: RunRecord) -> dict[str, Any]:
    return {"event": "end", "data": serialize.run_summary(record)}


def whole_stream(recorder: EventRecorder, record: RunRecord) -> list[dict[str, Any]]:
    """Every message of a finished run's stream: its state history exactly, then its end."""
    return [*as_sse(of_run(recorder, record.id)), end_message(record)]


def transitions(messages: list[dict[str, Any]]) -> list[tuple[str | None, str]]:
    return [
        (m["data"]["task_name"], m["data"]["new_state"]["type"])
        for m in messages
        if m.get("event") == "state"
    ]


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


# -- a real server and its client ---------------------------------------------------------------

#: The frameworks, and the Content-Type of an event stream exactly as each one sends it.
EVENT_STREAM = {"fastapi": "text/event-stream; charset=utf-8", "aiohttp": "text/event-stream"}


def client_of(base_url: str) -> httpx.AsyncClient:
    # verify=False: plain HTTP, and each client is spared loading the CA bundle (~20 ms).
    return httpx.AsyncClient(base_url=base_url, timeout=10, verify=False)


@dataclass(frozen=True)
class Server:
    """A real server of ``framework`` serving ``runtime`` under ``base_url``, and a client."""

    framework: str
    runtime: Runtime
    base_url: str
    client: httpx.AsyncClient

    async def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return await self.client.get(path, **kwargs)

    async def post(self, path: str, **kwargs: Any) -> httpx.Response:
        return await self.client.post(path, **kwargs)

    async def start(self, flow: str, **parameters: Any) -> str:
        """Start a run of ``flow``; its id."""
        response = await self.post(f"/flows/{flow}/runs", json={"parameters": parameters})
        assert response.status_code == 201, response.text
        run_id: str = response.json()["id"]
        return run_id

    async def start_paused(self, draft: str = "post") -> str:
        """Start a run of the approval flow; its id once ``publish`` waits for approval."""
        run_id = await self.start("approval", draft=draft)
        record = self.runtime.get(run_id)
        await until(lambda: any(isinstance(s, Paused) for s in record.task_states.values()))
        return run_id

    @contextlib.asynccontextmanager
    async def events(self, run_id: str, **kwargs: Any) -> AsyncIterator[AsyncIterator[str]]:
        """The lines of the run's event stream (``kwargs``: headers, params)."""
        async with self.client.stream("GET", f"/runs/{run_id}/events", **kwargs) as response:
            assert response.status_code == 200
            assert response.headers["content-type"] == EVENT_STREAM[self.framework]
            yield response.aiter_lines()

    async def stream(
        self, run_id: str, *, limit: int | None = None, **kwargs: Any
    ) -> list[dict[str, Any]]:
        """The run's event stream, to its end or to ``limit`` messages (then it hangs up)."""
        async with self.events(run_id, **kwargs) as lines:
            return await read_sse(lines, limit)

    @contextlib.asynccontextmanager
    async def another_client(self) -> AsyncIterator[Server]:
        """The same server with a client (and connections) of its own."""
        async with client_of(self.base_url) as client:
            yield Server(self.framework, self.runtime, self.base_url, client)

    async def listen(self, run_id: str, into: list[dict[str, Any]]) -> None:
        """Read the run's stream, on a client of its own, into ``into`` until it ends or is cut."""
        async with self.another_client() as own:
            with contextlib.suppress(httpx.HTTPError):
                async with own.events(run_id) as lines:
                    await read_sse(lines, into=into)


@contextlib.asynccontextmanager
async def on_uvicorn(
    runtime: Runtime, graceful: float | None, **options: Any
) -> AsyncIterator[str]:
    """``router(runtime)`` under ``/api`` on a uvicorn server; yields the base URL."""
    # Imported here, like the aiohttp ones below: test_integrations_runtime.py, which uses this
    # module's flows, needs no web framework.
    import uvicorn
    from fastapi import FastAPI

    from asyncflow.integrations.fastapi import router

    extend = options.pop("extend", None)  # more routes for the app: extend(app)
    app = FastAPI(lifespan=runtime.lifespan)
    app.include_router(router(runtime, **options), prefix="/api")
    if extend is not None:
        extend(app)
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
        try:
            yield f"http://127.0.0.1:{server.servers[0].sockets[0].getsockname()[1]}/api"
        finally:
            # Stop the way a deployment does, even when the test failed: the lifespan ends.
            server.should_exit = True
            with anyio.fail_after(5, shield=True):
                await stopped.wait()


@contextlib.asynccontextmanager
async def on_aiohttp(runtime: Runtime, manage: bool, **options: Any) -> AsyncIterator[str]:
    """``subapp(runtime)`` under ``/api/`` on aiohttp's own server; yields the base URL."""
    from aiohttp import web

    from asyncflow.integrations.aiohttp import subapp

    app = web.Application(middlewares=options.pop("middlewares", ()))
    if not manage:
        app.cleanup_ctx.append(runtime.cleanup_ctx)
    app.add_subapp("/api/", subapp(runtime, manage=manage, **options))
    runner = web.AppRunner(app, shutdown_timeout=5)
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        yield f"http://127.0.0.1:{runner.addresses[0][1]}/api"
    finally:
        # No cancel scope around this: the runtime's task group, entered by runner.setup() in
        # this task, must be left by runner.cleanup() in the same scope nesting.
        await runner.cleanup()


@contextlib.asynccontextmanager
async def served(
    framework: str,
    runtime: Runtime,
    *,
    graceful: float | None = None,
    manage: bool = True,
    **options: Any,
) -> AsyncIterator[Server]:
    """``runtime``'s routes on a real ``framework`` server, and a client; then shutdown.

    ``options`` go to ``router``/``subapp``; ``graceful`` is uvicorn's
    ``timeout_graceful_shutdown``; ``manage=False`` enters the runtime in the aiohttp
    application's own ``cleanup_ctx`` instead of the sub-application's.
    """
    assert framework in EVENT_STREAM, framework
    if framework == "fastapi":
        serving = on_uvicorn(runtime, graceful, **options)
    else:
        serving = on_aiohttp(runtime, manage, **options)
    async with serving as base_url, client_of(base_url) as client:
        yield Server(framework, runtime, base_url, client)


class OnARealServer:
    """The fixtures of the scenarios; the test module defines ``framework``."""

    @pytest.fixture
    async def gate(self) -> anyio.Event:
        """What the ``wait`` task of the gated flow waits for."""
        return anyio.Event()

    @pytest.fixture
    def runtime(self, gate: anyio.Event, bus: EventBus) -> Runtime:
        """A runtime of the gated and the approval flow, on the test's bus."""
        return Runtime(flows(gate), bus=bus)

    @pytest.fixture
    def serve(self, framework: str) -> Serve:
        """``serve(runtime, **options)``: :func:`served` on the module's framework."""
        return functools.partial(served, framework)


# -- scenarios that more than one test runs -----------------------------------------------------


async def cancel_mode_loses_no_event(
    serving: AbstractAsyncContextManager[Server], runtime: Runtime, recorder: EventRecorder
) -> None:
    """Runs in flight when the server stops are cancelled; their records keep every event."""
    async with serving as api:
        ids = [await api.start("gated", n=n) for n in range(3)]
        ids.append(await api.start("approval", draft="x"))
        for run_id in ids:
            await until(has_events(runtime.get(run_id), 4))
    for run_id in ids:
        record = runtime.get(run_id)
        assert record.done
        assert record.state.is_cancelled()
        assert record.events == of_run(recorder, run_id)
        assert record.events[-1].new_state == record.state


async def listened_through_shutdown(
    serving: AbstractAsyncContextManager[Server], runtime: Runtime
) -> tuple[RunRecord, list[dict[str, Any]]]:
    """A client follows a run's stream while the server stops: the record, what it received."""
    received: list[dict[str, Any]] = []
    async with anyio.create_task_group() as tg, serving as api:
        run_id = await api.start("gated")
        tg.start_soon(api.listen, run_id, received)
        await until(lambda: len(received) >= 4)
    record = runtime.get(run_id)
    assert record.state.is_cancelled()
    return record, received


# -- the specification --------------------------------------------------------------------------


class TestFlowsAndRuns(OnARealServer):
    async def test_get_flows_lists_each_flow_with_its_parameters_and_tasks(
        self, serve: Serve, runtime: Runtime
    ) -> None:
        async with serve(runtime) as api:
            response = await api.get("/flows")
        assert response.status_code == 200
        assert response.json() == [
            {
                "name": "gated",
                "parameters": [{"name": "n", "required": False, "default": 1}],
                "tasks": ["n", "wait", "double"],
                "edges": [
                    {"from": "n", "to": "wait", "mapped": False},
                    {"from": "wait", "to": "double", "mapped": False},
                ],
                "next_run": None,
            },
            {
                "name": "approval",
                "parameters": [{"name": "draft", "required": True, "default": None}],
                "tasks": ["draft", "prepare", "publish"],
                "edges": [
                    {"from": "draft", "to": "prepare", "mapped": False},
                    {"from": "prepare", "to": "publish", "mapped": False},
                ],
                "next_run": None,
            },
        ]
        assert response.json() == serialize.flows_json(runtime)

    async def test_get_flows_shows_when_a_scheduled_flow_runs_next(
        self, serve: Serve, gate: anyio.Event
    ) -> None:
        from datetime import timedelta

        import pendulum

        from asyncflow.schedules import IntervalSchedule
        from asyncflow.testing import FakeClock

        start = pendulum.datetime(2030, 1, 1, 6)
        nightly = flows(gate)["gated"]
        nightly.schedule = IntervalSchedule(start_date=start, interval=timedelta(days=1))
        clock = FakeClock(start.timestamp() - 60)
        async with serve(Runtime({"nightly": nightly}, clock=clock)) as api:
            before = (await api.get("/flows")).json()
            clock.jump_to(start.timestamp())
            await until(lambda: len(api.runtime.runs()) == 1)
            after = (await api.get("/flows")).json()
            gate.set()
        assert [f["next_run"] for f in before] == ["2030-01-01T06:00:00+00:00"]
        assert [f["next_run"] for f in after] == ["2030-01-02T06:00:00+00:00"]

    async def test_post_answers_201_at_once_while_the_run_goes_on(
        self, serve: Serve, runtime: Runtime, gate: anyio.Event
    ) -> None:
        async with serve(runtime) as api:
            response = await api.post("/flows/gated/runs", json={"parameters": {"n": 4}})
            assert response.status_code == 201
            run_id = response.json()["id"]
            await until(has_events(runtime.get(run_id), 4))
            listed = (await api.get("/runs")).json()
            detail = (await api.get(f"/runs/{run_id}")).json()
            gate.set()
        started = response.json()
        assert started == {
            "id": run_id,
            "flow": "gated",
            "state": {"type": "Running", "message": "Running flow."},
            "created": started["created"],
            "updated": started["updated"],
            "finished": None,
            "task_counts": started["task_counts"],  # the run goes on: n may have run
            "awaiting_approval": False,
        }
        assert sum(started["task_counts"].values()) == 3
        assert listed == {
            "runs": [
                {
                    **response.json(),
                    "updated": listed["runs"][0]["updated"],
                    "task_counts": {"Pending": 1, "Running": 1, "Success": 1},
                }
            ],
            "next": None,
        }
        task_runs = detail.pop("task_runs")
        assert detail == {
            **listed["runs"][0],
            "state": serialize.state_json(Running("Running flow.")),
            "parameters": {"n": 4},
            "tasks": {
                "n": serialize.state_json(Success("Task run succeeded.", 4)),
                "wait": serialize.state_json(Running("Starting task run.")),
                "double": serialize.state_json(Pending()),
            },
            "logs": [],
            "dropped_logs": 0,
            "dropped_events": 0,
            "last_seq": 4,
        }
        # The activity of each task run so far: n has run and ended, wait runs; double has
        # not moved yet, so it has none.
        assert [(k, v["runs"], v["end"] is not None) for k, v in task_runs.items()] == [
            ("n", 1, True),
            ("wait", 1, False),
        ]

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
        self, serve: Serve, runtime: Runtime, method: str, path: str, detail: str
    ) -> None:
        async with serve(runtime) as api:
            response = await api.client.request(method, path)
        assert (response.status_code, response.json()) == (404, {"detail": detail})


class TestRunList(OnARealServer):
    async def test_runs_are_listed_newest_first_a_page_at_a_time(
        self, serve: Serve, runtime: Runtime
    ) -> None:
        async with serve(runtime) as api:
            ids = [await api.start("approval", draft=str(n)) for n in range(5)]
            pages, before = [], None
            while True:
                params = {"limit": 2} | ({"before": before} if before else {})
                page = (await api.get("/runs", params=params)).json()
                pages.append([r["id"] for r in page["runs"]])
                before = page["next"]
                if before is None:
                    break
            whole = (await api.get("/runs")).json()
        newest_first = ids[::-1]
        assert pages == [newest_first[0:2], newest_first[2:4], newest_first[4:]]
        assert [r["id"] for r in whole["runs"]] == newest_first
        assert whole["next"] is None

    async def test_runs_are_filtered_by_flow_and_by_state_class(
        self, serve: Serve, runtime: Runtime
    ) -> None:
        async with serve(runtime) as api:
            paused = [await api.start_paused(draft=str(n)) for n in range(2)]
            gated = await api.start("gated")
            await api.post(f"/runs/{paused[0]}/cancel")
            await runtime.get(paused[0]).wait()

            async def listed(**params: str) -> list[str]:
                response = await api.get("/runs", params=params)
                assert response.status_code == 200, response.text
                return [r["id"] for r in response.json()["runs"]]

            by_flow = await listed(flow="approval")
            running = await listed(state="Running")
            finished = await listed(state="Finished")  # a class and its subclasses
            both = await listed(flow="gated", state="Running")
            none = await listed(flow="gated", state="Cancelled")
        assert by_flow == paused[::-1]
        assert running == [gated, paused[1]]
        assert finished == [paused[0]]
        assert (both, none) == ([gated], [])

    async def test_a_summary_holds_no_task_states_nor_results(
        self, serve: Serve, runtime: Runtime, gate: anyio.Event
    ) -> None:
        gate.set()
        async with serve(runtime) as api:
            run_id = await api.start("gated", n=21)
            await runtime.get(run_id).wait()
            (summary,) = (await api.get("/runs")).json()["runs"]
        assert summary == {
            "id": run_id,
            "flow": "gated",
            "state": {"type": "Success", "message": "All reference tasks succeeded."},
            "created": summary["created"],
            "updated": summary["updated"],
            "finished": summary["updated"],
            "task_counts": {"Success": 3},
            "awaiting_approval": False,
        }
        assert summary["created"] <= summary["finished"]


class TestBadParameters(OnARealServer):
    @pytest.mark.parametrize(
        ("body", "unknown", "missing", "detail"),
        [
            (
                {"parameters": {"draft": "x", "color": "red"}},
                ["color"],
                [],
                "flow 'approval': unknown parameter(s) ['color'] (its parameters: ['draft'])",
            ),
            (
                {"parameters": {}},
                [],
                ["draft"],
                "flow 'approval': missing required parameter(s) ['draft']"
                " (its parameters: ['draft'])",
            ),
            (
                None,  # no body at all
                [],
                ["draft"],
                "flow 'approval': missing required parameter(s) ['draft']"
                " (its parameters: ['draft'])",
            ),
            (
                {"parameters": {"colour": 1}},
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
        serve: Serve,
        runtime: Runtime,
        body: Any,
        unknown: list[str],
        missing: list[str],
        detail: str,
        wait: str,
    ) -> None:
        async with serve(runtime) as api:
            response = await api.post("/flows/approval/runs", params={"wait": wait}, json=body)
        assert response.status_code == 422
        assert response.json() == {"detail": detail, "unknown": unknown, "missing": missing}
        assert runtime.runs() == []

    @pytest.mark.parametrize(
        ("body", "detail"),
        [
            (b'{"parameters": [1]}', "parameters must be an object, got [1]"),
            (b'{"params": {}}', 'the body must be {"parameters": {...}}'),
            (b"[1]", 'the body must be {"parameters": {...}}'),
            (
                b"{",
                "the body is not JSON: Expecting property name enclosed in double quotes: "
                "line 1 column 2 (char 1)",
            ),
        ],
    )
    @pytest.mark.parametrize("wait", ["false", "true"])
    async def test_a_body_of_the_wrong_shape_is_422_saying_what_is_wrong(
        self, serve: Serve, runtime: Runtime, body: bytes, detail: str, wait: str
    ) -> None:
        async with serve(runtime) as api:
            response = await api.post(
                "/flows/approval/runs",
                params={"wait": wait},
                content=body,
                headers={"Content-Type": "application/json"},
            )
        assert (response.status_code, response.json()) == (
            422,
            {"detail": detail, "unknown": [], "missing": []},
        )
        assert runtime.runs() == []


class TestErrorShape(OnARealServer):
    """Both frameworks answer the same mistakes with the same status and the same body shape."""

    async def test_no_such_route_and_a_wrong_method_answer_in_the_one_shape(
        self, serve: Serve, runtime: Runtime
    ) -> None:
        async with serve(runtime) as api:
            missing = await api.get("/nope")
            wrong = await api.client.delete("/flows")
        assert (missing.status_code, missing.json()) == (404, {"detail": "Not Found"})
        assert (wrong.status_code, wrong.json()) == (405, {"detail": "Method Not Allowed"})
        assert wrong.headers["allow"] == "GET"

    @pytest.mark.parametrize(
        ("method", "path", "field"),
        [
            ("GET", "/runs?limit=0", "limit"),
            ("GET", "/runs?limit=501", "limit"),
            ("GET", "/runs?limit=x", "limit"),
            ("GET", "/runs?state=Nope", "state"),
            ("GET", "/runs?before=nope", "before"),
            ("POST", "/flows/gated/runs?wait=maybe", "wait"),
            ("POST", "/runs/{run}/tasks/publish/resume?map_index=x", "map_index"),
        ],
    )
    async def test_a_bad_query_argument_is_422_naming_it(
        self, serve: Serve, runtime: Runtime, method: str, path: str, field: str
    ) -> None:
        async with serve(runtime) as api:
            run_id = await api.start_paused()
            response = await api.client.request(method, path.format(run=run_id))
            await api.post(f"/runs/{run_id}/cancel")
        assert response.status_code == 422
        body = response.json()
        assert set(body) == {"detail", "field"}
        assert body["field"] == field
        assert body["detail"].startswith(f"{field}: ")


class TestUnavailable(OnARealServer):
    async def test_a_runtime_full_of_runs_in_progress_answers_503(
        self, serve: Serve, gate: anyio.Event, bus: EventBus
    ) -> None:
        runtime = Runtime(flows(gate), bus=bus, max_runs=1)
        async with serve(runtime) as api:
            await api.start("approval", draft="x")
            response = await api.post("/flows/approval/runs", json={"parameters": {"draft": "y"}})
        assert (response.status_code, response.json()) == (
            503,
            {"detail": "1 runs are in progress; try again later"},
        )


class TestEventStream(OnARealServer):
    async def test_the_stream_is_the_runs_state_history_exactly_then_end(
        self, serve: Serve, runtime: Runtime, gate: anyio.Event, recorder: EventRecorder
    ) -> None:
        async with serve(runtime) as api:
            run_id = await api.start("gated", n=3)
            async with api.events(run_id) as lines:
                first = await read_sse(lines, limit=4)  # history, then waits on the gate
                gate.set()
                rest = await read_sse(lines)
        assert first + rest == whole_stream(recorder, runtime.get(run_id))
        assert transitions(first + rest) == GATED_HISTORY
        assert rest[-1]["data"]["state"]["type"] == "Success"

    @pytest.mark.parametrize("how", ["header", "query"])
    async def test_reconnecting_with_last_event_id_gives_no_gap_and_no_duplicate(
        self,
        serve: Serve,
        runtime: Runtime,
        gate: anyio.Event,
        recorder: EventRecorder,
        how: str,
    ) -> None:
        async with serve(runtime) as api:
            run_id = await api.start("gated")
            first = await api.stream(run_id, limit=3)
            last = first[-1]["id"]
            gate.set()
            if how == "header":
                rest = await api.stream(run_id, headers={"Last-Event-ID": last})
            else:
                rest = await api.stream(run_id, params={"last_event_id": last})
        assert last == "3"
        assert first + rest == whole_stream(recorder, runtime.get(run_id))

    async def test_a_finished_runs_stream_replays_its_history_and_ends(
        self, serve: Serve, runtime: Runtime, gate: anyio.Event, recorder: EventRecorder
    ) -> None:
        gate.set()
        async with serve(runtime) as api:
            run_id = await api.start("gated")
            await runtime.get(run_id).wait()
            replay = await api.stream(run_id)
            after_the_end = await api.stream(run_id, headers={"Last-Event-ID": "8"})
        assert replay == whole_stream(recorder, runtime.get(run_id))
        assert after_the_end == [end_message(runtime.get(run_id))]

    @pytest.mark.realtime
    async def test_a_quiet_stream_sends_heartbeat_comments(
        self, serve: Serve, runtime: Runtime
    ) -> None:
        async with serve(runtime, heartbeat=0.05) as api:
            run_id = await api.start_paused(draft="x")  # six events of history, then silence
            messages = await api.stream(run_id, limit=7)
            await api.post(f"/runs/{run_id}/cancel")
        assert transitions(messages)[-1] == ("publish", "Paused")
        assert messages[-1] == {"comment": "ping"}


class TestCancel(OnARealServer):
    async def test_cancel_answers_202_and_the_run_ends_cancelled(
        self, serve: Serve, runtime: Runtime, recorder: EventRecorder
    ) -> None:
        async with serve(runtime) as api:
            run_id = await api.start("gated")
            await until(has_events(runtime.get(run_id), 4))
            response = await api.post(f"/runs/{run_id}/cancel")
            messages = await api.stream(run_id)
            again = await api.post(f"/runs/{run_id}/cancel")
        assert response.status_code == 202
        assert response.json()["id"] == run_id
        assert messages == whole_stream(recorder, runtime.get(run_id))
        assert transitions(messages)[-3:] == [
            ("wait", "Cancelled"),
            ("double", "Cancelled"),
            (None, "Cancelled"),
        ]
        assert messages[-1]["data"]["state"]["message"] == "Flow run was cancelled."
        assert again.status_code == 409
        assert again.json()["detail"].endswith("it cannot be cancelled")


class TestApproval(OnARealServer):
    async def test_approving_a_paused_task_lets_the_run_succeed(
        self, serve: Serve, runtime: Runtime
    ) -> None:
        async with serve(runtime) as api:
            run_id = await api.start_paused()
            response = await api.post(f"/runs/{run_id}/tasks/publish/resume")
            messages = await api.stream(run_id)
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
        self, serve: Serve, runtime: Runtime, path: str, status: int, detail: str
    ) -> None:
        async with serve(runtime) as api:
            run_id = await api.start_paused()
            response = await api.post(f"/runs/{run_id}{path}")
            await api.post(f"/runs/{run_id}/cancel")
        assert (response.status_code, response.json()) == (status, {"detail": detail})

    async def test_a_paused_mapped_child_is_approved_by_its_map_index(
        self, serve: Serve, bus: EventBus
    ) -> None:
        """Prefect 1.x checks a mapped task's trigger in each child, never in the parent."""
        runtime = Runtime({"mapped": mapped_approval_flow()}, bus=bus)
        async with serve(runtime) as api:
            run_id = await api.start("mapped")
            record = runtime.get(run_id)
            await until(lambda: sum(e.new_state.is_paused() for e in record.events) == 2, 1)
            first = await api.post(f"/runs/{run_id}/tasks/publish/resume?map_index=1")
            second = await api.post(f"/runs/{run_id}/tasks/publish/resume?map_index=0")
            messages = await api.stream(run_id)
        assert (first.status_code, second.status_code) == (202, 202)
        assert messages[-1]["data"]["state"]["type"] == "Success"
        publish = [m["data"] for m in messages[:-1] if m["data"]["task_name"] == "publish"]
        by_index = {
            i: [e["new_state"]["type"] for e in publish if e["map_index"] == i]
            for i in (None, 0, 1)
        }
        assert by_index == {
            None: ["Mapped", "Mapped"],  # ready to map, then its children filled in
            0: ["Paused", "Resume", "Running", "Success"],
            1: ["Paused", "Resume", "Running", "Success"],
        }


class TestManyClients(OnARealServer):
    async def test_fifty_runs_streamed_by_fifty_clients_lose_no_event(
        self, serve: Serve, runtime: Runtime, gate: anyio.Event, recorder: EventRecorder
    ) -> None:
        streaming = 0
        got: dict[str, list[dict[str, Any]]] = {}

        async def client(api: Server, n: int) -> None:
            nonlocal streaming
            async with api.another_client() as own:
                run_id = await own.start("gated", n=n)
                async with own.events(run_id) as lines:
                    first = await read_sse(lines, limit=1)
                    streaming += 1
                    if streaming == 50:
                        gate.set()  # every run is live and streamed: let them all go
                    got[run_id] = first + await read_sse(lines)

        async with serve(runtime) as api, anyio.create_task_group() as tg:
            for n in range(50):
                tg.start_soon(client, api, n)
        assert len(got) == 50
        for run_id, messages in got.items():
            assert messages == whole_stream(recorder, runtime.get(run_id))
            assert transitions(messages) == GATED_HISTORY


class TestClientsGoingAway(OnARealServer):
    async def test_a_client_leaving_mid_stream_costs_the_run_nothing(
        self, serve: Serve, runtime: Runtime, gate: anyio.Event, recorder: EventRecorder
    ) -> None:
        async with serve(runtime) as api:
            run_id = await api.start("gated")
            assert len(await api.stream(run_id, limit=2)) == 2  # and the client hangs up
            gate.set()
            record = runtime.get(run_id)
            await record.wait()
            after = await api.stream(run_id)
        assert record.state.is_successful()
        assert record.events == of_run(recorder, run_id)
        assert transitions(after) == GATED_HISTORY

    @pytest.mark.parametrize("wait", ["true", "1"])
    async def test_wait_true_runs_the_flow_in_the_request_and_answers_its_end(
        self, serve: Serve, runtime: Runtime, gate: anyio.Event, wait: str
    ) -> None:
        gate.set()
        async with serve(runtime) as api:
            response = await api.post(
                "/flows/gated/runs", params={"wait": wait}, json={"parameters": {"n": 5}}
            )
        assert response.status_code == 201
        body = response.json()
        assert body == serialize.run_detail(runtime.get(body["id"]))
        assert body["state"]["type"] == "Success"
        assert body["tasks"]["double"]["result"] == 10

    async def test_wait_true_cancels_the_run_when_the_client_leaves(
        self, serve: Serve, runtime: Runtime, recorder: EventRecorder
    ) -> None:
        async with serve(runtime) as api:
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


class TestShutdown(OnARealServer):
    async def test_cancel_mode_cancels_the_runs_in_flight_losing_no_event(
        self, serve: Serve, runtime: Runtime, recorder: EventRecorder
    ) -> None:
        await cancel_mode_loses_no_event(serve(runtime), runtime, recorder)

    async def test_drain_mode_lets_the_runs_in_flight_finish(
        self, serve: Serve, gate: anyio.Event, bus: EventBus, recorder: EventRecorder
    ) -> None:
        runtime = Runtime(flows(gate), bus=bus, on_shutdown="drain")

        async def open_the_gate_once_closing() -> None:
            await until(lambda: runtime.closing)
            gate.set()

        async with anyio.create_task_group() as tg, serve(runtime) as api:
            ids = [await api.start("gated", n=n) for n in range(3)]
            tg.start_soon(open_the_gate_once_closing)
        for run_id in ids:
            record = runtime.get(run_id)
            assert record.state.is_successful()
            assert record.events == of_run(recorder, run_id)
