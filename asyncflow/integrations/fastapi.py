"""FastAPI routes for a :class:`~asyncflow.integrations.Runtime`: ``router(runtime)``.

Mount the router under any prefix and enter the runtime in the app's lifespan::

    runtime = Runtime({"prices": prices_flow})
    app = FastAPI(lifespan=runtime.lifespan)
    app.include_router(router(runtime), prefix="/api")

Every route is in the OpenAPI document with its response model (the pydantic models below, the
only ones asyncflow has), its status codes and its errors. The router's own lifespan (FastAPI
merges it into the app's) watches the uvicorn server it runs in: once the server begins to stop
(SIGINT, SIGTERM), the runtime shuts down, so open event streams get their runs' last events and
``event: end`` and the server stops at once. :func:`get_runtime` is a dependency that gives the
runtime to the app's other routes. The routes, and the JSON they speak, are in ``README.md``
beside this file and in :mod:`asyncflow.integrations.serialize`. This module is the only one
that imports FastAPI.
"""

from __future__ import annotations

import contextlib
import signal
from typing import TYPE_CHECKING, Any

import anyio

from ..exceptions import missing_dependency
from . import guard, serialize
from .errors import InvalidQuery
from .runtime import Runtime
from .static import DASHBOARD, asset, static_files

try:
    from fastapi import APIRouter, Depends, Query, Request
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
    from fastapi.routing import APIRoute
    from pydantic import BaseModel, ConfigDict, Field
except ModuleNotFoundError as exc:  # pragma: no cover (the tests run with the extra)
    raise missing_dependency(exc.name or "fastapi", "fastapi", __name__) from exc


if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable, Collection, Coroutine, Sequence

    from .record import RunRecord

__all__ = (
    "router",
    "get_runtime",
    "StartRun",
    "StateBrief",
    "StateModel",
    "RunSummary",
    "RunDetail",
    "RunPage",
    "FlowModel",
    "ParameterModel",
    "ErrorModel",
    "ParameterErrorModel",
)

#: How often the router looks whether the uvicorn server it runs in has begun to stop.
SHUTDOWN_POLL = 0.1
_STATE_KEY = "asyncflow_runtime"

_SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


# -- the models of the OpenAPI document ----------------------------------------------------------


class StartRun(BaseModel):
    """The body of ``POST /flows/{flow}/runs`` (optional: no body, no parameters)."""

    model_config = ConfigDict(extra="forbid")
    parameters: dict[str, Any] = Field(default_factory=dict)


class StateBrief(BaseModel):
    """A state in a run summary: its class name and message."""

    model_config = ConfigDict(extra="allow")
    type: str = Field(examples=["Success"])
    message: str | None = Field(examples=["All reference tasks succeeded."])
    start_time: str | None = None
    run_count: int | None = None


class StateModel(BaseModel):
    """A state: ``type``, then every field of its class (``start_time``, ``run_count``, ...).

    Values a JSON document cannot hold are their ``repr``; one larger than 16 384 characters
    of JSON, or nested deeper than 32 levels, is ``{"truncated": true, "preview": "..."}``.
    """

    model_config = ConfigDict(extra="allow")
    type: str = Field(examples=["Success"])
    message: str | None
    result: Any
    context: Any
    cached_inputs: Any


class RunSummary(BaseModel):
    """A run without task states or results."""

    id: str
    flow: str
    state: StateBrief
    created: str = Field(description="ISO 8601")
    updated: str = Field(description="ISO 8601: the last event, or the end")
    finished: str | None = Field(description="ISO 8601; null while the run goes on")
    task_counts: dict[str, int] = Field(description="number of tasks in each state type")
    model_config = ConfigDict(extra="allow")


class RunDetail(RunSummary):
    """A run with its whole state, its parameters and the state of each task."""

    state: StateModel  # type: ignore[assignment]
    parameters: dict[str, Any]
    tasks: dict[str, StateModel] = Field(description="task name (or slug) -> state")


class RunPage(BaseModel):
    """A page of run summaries, newest first; ``next`` is the ``before`` of the next page."""

    runs: list[RunSummary]
    next: str | None


class ParameterModel(BaseModel):
    """A parameter of a flow."""

    name: str
    required: bool
    default: Any


class FlowModel(BaseModel):
    """A flow the runtime runs: its parameters and its tasks (upstream first)."""

    model_config = ConfigDict(extra="allow")
    name: str
    parameters: list[ParameterModel]
    tasks: list[str]
    next_run: str | None = Field(None, description="next start on its schedule (ISO 8601)")


class ErrorModel(BaseModel):
    """Every error: a message, and named fields where there are some (``field``, ...)."""

    model_config = ConfigDict(extra="allow")
    detail: str


class ParameterErrorModel(ErrorModel):
    """Bad parameters, or a bad body or query argument (422)."""

    unknown: list[str] = Field(default_factory=list, description="parameters the flow lacks")
    missing: list[str] = Field(default_factory=list, description="required ones not given")
    field: str | None = Field(default=None, description="the query argument that is wrong")


def _errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    described = {
        403: "A request from another site",
        404: "No such flow, run or task",
        409: "The run or task is not in a state that allows it",
        413: "The body is too large",
        415: "The body is not application/json",
        422: "Bad parameters, body or query argument",
        503: "The runtime is shutting down, or full of runs in progress",
    }
    return {
        s: {"model": ParameterErrorModel if s == 422 else ErrorModel, "description": described[s]}
        for s in statuses
    }


def _ref(model: type[BaseModel]) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{model.__name__}"}


_MUTATING = (403, 415, 422)  # 422: FastAPI documents it for any route with parameters


# -- responses and errors ----------------------------------------------------------------------


class _JSON(JSONResponse):
    """JSON through :func:`serialize.encode`: text UTF-8 cannot encode never fails a response."""

    def render(self, content: Any) -> bytes:
        return serialize.encode(content)


class _EventStream(StreamingResponse):
    media_type = "text/event-stream"


def _error(exc: Exception) -> Response:
    status = serialize.error_status(exc)
    if status is None:
        raise exc
    return _JSON(serialize.error_json(exc), status_code=status)


def _from_validation(exc: RequestValidationError) -> InvalidQuery:
    error = exc.errors()[0]
    field = str(error["loc"][-1])
    message = str(error.get("msg", "is not valid"))
    return InvalidQuery(field, f"{message[0].lower()}{message[1:]}, got {error.get('input')!r}")


class _Route(APIRoute):
    """Errors of the runtime's API and of validation become ``{"detail": ...}`` here, so that
    the router answers the same whatever exception handlers the app has."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def answer(request: Request) -> Response:
            try:
                return await handler(request)
            except RequestValidationError as exc:
                return _error(_from_validation(exc))
            except Exception as exc:
                return _error(exc)

        return answer


async def _read_body(request: Request) -> bytes:
    length = request.headers.get("content-length")
    guard.check_length(int(length) if length and length.isdigit() else None)
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        guard.check_length(len(body))
    return bytes(body)


def _last_event_id(request: Request) -> int:
    raw = request.headers.get("last-event-id") or request.query_params.get("last_event_id")
    try:
        return max(0, int(raw)) if raw else 0
    except ValueError:
        return 0  # not one of our ids: start from the beginning


async def _sse(
    record: RunRecord, after: int, heartbeat: float | None, logs: bool
) -> AsyncIterator[bytes]:
    # The events already there go out in one chunk: one write, not one per event.
    keys = serialize.task_keys(record.task_states)
    follow = record.follow_with_logs if logs else record.follow_batches
    async for batch in follow(after, heartbeat=heartbeat):
        text = serialize.sse_messages(batch, record, keys) if batch else serialize.SSE_PING
        yield text.encode("utf-8", "replace")
    yield serialize.sse_end(record).encode("utf-8", "replace")


async def _client_gone(request: Request) -> None:
    """Return when the client goes away (the request body has been read already)."""
    while (await request.receive())["type"] != "http.disconnect":
        pass


def get_runtime(request: Request) -> Runtime:
    """The runtime of the asyncflow router the app includes, for ``Depends(get_runtime)``.

    Raises:
        RuntimeError: the app includes no asyncflow router, or its lifespan has not run.
    """
    runtime = getattr(request.state, _STATE_KEY, None)
    if not isinstance(runtime, Runtime):
        raise RuntimeError(
            "no asyncflow runtime: include router(runtime) in the app (its lifespan provides it)"
        )
    return runtime


def _uvicorn_server() -> Any:
    """The uvicorn ``Server`` serving this process, found through its signal handler."""
    handler = signal.getsignal(signal.SIGINT)
    server = getattr(handler, "__self__", None)
    if type(server).__module__.startswith("uvicorn") and hasattr(server, "should_exit"):
        return server
    return None


async def _stop_with_the_server(runtime: Runtime) -> None:
    """Shut the runtime down as soon as the uvicorn server begins to stop.

    uvicorn waits for open responses *before* it runs the lifespan's shutdown, so an event
    stream of a run still going would hold it until ``timeout_graceful_shutdown`` cuts it. It
    offers no hook; like uvicorn's own main loop, look at its ``should_exit`` now and then.
    """
    server = _uvicorn_server()
    if server is None:
        return  # not under uvicorn (or not in its main thread): the lifespan's shutdown will do
    while not server.should_exit:  # noqa: ASYNC110 (uvicorn offers nothing to await)
        await anyio.sleep(SHUTDOWN_POLL)
    runtime.begin_shutdown()


# -- the router --------------------------------------------------------------------------------


def router(
    runtime: Runtime,
    *,
    heartbeat: float | None = 15.0,
    allowed_origins: Collection[str] = (),
    tags: Sequence[str] = ("asyncflow",),
) -> APIRouter:
    """The routes of ``runtime`` (see ``README.md``), as an ``APIRouter``.

    Args:
        runtime: the runtime that runs the flows (enter it in the app's lifespan).
        heartbeat: seconds without an event after which an SSE stream sends a keep-alive
            comment (``None``: never).
        allowed_origins: origins of other sites allowed to start, cancel and resume runs
            (``"https://admin.example.com"``); requests from any other site are refused.
        tags: the OpenAPI tags of the routes.
    """

    @contextlib.asynccontextmanager
    async def lifespan(app: Any) -> AsyncIterator[dict[str, Any]]:
        async with anyio.create_task_group() as tg:
            tg.start_soon(_stop_with_the_server, runtime)
            yield {_STATE_KEY: runtime}
            tg.cancel_scope.cancel()

    async def same_site(request: Request) -> None:
        """The mutating routes' dependency: refuse what a cross-site page could send."""
        headers = request.headers
        length = headers.get("content-length")
        has_body = (length is not None and length != "0") or "transfer-encoding" in headers
        guard.check_request(
            headers, host=headers.get("host"), has_body=has_body, allowed_origins=allowed_origins
        )

    mutating = [Depends(same_site)]
    api = APIRouter(tags=list(tags), route_class=_Route, lifespan=lifespan)
    page = DASHBOARD.read_text(encoding="utf-8")
    page_headers = guard.page_headers(page)
    files = static_files()

    @api.get("/flows", response_model=list[FlowModel], response_class=_JSON)
    async def list_flows() -> Response:
        """The flows this service runs: their parameters, tasks and next scheduled start."""
        return _JSON(serialize.flows_json(runtime))

    @api.post(
        "/flows/{flow}/runs",
        status_code=201,
        response_model=RunDetail | RunSummary,
        response_class=_JSON,
        dependencies=mutating,
        responses=_errors(*_MUTATING, 404, 413, 503),
        openapi_extra={
            "requestBody": {
                "required": False,
                "content": {"application/json": {"schema": StartRun.model_json_schema()}},
            }
        },
    )
    async def start_run(
        flow: str,
        request: Request,
        wait: bool = Query(False, description="run inside the request; answer at its end"),
    ) -> Response:
        """Start a run: 201 with its summary at once, or with its detail at its end (``wait``).

        With ``wait=true`` the run lives in the request: the client going away cancels it.
        """
        parameters = guard.parse_start(await _read_body(request))
        if not wait:
            record = await runtime.start(flow, parameters)
            return _JSON(serialize.run_summary(record), status_code=201)
        record = await runtime.run_attached(flow, parameters, lambda: _client_gone(request))
        return _JSON(serialize.run_detail(record), status_code=201)

    @api.get("/runs", response_model=RunPage, response_class=_JSON, responses=_errors(422))
    async def list_runs(
        flow: str | None = Query(None, description="only the runs of this flow"),
        state: str | None = Query(
            None, description="only runs in this state type or a subclass (Failed, Running, ...)"
        ),
        limit: int = Query(50, ge=1, le=500, description="at most this many runs"),
        before: str | None = Query(None, description="the id of the last run of the last page"),
    ) -> Response:
        """Run summaries, newest first, a page at a time."""
        found = await runtime.list_runs(flow=flow, state=state, limit=limit + 1, before=before)
        page = found[:limit]
        more = len(found) > limit
        return _JSON(
            {
                "runs": [serialize.run_summary(r) for r in page],
                "next": page[-1].id if more else None,
            }
        )

    @api.get(
        "/runs/{run_id}",
        response_model=RunDetail,
        response_class=_JSON,
        responses=_errors(404, 422),
    )
    async def get_run(run_id: str) -> Response:
        """One run: its state, its parameters and each task's state (results capped)."""
        return _JSON(serialize.run_detail(await runtime.lookup(run_id)))

    @api.get(
        "/runs/{run_id}/events",
        response_class=_EventStream,
        responses={
            200: {
                "description": "Server-Sent Events: `event: state` per state change (`id:` its "
                "seq, `data:` its JSON), `event: log` per log record (with `logs=true`), then "
                "`event: end` with the run summary",
                "content": {"text/event-stream": {"schema": {"type": "string"}}},
            },
            # Spelled out: with "model", FastAPI would document them as text/event-stream.
            **{
                status: {
                    "description": error["description"],
                    "content": {"application/json": {"schema": _ref(error["model"])}},
                }
                for status, error in _errors(404, 422).items()
            },
        },
    )
    async def stream_events(
        run_id: str,
        request: Request,
        logs: bool = Query(False, description="the run's log records too (`event: log`)"),
        last_event_id: int | None = Query(None, description="resume after this seq"),
    ) -> Response:
        """The run's state changes as they happen, from the first (or after ``Last-Event-ID``)."""
        record = await runtime.lookup(run_id)
        stream = _sse(record, _last_event_id(request), heartbeat, logs)
        return _EventStream(stream, headers=_SSE_HEADERS)

    @api.post(
        "/runs/{run_id}/cancel",
        status_code=202,
        response_model=RunSummary,
        response_class=_JSON,
        dependencies=mutating,
        responses=_errors(*_MUTATING, 404, 409),
    )
    async def cancel_run(run_id: str) -> Response:
        """Cancel a run: 202; its running tasks, then the run, end ``Cancelled`` shortly."""
        return _JSON(serialize.run_summary(runtime.cancel(run_id)), status_code=202)

    @api.post(
        "/runs/{run_id}/tasks/{task}/resume",
        status_code=202,
        response_model=RunSummary,
        response_class=_JSON,
        dependencies=mutating,
        responses=_errors(*_MUTATING, 404, 409),
    )
    async def resume_task(
        run_id: str,
        task: str,
        map_index: int | None = Query(None, description="approve this mapped child only"),
    ) -> Response:
        """Approve a ``Paused`` task (or one mapped child): 202."""
        return _JSON(
            serialize.run_summary(runtime.resume(run_id, task, map_index)), status_code=202
        )

    @api.get("/dashboard", response_class=HTMLResponse)
    async def dashboard() -> Response:
        """The live page: the runs, or one run (``?run={id}``)."""
        return HTMLResponse(page, headers=page_headers)

    @api.get("/static/{name}", include_in_schema=False)
    async def static(name: str) -> Response:
        """A static file of the page (its script, its style, its layout library)."""
        content, media_type = asset(files, name)
        return Response(content, media_type=media_type, headers=guard.NOSNIFF)

    return api
