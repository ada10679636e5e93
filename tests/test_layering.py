"""Imports point down DESIGN.md's layers, and no modules import each other in a cycle.

Imports under ``if TYPE_CHECKING:`` are annotations and do not count; function-local imports
do (a cycle must fail here instead of hiding inside a function).
"""

from __future__ import annotations

import ast
import graphlib
from pathlib import Path

import asyncflow

ROOT = Path(asyncflow.__file__).parent
_LAYERS = [
    "_typing exceptions clock _graph",
    "states",
    "signals edges events",
    "triggers context bus _delivery filters _log _logsetup caching"
    " results serializers schedules journal store",
    "task _task_checks _task_operators decorators parameter tasks",
    "runtime",  # never imports flow: it receives a frozen FlowSpec
    "flow _flow_queries _compile _running _scheduled _visualize",
    "testing integrations cli executors engine __main__ <root>",  # the root may import anything
]
LAYER = {name: n for n, names in enumerate(_LAYERS) for name in names.split()}
MODULES = {
    ".".join(p.relative_to(ROOT.parent).with_suffix("").parts).removesuffix(".__init__"): p
    for p in sorted(ROOT.rglob("*.py"))
}


def layer(module: str) -> int:
    return LAYER[[*module.split("."), "<root>"][1]]


def imports(module: str) -> list[tuple[int, str]]:
    """``(line, asyncflow module)`` for each import ``module`` makes at run time."""
    path = MODULES[module]
    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    found, todo = [], [ast.parse(path.read_text())]
    while todo:
        node = todo.pop()
        if isinstance(node, ast.If) and ast.unparse(node.test) in (
            "TYPE_CHECKING",
            "typing.TYPE_CHECKING",
        ):
            todo += node.orelse
            continue
        todo += ast.iter_child_nodes(node)
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names if a.name in MODULES]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join([*package[: len(package) - node.level + 1], *filter(None, [base])])
            for a in node.names if base in MODULES else ():  # `from . import x` imports x
                sub = f"{base}.{a.name}"
                found.append((node.lineno, sub if sub in MODULES else base))
    return sorted(found)


class TestLayering:
    def test_the_walker_resolves_relative_imports_and_skips_type_checking_ones(self) -> None:
        targets = {t for _, t in imports("asyncflow.flow")}
        assert {"asyncflow._flow_queries", "asyncflow._compile", "asyncflow.task"} <= targets
        assert "asyncflow.runtime.spec" not in targets  # flow.py imports it for annotations only

    def test_every_module_belongs_to_a_layer(self) -> None:
        assert [m for m in MODULES if [*m.split("."), "<root>"][1] not in LAYER] == []

    def test_no_module_imports_a_higher_layer(self) -> None:
        upward = [
            f"{m} (L{layer(m)}) line {line}: imports {t} (L{layer(t)})"
            for m in MODULES
            for line, t in imports(m)
            if layer(t) > layer(m)
        ]
        assert upward == [], "\n".join(upward)

    def test_the_runtime_never_imports_the_flow_builder(self) -> None:
        runtime = [m for m in MODULES if m.startswith("asyncflow.runtime")]
        assert [(m, line) for m in runtime for line, t in imports(m) if t == "asyncflow.flow"] == []

    def test_no_modules_import_each_other_in_a_cycle(self) -> None:
        graph = {m: {t for _, t in imports(m)} - {m} for m in MODULES}
        try:
            graphlib.TopologicalSorter(graph).prepare()
        except graphlib.CycleError as exc:
            raise AssertionError("import cycle: " + " -> ".join(exc.args[1])) from None
