"""Specification of ``asyncflow.integrations.fastapi``: ``router(runtime)`` on a real server.

The scenarios every integration passes are written once in ``integration_scenarios``; they run
here with the router under ``/api`` on uvicorn (a free loopback port, the test's own event
loop), driven with httpx. Below them, what only the FastAPI integration does.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import anyio
import httpx
import pytest
from fastapi import Depends, FastAPI
from integration_scenarios import OnARealServer, listened_through_shutdown, whole_stream
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
from asyncflow.integrations.fastapi import (
    ErrorModel,
    FlowModel,
    RunDetail,
    RunPage,
    RunSummary,
    get_runtime,
    router,
)

if TYPE_CHECKING:
    from integration_scenarios import Serve

    from asyncflow.testing import EventRecorder


@pytest.fixture
def framework() -> str:
    """The shared scenarios run on uvicorn + FastAPI in this module."""
    return "fastapi"


class TestOpenStreamsAtShutdown(OnARealServer):
    async def test_an_open_stream_gets_every_event_and_its_end_before_the_server_stops(
        self, serve: Serve, runtime: Runtime, recorder: EventRecorder
    ) -> None:
        """The router's lifespan sees uvicorn begin to stop and shuts the runtime down."""
        with anyio.fail_after(3):  # no graceful timeout: nothing but the router ends the stream
            record, received = await listened_through_shutdown(serve(runtime), runtime)
        assert received == whole_stream(recorder, record)


def openapi(runtime: Runtime) -> dict[str, Any]:
    app = FastAPI(title="service")
    app.include_router(router(runtime), prefix="/api")
    return app.openapi()


class TestOpenAPI:
    @pytest.fixture
    def document(self) -> dict[str, Any]:
        return openapi(Runtime({}))

    @pytest.mark.parametrize(
        ("method", "path", "status", "model"),
        [
            ("get", "/api/flows", "200", None),
            ("post", "/api/flows/{flow}/runs", "201", None),
            ("get", "/api/runs", "200", "RunPage"),
            ("get", "/api/runs/{run_id}", "200", "RunDetail"),
            ("post", "/api/runs/{run_id}/cancel", "202", "RunSummary"),
            ("post", "/api/runs/{run_id}/tasks/{task}/resume", "202", "RunSummary"),
        ],
    )
    def test_every_route_has_its_status_and_response_model(
        self, document: dict[str, Any], method: str, path: str, status: str, model: str | None
    ) -> None:
        operation = document["paths"][path][method]
        assert operation["tags"] == ["asyncflow"]
        schema = operation["responses"][status]["content"]["application/json"]["schema"]
        if model is not None:
            assert schema == {"$ref": f"#/components/schemas/{model}"}
        else:
            assert schema != {}

    @pytest.mark.parametrize(
        ("method", "path", "statuses"),
        [
            ("post", "/api/flows/{flow}/runs", {"403", "404", "413", "415", "422", "503"}),
            ("get", "/api/runs", {"422"}),
            ("get", "/api/runs/{run_id}", {"404", "422"}),
            ("get", "/api/runs/{run_id}/events", {"404", "422"}),
            ("post", "/api/runs/{run_id}/cancel", {"403", "404", "409", "415", "422"}),
            ("post", "/api/runs/{run_id}/tasks/{task}/resume", {"403", "404", "409", "415", "422"}),
        ],
    )
    def test_errors_are_documented_with_the_one_error_model(
        self, document: dict[str, Any], method: str, path: str, statuses: set[str]
    ) -> None:
        responses = document["paths"][path][method]["responses"]
        errors = {s: r for s, r in responses.items() if s >= "400"}
        assert set(errors) == statuses
        for status, response in errors.items():
            schema = response["content"]["application/json"]["schema"]
            model = "ParameterErrorModel" if status == "422" else "ErrorModel"
            assert schema == {"$ref": f"#/components/schemas/{model}"}
        assert "HTTPValidationError" not in document["components"]["schemas"]

    def test_the_event_stream_is_documented_as_text_event_stream(
        self, document: dict[str, Any]
    ) -> None:
        ok = document["paths"]["/api/runs/{run_id}/events"]["get"]["responses"]["200"]
        assert set(ok["content"]) == {"text/event-stream"}

    def test_the_dashboard_is_documented_as_html(self, document: dict[str, Any]) -> None:
        ok = document["paths"]["/api/dashboard"]["get"]["responses"]["200"]
        assert set(ok["content"]) == {"text/html"}

    def test_the_run_list_documents_its_limit_and_cursor(self, document: dict[str, Any]) -> None:
        parameters = {p["name"]: p for p in document["paths"]["/api/runs"]["get"]["parameters"]}
        assert set(parameters) == {"flow", "state", "limit", "before"}
        assert (
            parameters["limit"]["schema"].items()
            >= {"default": 50, "maximum": 500, "minimum": 1}.items()
        )

    def test_the_start_body_is_documented_and_optional(self, document: dict[str, Any]) -> None:
        body = document["paths"]["/api/flows/{flow}/runs"]["post"]["requestBody"]
        assert body["required"] is False
        schema = body["content"]["application/json"]["schema"]
        assert set(schema["properties"]) == {"parameters"}


class TestModelsMatchTheAnswers(OnARealServer):
    async def test_every_answer_validates_against_its_documented_model(
        self, serve: Serve, runtime: Runtime, gate: anyio.Event
    ) -> None:
        gate.set()
        async with serve(runtime) as api:
            started = await api.post("/flows/gated/runs", json={"parameters": {"n": 2}})
            run_id = started.json()["id"]
            await runtime.get(run_id).wait()
            waited = await api.post("/flows/gated/runs?wait=true")
            page = await api.get("/runs")
            detail = await api.get(f"/runs/{run_id}")
            flows = await api.get("/flows")
            paused = await api.start_paused()
            resumed = await api.post(f"/runs/{paused}/tasks/publish/resume")
            missing = await api.get("/runs/nope")
        RunSummary.model_validate(started.json(), strict=True)
        RunDetail.model_validate(waited.json(), strict=True)
        RunPage.model_validate(page.json(), strict=True)
        RunDetail.model_validate(detail.json(), strict=True)
        for flow in flows.json():
            FlowModel.model_validate(flow, strict=True)
        RunSummary.model_validate(resumed.json(), strict=True)
        ErrorModel.model_validate(missing.json(), strict=True)


class TestGetRuntime(OnARealServer):
    async def test_the_apps_own_routes_get_the_runtime_as_a_dependency(
        self, serve: Serve, runtime: Runtime
    ) -> None:
        def extend(app: FastAPI) -> None:
            @app.get("/busy")
            async def busy(rt: Annotated[Runtime, Depends(get_runtime)]) -> dict[str, int]:
                return {"flows": len(rt.flows), "active": len(rt.active())}

        async with serve(runtime, extend=extend) as api:
            await api.start_paused()
            response = await api.client.get(api.base_url.removesuffix("/api") + "/busy")
        assert response.json() == {"flows": 2, "active": 1}

    async def test_without_the_router_the_getter_says_what_is_missing(self) -> None:
        app = FastAPI()

        @app.get("/busy")
        async def busy(rt: Annotated[Runtime, Depends(get_runtime)]) -> int:
            return len(rt.flows)

        transport = httpx.ASGITransport(app=app, raise_app_exceptions=True)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            with pytest.raises(RuntimeError, match="include router"):
                await client.get("/busy")
