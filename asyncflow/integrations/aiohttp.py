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
from typing import TYPE_CHECKING, Any

import anyio

from ..exceptions import missing_dependency
from . import guard, serialize
from .runtime import Runtime
from .static import DASHBOARD, asset, static_files

try:
    from aiohttp import web
except ModuleNotFoundError as exc:  # pragma: no cover (the tests run with the extra)
    raise missing_dependency(exc.name or "aiohttp", "aiohttp", __name__) from exc


if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Collection

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


def _json(data: Any, status: int = 200) -> web.Response:
    return web.Response(body=serialize.encode(data), status=status, content_type="application/json")


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


async def _read_body(request: web.Request) -> bytes:
    guard.check_length(request.content_length)
    body = bytearray()
    while chunk := await request.content.readany():
        body += chunk
        guard.check_length(len(body))
    return bytes(body)


def _guarded(
    handler: Callable[[web.Request], Awaitable[web.StreamResponse]],
    allowed_origins: Collection[str] | None,
) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    """``handler`` answering the runtime's errors as JSON; refusing cross-site requests first
    when ``allowed_origins`` is given (the mutating routes)."""

    async def answer(request: web.Request) -> web.StreamResponse:
        try:
            if allowed_origins is not None:
                length = request.content_length
                guard.check_request(
                    request.headers,
                    host=request.headers.get("Host"),
                    has_body=bool(length) or "Transfer-Encoding" in request.headers,
                    allowed_origins=allowed_origins,
                )
            return await handler(request)
        except Exception as exc:
            return _error(exc)

    return answer


def _last_event_id(request: web.Request) -> int:
    raw = request.headers.get("Last-Event-ID") or request.query.get("last_event_id")
    try:
        return max(0, int(raw)) if raw else 0
    except ValueError:
        return 0  # not one of our ids: start from the beginning


def _handlers(
    runtime: Runtime, heartbeat: float | None
) -> dict[str, Callable[[web.Request], Awaitable[web.StreamResponse]]]:
    async def list_flows(request: web.Request) -> web.StreamResponse:
        return _json(serialize.flows_json(runtime))

    async def start_run(request: web.Request) -> web.StreamResponse:
        flow = request.match_info["flow"]
        wait = guard.query_bool("wait", request.query.get("wait"))
        parameters = guard.parse_start(await _read_body(request))
        if not wait:
            record = await runtime.start(flow, parameters)
            return _json(serialize.run_summary(record), 201)
        # ?wait=true: the run lives in this request; the client leaving cancels it.
        record = await runtime.run_attached(flow, parameters, lambda: _client_gone(request))
        return _json(serialize.run_detail(record), 201)

    async def list_runs(request: web.Request) -> web.StreamResponse:
        query = request.query
        limit = guard.query_int("limit", query.get("limit"), default=50, lo=1, hi=500)
        assert limit is not None
        found = await runtime.list_runs(
            flow=query.get("flow"),
            state=query.get("state"),
            limit=limit + 1,
            before=query.get("before"),
        )
        page = found[:limit]
        more = len(found) > limit
        return _json(
            {
                "runs": [serialize.run_summary(r) for r in page],
                "next": page[-1].id if more else None,
            }
        )

    async def get_run(request: web.Request) -> web.StreamResponse:
        return _json(serialize.run_detail(await runtime.lookup(request.match_info["run_id"])))

    async def stream_events(request: web.Request) -> web.StreamResponse:
        record = await runtime.lookup(request.match_info["run_id"])
        response = web.StreamResponse(headers=_SSE_HEADERS)
        await response.prepare(request)
        logs = guard.query_bool("logs", request.query.get("logs"))
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
                    await response.write(text.encode("utf-8", "replace"))
                await response.write(serialize.sse_end(record).encode("utf-8", "replace"))
                await response.write_eof()
            except ConnectionError:
                pass  # the client left; the run goes on
            tg.cancel_scope.cancel()
        return response

    async def cancel_run(request: web.Request) -> web.StreamResponse:
        return _json(serialize.run_summary(runtime.cancel(request.match_info["run_id"])), 202)

    async def resume_task(request: web.Request) -> web.StreamResponse:
        map_index = guard.query_int("map_index", request.query.get("map_index"))
        record = runtime.resume(request.match_info["run_id"], request.match_info["task"], map_index)
        return _json(serialize.run_summary(record), 202)

    page = DASHBOARD.read_text(encoding="utf-8")
    page_headers = guard.page_headers(page)

    async def dashboard(request: web.Request) -> web.StreamResponse:
        return web.Response(text=page, content_type="text/html", headers=page_headers)

    files = static_files()

    async def static(request: web.Request) -> web.StreamResponse:
        content, content_type = asset(files, request.match_info["name"])
        return web.Response(body=content, headers={"Content-Type": content_type, **guard.NOSNIFF})

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


@web.middleware
async def _http_errors_as_json(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """aiohttp's own errors (no such route, wrong method) in the one error shape, as FastAPI's."""
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        response = _json({"detail": exc.reason}, exc.status)
        if "Allow" in exc.headers:
            response.headers["Allow"] = exc.headers["Allow"]
        return response


def subapp(
    runtime: Runtime,
    *,
    heartbeat: float | None = 15.0,
    manage: bool = True,
    allowed_origins: Collection[str] = (),
) -> web.Application:
    """The routes of ``runtime`` (see ``asyncflow/integrations/README.md``), as an aiohttp app.

    Args:
        runtime: the runtime that runs the flows.
        heartbeat: seconds without an event after which an SSE stream sends a keep-alive
            comment (``None``: never).
        manage: enter the runtime in the application's ``cleanup_ctx`` and shut it down in
            its ``on_shutdown``; pass ``False`` when the runtime is entered elsewhere.
        allowed_origins: origins of other sites allowed to start, cancel and resume runs
            (``"https://admin.example.com"``); requests from any other site are refused.

    Mount it with ``app.add_subapp(prefix, subapp(runtime))`` or serve it as it is.
    """
    app = web.Application(middlewares=[_http_errors_as_json])
    app[RUNTIME] = runtime
    for route, handler in _handlers(runtime, heartbeat).items():
        method, path = route.split(" ")
        mutating = allowed_origins if method == "POST" else None
        app.router.add_route(method, path, _guarded(handler, mutating))
    if manage:

        async def shutdown(app: web.Application) -> None:
            await runtime.shutdown()

        app.cleanup_ctx.append(runtime.cleanup_ctx)
        app.on_shutdown.append(shutdown)
    return app
