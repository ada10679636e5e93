"""FastAPI routes for a :class:`~asyncflow.integrations.Runtime`: ``router(runtime)``.

Mount the router under any prefix and enter the runtime in the app's lifespan::

    runtime = Runtime({"prices": prices_flow})
    app = FastAPI(lifespan=runtime.lifespan)
    app.include_router(router(runtime), prefix="/api")

The routes, and the JSON they speak, are in ``README.md`` beside this file and in
:mod:`asyncflow.integrations.serialize`. This module is the only one that imports FastAPI.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from . import serialize
from .static import DASHBOARD, asset, static_files

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from .record import RunRecord
    from .runtime import Runtime

__all__ = ("router", "StartRun")

_SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


class StartRun(BaseModel):
    """The body of ``POST /flows/{flow}/runs``."""

    model_config = ConfigDict(extra="forbid")
    parameters: dict[str, Any] = Field(default_factory=dict)


def _error(exc: Exception) -> JSONResponse:
    status = serialize.error_status(exc)
    if status is None:
        raise exc
    return JSONResponse(serialize.error_json(exc), status_code=status)


def _last_event_id(request: Request) -> int:
    raw = request.headers.get("last-event-id") or request.query_params.get("last_event_id")
    try:
        return max(0, int(raw)) if raw else 0
    except ValueError:
        return 0  # not one of our ids: start from the beginning


async def _sse(
    record: RunRecord, after: int, heartbeat: float | None, logs: bool
) -> AsyncIterator[str]:
    # The events already there go out in one chunk: one write, not one per event.
    keys = serialize.task_keys(record.task_states)
    follow = record.follow_with_logs if logs else record.follow_batches
    async for batch in follow(after, heartbeat=heartbeat):
        yield serialize.sse_messages(batch, record, keys) if batch else serialize.SSE_PING
    yield serialize.sse_end(record)


async def _client_gone(request: Request) -> None:
    """Return when the client goes away (the request body has been read already)."""
    while (await request.receive())["type"] != "http.disconnect":
        pass


def router(runtime: Runtime, *, heartbeat: float | None = 15.0) -> APIRouter:
    """The routes of DESIGN.md "Web integration" for ``runtime``, as an ``APIRouter``.

    Args:
        runtime: the runtime that runs the flows (enter it in the app's lifespan).
        heartbeat: seconds without an event after which an SSE stream sends a keep-alive
            comment (``None``: never).
    """
    api = APIRouter()
    page = DASHBOARD.read_text(encoding="utf-8")
    files = static_files()

    @api.get("/flows")
    async def list_flows() -> Response:
        return JSONResponse(serialize.flows_json(runtime))

    @api.post("/flows/{flow}/runs")
    async def start_run(
        flow: str, request: Request, body: StartRun | None = None, wait: bool = False
    ) -> Response:
        parameters = body.parameters if body is not None else {}
        try:
            if not wait:
                record = await runtime.start(flow, parameters)
                return JSONResponse(serialize.run_summary(record), status_code=201)
            # ?wait=true: the run lives in this request; the client leaving cancels it.
            record = await runtime.run_attached(flow, parameters, lambda: _client_gone(request))
        except Exception as exc:
            return _error(exc)
        return JSONResponse(serialize.run_detail(record), status_code=201)

    @api.get("/runs")
    async def list_runs() -> Response:
        return JSONResponse([serialize.run_summary(r) for r in runtime.runs()])

    @api.get("/runs/{run_id}")
    async def get_run(run_id: str) -> Response:
        try:
            return JSONResponse(serialize.run_detail(runtime.get(run_id)))
        except Exception as exc:
            return _error(exc)

    @api.get("/runs/{run_id}/events")
    async def stream_events(run_id: str, request: Request, logs: bool = False) -> Response:
        try:
            record = runtime.get(run_id)
        except Exception as exc:
            return _error(exc)
        stream = _sse(record, _last_event_id(request), heartbeat, logs)
        return StreamingResponse(stream, media_type="text/event-stream", headers=_SSE_HEADERS)

    @api.post("/runs/{run_id}/cancel")
    async def cancel_run(run_id: str) -> Response:
        try:
            record = runtime.cancel(run_id)
        except Exception as exc:
            return _error(exc)
        return JSONResponse(serialize.run_summary(record), status_code=202)

    @api.post("/runs/{run_id}/tasks/{task}/resume")
    async def resume_task(run_id: str, task: str, map_index: int | None = None) -> Response:
        try:
            record = runtime.resume(run_id, task, map_index)
        except Exception as exc:
            return _error(exc)
        return JSONResponse(serialize.run_summary(record), status_code=202)

    @api.get("/dashboard")
    async def dashboard() -> Response:
        return HTMLResponse(page)

    @api.get("/static/{name}")
    async def static(name: str) -> Response:
        try:
            content, media_type = asset(files, name)
        except Exception as exc:
            return _error(exc)
        return Response(content, media_type=media_type)

    return api
