"""The benchmark suite works: the runner on tiny sizes, the baseline executor, the graphs.

Not a timing test: nothing here asserts how fast anything is. It runs ``python -m benchmarks``'s
``main`` in-process on sizes small enough to finish in about a second, so the suite cannot rot
while the engine changes, and it checks that the plain-asyncio baseline really implements the
dependency structures asyncflow is compared with.
"""

from __future__ import annotations

import asyncio
import gc
import io
import json
import statistics
import sys
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # `pytest` (unlike `python -m pytest`) does not add the cwd
    sys.path.insert(0, str(REPO))

from benchmarks import baseline, mapping, shapes  # noqa: E402
from benchmarks.measure import Record  # noqa: E402
from benchmarks.runner import DEFAULT_JSON, _targets, config_from_args, main  # noqa: E402

TINY = [
    "--n", "10", "100",
    "--repeats", "2",
    "--bus-n", "20",
    "--retry-n", "20",
    "--retry-delay", "0.01",
    "--map-n", "20",
    "--memory-n", "30",
    "--graph-n", "20",
    "--build-n", "20",
    "--durable-n", "20",
]  # fmt: skip
SECTION_TITLES = (
    "DAG of no-op tasks (no subscribers)",
    "Growth of run time from N to 10 N tasks (linear = 10x)",
    "Event bus (20 async no-op tasks; baseline: same flow, no subscribers)",
    "Retries (each task fails once; wall time of the run)",
    "Mapping (one async no-op task mapped over a list)",
    "Memory (tracemalloc; one measurement, not timed)",
    "Graph build before the first run (async no-op tasks)",
    "Durable runs (SQLite store, synchronous=normal; baseline: the same run in memory)",
)


class TinyRun:
    """What one in-process run of the runner left behind."""

    def __init__(self, code: int, table: str, data: dict[str, Any]) -> None:
        self.code = code
        self.table = table
        self.data = data

    def records(self, section: str) -> list[dict[str, Any]]:
        return [r for r in self.data["records"] if r["section"] == section]


def run_tiny(tmp: Path, *extra: str) -> TinyRun:
    out = io.StringIO()
    path = tmp / "bench.json"
    code = main([*TINY, *extra, "--json", str(path)], out=out)
    return TinyRun(code, out.getvalue(), json.loads(path.read_text(encoding="utf-8")))


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> TinyRun:
    """The whole suite, once, on tiny sizes."""
    # The runner collects garbage before every timed call; in a test process full of pytest's
    # objects that costs ~25 ms a time, so park those objects where the collector skips them.
    gc.freeze()
    try:
        return run_tiny(tmp_path_factory.mktemp("bench"))
    finally:
        gc.unfreeze()


class TestRunner:
    def test_a_tiny_run_measures_every_scenario_and_exits_zero(self, tiny: TinyRun) -> None:
        assert tiny.code == 0
        assert [r for r in tiny.data["records"] if r["error"] is not None] == []
        sections = {r["section"] for r in tiny.data["records"]}
        assert sections == {
            "dag",
            "growth",
            "bus",
            "retries",
            "mapping",
            "memory",
            "build",
            "durable",
        }

    def test_the_table_prints_one_block_per_scenario_in_order(self, tiny: TinyRun) -> None:
        positions = [tiny.table.index(title) for title in SECTION_TITLES]
        assert positions == sorted(positions)
        assert "ratio" in tiny.table

    def test_the_targets_block_names_the_performance_targets(self) -> None:
        record = Record("dag", "async wide", 10_000, extra={"ratio": 1.5}, target=4.0)

        lines = _targets([record])

        assert lines[1] == "Performance targets (no subscribers)"
        assert "async wide 10,000" in lines[-1]
        assert lines[-1].split()[-1] == "ok"
        assert "issue" not in "\n".join(lines).lower()

    def test_the_dag_scenario_covers_every_kind_shape_and_size(self, tiny: TinyRun) -> None:
        measured = {(r["name"], r["n"]) for r in tiny.records("dag")}
        assert measured == {
            (f"{kind} {shape}", n)
            for kind in ("async", "sync", "handlers")
            for shape in ("wide", "chain", "lattice")
            for n in (10, 100)
        }

    def test_every_timed_figure_is_the_median_of_its_repeats_beside_a_baseline(
        self, tiny: TinyRun
    ) -> None:
        timed = [r for r in tiny.data["records"] if r["asyncflow"] is not None]
        assert len(timed) == 18 + 4 + 1 + 1 + 3 + 4  # dag, bus, retries, mapping, build, durable
        for r in timed:
            af, base = r["asyncflow"], r["baseline"]
            assert len(af["times_s"]) == len(base["times_s"]) == 2
            assert af["median_s"] == statistics.median(af["times_s"])
            assert base["median_s"] == statistics.median(base["times_s"])
            assert r["ratio"] == pytest.approx(af["median_s"] / base["median_s"])
            assert r["baseline_label"]

    def test_growth_compares_the_largest_tenfold_pair_of_sizes(self, tiny: TinyRun) -> None:
        rows = tiny.records("growth")
        assert len(rows) == 9
        for r in rows:
            assert (r["extra"]["from_n"], r["extra"]["to_n"]) == (10, 100)
            dag = {x["name"]: x for x in tiny.records("dag") if x["n"] in (10, 100)}
            assert r["name"] in dag

    def test_bus_rows_count_events_and_deliveries_per_subscriber(self, tiny: TinyRun) -> None:
        rows = {r["name"]: r["extra"] for r in tiny.records("bus")}
        assert {
            name: (x["events_per_run"], x["deliveries_per_run"]) for name, x in rows.items()
        } == {
            "0 subscribers": (42, 0),
            "1 sync subscriber": (42, 42),
            "1 async subscriber": (42, 42),
            "10 async subscribers": (42, 420),
        }

    def test_retries_report_the_overshoot_and_the_thread_counts(self, tiny: TinyRun) -> None:
        (r,) = tiny.records("retries")
        x = r["extra"]
        assert x["delay_s"] == 0.01
        assert x["overshoot_s"] == pytest.approx(r["asyncflow"]["median_s"] - 0.01)
        assert x["threads_peak"] >= x["threads_before"] >= 1
        assert x["baseline_threads_peak"] >= x["baseline_threads_before"] >= 1

    def test_memory_is_reported_per_task_for_runs_and_for_the_graph(self, tiny: TinyRun) -> None:
        rows = {(r["name"], r["n"]): r["extra"] for r in tiny.records("memory")}
        assert set(rows) == {
            ("run peak, async wide", 30),
            ("run peak, async chain", 30),
            ("graph (built + compiled)", 20),
        }
        for (_, n), x in rows.items():
            assert x["asyncflow_bytes_per_task"] == x["asyncflow_bytes"] / n > 0
            assert x["baseline_bytes_per_task"] == x["baseline_bytes"] / n > 0

    def test_durable_rows_put_the_store_beside_memory_with_targets_and_the_dbos_anchor(
        self, tiny: TinyRun
    ) -> None:
        rows = {r["name"]: r for r in tiny.records("durable") if r["name"] != "dbos anchor"}
        assert {name: r["n"] for name, r in rows.items()} == {
            "sqlite wide": 20,
            "sqlite chain": 4,
            "sqlite chain, thread": 4,
            "recovery": 5,
        }
        assert all(
            r["asyncflow"]["median_s"] > 0 < r["baseline"]["median_s"] for r in rows.values()
        )
        for line in ("sqlite wide", "sqlite chain  ", "recovery"):
            text = next(row for row in tiny.table.splitlines() if row.startswith(line))
            assert "ok" in text or "MISS" in text
            assert "cheaper" in text or "faster" in text
        text = next(r for r in tiny.table.splitlines() if r.startswith("sqlite chain, thread"))
        assert "(no target)" in text
        assert "ok" not in text
        assert "MISS" not in text

    def test_the_dbos_anchor_is_labelled_measured_or_quoted(self, tiny: TinyRun) -> None:
        (anchor,) = (r for r in tiny.records("durable") if r["name"] == "dbos anchor")
        source = anchor["extra"]["source"]
        assert source in ("measured", "quoted")  # measured only where `dbos` is installed
        assert anchor["extra"]["step_s"] > 0 < anchor["extra"]["recovery_s"]
        assert f"DBOS ({source})" in tiny.table

    def test_the_json_says_where_and_how_it_was_measured(self, tiny: TinyRun) -> None:
        meta, config = tiny.data["meta"], tiny.data["config"]
        assert {"python", "cpus", "load_average_before", "duration_s", "mode"} <= meta.keys()
        assert config["sizes"] == [10, 100]
        assert config["repeats"] == 2

    def test_a_scenario_that_cannot_be_measured_is_an_error_row_and_exit_code_1(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        class Broken(mapping.AsyncNoop):
            async def run(self, x: Any = None) -> Any:
                raise RuntimeError("broken on purpose")

        monkeypatch.setattr(mapping, "AsyncNoop", Broken)
        run = run_tiny(tmp_path, "--only", "mapping")
        assert run.code == 1
        (r,) = run.data["records"]
        assert r["error"].startswith("RuntimeError: broken on purpose")
        assert "ERROR" in run.table


class TestConfiguration:
    @pytest.mark.parametrize(
        ("argv", "sizes", "sync_max_n", "repeats", "memory_n", "retry_n"),
        [
            ([], (1_000, 10_000, 100_000), 10_000, 5, 100_000, 10_000),
            (["--quick"], (1_000, 10_000), 1_000, 3, 10_000, 2_000),
            (["--quick", "--n", "50", "--repeats", "7"], (50,), 1_000, 7, 10_000, 2_000),
        ],
    )
    def test_the_mode_and_options_decide_sizes_and_repeats(
        self,
        argv: list[str],
        sizes: tuple[int, ...],
        sync_max_n: int,
        repeats: int,
        memory_n: int,
        retry_n: int,
    ) -> None:
        config, _ = config_from_args(argv)
        assert config.sizes == sizes
        assert config.sync_max_n == sync_max_n
        assert config.repeats == repeats
        assert config.memory_n == memory_n
        assert config.retry_n == retry_n

    def test_results_go_to_the_git_ignored_results_folder_by_default(self) -> None:
        _, path = config_from_args([])
        assert path == DEFAULT_JSON == REPO / "benchmarks" / "results" / "latest.json"
        assert "benchmarks/results/" in (REPO / ".gitignore").read_text().splitlines()

    def test_only_keeps_the_suite_order(self) -> None:
        config, _ = config_from_args(["--only", "memory", "dag"])
        assert config.scenarios == ("dag", "memory")


class TestShapes:
    @pytest.mark.parametrize(
        ("graph", "upstream"),
        [
            (shapes.wide(3), ((), (), ())),
            (shapes.chain(3), ((), (0,), (1,))),
            (shapes.lattice(7, width=3), ((), (), (), (0, 1), (1, 2), (2, 0), (3, 4))),
            (shapes.lattice(3, width=1), ((), (0,), (1,))),
        ],
    )
    def test_each_shape_has_the_documented_dependencies(
        self, graph: shapes.Graph, upstream: tuple[tuple[int, ...], ...]
    ) -> None:
        assert graph.upstream == upstream

    def test_downstream_lists_mirror_the_upstream_ones(self) -> None:
        graph = shapes.lattice(6, width=3)
        assert graph.downstream == ((3, 5), (3, 4), (4, 5), (), (), ())
        assert (graph.n, graph.n_edges, graph.roots, graph.depth) == (6, 6, (0, 1, 2), 2)


class TestBaseline:
    @pytest.mark.parametrize("shape", ["wide", "chain", "lattice"])
    def test_every_task_runs_once_after_all_its_upstream_tasks(self, shape: str) -> None:
        graph = shapes.make(shape, 50, width=4)
        order: list[int] = []

        async def body(i: int) -> None:
            order.append(i)
            await asyncio.sleep(0)

        assert asyncio.run(baseline.run_dag(graph, body)) == 50
        assert sorted(order) == list(range(50))
        position = {i: k for k, i in enumerate(order)}
        for i, ups in enumerate(graph.upstream):
            assert all(position[j] < position[i] for j in ups)

    def test_a_failing_task_fails_the_run(self) -> None:
        async def body(i: int) -> None:
            if i == 2:
                raise ValueError("task 2")

        with pytest.raises(ValueError, match="task 2"):
            asyncio.run(baseline.run_dag(shapes.chain(5), body))

    def test_a_failed_task_is_retried_after_the_delay(self) -> None:
        attempts = [0] * 3

        async def body(i: int) -> None:
            attempts[i] += 1
            if attempts[i] == 1:
                raise RuntimeError("first attempt")

        done = asyncio.run(baseline.run_dag(shapes.wide(3), body, max_retries=1, retry_delay=0))
        assert (done, attempts) == (3, [2, 2, 2])

    def test_handlers_see_both_transitions_around_the_body(self) -> None:
        seen: list[tuple[str, int, str, str]] = []

        def on_sync(i: int, old: str, new: str) -> None:
            seen.append(("sync", i, old, new))

        async def on_async(i: int, old: str, new: str) -> None:
            seen.append(("async", i, old, new))

        async def body(i: int) -> None:
            seen.append(("body", i, "", ""))

        handled = baseline.with_handlers(body, on_sync, on_async)
        asyncio.run(baseline.run_dag(shapes.wide(1), handled))
        assert seen == [
            ("sync", 0, "Pending", "Running"),
            ("async", 0, "Pending", "Running"),
            ("body", 0, "", ""),
            ("sync", 0, "Running", "Success"),
            ("async", 0, "Running", "Success"),
        ]
