"""Specification of ``asyncflow.integrations.guard``: what the web integrations refuse at the door.

The decisions are pure functions of the request's headers, body and query; the abuse battery
(``test_web_abuse.py``) sends the same requests to real servers of both frameworks.
"""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

import pytest

from asyncflow.integrations import guard
from asyncflow.integrations.errors import InvalidQuery, RequestRefused
from asyncflow.integrations.runtime import InvalidParameters

HOST = "127.0.0.1:8000"


def check(headers: dict[str, str], has_body: bool = True, **kwargs: Any) -> None:
    guard.check_request(headers, host=HOST, has_body=has_body, **kwargs)


class TestCheckRequest:
    @pytest.mark.parametrize(
        ("headers", "has_body"),
        [
            ({"content-type": "application/json"}, True),
            ({"content-type": "application/json; charset=utf-8"}, True),
            ({"content-type": "application/merge-patch+json"}, True),
            ({}, False),  # cancel, resume: no body at all
            ({"origin": "http://127.0.0.1:8000", "content-type": "application/json"}, True),
            ({"origin": "https://127.0.0.1:8000"}, False),  # behind a TLS proxy
            ({"sec-fetch-site": "same-origin"}, False),
        ],
    )
    def test_a_json_body_or_none_from_this_site_passes(
        self, headers: dict[str, str], has_body: bool
    ) -> None:
        check(headers, has_body)

    @pytest.mark.parametrize(
        ("headers", "has_body", "status"),
        [
            ({"content-type": "text/plain"}, True, 415),
            ({"content-type": "text/plain;charset=UTF-8"}, True, 415),
            ({"content-type": "application/x-www-form-urlencoded"}, False, 415),
            ({"content-type": "multipart/form-data; boundary=x"}, True, 415),
            ({}, True, 415),  # a body without a type
            ({"origin": "https://evil.example"}, False, 403),
            ({"origin": "http://127.0.0.1:8001"}, False, 403),
            ({"origin": "null"}, False, 403),
            ({"sec-fetch-site": "cross-site"}, False, 403),
        ],
    )
    def test_what_a_cross_site_form_can_send_is_refused(
        self, headers: dict[str, str], has_body: bool, status: int
    ) -> None:
        with pytest.raises(RequestRefused) as caught:
            check(headers, has_body)
        assert caught.value.status == status

    def test_an_allowed_origin_passes(self) -> None:
        check({"origin": "https://admin.example"}, False, allowed_origins=["https://admin.example"])


class TestParseStart:
    @pytest.mark.parametrize(
        ("body", "parameters"),
        [
            (b"", {}),
            (b"  ", {}),
            (b"{}", {}),
            (b'{"parameters": {"n": [1, {"a": "caf\xc3\xa9"}]}}', {"n": [1, {"a": "caf\u00e9"}]}),
        ],
    )
    def test_utf8_json_of_the_right_form_gives_the_parameters(
        self, body: bytes, parameters: dict[str, Any]
    ) -> None:
        assert guard.parse_start(body) == parameters

    @pytest.mark.parametrize(
        ("body", "detail"),
        [
            (b'{"parameters": {"x": "\\ud800"}}', 'parameters["x"] holds a lone surrogate'),
            (b'{"parameters": {"\\udc80": 1}}', 'parameters["\\udc80"] holds a lone surrogate'),
            (b'{"parameters": {"x": [["\\ud800"]]}}', 'parameters["x"][0][0] holds a lone'),
            (
                b'{"parameters": {"x": ' + b"[" * 33 + b"]" * 33 + b"}}",
                'parameters["x"]' + "[0]" * 32 + " nests deeper than 32 levels",
            ),
            (b'{"parameters": {"x": ' + b"[" * 500 + b"]" * 500 + b"}}", "nests deeper than 32"),
            (b"[" * 100_000, "the body is not JSON: it nests too deep"),
            (b"\xff\xfe{}", "the body is not UTF-8 text"),
            ('{"parameters": {}}'.encode("utf-16"), "the body is not UTF-8 text"),
            (b'{"parameters": {"x": NaN}}', "the body is not JSON: NaN is not JSON"),
            (b'{"parameters": {"x": ' + b"9" * 5000 + b"}}", "the body is not JSON: Exceeds"),
        ],
    )
    def test_hostile_bodies_are_refused_naming_the_parameter(
        self, body: bytes, detail: str
    ) -> None:
        with pytest.raises(InvalidParameters) as caught:
            guard.parse_start(body)
        assert detail in str(caught.value)

    def test_a_body_larger_than_the_limit_is_413(self) -> None:
        body = json.dumps({"parameters": {"x": "y" * guard.MAX_BODY}}).encode()
        with pytest.raises(RequestRefused) as caught:
            guard.parse_start(body)
        assert caught.value.status == 413


class TestQuery:
    @pytest.mark.parametrize(
        ("raw", "expected"),
        [(None, 50), ("", 50), ("1", 1), ("500", 500)],
    )
    def test_an_integer_within_its_bounds(self, raw: str | None, expected: int) -> None:
        assert guard.query_int("limit", raw, default=50, lo=1, hi=500) == expected

    @pytest.mark.parametrize(
        ("raw", "detail"),
        [
            ("x", "limit: must be an integer, got 'x'"),
            ("0", "limit: must be between 1 and 500, got 0"),
            ("501", "limit: must be between 1 and 500, got 501"),
        ],
    )
    def test_a_bad_integer_is_refused_naming_it(self, raw: str, detail: str) -> None:
        with pytest.raises(InvalidQuery, match=detail) as caught:
            guard.query_int("limit", raw, default=50, lo=1, hi=500)
        assert caught.value.field == "limit"

    @pytest.mark.parametrize(
        ("raw", "expected"),
        [(None, False), ("", False), ("true", True), ("1", True), ("OFF", False)],
    )
    def test_a_boolean(self, raw: str | None, expected: bool) -> None:
        assert guard.query_bool("wait", raw) is expected

    def test_a_bad_boolean_is_refused_naming_it(self) -> None:
        with pytest.raises(InvalidQuery, match="wait: must be true or false, got 'maybe'"):
            guard.query_bool("wait", "maybe")


class TestPageHeaders:
    def test_the_page_may_run_only_its_own_inline_script_and_style(self) -> None:
        html = "<style>b{}</style><script>go()</script>"
        headers = guard.page_headers(html)
        policy = dict(p.split(" ", 1) for p in headers["Content-Security-Policy"].split("; "))
        assert policy["default-src"] == "'none'"
        digest = base64.b64encode(hashlib.sha256(b"go()").digest()).decode()
        assert policy["script-src"] == f"'self' 'sha256-{digest}'"
        assert policy["frame-ancestors"] == "'none'"
        assert headers["X-Frame-Options"] == "DENY"
        assert headers["X-Content-Type-Options"] == "nosniff"
