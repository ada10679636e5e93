"""The reliability campaign: random flows, random faults, random misbehaving observers.

One *example* is a random DAG of tasks, each with a fault (it raises, raises a signal, retries,
loops, times out, hangs in a thread), random state handlers and bus subscribers that misbehave
(raise, raise a signal, are slow, get stuck), and a random cancellation point. It runs on a
:class:`~asyncflow.testing.FakeClock` that a driver moves whenever every task is blocked, so
retry delays and timeouts cost no real time. Then the invariants are checked:

- **no hang**: the run ends within ``bound`` real seconds;
- **no loss**: every subscription delivered or counted (``dropped``) every event it matched,
  and got them in ``seq`` order;
- **agreement**: every transition a handler saw was published as it saw it;
- **no leak**: no task is left behind on the loop, no thread slot stays borrowed, and no thread
  outlives the example.

``tests/test_reliability.py`` draws examples with hypothesis (shrinking a failure to a small
one); ``python -m benchmarks.soak`` draws thousands from a seeded ``random.Random``.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from itertools import pairwise
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

import anyio
import anyio.lowlevel
import attrs

from asyncflow import EventBus, Flow, StateChange, Task, context, signals, task
from asyncflow.executors import LocalExecutor
from asyncflow.states import Failed, State
from asyncflow.testing import FakeClock

if TYPE_CHECKING:
    from collections.abc import Sequence

    from asyncflow import FlowRun, Subscription

__all__ = ("Draw", "Outcome", "RandomDraw", "Scenario", "draw_scenario", "run_scenario")

T = TypeVar("T")

TASK_FAULTS = ("ok", "sync", "raise", "signal", "retry", "loop", "timeout", "hung_sync")
SIGNALS = ("FAIL", "SKIP", "SUCCESS", "ENDRUN")
HANDLER_KINDS = ("quiet", "raise", "signal", "slow", "stuck")
SUBSCRIBER_KINDS = ("sync", "async", "raise", "signal", "slow", "stuck")
CANCELS = ("none", "run.cancel", "caller")
#: The flow's own deadline, in fake seconds: whatever is stuck ends there at the latest.
FLOW_DEADLINE = 10_000.0
MAX_THREADS = 3


class Draw(Protocol):
    """Where a scenario's choices come from (hypothesis, or a seeded random generator)."""

    def integer(self, lo: int, hi: int) -> int: ...

    def choice(self, options: Sequence[T]) -> T: ...


class RandomDraw:
    """Choices from a ``random.Random``."""

    def __init__(self, rng: Any) -> None:
        self.rng = rng

    def integer(self, lo: int, hi: int) -> int:
        return int(self.rng.randint(lo, hi))

    def choice(self, options: Sequence[T]) -> T:
        return options[self.rng.randrange(len(options))]


@attrs.frozen
class TaskPlan:
    fault: str
    size: int  # checkpoints, loop iterations, failures before success, ...
    upstream: tuple[int, ...]
    handler: str
    handler_on: str  # the new state's class name that makes the handler misbehave


@attrs.frozen
class SubscriberPlan:
    kind: str
    buffer: int
    overflow: str
    every_other: bool  # a filter: only events with an even seq


@attrs.frozen
class Scenario:
    """One example, as plain data (its repr is the reproduction)."""

    tasks: tuple[TaskPlan, ...]
    flow_handler: str
    subscribers: tuple[SubscriberPlan, ...]
    cancel: str
    cancel_after: int  # event-loop checkpoints before the cancellation


def draw_scenario(draw: Draw, max_tasks: int = 8) -> Scenario:
    """A random scenario of up to ``max_tasks`` tasks."""
    n = draw.integer(1, max_tasks)
    tasks = []
    for i in range(n):
        k = draw.integer(0, min(i, 2))
        upstream = tuple(sorted({draw.integer(0, i - 1) for _ in range(k)})) if i else ()
        tasks.append(
            TaskPlan(
                fault=draw.choice(TASK_FAULTS),
                size=draw.integer(0, 3),
                upstream=upstream,
                handler=draw.choice(HANDLER_KINDS),
                handler_on=draw.choice(("Running", "Success", "Failed", "Retrying", "Looped")),
            )
        )
    subscribers = tuple(
        SubscriberPlan(
            kind=draw.choice(SUBSCRIBER_KINDS),
            buffer=draw.choice((1, 2, 1024)),
            overflow=draw.choice(("block", "drop_oldest")),
            every_other=draw.choice((False, True)),
        )
        for _ in range(draw.integer(0, 3))
    )
    return Scenario(
        tasks=tuple(tasks),
        flow_handler=draw.choice(("quiet", "raise", "signal", "slow")),
        subscribers=subscribers,
        cancel=draw.choice(CANCELS),
        cancel_after=draw.integer(0, 60),
    )


@attrs.define
class Outcome:
    """What one example showed: ``hung``, ``lost`` and ``leaked`` are the headline counts."""

    hung: bool = False
    lost: int = 0  # events neither delivered nor counted, over all subscriptions
    leaked: list[str] = attrs.Factory(list)  # tasks, thread slots or threads left behind
    violations: list[str] = attrs.Factory(list)  # order, agreement, unfinished states
    events: int = 0
    final: str = ""

    @property
    def ok(self) -> bool:
        return not (self.hung or self.lost or self.leaked or self.violations)


# -- building the flow ------------------------------------------------------------------------


class Seen:
    """What the handlers saw: ``(subject, old, new, raised)`` per call."""

    def __init__(self) -> None:
        self.calls: list[tuple[Any, State, State, bool]] = []


def make_handler(kind: str, on: str, seen: Seen) -> Any:
    async def handler(obj: Any, old: State, new: State) -> None:
        misbehave = type(new).__name__ == on or (on == "Success" and new.is_successful())
        entry = [obj, old, new, False]
        seen.calls.append(entry)  # type: ignore[arg-type]
        if kind == "slow":
            for _ in range(3):
                await anyio.lowlevel.checkpoint()
        elif misbehave and kind == "raise":
            entry[3] = True
            raise RuntimeError("handler broke")
        elif misbehave and kind == "signal":
            entry[3] = True
            raise signals.FAIL("handler refused")
        elif misbehave and kind == "stuck" and not new.is_finished():
            await anyio.sleep_forever()

    handler.__qualname__ = f"{kind}_handler"
    return handler


def make_task(i: int, plan: TaskPlan, release: threading.Event, seen: Seen) -> Task:
    name = f"t{i}_{plan.fault}"
    handlers = (
        [] if plan.handler == "quiet" else [make_handler(plan.handler, plan.handler_on, seen)]
    )
    kwargs: dict[str, Any] = {"name": name, "state_handlers": handlers}
    fault, size = plan.fault, plan.size
    if fault == "retry":
        kwargs.update(max_retries=size + 1, retry_delay=10.0 * size)
    if fault in ("timeout", "hung_sync"):
        kwargs.update(timeout=5.0)

    if fault in ("sync", "hung_sync"):

        def sync_fn(**upstream: Any) -> int:
            if fault == "hung_sync":
                release.wait(30)  # hangs until the example ends (its timeout abandons it)
            return size

        return task(sync_fn, **kwargs)

    async def async_fn(**upstream: Any) -> int:
        for _ in range(size):
            await anyio.lowlevel.checkpoint()
        if fault == "raise":
            raise ValueError("task broke")
        if fault == "signal":
            kind = SIGNALS[size % len(SIGNALS)]
            if kind == "ENDRUN":
                raise signals.ENDRUN(Failed("ended"))
            raise getattr(signals, kind)("signalled")
        if fault == "retry" and context.get("task_run_count", 1) <= size:
            raise ValueError("not yet")
        if fault == "loop" and context.get("task_loop_count", 1) <= size:
            raise signals.LOOP(result=size)
        if fault == "timeout":
            await anyio.sleep_forever()
        return size

    return task(async_fn, **kwargs)


def build_flow(scenario: Scenario, release: threading.Event, seen: Seen) -> Flow:
    with Flow("chaos") as flow:
        made: list[Task] = []
        for i, plan in enumerate(scenario.tasks):
            t = make_task(i, plan, release, seen)
            upstream = {f"u{j}": made[j] for j in plan.upstream}
            made.append(t(**upstream))
    if scenario.flow_handler != "quiet":
        flow.state_handlers.append(make_handler(scenario.flow_handler, "Success", seen))
    return flow


# -- observers ------------------------------------------------------------------------------


def make_subscriber(plan: SubscriberPlan, got: list[int]) -> Any:
    kind = plan.kind
    if kind in ("sync", "raise", "signal"):

        def sync_subscriber(event: StateChange) -> None:
            got.append(event.seq)
            if kind == "raise" and event.seq % 3 == 0:
                raise RuntimeError("subscriber broke")
            if kind == "signal" and event.seq % 3 == 1:
                raise signals.SKIP("subscriber signalled")

        return sync_subscriber

    async def async_subscriber(event: StateChange) -> None:
        got.append(event.seq)
        if kind == "slow":
            for _ in range(5):
                await anyio.lowlevel.checkpoint()
        elif kind == "stuck" and event.seq >= 3:
            await anyio.sleep_forever()

    return async_subscriber


def even(event: StateChange) -> bool:
    return event.seq % 2 == 0


async def drive_clock(clock: FakeClock) -> None:
    """Move the fake clock to its next deadline whenever every other task is blocked."""
    while True:
        await anyio.wait_all_tasks_blocked()
        deadline = clock.next_deadline()
        if deadline is None:
            await anyio.sleep(0.001)  # blocked on something real (a thread, a real timer)
        else:
            clock.jump_to(deadline)


# -- one example ----------------------------------------------------------------------------


async def run_scenario(scenario: Scenario, bound: float = 10.0) -> Outcome:
    """Run one example and check every invariant (on the current event loop)."""
    outcome = Outcome()
    release = threading.Event()
    seen = Seen()
    flow = build_flow(scenario, release, seen)
    bus = EventBus(drain_timeout=0.05)
    got: list[list[int]] = []
    subs: list[Subscription] = []
    for plan in scenario.subscribers:
        seqs: list[int] = []
        got.append(seqs)
        subs.append(
            bus.subscribe(
                make_subscriber(plan, seqs),
                buffer=plan.buffer,
                overflow=plan.overflow,  # type: ignore[arg-type]
                filter=even if plan.every_other else None,
            )
        )
    clock = FakeClock()
    executor = LocalExecutor(max_threads=MAX_THREADS)
    tasks_before = len(_all_tasks())
    threads_before = threading.active_count()
    run: FlowRun | None = None
    started = time.monotonic()
    try:
        with anyio.move_on_after(bound) as limit:
            async with anyio.create_task_group() as tg:
                tg.start_soon(drive_clock, clock)
                with anyio.CancelScope() as caller:
                    async with flow.start(
                        bus=bus, clock=clock, executor=executor, timeout=FLOW_DEADLINE
                    ) as run:
                        if scenario.cancel != "none":
                            for _ in range(scenario.cancel_after):
                                await anyio.lowlevel.checkpoint()
                            if scenario.cancel == "run.cancel":
                                run.cancel()
                            else:
                                caller.cancel()
                tg.cancel_scope.cancel()
        outcome.hung = limit.cancelled_caught or time.monotonic() - started > bound
    except BaseException as exc:  # a run may raise only its own cancellation: this is poison
        if isinstance(exc, anyio.get_cancelled_exc_class() | KeyboardInterrupt | SystemExit):
            raise
        outcome.violations.append(f"the run raised {exc!r}")
        return outcome
    finally:
        release.set()
    if run is None or outcome.hung:
        outcome.hung = True
        return outcome
    history = [e async for e in run.events()]
    outcome.events = len(history)
    outcome.final = type(run.state).__name__
    check_states(run, history, outcome)
    check_delivery(scenario, history, subs, got, outcome)
    check_agreement(seen, history, outcome)
    await check_leaks(executor, tasks_before, threads_before, outcome)
    return outcome


def check_states(run: FlowRun, history: list[StateChange], outcome: Outcome) -> None:
    if not run.state.is_finished():
        outcome.violations.append(f"the flow ended {run.state!r}")
    for t, state in run.task_states.items():
        if not state.is_finished() and not state.is_pending():
            outcome.violations.append(f"{t.name} ended {state!r}")
    if [e.seq for e in history] != list(range(1, len(history) + 1)):
        outcome.violations.append("the run's seqs are not 1..n")
    finals = [e for e in history if e.is_flow_event and e.new_state.is_finished()]
    if len(finals) != 1 or history[-1] is not finals[0]:
        outcome.violations.append("the flow's final transition is not the last event, once")


def check_delivery(
    scenario: Scenario,
    history: list[StateChange],
    subs: list[Subscription],
    got: list[list[int]],
    outcome: Outcome,
) -> None:
    for plan, sub, seqs in zip(scenario.subscribers, subs, got, strict=True):
        matched = sum(1 for e in history if not plan.every_other or even(e))
        missing = matched - sub.delivered - sub.dropped
        if missing:
            outcome.lost += abs(missing)
            outcome.violations.append(
                f"{plan}: matched {matched}, delivered {sub.delivered}, dropped {sub.dropped}"
            )
        if any(a >= b for a, b in pairwise(seqs)):
            outcome.violations.append(f"{plan}: out of order {seqs}")


def check_agreement(seen: Seen, history: list[StateChange], outcome: Outcome) -> None:
    """Handlers and events agree: per subject, the n-th handler call is about the n-th
    published transition (each subject has at most one handler), from the same old state and,
    unless the handler raised, to the very state it saw."""
    calls: dict[int, list[tuple[Any, State, State, bool]]] = {}
    for call in seen.calls:
        calls.setdefault(id(call[0]), []).append(call)
    events: dict[int, list[StateChange]] = {}
    for event in history:
        events.setdefault(id(event.subject), []).append(event)
    for key, subject_calls in calls.items():
        published = events.get(key, [])
        if len(subject_calls) != len(published):
            outcome.violations.append(
                f"{subject_calls[0][0]!r}: handlers saw {len(subject_calls)} transitions, "
                f"{len(published)} were published"
            )
            continue
        for (_, old, new, raised), event in zip(subject_calls, published, strict=True):
            if event.old_state is not old or not (raised or event.new_state is new):
                outcome.violations.append(
                    f"a handler saw {old!r} -> {new!r}; published "
                    f"{event.old_state!r} -> {event.new_state!r}"
                )


async def check_leaks(
    executor: LocalExecutor, tasks_before: int, threads_before: int, outcome: Outcome
) -> None:
    with anyio.move_on_after(2):
        while len(_all_tasks()) > tasks_before or executor.limiter.borrowed_tokens:  # noqa: ASYNC110
            await anyio.sleep(0.001)
    extra = len(_all_tasks()) - tasks_before
    if extra > 0:
        outcome.leaked.append(f"{extra} task(s) left on the loop")
    if executor.limiter.borrowed_tokens:
        outcome.leaked.append(f"{executor.limiter.borrowed_tokens} thread slot(s) still borrowed")
    # Idle worker threads stay pooled for reuse, but never more than the executor's limit.
    threads = threading.active_count()
    if threads > threads_before + MAX_THREADS:
        outcome.leaked.append(f"{threads - threads_before} more thread(s) alive than before")


def _all_tasks() -> set[Any]:
    import asyncio

    return {t for t in asyncio.all_tasks() if not t.done()}


def summary(outcomes: Sequence[Outcome]) -> Counter[str]:
    """Counts over many examples: tried, hung, lost (events), leaked, violations, finals."""
    counts: Counter[str] = Counter(tried=len(outcomes))
    for o in outcomes:
        counts["hung"] += o.hung
        counts["lost"] += o.lost
        counts["leaked"] += bool(o.leaked)
        counts["violations"] += bool(o.violations)
        counts["events"] += o.events
        counts[f"final {o.final or 'none'}"] += 1
    return counts
