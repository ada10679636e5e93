"""mkdocs hooks: pages made of the repository's own Markdown files.

A page whose line reads ``--8<-- "PATH"`` gets the file at PATH (from the repository root)
in its place, so that README.md, CHANGELOG.md and the package READMEs are written once. Their
relative links to images under ``docs/`` are rewritten to point from the page into the site.
"""

from __future__ import annotations

import posixpath
import re
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
INCLUDE = re.compile(r'^--8<-- "([^"]+)"$', re.M)
LINK = re.compile(r"\]\(([^)#:]+)\)")


def _include(match: re.Match[str], page_dir: str) -> str:
    source = match.group(1)
    text = (ROOT / source).read_text()
    source_dir = posixpath.dirname(source)

    def relink(link: re.Match[str]) -> str:
        target = posixpath.normpath(posixpath.join(source_dir, link.group(1)))
        if not target.startswith("docs/"):
            return link.group(0)
        inside = target.removeprefix("docs/")
        return f"]({posixpath.relpath(inside, page_dir or '.')})"

    return LINK.sub(relink, text)


def on_page_markdown(markdown: str, page: Any, **kwargs: Any) -> str:
    page_dir = posixpath.dirname(page.file.src_uri)
    return INCLUDE.sub(lambda m: _include(m, page_dir), markdown)
