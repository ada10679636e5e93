"""The reliability campaign, in the suite: random flows, random faults, misbehaving observers.

Each example (see ``benchmarks/chaos.py``) is a random DAG whose tasks raise, raise signals,
retry, loop, time out or hang in a thread; whose state handlers and bus subscribers raise, raise
signals, are slow or get stuck; and which is cancelled at a random moment (or not). Whatever
happens, the run ends within a bound, every event is delivered or counted, each subscriber sees
``seq`` order, handlers and events agree, and nothing is left behind. ``python -m
benchmarks.soak`` runs the same campaign for thousands of examples.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import event as hypothesis_event
from hypothesis import strategies as st

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # `pytest` (unlike `python -m pytest`) does not add the cwd
    sys.path.insert(0, str(REPO))

from benchmarks.chaos import (  # noqa: E402
    RandomDraw,
    Scenario,
    SubscriberPlan,
    TaskPlan,
    draw_scenario,
    run_scenario,
)


class HypothesisDraw:
    """The campaign's choices, drawn by hypothesis (so that a failure shrinks)."""

    def __init__(self, data: st.DataObject) -> None:
        self.data = data

    def integer(self, lo: int, hi: int) -> int:
        return self.data.draw(st.integers(lo, hi))

    def choice(self, options: Any) -> Any:
        return self.data.draw(st.sampled_from(options))


class TestTheCampaign:
    @settings(
        max_examples=200,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(data=st.data())
    async def test_no_run_hangs_loses_an_event_or_leaks(self, data: st.DataObject) -> None:
        scenario = draw_scenario(HypothesisDraw(data))
        outcome = await run_scenario(scenario, bound=10.0)
        hypothesis_event(f"the flow ended {outcome.final or 'nowhere'}")
        assert not outcome.hung, scenario
        assert outcome.lost == 0, outcome.violations
        assert outcome.leaked == [], outcome.leaked
        assert outcome.violations == [], outcome.violations


def example(
    tasks: tuple[TaskPlan, ...],
    subscriber: SubscriberPlan | None = None,
    flow_handler: str = "quiet",
    cancel: tuple[str, int] = ("none", 0),
) -> Scenario:
    subscribers = () if subscriber is None else (subscriber,)
    return Scenario(tasks, flow_handler, subscribers, cancel[0], cancel[1])


def ok(handler: str = "quiet", on: str = "Running", size: int = 0) -> TaskPlan:
    return TaskPlan("ok", size, (), handler, on)


class TestTheDefectsItWouldHaveFound:
    """Hand-picked examples, one per fault the campaign exists to catch."""

    @pytest.mark.parametrize(
        "scenario",
        [
            pytest.param(
                example(
                    (ok(size=1),),
                    SubscriberPlan("stuck", 1024, "block", False),
                    cancel=("caller", 40),
                ),
                id="a stuck subscriber",
            ),
            pytest.param(
                example(
                    tuple(ok(size=2) for _ in range(6)),
                    SubscriberPlan("slow", 1, "block", False),
                    cancel=("run.cancel", 20),
                ),
                id="a slow blocking subscriber and a cancel",
            ),
            pytest.param(
                example((ok(),), SubscriberPlan("signal", 1024, "block", False)),
                id="a subscriber raising a signal",
            ),
            pytest.param(
                example((ok("signal", "Success"),), flow_handler="signal"),
                id="handlers raising signals",
            ),
            pytest.param(
                example(
                    (ok("stuck", "Running"),),
                    SubscriberPlan("sync", 1024, "block", False),
                    cancel=("run.cancel", 10),
                ),
                id="a cancel while a handler runs",
            ),
            pytest.param(
                example(tuple(TaskPlan("hung_sync", 0, (), "quiet", "Running") for _ in range(5))),
                id="hung threads past their timeouts",
            ),
        ],
    )
    async def test_the_example_keeps_every_promise(self, scenario: Scenario) -> None:
        outcome = await run_scenario(scenario, bound=10.0)
        assert outcome.ok, outcome


class TestRandomDraw:
    def test_a_seed_gives_the_same_scenario(self) -> None:
        import random

        first = draw_scenario(RandomDraw(random.Random(7)))
        assert draw_scenario(RandomDraw(random.Random(7))) == first
        assert draw_scenario(RandomDraw(random.Random(8))) != first
