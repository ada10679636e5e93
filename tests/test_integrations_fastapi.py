"""Specification of ``asyncflow.integrations.fastapi``: ``router(runtime)`` on a real server.

The scenarios every integration passes are written once in ``integration_scenarios``; they run
here with the router under ``/api`` on uvicorn (a free loopback port, the test's own event
loop), driven with httpx. Below them, what only the FastAPI integration does.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
from integration_scenarios import OnARealServer, as_sse, listened_through_shutdown, of_run
from integration_scenarios import TestApproval as TestApproval
from integration_scenarios import TestBadParameters as TestBadParameters
from integration_scenarios import TestCancel as TestCancel
from integration_scenarios import TestClientsGoingAway as TestClientsGoingAway
from integration_scenarios import TestEventStream as TestEventStream
from integration_scenarios import TestFlowsAndRuns as TestFlowsAndRuns
from integration_scenarios import TestManyClients as TestManyClients
from integration_scenarios import TestShutdown as TestShutdown
from integration_scenarios import TestUnavailable as TestUnavailable

if TYPE_CHECKING:
    from integration_scenarios import Serve

    from asyncflow.integrations import Runtime
    from asyncflow.testing import EventRecorder


@pytest.fixture
def framework() -> str:
    """The shared scenarios run on uvicorn + FastAPI in this module."""
    return "fastapi"


class TestOpenStreamsAtShutdown(OnARealServer):
    @pytest.mark.realtime
    async def test_an_open_stream_is_cut_after_the_graceful_timeout_and_the_run_cancelled(
        self, serve: Serve, runtime: Runtime, recorder: EventRecorder
    ) -> None:
        """uvicorn waits for open responses before the lifespan ends: bound it."""
        record, received = await listened_through_shutdown(serve(runtime, graceful=0.1), runtime)
        assert record.events == of_run(recorder, record.id)
        assert received == as_sse(record.events)[: len(received)]
