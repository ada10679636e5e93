"""Every ``examples/*.py`` runs as ``python examples/x.py`` and prints what it promises.

The four seed examples must print exactly what the seed document says (DESIGN.md: the first
acceptance test). The seed text was flattened when it was captured and lost its blank lines,
while the examples print ``"\\nCalling ...:\\n{1} to {2}\\n"``, i.e. with blank lines around each
message; so stdout is compared after dropping empty lines. Logs go to stderr and are ignored.

Any other example documents its output in its module docstring; each indented line must appear
within one line of its stdout::

    Expected output contains:
        flow state: Success("All reference tasks succeeded.")
        another text the program prints
"""

from __future__ import annotations

import ast
import functools
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = sorted(p.name for p in (REPO / "examples").glob("*.py"))
# Beside the repository, both here (/work/shared) and in CI (a clean clone next to shared/).
SEED_DOCUMENT = Path(__file__).resolve().parents[2] / "shared" / "seeds" / "state_handlers.txt"

# What the seed says each example prints, copied from it so that the tests run without it.
SEED_OUTPUTS = {
    "seed_1_flow_handler.py": """\
Calling my custom state handler on <Flow: name=state-handler-demo>:
Scheduled() to Running("Running flow.")
Calling my custom state handler on <Flow: name=state-handler-demo>:
Running("Running flow.") to Success("All reference tasks succeeded.")
""",
    "seed_2_task_handler.py": """\
Calling my custom state handler on <Task: Task>:
Pending() to Running("Starting task run.")
Calling my custom state handler on <Task: Task>:
Running("Starting task run.") to Success("Task run succeeded.")
""",
    "seed_3_slack_notifier.py": "",  # "the notifier is never run"
    "seed_4_special_failure.py": """\
Special failure mode! Send all the alerts!
a == b == 1
""",
}
EXPECTED_MARKER = "Expected output contains:"


@functools.cache
def run_example(name: str) -> subprocess.CompletedProcess[str]:
    """Run ``examples/<name>`` from the repository root, once per test session."""
    return subprocess.run(
        [sys.executable, f"examples/{name}"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def non_empty_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


def documented_lines(name: str) -> list[str]:
    """The indented lines after ``Expected output contains:`` in the example's docstring."""
    path = REPO / "examples" / name
    doc = ast.get_docstring(ast.parse(path.read_text(), str(path)), clean=True) or ""
    lines = doc.splitlines()
    if EXPECTED_MARKER not in [line.strip() for line in lines]:
        return []
    start = [line.strip() for line in lines].index(EXPECTED_MARKER) + 1
    found = []
    for line in lines[start:]:
        if not line.startswith((" ", "\t")):
            break
        found.append(line.strip())
    return [line for line in found if line]


def seed_document_lines() -> list[str]:
    """The seed's lines, with its fourth example's output uncommented (it shows as ``# ...``)."""
    return [line.removeprefix("# ") for line in non_empty_lines(SEED_DOCUMENT.read_text())]


def contains_block(haystack: list[str], block: list[str]) -> bool:
    return any(haystack[i : i + len(block)] == block for i in range(len(haystack) + 1))


class TestEveryExample:
    @pytest.mark.parametrize("name", EXAMPLES)
    def test_it_runs_to_the_end_and_exits_with_0(self, name: str) -> None:
        done = run_example(name)
        assert done.returncode == 0, f"{name} exited {done.returncode}:\n{done.stderr[-3000:]}"

    @pytest.mark.parametrize("name", EXAMPLES)
    def test_its_stdout_shows_what_it_promises(self, name: str) -> None:
        """A seed example prints the seed's text exactly, blank lines aside (module docstring)."""
        done = run_example(name)
        if name in SEED_OUTPUTS:
            expected = non_empty_lines(SEED_OUTPUTS[name])
            assert non_empty_lines(done.stdout) == expected
            if SEED_DOCUMENT.exists():  # the literal is quoted from the seed, not invented
                assert contains_block(seed_document_lines(), expected)
        else:
            expected = documented_lines(name)
            assert expected, f"{name}: its docstring has no '{EXPECTED_MARKER}' section"
            printed = done.stdout.splitlines()
            missing = [text for text in expected if not any(text in line for line in printed)]
            assert missing == [], done.stdout


class TestSeedExamples:
    def test_each_of_the_four_seed_examples_exists(self) -> None:
        assert [n for n in EXAMPLES if n.startswith("seed_")] == sorted(SEED_OUTPUTS)

    def test_the_first_example_prints_the_blank_lines_the_seed_lost(self) -> None:
        assert run_example("seed_1_flow_handler.py").stdout.startswith(
            "\nCalling my custom state handler on <Flow: name=state-handler-demo>:\n"
            'Scheduled() to Running("Running flow.")\n\n'
        )
