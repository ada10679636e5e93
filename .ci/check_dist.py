"""Checks of the built distributions, and the helpers of .ci/min-versions.sh.

    python .ci/check_dist.py check DIST_DIR     # the sdist and the wheel hold what they must
    python .ci/check_dist.py floors             # name==floor for the minimum-versions venv
    python .ci/check_dist.py quickstart         # the README's quick-start program, and its output

The wheel must ship every non-Python file of the package (the docstrings point to README.md,
the web integrations serve their HTML/JS/CSS), the licence and the metadata (licence
expression, classifiers). The sdist must hold what its tests need: every file of tests/,
examples/, benchmarks/ and docs/ that git tracks, and the project files.
"""

from __future__ import annotations

import re
import subprocess
import sys
import tarfile
import tomllib
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# The extras and test tools installed at their floors beside the core dependencies.
FLOOR_EXTRAS = ("otel",)
FLOOR_TOOLS = ("pytest", "pytest-asyncio", "hypothesis")
PROJECT_FILES = ("pyproject.toml", "README.md", "LICENSE", "CHANGELOG.md", "MANIFEST.in",
                 "Makefile", "mkdocs.yml")  # fmt: skip


def tracked(*folders: str) -> list[str]:
    out = subprocess.run(
        ["git", "ls-files", *folders], cwd=ROOT, capture_output=True, text=True, check=True
    )
    return [line for line in out.stdout.splitlines() if (ROOT / line).is_file()]


def check(dist: Path) -> list[str]:
    """What is missing from the distributions in ``dist`` (empty when all is there)."""
    problems = []
    [wheel] = dist.glob("*.whl")
    [sdist] = dist.glob("*.tar.gz")
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
        [metadata] = [n for n in names if n.endswith(".dist-info/METADATA")]
        meta = zf.read(metadata).decode()
    package_data = [
        str(p.relative_to(ROOT))
        for p in (ROOT / "asyncflow").rglob("*")
        if p.is_file() and p.suffix not in (".py", ".pyc") and "__pycache__" not in p.parts
    ]
    for name in sorted(package_data):
        if name not in names:
            problems.append(f"wheel: {name} is missing")
    if not any(n.endswith(".dist-info/licenses/LICENSE") for n in names):
        problems.append("wheel: the LICENSE is missing from .dist-info/licenses")
    for field in ("License-Expression: Apache-2.0", "Classifier: Typing :: Typed"):
        if field not in meta:
            problems.append(f"wheel METADATA: no {field!r}")
    with tarfile.open(sdist) as tf:
        top = tf.getnames()[0].split("/")[0]
        members = {n.removeprefix(top + "/") for n in tf.getnames()}
    for name in [*PROJECT_FILES, *tracked("tests", "examples", "benchmarks", "docs", ".ci")]:
        if name not in members:
            problems.append(f"sdist: {name} is missing")
    return problems


def floors() -> list[str]:
    """``name==version`` for each dependency floor the minimum-versions venv installs."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    wanted = [*project["dependencies"], *(r for e in FLOOR_EXTRAS for r in extras[e])]
    wanted += [r for r in extras["dev"] if re.split(r"[\[>=<]", r)[0] in FLOOR_TOOLS]
    pins = []
    for requirement in wanted:
        match = re.fullmatch(r"([A-Za-z0-9_.-]+)(?:\[[^\]]*\])?>=([0-9.]+)", requirement.strip())
        if match is None:
            raise SystemExit(f"pyproject.toml: {requirement!r} has no '>=' floor to check")
        pins.append(f"{match[1]}=={match[2]}")
    return pins


def quickstart() -> tuple[str, str]:
    """The README's quick-start program and the output it documents.

    The program is the first ``python`` block after ``## Quick start``; its output is the
    ``text`` block that follows it.
    """
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Quick start", 1)[1]
    program = section.split("```python\n", 1)[1].split("```", 1)[0]
    output = section.split("```text\n", 1)[1].split("```", 1)[0]
    return program, output


def main(argv: list[str]) -> int:
    command = argv[0] if argv else ""
    if command == "check":
        problems = check(Path(argv[1]))
        for problem in problems:
            print(problem, file=sys.stderr)
        print(f"distributions checked: {len(problems)} problem(s)")
        return 1 if problems else 0
    if command == "floors":
        print("\n".join(floors()))
        return 0
    if command == "quickstart":
        program, output = quickstart()
        Path(argv[1]).write_text(program)
        Path(argv[2]).write_text(output)
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
