"""The run page's static files (its script, its style, the vendored layout library).

Both integrations serve them at ``GET /static/{name}``, beside ``GET /dashboard``, so the page
loads them with relative URLs under any mount prefix. ``dagre.min.js`` is dagre (MIT, licence
in ``static/dagre.LICENSE.txt``), from the npm package ``@dagrejs/dagre`` as published, with its
source-map comment removed.
"""

from __future__ import annotations

from pathlib import Path

from ..exceptions import AsyncflowError

__all__ = ("DASHBOARD", "STATIC", "UnknownAsset", "static_files", "asset")

#: The run page.
DASHBOARD = Path(__file__).with_name("dashboard.html")
#: The folder of the page's static files.
STATIC = Path(__file__).with_name("static")
_TYPES = {
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".txt": "text/plain; charset=utf-8",
}


class UnknownAsset(AsyncflowError, LookupError):
    """No static file of the page has that name (HTTP 404)."""


def static_files() -> dict[str, tuple[bytes, str]]:
    """Every static file, read now: ``{name: (content, content type)}``."""
    return {
        path.name: (path.read_bytes(), _TYPES[path.suffix])
        for path in sorted(STATIC.iterdir())
        if path.suffix in _TYPES
    }


def asset(files: dict[str, tuple[bytes, str]], name: str) -> tuple[bytes, str]:
    """The content and content type of static file ``name``.

    Raises:
        UnknownAsset: there is no such file.
    """
    try:
        return files[name]
    except KeyError:
        raise UnknownAsset(f"no static file named {name!r}; files: {sorted(files)}") from None
