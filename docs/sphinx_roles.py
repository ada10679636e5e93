"""A griffe extension for the docs build: Sphinx roles in docstrings become cross-references.

asyncflow's docstrings name other objects the Sphinx way (``:class:`~asyncflow.testing.FakeClock```,
``:func:`get_logger```). mkdocstrings reads Markdown, so each role becomes an autorefs link
(``[`FakeClock`][asyncflow.testing.FakeClock]``); unqualified names resolve in the scope of the
docstring (``scoped_crossrefs``). A reference that resolves nowhere fails the strict build.
Names outside asyncflow (the standard library, anyio, attrs) stay plain code.
"""

from __future__ import annotations

import builtins
import re
from typing import Any

import griffe

ROLE = re.compile(r":(?:class|func|meth|mod|attr|exc|data|obj):`(~?)([\w.]+?)(\(\))?`")


def _link(match: re.Match[str]) -> str:
    short, target, call = match.group(1), match.group(2), match.group(3) or ""
    text = target.rsplit(".", 1)[-1] if short else target
    head = target.split(".", 1)[0]
    if head != "asyncflow" and ("." in target or hasattr(builtins, head)):
        return f"`{text}{call}`"  # the standard library or a dependency: not in this site
    return f"[`{text}{call}`][{target}]"


class SphinxRoles(griffe.Extension):
    """Rewrite the roles of every docstring griffe loads."""

    def on_object(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is not None:
            obj.docstring.value = ROLE.sub(_link, obj.docstring.value)
