"""``asyncflow serve``: a FastAPI app with the flows' API under ``/api`` and the run page.

``/`` redirects to the page (``/api/dashboard``). Runs are kept in a SQLite store unless told
otherwise, so a restart of the command keeps every run, its history and waiting approvals.
uvicorn stops gracefully on SIGINT and SIGTERM.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._target import UsageError

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from ..flow import Flow

__all__ = ("build_app", "run_server")

#: How long uvicorn waits for open connections (live SSE streams) before closing them.
GRACEFUL_SHUTDOWN = 5


def _require_fastapi() -> None:
    try:
        import fastapi  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError as exc:
        raise UsageError(
            f"asyncflow serve needs {exc.name}: pip install 'asyncflow[fastapi]'"
        ) from None


def build_app(flows: list[Flow], *, store: str | None) -> Any:
    """The app: ``/api`` routes of :func:`asyncflow.integrations.fastapi.router`, ``/`` -> page.

    Args:
        flows: the flows to serve (by ``Flow.name``).
        store: the path of a SQLite store for the runs, or ``None`` to keep them in memory.
    """
    _require_fastapi()
    import contextlib

    from fastapi import FastAPI
    from fastapi.responses import RedirectResponse

    from ..integrations import Runtime
    from ..integrations.fastapi import router

    names = [f.name for f in flows]
    clash = sorted({n for n in names if names.count(n) > 1})
    if clash:
        raise UsageError(f"several flows are named {clash}: each served flow needs its own name")

    kept: Any = None
    if store is not None:
        from ..store import SQLiteStore

        kept = SQLiteStore(store)  # opens on first use
    runtime = Runtime(flows) if kept is None else Runtime(flows, store=kept)

    @contextlib.asynccontextmanager
    async def lifespan(app: Any) -> AsyncIterator[None]:
        try:
            async with runtime:
                yield
        finally:
            if kept is not None:
                await kept.aclose()

    app = FastAPI(title="asyncflow", lifespan=lifespan)
    app.include_router(router(runtime), prefix="/api")

    @app.get("/", include_in_schema=False)
    async def home() -> RedirectResponse:
        return RedirectResponse("/api/dashboard")

    return app


def run_server(app: Any, host: str, port: int) -> None:  # pragma: no cover - in a subprocess
    """Serve ``app`` until SIGINT/SIGTERM (uvicorn's signal handling: a graceful shutdown)."""
    import uvicorn

    uvicorn.run(
        app, host=host, port=port, timeout_graceful_shutdown=GRACEFUL_SHUTDOWN, log_level="info"
    )
