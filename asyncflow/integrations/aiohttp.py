"""aiohttp routes for a :class:`~asyncflow.integrations.Runtime`: ``subapp(runtime)``.

The sub-application serves the same routes as the FastAPI router (``README.md`` beside this
file), with Server-Sent Events written through ``web.StreamResponse``::

    runtime = Runtime({"prices": prices_flow})
    app = web.Application()
    app.add_subapp("/api/", subapp(runtime))
    web.run_app(app)

By default the sub-application also manages the runtime: it enters it in its ``cleanup_ctx``
and shuts it down in ``on_shutdown``, which aiohttp calls *before* it waits for open handlers,
so streams of cancelled (or drained) runs end and let the server stop. This module is the only
one that imports aiohttp.
"""

from __future__ import annotations

import contextlib
import json
from typing import TYPE_CHECKING, Any

import anyio
from aiohttp import web

from . import serialize
from .runtime import InvalidParameters, Runtime
from .static import DASHBOARD, asset, static_files

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ("subapp", "RUNTIME")

#: The key under which the sub-application keeps its runtime: ``app[RUNTIME]``.
RUNTIME = web.AppKey("asyncflow_runtime", Runtime)
#: How often a handler that only waits checks whether its client is still connected.
DISCONNECT_POLL = 0.25
_SSE_HEADERS = {
    "Content-Type": "text/event-stream",
    "Cache-Control": "no-cache",
    "X-Accel-Buffering": "no",
}
_TRUE = ("1", "true", "yes", "on")


def _json(data: Any, status: int = 200) -> web.Response:
    return web.json_response(data, status=status, dumps=serialize.dumps)


def _error(exc: Exception) -> web.Response:
    status = serialize.error_status(exc)
    if status is None:
        raise exc
    return _json(serialize.error_json(exc), status)


def _disconnected(request: web.Request) -> bool:
    transport = request.transport
    return transport is None or transport.is_closing()


async def _client_gone(request: web.Request) -> None:
    # aiohttp does not cancel handlers when the client leaves (unless the server was made
    # with handler_cancellation=True), and offers nothing to await: look now and then.
    while not _disconnected(request):  # noqa: ASYNC110 (nothing to wait on but the clock)
        await anyio.sleep(DISCONNECT_POLL)


async def _body_parameters(request: web.Request) -> dict[str, Any]:
    if not request.can_read_body:
        return {}
    try:
        body = await request.json()
    except json.JSONDecodeError as exc:
        raise InvalidParameters(f"the body is not JSON: {exc}") from None
    if not isinstance(body, dict) or body.keys() - {"parameters"}:
        raise InvalidParameters('the body must be {"parameters": {...}}')
    parameters = body.get("parameters", {})
    if not isinstance(parameters, dict):
        raise InvalidParameters(f"parameters must be an object, got {parameters!r}")
    return parameters


def _map_index(request: web.Request) -> int | None:
    raw = request.query.get("map_index")
    if raw is None or raw == "":
        return None
    try:
        return int(raw)
    except ValueError:
        raise InvalidParameters(f"map_index must be an integer, got {raw!r}") from None


def _last_event_id(request: web.Request) -> int:
    raw = request.headers.get("Last-Event-ID") or request.query.get("last_event_id")
    try:
        return max(0, int(raw)) if raw else 0
    except ValueError:
        return 0  # not one of our ids: start from the beginning


def _handlers(runtime: Runtime, heartbeat: float | None) -> dict[str, Callable[[web.Request], Any]]:
    async def list_flows(request: web.Request) -> web.StreamResponse:
        return _json(serialize.flows_json(runtime))

    async def start_run(request: web.Request) -> web.StreamResponse:
        flow = request.match_info["flow"]
        wait = request.query.get("wait", "").lower() in _TRUE
        try:
            parameters = await _body_parameters(request)
            if not wait:
                record = await runtime.start(flow, parameters)
                return _json(serialize.run_summary(record), 201)
            # ?wait=true: the run lives in this request; the client leaving cancels it.
            record = await runtime.run_attached(flow, parameters, lambda: _client_gone(request))
        except Exception as exc:
            return _error(exc)
        return _json(serialize.run_detail(record), 201)

    async def list_runs(request: web.Request) -> web.StreamResponse:
        return _json([serialize.run_summary(r) for r in runtime.runs()])

    async def get_run(request: web.Request) -> web.StreamResponse:
        try:
            return _json(serialize.run_detail(runtime.get(request.match_info["run_id"])))
        except Exception as exc:
            return _error(exc)

    async def stream_events(request: web.Request) -> web.StreamResponse:
        try:
            record = runtime.get(request.match_info["run_id"])
        except Exception as exc:
            return _error(exc)
        response = web.StreamResponse(headers=_SSE_HEADERS)
        await response.prepare(request)
        logs = request.query.get("logs", "").lower() in _TRUE
        follow = record.follow_with_logs if logs else record.follow_batches
        batches = follow(_last_event_id(request), heartbeat=heartbeat)
        keys = serialize.task_keys(record.task_states)
        async with contextlib.aclosing(batches), anyio.create_task_group() as tg:

            async def stop_when_gone() -> None:
                await _client_gone(request)
                tg.cancel_scope.cancel()

            tg.start_soon(stop_when_gone)
            try:
                async for batch in batches:  # the events already there, in one write
                    text = serialize.sse_messages(batch, record, keys) or serialize.SSE_PING
                    await response.write(text.encode())
                await response.write(serialize.sse_end(record).encode())
                await response.write_eof()
            except ConnectionError:
                pass  # the client left; the run goes on
            tg.cancel_scope.cancel()
        return response

    async def cancel_run(request: web.Request) -> web.StreamResponse:
        try:
            record = runtime.cancel(request.match_info["run_id"])
        except Exception as exc:
            return _error(exc)
        return _json(serialize.run_summary(record), 202)

    async def resume_task(request: web.Request) -> web.StreamResponse:
        try:
            record = runtime.resume(
                request.match_info["run_id"], request.match_info["task"], _map_index(request)
            )
        except Exception as exc:
            return _error(exc)
        return _json(serialize.run_summary(record), 202)

    page = DASHBOARD.read_text(encoding="utf-8")

    async def dashboard(request: web.Request) -> web.StreamResponse:
        return web.Response(text=page, content_type="text/html")

    files = static_files()

    async def static(request: web.Request) -> web.StreamResponse:
        try:
            content, content_type = asset(files, request.match_info["name"])
        except Exception as exc:
            return _error(exc)
        return web.Response(body=content, headers={"Content-Type": content_type})

    return {
        "GET /flows": list_flows,
        "POST /flows/{flow}/runs": start_run,
        "GET /runs": list_runs,
        "GET /runs/{run_id}": get_run,
        "GET /runs/{run_id}/events": stream_events,
        "POST /runs/{run_id}/cancel": cancel_run,
        "POST /runs/{run_id}/tasks/{task}/resume": resume_task,
        "GET /dashboard": dashboard,
        "GET /static/{name}": static,
    }


def subapp(
    runtime: Runtime, *, heartbeat: float | None = 15.0, manage: bool = True
) -> web.Application:
    """The routes of DESIGN.md "Web integration" for ``runtime``, as an aiohttp application.

    Args:
        runtime: the runtime that runs the flows.
        heartbeat: seconds without an event after which an SSE stream sends a keep-alive
            comment (``None``: never).
        manage: enter the runtime in the application's ``cleanup_ctx`` and shut it down in
            its ``on_shutdown``; pass ``False`` when the runtime is entered elsewhere.

    Mount it with ``app.add_subapp(prefix, subapp(runtime))`` or serve it as it is.
    """
    app = web.Application()
    app[RUNTIME] = runtime
    for route, handler in _handlers(runtime, heartbeat).items():
        method, path = route.split(" ")
        app.router.add_route(method, path, handler)
    if manage:

        async def shutdown(app: web.Application) -> None:
            await runtime.shutdown()

        app.cleanup_ctx.append(runtime.cleanup_ctx)
        app.on_shutdown.append(shutdown)
    return app
