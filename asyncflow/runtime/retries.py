"""Retry delays: turning ``retry_delay`` into seconds, and ready-made backoff curves.

A ``retry_delay`` is a timedelta, a number of seconds, a list (one per attempt, the last one
repeating) or a callable ``attempt -> seconds``. :func:`exponential_backoff` and :func:`jitter`
build such callables. The wait itself is a timer on the run's clock, never a sleeping thread.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import timedelta
from typing import Any

__all__ = ("DelayFn", "delay_function", "exponential_backoff", "jitter")

DelayFn = Callable[[int], float]


def _seconds(value: Any) -> float:
    return value.total_seconds() if isinstance(value, timedelta) else float(value)


def _no_delay(attempt: int) -> float:
    return 0.0


def delay_function(retry_delay: Any) -> DelayFn:
    """Normalise a task's ``retry_delay`` into ``attempt -> seconds`` (attempt counts from 1)."""
    if retry_delay is None:
        return _no_delay
    if isinstance(retry_delay, list):
        delays = [_seconds(v) for v in retry_delay]
        return lambda attempt: delays[min(attempt, len(delays)) - 1]
    if callable(retry_delay):
        fn = retry_delay

        def call(attempt: int) -> float:
            seconds = _seconds(fn(attempt))
            if seconds < 0:
                raise ValueError(f"retry_delay({attempt}) returned a negative delay: {seconds}")
            return seconds

        return call
    seconds = _seconds(retry_delay)
    return lambda attempt: seconds


def exponential_backoff(base: float, factor: float = 2.0, max: float | None = None) -> DelayFn:
    """``attempt -> base * factor ** (attempt - 1)``, capped at ``max`` seconds.

    Args:
        base: the first delay in seconds.
        factor: how much each delay grows over the previous one.
        max: the largest delay, if any.
    """
    if base < 0 or factor < 1:
        raise ValueError(
            f"exponential_backoff needs base >= 0 and factor >= 1, got {base}, {factor}"
        )
    cap = float("inf") if max is None else max

    def backoff(attempt: int) -> float:
        try:
            return float(min(base * factor ** (attempt - 1), cap))
        except OverflowError:  # factor ** attempt outgrew a float: the cap (if any) holds
            return cap

    return backoff


def jitter(
    backoff: DelayFn | float, ratio: float = 0.1, rng: random.Random | None = None
) -> DelayFn:
    """Spread ``backoff``'s delays by up to ``±ratio`` so that retries do not arrive in step.

    Args:
        backoff: a delay function (or a fixed number of seconds).
        ratio: the largest relative change, between 0 and 1.
        rng: the random source (seed it in tests).
    """
    if not 0 <= ratio <= 1:
        raise ValueError(f"jitter ratio must be within [0, 1], got {ratio}")
    draw = (rng or random.Random()).uniform
    base = backoff if callable(backoff) else (lambda attempt: float(backoff))

    def jittered(attempt: int) -> float:
        delay = base(attempt)
        return max(0.0, delay * (1 + draw(-ratio, ratio)))

    return jittered
