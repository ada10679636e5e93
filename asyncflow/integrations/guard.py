"""What the web integrations check at the door, the same way in every framework.

Pure decisions over what a request says (its method, headers, body bytes, query), made before
anything runs, so that FastAPI and aiohttp refuse the same requests with the same status and
the same ``{"detail": ...}`` body:

- **Cross-site requests** (:func:`check_request`): a mutating request (``POST``) is refused
  (403) when its ``Origin`` is another site than the one it is sent to (or is ``null``) and not
  in ``allowed_origins``, or when the browser says ``Sec-Fetch-Site: cross-site``; and it is
  refused (415) when it carries what an HTML form can send across sites without asking:
  ``text/plain``, ``application/x-www-form-urlencoded`` or ``multipart/form-data``, or any
  body that is not ``application/json``. A JSON body, or none at all (cancel, resume), passes.
- **Bodies** (:func:`parse_start`): at most :data:`MAX_BODY` bytes (413), UTF-8 JSON (422
  otherwise, also for nesting Python's parser refuses, ``NaN`` and integers too long to read)
  of the form ``{"parameters": {...}}``, whose values nest at most :data:`MAX_PARAMETER_DEPTH`
  levels and hold no lone surrogate (``"\\ud800"``): 422 naming the parameter.
- **Query arguments** (:func:`query_int`, :func:`query_bool`): 422 naming the argument.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from .errors import InvalidQuery, RequestRefused
from .runtime import InvalidParameters

if TYPE_CHECKING:
    from collections.abc import Collection, Mapping

__all__ = (
    "MAX_BODY",
    "MAX_PARAMETER_DEPTH",
    "check_request",
    "check_length",
    "parse_start",
    "query_int",
    "query_bool",
    "page_headers",
    "NOSNIFF",
)

#: The header that forbids browsers to guess a response's type.
NOSNIFF = {"X-Content-Type-Options": "nosniff"}

#: Bytes a request body may have.
MAX_BODY = 1 << 20
#: Levels of nesting a parameter's value may have (``[[1]]`` has two).
MAX_PARAMETER_DEPTH = 32
_FORM_TYPES = ("text/plain", "application/x-www-form-urlencoded", "multipart/form-data")
_DEFAULT_PORTS = {"http": 80, "https": 443}
_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off", "")


def _origin_of(scheme: str, netloc: str) -> str:
    """``scheme://host:port`` with the scheme's default port made explicit, lowercased."""
    parts = urlsplit(f"{scheme}://{netloc}")
    try:
        port = parts.port
    except ValueError:  # a port that is not a number
        port = None
    port = port or _DEFAULT_PORTS.get(scheme.lower())
    return f"{scheme.lower()}://{(parts.hostname or '').lower()}:{port}"


def check_request(
    headers: Mapping[str, str],
    *,
    host: str | None,
    has_body: bool,
    allowed_origins: Collection[str] = (),
) -> None:
    """Refuse a mutating request a cross-site page could have sent.

    Args:
        headers: the request's headers (case-insensitive mapping).
        host: the request's ``Host``.
        has_body: whether the request has a body (``Content-Length`` above 0, or chunked).
        allowed_origins: other origins (``https://app.example.com``) allowed to send it.

    Raises:
        RequestRefused: 403 for another site, 415 for a body that is not JSON.
    """
    origin = headers.get("origin")
    if origin is not None and origin not in allowed_origins:
        parts = urlsplit(origin)
        same = (
            host is not None
            and parts.scheme in _DEFAULT_PORTS
            and _origin_of(parts.scheme, parts.netloc) == _origin_of(parts.scheme, host)
        )
        if not same:
            raise RequestRefused(
                403, f"cross-site request refused: Origin {origin!r} is another site"
            )
    elif origin is None and headers.get("sec-fetch-site") == "cross-site":
        raise RequestRefused(403, "cross-site request refused (Sec-Fetch-Site: cross-site)")
    content_type = headers.get("content-type")
    media = (content_type or "").split(";")[0].strip().lower()
    if media in _FORM_TYPES or (has_body and not _is_json(media)):
        raise RequestRefused(
            415, f"the body must be application/json, not {content_type or 'without a type'}"
        )


def _is_json(media: str) -> bool:
    return media == "application/json" or (
        media.startswith("application/") and media.endswith("+json")
    )


def check_length(length: int | None) -> None:
    """Refuse a body announced (or read so far) larger than :data:`MAX_BODY` (413)."""
    if length is not None and length > MAX_BODY:
        raise RequestRefused(413, f"the body is larger than {MAX_BODY} bytes")


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def parse_start(body: bytes) -> dict[str, Any]:
    """The parameters of a ``POST /flows/{flow}/runs`` body (an empty body: none).

    Raises:
        RequestRefused: the body is larger than :data:`MAX_BODY` (413).
        InvalidParameters: the body is not UTF-8 JSON of the form ``{"parameters": {...}}``, or
            a parameter nests too deep or holds a lone surrogate (422).
    """
    check_length(len(body))
    if not body.strip():
        return {}
    try:
        decoded = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidParameters(f"the body is not UTF-8 text: {exc}") from None
    try:
        data = json.loads(decoded, parse_constant=_refuse_constant)
    except RecursionError:
        raise InvalidParameters("the body is not JSON: it nests too deep") from None
    except ValueError as exc:  # JSONDecodeError, NaN, an integer too long to read
        raise InvalidParameters(f"the body is not JSON: {exc}") from None
    if not isinstance(data, dict) or data.keys() - {"parameters"}:
        raise InvalidParameters('the body must be {"parameters": {...}}')
    parameters = data.get("parameters", {})
    if not isinstance(parameters, dict):
        raise InvalidParameters(f"parameters must be an object, got {_short(parameters)}")
    for name, value in parameters.items():
        path = f"parameters[{_short(name)}]"
        _check_text(name, path)
        _check_value(value, path, 0)
    return parameters


def _short(value: Any) -> str:
    shown = json.dumps(value, ensure_ascii=True)
    return shown if len(shown) <= 80 else shown[:77] + "..."


def _check_value(value: Any, path: str, depth: int) -> None:
    if isinstance(value, str):
        _check_text(value, path)
    elif isinstance(value, list | dict):
        if depth >= MAX_PARAMETER_DEPTH:
            raise InvalidParameters(f"{path} nests deeper than {MAX_PARAMETER_DEPTH} levels")
        if isinstance(value, list):
            for i, item in enumerate(value):
                _check_value(item, f"{path}[{i}]", depth + 1)
        else:
            for key, item in value.items():
                _check_text(key, f"{path} (a key)")
                _check_value(item, f"{path}[{_short(key)}]", depth + 1)


def _check_text(value: str, path: str) -> None:
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise InvalidParameters(
                f"{path} holds a lone surrogate, which is not text (\\ud800-\\udfff)"
            ) from None


def query_int(
    name: str,
    raw: str | None,
    *,
    default: int | None = None,
    lo: int | None = None,
    hi: int | None = None,
) -> int | None:
    """Query argument ``name`` as an integer within ``[lo, hi]`` (``default`` when absent)."""
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise InvalidQuery(name, f"must be an integer, got {raw!r}") from None
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        raise InvalidQuery(name, f"must be between {lo} and {hi}, got {value}")
    return value


def query_bool(name: str, raw: str | None) -> bool:
    """Query argument ``name`` as a boolean (``true``/``1``/``yes``/``on`` or the opposite)."""
    value = (raw or "").lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise InvalidQuery(name, f"must be true or false, got {raw!r}")


_INLINE = re.compile(r"<(script|style)>(.*?)</\1>", re.DOTALL)


def page_headers(html: str) -> dict[str, str]:
    """The headers of the dashboard page: no sniffing, no framing, a restrictive CSP.

    The page's inline ``<script>`` and ``<style>`` blocks are allowed by their hashes; it may
    load nothing from elsewhere, and connect only to its own origin (the API, the streams).
    """
    hashes: dict[str, list[str]] = {"script": [], "style": []}
    for kind, body in _INLINE.findall(html):
        digest = base64.b64encode(hashlib.sha256(body.encode()).digest()).decode()
        hashes[kind].append(f"'sha256-{digest}'")
    policy = [
        "default-src 'none'",
        f"script-src 'self' {' '.join(hashes['script'])}".rstrip(),
        f"style-src 'self' {' '.join(hashes['style'])}".rstrip(),
        "connect-src 'self'",
        "img-src 'self' data:",
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'none'",
    ]
    return {
        "Content-Security-Policy": "; ".join(policy),
        **NOSNIFF,
        "X-Frame-Options": "DENY",
        "Referrer-Policy": "no-referrer",
    }
