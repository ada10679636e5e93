"""Specification of ``asyncflow.integrations.aiohttp``: ``subapp(runtime)`` on a real server.

The scenarios every integration passes are written once in ``integration_scenarios``; they run
here with the sub-application mounted under ``/api/`` in an application served by aiohttp's own
``AppRunner``/``TCPSite`` (a free loopback port, the test's own event loop), driven with httpx.
Below them, what only the aiohttp integration does.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest
from aiohttp import web
from integration_scenarios import (
    OnARealServer,
    cancel_mode_loses_no_event,
    listened_through_shutdown,
    whole_stream,
)
from integration_scenarios import TestApproval as TestApproval
from integration_scenarios import TestBadParameters as TestBadParameters
from integration_scenarios import TestCancel as TestCancel
from integration_scenarios import TestClientsGoingAway as TestClientsGoingAway
from integration_scenarios import TestErrorShape as TestErrorShape
from integration_scenarios import TestEventStream as TestEventStream
from integration_scenarios import TestFlowsAndRuns as TestFlowsAndRuns
from integration_scenarios import TestManyClients as TestManyClients
from integration_scenarios import TestRunList as TestRunList
from integration_scenarios import TestShutdown as TestShutdown
from integration_scenarios import TestUnavailable as TestUnavailable

from asyncflow.integrations import Runtime
from asyncflow.integrations.aiohttp import RUNTIME, subapp

if TYPE_CHECKING:
    from integration_scenarios import Serve

    from asyncflow.testing import EventRecorder


@pytest.fixture
def framework() -> str:
    """The shared scenarios run on aiohttp's own server in this module."""
    return "aiohttp"


class TestTheSubApplication(OnARealServer):
    def test_the_sub_application_keeps_its_runtime(self) -> None:
        runtime = Runtime({})
        assert subapp(runtime)[RUNTIME] is runtime


class TestAnUnmanagedRuntime(OnARealServer):
    """``subapp(runtime, manage=False)``: the application enters the runtime itself."""

    async def test_a_runtime_shutting_down_answers_503(
        self, serve: Serve, runtime: Runtime
    ) -> None:
        async with serve(runtime, manage=False) as api:
            await runtime.shutdown()
            response = await api.post("/flows/approval/runs", json={"parameters": {"draft": "x"}})
        assert (response.status_code, response.json()) == (
            503,
            {"detail": "the runtime is shutting down; it takes no new run"},
        )

    async def test_cancel_mode_cancels_the_runs_in_flight_losing_no_event(
        self, serve: Serve, runtime: Runtime, recorder: EventRecorder
    ) -> None:
        await cancel_mode_loses_no_event(serve(runtime, manage=False), runtime, recorder)


class TestOpenStreamsAtShutdown(OnARealServer):
    async def test_an_open_stream_gets_every_event_and_its_end_before_the_server_stops(
        self, serve: Serve, runtime: Runtime, recorder: EventRecorder
    ) -> None:
        """The sub-application shuts the runtime down in on_shutdown, before handlers drain."""
        record, received = await listened_through_shutdown(serve(runtime), runtime)
        assert received == whole_stream(recorder, record)


class TestAuthentication(OnARealServer):
    async def test_a_middleware_of_the_parent_app_guards_every_route_of_the_sub_app(
        self, serve: Serve, runtime: Runtime
    ) -> None:
        """The way README.md shows to add authentication."""

        @web.middleware
        async def require_token(request: web.Request, handler: Any) -> web.StreamResponse:
            if request.headers.get("Authorization") != "Bearer s3cret":
                return web.json_response({"detail": "a valid token is required"}, status=401)
            response: web.StreamResponse = await handler(request)
            return response

        async with serve(runtime, middlewares=[require_token]) as api:
            paths = ["/flows", "/runs", "/dashboard", "/runs/x/events"]
            refused = [(await api.get(p)).status_code for p in paths]
            refused.append((await api.post("/flows/approval/runs")).status_code)
            api.client.headers["Authorization"] = "Bearer s3cret"
            allowed = await api.post("/flows/approval/runs", json={"parameters": {"draft": "x"}})
            await api.post(f"/runs/{allowed.json()['id']}/cancel")
        assert refused == [401] * 5
        assert allowed.status_code == 201
