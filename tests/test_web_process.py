"""The web integrations in a real server process, stopped the way a terminal stops it (SIGINT).

A plain ``uvicorn.run(app)`` (or aiohttp's ``web.run_app``) serves a flow whose task never
ends; a client follows the run's event stream; SIGINT stops the server: the client receives
the run's last ``Cancelled`` events and ``event: end``, the process exits promptly and cleanly
(no traceback, no "Exception in ASGI application"). And without its extra, importing an
integration says what to install.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import TYPE_CHECKING

import anyio
import httpx
import pytest
from integration_scenarios import read_sse, transitions

if TYPE_CHECKING:
    from collections.abc import Iterator

ROOT = Path(__file__).resolve().parent.parent
FLOW = """
    import sys

    import anyio

    from asyncflow import Flow, task
    from asyncflow.integrations import Runtime


    @task
    async def forever() -> None:
        await anyio.sleep_forever()


    with Flow("forever") as flow:
        forever()

    runtime = Runtime({"forever": flow})
    port = int(sys.argv[1])
"""
SERVERS = {
    "fastapi": """
        import uvicorn
        from fastapi import FastAPI

        from asyncflow.integrations.fastapi import router

        app = FastAPI(lifespan=runtime.lifespan)
        app.include_router(router(runtime), prefix="/api")
        uvicorn.run(app, host="127.0.0.1", port=port)
    """,
    "aiohttp": """
        from aiohttp import web

        from asyncflow.integrations.aiohttp import subapp

        app = web.Application()
        app.add_subapp("/api/", subapp(runtime))
        web.run_app(app, host="127.0.0.1", port=port)
    """,
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture(params=sorted(SERVERS))
def server(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[tuple[subprocess.Popen[str], str]]:
    """A server process of the integration, and its base URL."""
    script = tmp_path / "serve.py"
    script.write_text(textwrap.dedent(FLOW) + textwrap.dedent(SERVERS[request.param]))
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    process = subprocess.Popen(
        [sys.executable, str(script), str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    base = f"http://127.0.0.1:{port}/api"
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                httpx.get(f"{base}/flows", timeout=1)
                break
            except httpx.TransportError:
                assert process.poll() is None, process.communicate()[0]
                assert time.monotonic() < deadline, "the server did not start"
                time.sleep(0.05)
        yield process, base
    finally:
        if process.poll() is None:
            process.kill()
        process.communicate()


class TestSigint:
    async def test_sigint_ends_open_streams_with_the_runs_last_events_and_the_server_exits(
        self, server: tuple[subprocess.Popen[str], str]
    ) -> None:
        process, base = server
        async with httpx.AsyncClient(base_url=base, timeout=10) as client:
            run_id = (await client.post("/flows/forever/runs")).json()["id"]
            async with client.stream("GET", f"/runs/{run_id}/events") as response:
                lines = response.aiter_lines()
                # flow Running, forever Running: then nothing until the server stops
                messages = await read_sse(lines, limit=2)
                stopped = time.monotonic()
                process.send_signal(signal.SIGINT)
                messages += await read_sse(lines)
        output, _ = await anyio.to_thread.run_sync(lambda: process.communicate(timeout=10))
        took = time.monotonic() - stopped
        assert transitions(messages) == [
            (None, "Running"),
            ("forever", "Running"),
            ("forever", "Cancelled"),
            (None, "Cancelled"),
        ]
        assert messages[-1]["event"] == "end"
        assert messages[-1]["data"]["state"]["type"] == "Cancelled"
        assert process.returncode in (0, -signal.SIGINT), output
        assert "Traceback" not in output
        assert "Exception in ASGI application" not in output
        assert took < 3, output


#: What each web example may not import: the other framework and every tool of the dev extra.
ONLY_ITS_EXTRA = {
    "fastapi": ["aiohttp", "httpx", "requests"],
    "aiohttp": ["fastapi", "starlette", "uvicorn", "pydantic", "httpx", "requests"],
}


def run_without(modules: list[str], code: str) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a fresh interpreter where importing any of ``modules`` fails."""
    block = f"import sys\nfor m in {modules!r}: sys.modules[m] = None\n"
    return subprocess.run(
        [sys.executable, "-c", block + code],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


class TestExtras:
    @pytest.mark.parametrize("extra", sorted(ONLY_ITS_EXTRA))
    def test_without_its_extra_an_integration_says_what_to_install(self, extra: str) -> None:
        done = run_without([extra], f"import asyncflow.integrations.{extra}")
        assert done.returncode == 1
        assert done.stderr.strip().splitlines()[-1] == (
            f"asyncflow.exceptions.MissingDependencyError: asyncflow.integrations.{extra} needs"
            f" '{extra}', which is not installed: pip install 'asyncflow[{extra}]'"
        )

    def test_the_missing_extra_is_an_import_error_and_an_asyncflow_error(self) -> None:
        done = run_without(
            ["fastapi"],
            "from asyncflow.exceptions import AsyncflowError\n"
            "try:\n    import asyncflow.integrations.fastapi\n"
            "except ImportError as exc:\n"
            "    print(isinstance(exc, AsyncflowError))\n",
        )
        assert done.stdout == "True\n", done.stderr

    @pytest.mark.parametrize(
        ("example", "extra", "last_line"),
        [
            ("fastapi_app.py", "fastapi", "total: 42.5"),
            ("fastapi_auth.py", "fastapi", "stream ended: Success"),
            ("aiohttp_app.py", "aiohttp", "released: api, web, worker"),
        ],
    )
    def test_each_web_example_runs_with_only_its_extra(
        self, example: str, extra: str, last_line: str
    ) -> None:
        path = f"examples/{example}"
        done = run_without(
            ONLY_ITS_EXTRA[extra],
            f"import runpy\nsys.argv = [{path!r}]\nrunpy.run_path({path!r}, run_name='__main__')",
        )
        assert done.returncode == 0, done.stderr[-2000:]
        assert done.stdout.splitlines()[-1] == last_line
