"""The public surface: ``__all__``, the Prefect 1.x import paths, an import without side effects."""

from __future__ import annotations

import ast
import functools
import inspect
import json
import subprocess
import sys
from pathlib import Path

import pytest

import asyncflow
import asyncflow.signals
import asyncflow.states

INIT = Path(asyncflow.__file__)


def _init_statements() -> list[ast.stmt]:
    return ast.parse(INIT.read_text(), str(INIT)).body


def _names_bound_by_init() -> set[str]:
    """Every name ``asyncflow/__init__.py`` binds with an import."""
    return {
        alias.asname or alias.name
        for node in _init_statements()
        if isinstance(node, ast.ImportFrom | ast.Import)
        for alias in node.names
    }


def _is_public(name: str) -> bool:
    return not name.startswith("_")


class TestAll:
    def test_all_is_a_tuple_of_distinct_strings(self) -> None:
        assert type(asyncflow.__all__) is tuple
        assert all(type(name) is str for name in asyncflow.__all__)
        assert len(set(asyncflow.__all__)) == len(asyncflow.__all__)

    def test_every_name_in_all_exists(self) -> None:
        assert [n for n in asyncflow.__all__ if not hasattr(asyncflow, n)] == []

    def test_all_lists_exactly_the_public_names_that_init_imports(self) -> None:
        bound = {n for n in _names_bound_by_init() if _is_public(n)}
        assert sorted(bound - set(asyncflow.__all__)) == []
        assert sorted(set(asyncflow.__all__) - bound) == []

    def test_every_public_non_module_attribute_of_the_package_is_in_all(self) -> None:
        public = {
            name
            for name, value in vars(asyncflow).items()
            if _is_public(name) and not inspect.ismodule(value)
        }
        assert sorted(public - set(asyncflow.__all__)) == []

    def test_init_only_re_exports_in_the_explicit_as_form(self) -> None:
        """STYLE.md 3: ``from .x import Y as Y`` lines, ``__all__`` and dunder constants only."""
        odd = []
        for node in _init_statements():
            if isinstance(node, ast.ImportFrom) and node.module != "__future__":
                odd += [ast.unparse(node) for a in node.names if a.asname != a.name]
            elif isinstance(node, ast.Assign):
                odd += [ast.unparse(node) for t in node.targets if not _is_dunder(t)]
            elif not (isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)):
                odd.append(ast.unparse(node))
        assert odd == []

    @pytest.mark.parametrize("name", asyncflow.__all__)
    def test_every_exported_name_has_a_docstring(self, name: str) -> None:
        assert (inspect.getdoc(getattr(asyncflow, name)) or "").strip(), name

    def test_task_is_the_decorator_and_not_the_module_of_the_same_name(self) -> None:
        from asyncflow.decorators import task

        assert asyncflow.task is task


def _is_dunder(target: ast.expr) -> bool:
    return isinstance(target, ast.Name) and target.id.startswith("__") and target.id.endswith("__")


class TestPrefectImportPaths:
    def test_engine_exposes_the_signals_and_state_modules(self) -> None:
        from asyncflow.engine import signals, state

        assert inspect.ismodule(signals)
        assert inspect.ismodule(state)
        assert signals.FAIL is asyncflow.signals.FAIL
        assert state.Success is asyncflow.states.Success

    def test_the_seed_imports_work_verbatim(self) -> None:
        from asyncflow.engine.state import Failed, Pending, Retrying, Running, Scheduled, Success

        assert (Pending, Scheduled, Running, Success, Failed, Retrying) == (
            asyncflow.states.Pending,
            asyncflow.states.Scheduled,
            asyncflow.states.Running,
            asyncflow.states.Success,
            asyncflow.states.Failed,
            asyncflow.states.Retrying,
        )

    @pytest.mark.parametrize("name", asyncflow.states.__all__)
    def test_every_state_class_is_the_same_object_under_engine_state(self, name: str) -> None:
        from asyncflow.engine import state

        assert getattr(state, name) is getattr(asyncflow.states, name)

    @pytest.mark.parametrize("name", asyncflow.signals.__all__)
    def test_every_signal_is_the_same_object_under_engine_signals(self, name: str) -> None:
        from asyncflow.engine import signals

        assert getattr(signals, name) is getattr(asyncflow.signals, name)

    def test_the_local_executor_is_importable_from_asyncflow_executors(self) -> None:
        from asyncflow.executors import LocalExecutor
        from asyncflow.runtime.executors import LocalExecutor as engine_executor

        assert LocalExecutor is engine_executor

    def test_the_dask_executor_is_importable_from_asyncflow_executors(self) -> None:
        """DESIGN.md's public API; Dask itself is imported only when the executor starts."""
        from asyncflow.executors import DaskExecutor

        assert inspect.isclass(DaskExecutor)


_PROBE = """
import json, logging, sys, threading
import structlog
import asyncflow, asyncflow.engine, asyncflow.engine.state, asyncflow.executors, asyncflow.testing
loggers = [logging.getLogger(), *(
    lg for lg in logging.Logger.manager.loggerDict.values() if isinstance(lg, logging.Logger)
)]
print(json.dumps({
    "handlers": [f"{lg.name}: {h!r}" for lg in loggers for h in lg.handlers],
    "threads": [t.name for t in threading.enumerate()],
    "modules": sorted(sys.modules),
    "structlog_configured": structlog.is_configured(),
}))
"""


@functools.cache
def _after_import() -> dict[str, object]:
    """What a fresh interpreter looks like right after importing asyncflow."""
    done = subprocess.run(
        [sys.executable, "-c", _PROBE], capture_output=True, text=True, timeout=60, check=True
    )
    return json.loads(done.stdout)  # type: ignore[no-any-return]


#: Imported lazily, only by the features that need them (DESIGN.md, Dependencies).
OPTIONAL_EXTRAS = (
    "dask",
    "distributed",
    "croniter",
    "pendulum",
    "cloudpickle",
    "fastapi",
    "aiohttp",
    "graphviz",
    # Not rich (the CLI's progress table): structlog imports it itself whenever it is installed.
    "asyncpg",
)


class TestImportHasNoSideEffects:
    def test_no_logging_handler_is_installed(self) -> None:
        assert _after_import()["handlers"] == []

    def test_no_thread_is_started(self) -> None:
        assert _after_import()["threads"] == ["MainThread"]

    def test_structlog_is_not_configured_globally(self) -> None:
        assert _after_import()["structlog_configured"] is False

    @pytest.mark.parametrize("extra", OPTIONAL_EXTRAS)
    def test_optional_extras_are_not_imported(self, extra: str) -> None:
        assert extra not in _after_import()["modules"]  # type: ignore[operator]
