"""Caching: reuse a task's result across runs instead of computing it again.

``exchange_rate`` is expensive; with ``cache_for=timedelta(hours=1)`` and the ``all_inputs``
validator its result is kept, and a later run with the same inputs ends the task ``Cached``
without calling it. Another input, or the hour passing, computes it again. Two *different* tasks
that name the same ``cache_key`` share results. The runs use their own ``MemoryCacheStore`` and a
``FakeClock`` (so "an hour later" takes no time); without ``cache=`` runs share the process-wide
store.

Expected output contains:
    run 1 (EUR, cold cache): computed, 1 call(s) so far, state Cached("Task run succeeded.")
    run 2 (EUR again): from the cache, 1 call(s) so far, state Cached("Task run succeeded.")
    run 3 (GBP): computed, 2 call(s) so far, state Cached("Task run succeeded.")
    run 4 (EUR, 2 hours later): computed, 3 call(s) so far, state Cached("Task run succeeded.")
    shared cache_key: quote_again returned 0.92 without being called
"""

from __future__ import annotations

from datetime import timedelta

import anyio

from asyncflow import Flow, Parameter, task
from asyncflow.caching import MemoryCacheStore, all_inputs
from asyncflow.testing import FakeClock

CALLS: list[str] = []
RATES = {"EUR": 0.92, "GBP": 0.79}


@task(cache_for=timedelta(hours=1), cache_validator=all_inputs)
async def exchange_rate(currency: str) -> float:
    CALLS.append(currency)
    await anyio.sleep(0.01)  # stands for a slow, rate-limited API
    return RATES[currency]


@task
def convert(amount: float, rate: float) -> float:
    return round(amount * rate, 2)


with Flow("invoice") as flow:
    currency = Parameter("currency")
    rate = exchange_rate(currency)
    total = convert(100.0, rate)


@task(cache_for=timedelta(hours=1), cache_key="eur-quote")
def quote() -> float:
    return 0.92


@task(cache_for=timedelta(hours=1), cache_key="eur-quote")
def quote_again() -> float:
    raise RuntimeError("never called: the shared cache_key already holds a result")


with Flow("quotes") as quotes:
    first = quote()
    second = quote_again(upstream_tasks=[first])


async def main() -> None:
    store, clock = MemoryCacheStore(), FakeClock()

    async def invoice(label: str, currency: str) -> None:
        calls_before = len(CALLS)
        state = await flow.run_async(parameters={"currency": currency}, cache=store, clock=clock)
        how = "computed" if len(CALLS) > calls_before else "from the cache"
        print(
            f"run {label}: {how}, {len(CALLS)} call(s) so far, "
            f"state {state.result[rate]!r} -> total {state.result[total].result}"
        )

    await invoice("1 (EUR, cold cache)", "EUR")
    await invoice("2 (EUR again)", "EUR")
    await invoice("3 (GBP)", "GBP")
    clock.advance(2 * 3600)
    await invoice("4 (EUR, 2 hours later)", "EUR")

    state = await quotes.run_async(cache=store, clock=clock)
    print(
        f"shared cache_key: quote_again returned {state.result[second].result} "
        f"without being called ({state.result[second]!r})"
    )


if __name__ == "__main__":
    anyio.run(main)
