"""A nightly flow with targets: each night's work is written once, and never redone.

``fetch`` (mapped over the regions) and ``report`` have a ``target``: a location templated with
the night's date (``{today}``) and the task's inputs. When that location already exists, the
task is not run; its value is read back and it ends ``Cached("Result found at task target
...")``. So a night whose run crashed halfway picks up where it stopped, and running a night
again costs nothing. The flow's ``CronSchedule`` fires at 02:00 UTC on three nights;
``flow.run()`` runs each of them, on a ``FakeClock`` so the three nights take milliseconds. The
results are JSON files in a temporary folder (``LocalResult(dir=...)``).

Expected output contains:
    before night 1: a crashed attempt left 2030-01-01/sales-eu.json behind
    night 2030-01-01: fetched ['us', 'asia'], reused ['eu']; report: 1210 sales in 3 regions
    night 2030-01-02: fetched ['eu', 'us', 'asia'], reused []; report: 1240 sales in 3 regions
    night 2030-01-03: fetched ['eu', 'us', 'asia'], reused []; report: 1270 sales in 3 regions
    rerun of 2030-01-02: fetched [], reused ['eu', 'us', 'asia']; report: 1240 sales in 3 regions
    report state: Cached("Result found at task target 2030-01-02/report.json")
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pendulum

from asyncflow import Flow, context, task
from asyncflow.engine.results import LocalResult
from asyncflow.engine.serializers import JSONSerializer
from asyncflow.schedules import CronSchedule
from asyncflow.testing import FakeClock

if TYPE_CHECKING:
    from asyncflow.engine.state import State

BASE = {"eu": 400, "us": 500, "asia": 310}
FETCHED: list[str] = []
FIRST_NIGHT = pendulum.datetime(2030, 1, 1, 2)


@task
def regions() -> list[str]:
    return list(BASE)


@task(target="{today}/sales-{region}.json")
def fetch(region: str) -> int:
    FETCHED.append(region)
    night = int(context.today[-2:])  # the day of the month of the night being run
    return BASE[region] + 10 * (night - 1)


@task(target="{today}/report.json")
def report(sales: list[int]) -> dict[str, Any]:
    return {"regions": len(sales), "total": sum(sales)}


def summarize(flow: Flow, old: State, new: State) -> None:
    """A flow state handler: one line per finished night."""
    if not new.is_finished():
        return
    states = {t.name: s for t, s in new.result.items()}
    children = states["fetch"].map_states
    reused = [r for r, s in zip(BASE, children, strict=True) if s.is_cached()]
    fetched = [r for r in BASE if r in FETCHED]
    done = states["report"].result
    label = "rerun of" if RERUN else "night"
    print(
        f"{label} {context.today}: fetched {fetched}, reused {reused}; "
        f"report: {done['total']} sales in {done['regions']} regions"
    )
    FETCHED.clear()


RERUN = False

with Flow(
    "nightly",
    schedule=CronSchedule("0 2 * * *", start_date=FIRST_NIGHT, end_date=FIRST_NIGHT.add(days=2)),
    state_handlers=[summarize],
) as flow:
    report(fetch.map(regions()))


def main() -> None:
    global RERUN
    with tempfile.TemporaryDirectory() as folder:
        flow.result = LocalResult(dir=folder, serializer=JSONSerializer())
        crashed = Path(folder, "2030-01-01", "sales-eu.json")
        crashed.parent.mkdir()
        crashed.write_text(json.dumps(BASE["eu"]))
        print("before night 1: a crashed attempt left 2030-01-01/sales-eu.json behind")

        flow.run(clock=FakeClock(FIRST_NIGHT.subtract(minutes=1).timestamp()))

        RERUN = True
        again = flow.run(
            run_on_schedule=False, clock=FakeClock(FIRST_NIGHT.add(days=1).timestamp())
        )
        report_state = next(s for t, s in again.result.items() if t.name == "report")
        print(f"report state: {report_state!r}")


if __name__ == "__main__":
    main()
