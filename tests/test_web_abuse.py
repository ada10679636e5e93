"""The web abuse battery: hostile clients against real servers of both integrations.

Each scenario runs on uvicorn + FastAPI and on aiohttp (the ``framework`` fixture), with the
shared harness of ``integration_scenarios``. Hostile bodies, encodings, nesting and sizes,
cross-site forms, values no JSON document can hold, and 200 concurrent clients reconnecting
their streams: the server answers each with a 4xx and the one error shape (never a 500), and
stays healthy for everyone else: listings, details and streams keep working.
"""

from __future__ import annotations

import json
import os
from typing import TYPE_CHECKING, Any

import anyio
import pytest
from integration_scenarios import (
    GATED_HISTORY,
    OnARealServer,
    Server,
    read_sse,
    transitions,
    whole_stream,
)

from asyncflow import Flow, task
from asyncflow.integrations import Runtime, guard
from asyncflow.integrations.serialize import MAX_VALUE_CHARS

if TYPE_CHECKING:
    import httpx
    from integration_scenarios import Serve

    from asyncflow import EventBus
    from asyncflow.testing import EventRecorder

JSON = {"Content-Type": "application/json"}
DEEP = 5000

#: ``(what, body, headers, status)``: what a hostile client sends to ``POST /flows/{flow}/runs``.
HOSTILE_BODIES: list[tuple[str, bytes, dict[str, str], int]] = [
    ("a lone surrogate", b'{"parameters": {"draft": "\\ud800"}}', JSON, 422),
    ("a lone surrogate in a name", b'{"parameters": {"\\udc80": 1}}', JSON, 422),
    (
        "a list nested 500 deep",
        b'{"parameters": {"draft": ' + b"[" * 500 + b"]" * 500 + b"}}",
        JSON,
        422,
    ),
    ("JSON nested 990 deep", b"[" * 990 + b"]" * 990, JSON, 422),
    ("JSON nested 100 000 deep", b"[" * 100_000, JSON, 422),
    ("bytes that are not UTF-8", b'{"parameters": {"draft": "\xff\xfe"}}', JSON, 422),
    ("UTF-16 JSON", '{"parameters": {"draft": "x"}}'.encode("utf-16"), JSON, 422),
    ("NaN", b'{"parameters": {"draft": NaN}}', JSON, 422),
    ("an integer of 5000 digits", b'{"parameters": {"draft": ' + b"7" * 5000 + b"}}", JSON, 422),
    ("not JSON", b"{'parameters': {}}", JSON, 422),
    ("a body over the limit", b" " * (guard.MAX_BODY + 1), JSON, 413),
    (
        "JSON sent as text/plain",
        b'{"parameters": {"draft": "x"}}',
        {"Content-Type": "text/plain"},
        415,
    ),
    (
        "an urlencoded form",
        b"parameters=x",
        {"Content-Type": "application/x-www-form-urlencoded"},
        415,
    ),
    (
        "a multipart form",
        b"--b\r\n\r\nx\r\n--b--",
        {"Content-Type": "multipart/form-data; boundary=b"},
        415,
    ),
    ("a body without a type", b'{"parameters": {"draft": "x"}}', {"Content-Type": ""}, 415),
]

#: ``(method, path, status)``: paths and query arguments no server should choke on.
HOSTILE_URLS = [
    ("GET", "/runs/%ED%A0%80", 404),  # a lone surrogate, UTF-8 encoded
    ("GET", "/runs/%FF%FE/events", 404),  # not UTF-8 at all
    ("POST", "/flows/%ED%A0%80/runs", 404),
    ("GET", "/runs?flow=%FF", 200),
    ("GET", "/runs?state=%ED%A0%80", 422),
    ("GET", "/runs?limit=99999999999999999999999999", 422),
    ("GET", "/runs?before=%00", 422),
]

#: ``(what, path, headers, body, status)``: cross-site requests to the mutating routes.
CROSS_SITE: list[tuple[str, str, dict[str, str], bytes | None, int]] = [
    (
        "start from another origin",
        "/flows/approval/runs",
        {"Origin": "https://evil.example", **JSON},
        b'{"parameters": {"draft": "x"}}',
        403,
    ),
    (
        "start with Origin null",
        "/flows/approval/runs",
        {"Origin": "null", **JSON},
        b'{"parameters": {"draft": "x"}}',
        403,
    ),
    (
        "cancel from another origin",
        "/runs/{run}/cancel",
        {"Origin": "https://evil.example"},
        None,
        403,
    ),
    (
        "cancel by a cross-site fetch",
        "/runs/{run}/cancel",
        {"Sec-Fetch-Site": "cross-site"},
        None,
        403,
    ),
    (
        "cancel by an empty form",
        "/runs/{run}/cancel",
        {"Content-Type": "application/x-www-form-urlencoded"},
        b"",
        415,
    ),
    (
        "cancel by a text/plain form",
        "/runs/{run}/cancel",
        {"Content-Type": "text/plain"},
        b"x=1",
        415,
    ),
    (
        "resume by a multipart form",
        "/runs/{run}/tasks/publish/resume",
        {"Content-Type": "multipart/form-data; boundary=b"},
        b"--b--",
        415,
    ),
]


@pytest.fixture(params=["fastapi", "aiohttp"])
def framework(request: pytest.FixtureRequest) -> str:
    """Every scenario runs on both integrations."""
    return str(request.param)


async def healthy(api: Server) -> None:
    """The server answers the listing, each run's detail and a new run's whole stream."""
    listing = await api.get("/runs", params={"limit": 500})
    assert listing.status_code == 200, listing.text
    for run in listing.json()["runs"]:
        detail = await api.get(f"/runs/{run['id']}")
        assert detail.status_code == 200, detail.text
        detail.content.decode("utf-8", "strict")
    run_id = await api.start("approval", draft="still fine")
    await api.post(f"/runs/{run_id}/cancel")
    messages = await api.stream(run_id)
    assert messages[-1]["event"] == "end"


def refused(response: httpx.Response, status: int, what: str) -> None:
    assert response.status_code == status, f"{what}: {response.status_code} {response.text[:200]}"
    body = response.json()
    assert isinstance(body["detail"], str), what


class TestHostileRequests(OnARealServer):
    async def test_hostile_bodies_are_refused_with_4xx_and_the_server_stays_healthy(
        self, serve: Serve, runtime: Runtime
    ) -> None:
        async with serve(runtime) as api:
            for what, body, headers, status in HOSTILE_BODIES:
                response = await api.post("/flows/approval/runs", content=body, headers=headers)
                refused(response, status, what)
            assert runtime.runs() == []
            await healthy(api)

    async def test_hostile_paths_and_query_arguments_get_4xx_never_500(
        self, serve: Serve, runtime: Runtime
    ) -> None:
        async with serve(runtime) as api:
            for method, path, status in HOSTILE_URLS:
                response = await api.client.request(method, api.base_url + path)
                assert response.status_code == status, (path, response.text)
                body = json.loads(response.content.decode("utf-8", "strict"))
                assert "runs" in body if status == 200 else isinstance(body["detail"], str)
            await healthy(api)

    async def test_cross_site_requests_are_refused_and_json_or_no_body_still_works(
        self, serve: Serve, runtime: Runtime
    ) -> None:
        async with serve(runtime) as api:
            run_id = await api.start_paused()
            for what, path, headers, body, status in CROSS_SITE:
                response = await api.post(path.format(run=run_id), headers=headers, content=body)
                refused(response, status, what)
            record = runtime.get(run_id)
            assert len(runtime.runs()) == 1
            assert not record.done
            own_site = {"Origin": api.base_url.removesuffix("/api")}
            approved = await api.post(f"/runs/{run_id}/tasks/publish/resume", headers=own_site)
            await record.wait()
            other = await api.start_paused()
            cancelled = await api.post(f"/runs/{other}/cancel")  # no body, no Origin: a script
        assert (approved.status_code, cancelled.status_code) == (202, 202)
        assert record.state.is_successful()

    async def test_an_allowed_origin_may_start_runs(self, serve: Serve, runtime: Runtime) -> None:
        async with serve(runtime, allowed_origins=["https://admin.example"]) as api:
            response = await api.post(
                "/flows/approval/runs",
                json={"parameters": {"draft": "x"}},
                headers={"Origin": "https://admin.example"},
            )
            await api.post(f"/runs/{response.json()['id']}/cancel")
        assert response.status_code == 201

    async def test_the_dashboard_forbids_sniffing_framing_and_foreign_scripts(
        self, serve: Serve, runtime: Runtime
    ) -> None:
        async with serve(runtime) as api:
            response = await api.get("/dashboard")
        assert response.status_code == 200
        headers = response.headers
        assert headers["x-content-type-options"] == "nosniff"
        assert headers["x-frame-options"] == "DENY"
        policy = headers["content-security-policy"]
        assert "default-src 'none'" in policy
        assert "frame-ancestors 'none'" in policy
        assert "unsafe-inline" not in policy.split("style-src")[0]  # scripts only by hash


class Opaque:
    """A result whose repr fails."""

    def __repr__(self) -> str:
        raise RuntimeError("no")


def hostile_results_flow() -> Flow:
    """Tasks whose results and errors no JSON document can hold as they are."""

    @task
    def file_name() -> str:
        return os.fsdecode(b"report-\xff.txt")  # surrogate-escaped, as os.listdir gives it

    @task
    def huge() -> list[int]:
        return list(range(200_000))

    @task
    def deep() -> Any:
        value: Any = []
        for _ in range(DEEP):
            value = [value]
        return value

    @task
    def opaque() -> Opaque:
        return Opaque()

    @task
    def big_int() -> int:
        return 10**5000

    @task
    def fails() -> None:
        raise OSError(os.fsdecode(b"no such file: \xfe"))

    with Flow("hostile") as flow:
        file_name()
        huge()
        deep()
        opaque()
        big_int()
        fails()
    return flow


class TestHostileResults(OnARealServer):
    async def test_no_result_breaks_the_listing_the_detail_or_the_stream(
        self, serve: Serve, bus: EventBus, recorder: EventRecorder
    ) -> None:
        runtime = Runtime({"hostile": hostile_results_flow()}, bus=bus)
        async with serve(runtime) as api:
            run_id = await api.start("hostile")
            record = runtime.get(run_id)
            await record.wait()
            listing = await api.get("/runs")
            detail = await api.get(f"/runs/{run_id}")
            messages = await api.stream(run_id)
        assert listing.status_code == detail.status_code == 200
        assert listing.json()["runs"][0]["task_counts"] == {"Failed": 1, "Success": 5}
        tasks = json.loads(detail.content.decode("utf-8", "strict"))["tasks"]
        assert tasks["file_name"]["result"] == "report-\ufffd.txt"
        assert tasks["huge"]["result"]["truncated"] is True
        assert tasks["deep"]["result"]["truncated"] is True
        assert tasks["opaque"]["result"].startswith("<Opaque instance at 0x")
        assert tasks["big_int"]["result"] == "<int of 16610 bits>"
        assert tasks["fails"]["result"] == "OSError('no such file: \\udcfe')"
        assert len(detail.content) < 10 * MAX_VALUE_CHARS
        assert messages == whole_stream(recorder, record)


class TestManyHostileClients(OnARealServer):
    async def test_two_hundred_clients_streaming_and_reconnecting_beside_an_attacker(
        self, serve: Serve, runtime: Runtime, gate: anyio.Event, recorder: EventRecorder
    ) -> None:
        """Every client gets its run's whole stream (those that hang up, after reconnecting)."""
        clients = 200
        got: dict[str, list[dict[str, Any]]] = {}
        streaming = 0

        async def client(api: Server, n: int) -> None:
            nonlocal streaming
            async with api.another_client() as own:  # connections of its own, as a browser has
                run_id = await own.start("gated", n=n)
                async with own.events(run_id) as lines:
                    first = await read_sse(lines, limit=2)
                    streaming += 1
                    if streaming == clients:
                        gate.set()  # every run is live and streamed: let them all go
                    if n % 4:
                        got[run_id] = first + await read_sse(lines)
                        return
                # one client in four hangs up and comes back where it left off
                rest = await own.stream(run_id, headers={"Last-Event-ID": first[-1]["id"]})
                got[run_id] = first + rest

        async def attacker(api: Server) -> None:
            while not gate.is_set():
                for what, body, headers, status in HOSTILE_BODIES[:10]:
                    response = await api.post("/flows/gated/runs", content=body, headers=headers)
                    refused(response, status, what)

        async with serve(runtime) as api:
            async with anyio.create_task_group() as tg:
                tg.start_soon(attacker, api)
                for n in range(clients):
                    tg.start_soon(client, api, n)
            await healthy(api)
        assert len(got) == clients
        for run_id, messages in got.items():
            assert messages == whole_stream(recorder, runtime.get(run_id))
            assert transitions(messages) == GATED_HISTORY
