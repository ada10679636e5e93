"""What users read and install: the README, the changelog, the licence, the declared floors.

Building and installing the distributions is ``make dist-check`` (.ci/min-versions.sh, run by
``make test``); these are the quick checks of the texts it relies on.
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from types import ModuleType

REPO = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())
# Text a user reads: docs, docstrings and messages, examples, benchmark output.
USER_FACING = [REPO / name for name in ("README.md", "CHANGELOG.md", "mkdocs.yml")] + sorted(
    p
    for folder in ("asyncflow", "docs", "examples", "benchmarks")
    for p in (REPO / folder).rglob("*")
    if p.suffix in (".py", ".md", ".html", ".js", ".css") and "__pycache__" not in p.parts
)
ISSUE_NUMBER = re.compile(r"\bissues?\s*#?\s*\d+", re.IGNORECASE)
MARKDOWN_LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")


def load_check_dist() -> ModuleType:
    spec = importlib.util.spec_from_file_location("check_dist", REPO / ".ci" / "check_dist.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class TestUserFacingText:
    @pytest.mark.parametrize("path", USER_FACING, ids=lambda p: str(p.relative_to(REPO)))
    def test_it_names_no_internal_issue_number(self, path: Path) -> None:
        found = ISSUE_NUMBER.findall(path.read_text(errors="replace"))
        assert found == []

    @pytest.mark.parametrize(
        "name", ["README.md", "CHANGELOG.md", "asyncflow/integrations/README.md"]
    )
    def test_its_links_stay_inside_the_repository(self, name: str) -> None:
        path = REPO / name
        text = re.sub(r"```.*?```", "", path.read_text(), flags=re.S)  # code is not a link
        for target in MARKDOWN_LINK.findall(text):
            if target.startswith("#"):
                continue
            if name == "asyncflow/integrations/README.md" and target.startswith("https://"):
                continue  # the vendored library's home, named beside its licence
            assert "://" not in target, f"{name} links outside the repository: {target}"
            resolved = (path.parent / target.split("#")[0]).resolve()
            assert resolved.is_relative_to(REPO), f"{name}: {target} leaves the repository"
            assert resolved.exists(), f"{name}: {target} does not exist"

    def test_the_readme_shows_pip_install_before_the_make_commands(self) -> None:
        readme = (REPO / "README.md").read_text()
        assert "pip install asyncflow" in readme
        assert "pip install 'asyncflow[fastapi]'" in readme
        assert readme.index("pip install asyncflow") < readme.index("make test")


class TestQuickStart:
    def test_the_readme_program_prints_what_the_readme_says(self, tmp_path: Path) -> None:
        program, expected = load_check_dist().quickstart()
        (tmp_path / "quick_start.py").write_text(program)

        done = subprocess.run(
            [sys.executable, "quick_start.py"],
            cwd=tmp_path,  # outside the repository, as after `pip install`
            env={**os.environ, "PYTHONPATH": str(REPO)},
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )

        assert done.stdout == expected


class TestProjectMetadata:
    def test_the_licence_file_is_the_declared_apache_2_licence(self) -> None:
        assert PYPROJECT["project"]["license"] == "Apache-2.0"
        text = (REPO / "LICENSE").read_text()
        assert text.split()[:4] == ["Apache", "License", "Version", "2.0,"]
        assert PYPROJECT["project"]["license-files"] == ["LICENSE"]

    def test_the_changelog_has_a_section_for_the_current_version(self) -> None:
        version = PYPROJECT["project"]["version"]
        assert f"\n## {version}\n" in (REPO / "CHANGELOG.md").read_text()

    def test_every_dependency_checked_at_its_floor_has_one(self) -> None:
        pins = load_check_dist().floors()

        names = {pin.split("==")[0] for pin in pins}
        assert {"anyio", "attrs", "structlog", "cloudpickle"} <= names
        assert {"opentelemetry-sdk", "pytest", "pytest-asyncio"} <= names
        assert all(re.fullmatch(r"[\w.-]+==[\d.]+", pin) for pin in pins)

    def test_the_wheel_ships_the_files_the_docstrings_point_to(self) -> None:
        data = PYPROJECT["tool"]["setuptools"]["package-data"]["asyncflow"]
        assert "integrations/README.md" in data
        assert (
            "See ``README.md`` beside this file"
            in (REPO / "asyncflow" / "integrations" / "__init__.py").read_text()
        )
