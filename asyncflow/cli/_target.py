"""Find the flows a command-line TARGET names.

A TARGET is ``path/to/file.py[:NAME]`` or ``package.module[:NAME]``. ``NAME`` is the module
attribute holding the flow, falling back to the flow whose ``Flow.name`` is ``NAME``; a module
with exactly one flow needs no ``NAME``. A file is executed under the module name
``__asyncflow__``, so its ``if __name__ == "__main__":`` block (which often runs the flow) does
not run.
"""

from __future__ import annotations

import importlib
import os
import runpy
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..exceptions import AsyncflowError
from ..flow import Flow

if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = ("UsageError", "load_flows", "load_flow", "parse_parameters")


class UsageError(AsyncflowError, ValueError):
    """The command line names something that does not exist or cannot be used (exit status 2)."""


def _split(target: str) -> tuple[str, str | None]:
    head, sep, name = target.rpartition(":")
    # "C:\\x.py" and "./a:b/x.py" have a colon that is part of the path, not a NAME.
    if sep and head and name and not any(c in name for c in "/\\") and not name.endswith(".py"):
        return head, name
    return target, None


def _namespace(source: str) -> Mapping[str, Any]:
    looks_like_file = source.endswith(".py") or os.sep in source or "/" in source
    if looks_like_file:
        path = Path(source)
        if not path.is_file():
            raise UsageError(f"no such file: {source!r}")
        # Let the file import its neighbours, as `python file.py` would.
        folder = str(path.resolve().parent)
        if folder not in sys.path:
            sys.path.insert(0, folder)
        return runpy.run_path(str(path), run_name="__asyncflow__")
    if "" not in sys.path and os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())  # as `python -m` does
    try:
        return vars(importlib.import_module(source))
    except ModuleNotFoundError as exc:
        if exc.name is not None and source.startswith(exc.name):
            raise UsageError(f"no such file or module: {source!r}") from None
        raise


def load_flows(target: str) -> tuple[dict[str, Flow], str | None]:
    """The flows defined at the top level of TARGET's file or module, and TARGET's ``NAME``.

    Returns:
        ``({attribute: flow}, NAME or None)``.

    Raises:
        UsageError: the file or module does not exist, or it defines no flow.
    """
    source, name = _split(target)
    namespace = _namespace(source)
    flows = {k: v for k, v in namespace.items() if isinstance(v, Flow) and not k.startswith("_")}
    if not flows:
        raise UsageError(f"{source!r} defines no flow (no module-level Flow object)")
    return flows, name


def load_flow(target: str) -> Flow:
    """The one flow TARGET names.

    Raises:
        UsageError: no such file, module or flow, or several flows and no ``NAME`` to choose.
    """
    flows, name = load_flows(target)
    return pick(flows, name, target)


def pick(flows: Mapping[str, Flow], name: str | None, target: str) -> Flow:
    """Choose a flow by attribute name, then by ``Flow.name``; the only one if ``name`` is None."""
    distinct = list({id(f): f for f in flows.values()}.values())
    if name is None:
        if len(distinct) == 1:
            return distinct[0]
        raise UsageError(
            f"{target!r} defines several flows ({', '.join(sorted(flows))}); "
            f"choose one with {target}:NAME"
        )
    if name in flows:
        return flows[name]
    by_name = [f for f in distinct if f.name == name]
    if len(by_name) == 1:
        return by_name[0]
    known = sorted({*flows, *(f.name for f in distinct)})
    raise UsageError(f"{target!r} has no flow {name!r}; it has: {', '.join(known)}")


def parse_parameters(pairs: list[str]) -> dict[str, Any]:
    """``["x=3", "name=bob"]`` -> ``{"x": 3, "name": "bob"}``: JSON when it parses, else text."""
    import json

    values: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key:
            raise UsageError(f"parameter {pair!r} is not of the form name=value")
        try:
            values[key] = json.loads(raw)
        except ValueError:
            values[key] = raw
    return values
