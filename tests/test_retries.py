"""Specification of asyncflow.runtime.retries: retry delays, backoff and jitter."""

from __future__ import annotations

import random
import re
from datetime import timedelta
from typing import Any

import pytest

import asyncflow
from asyncflow.runtime.retries import delay_function, exponential_backoff, jitter


def delays(fn: Any, attempts: int) -> list[float]:
    return [fn(n) for n in range(1, attempts + 1)]


class TestDelayFunction:
    @pytest.mark.parametrize(
        ("retry_delay", "expected"),
        [
            (None, [0.0, 0.0, 0.0]),
            (0, [0.0, 0.0, 0.0]),
            (5, [5.0, 5.0, 5.0]),
            (2.5, [2.5, 2.5, 2.5]),
            (timedelta(minutes=10), [600.0, 600.0, 600.0]),
            (timedelta(milliseconds=250), [0.25, 0.25, 0.25]),
        ],
        ids=repr,
    )
    def test_a_fixed_delay_is_the_same_for_every_attempt(
        self, retry_delay: Any, expected: list[float]
    ) -> None:
        assert delays(delay_function(retry_delay), 3) == expected

    @pytest.mark.parametrize(
        ("retry_delay", "expected"),
        [
            ([1, timedelta(seconds=5), 30], [1.0, 5.0, 30.0, 30.0, 30.0]),
            ([7], [7.0, 7.0, 7.0, 7.0, 7.0]),
            ([0, 0.5], [0.0, 0.5, 0.5, 0.5, 0.5]),
        ],
        ids=repr,
    )
    def test_a_list_gives_one_delay_per_attempt_and_the_last_repeats(
        self, retry_delay: list[Any], expected: list[float]
    ) -> None:
        assert delays(delay_function(retry_delay), 5) == expected

    def test_a_callable_is_called_with_the_attempt_number(self) -> None:
        seen: list[int] = []

        def backoff(attempt: int) -> float:
            seen.append(attempt)
            return attempt * 10

        assert delays(delay_function(backoff), 3) == [10.0, 20.0, 30.0]
        assert seen == [1, 2, 3]

    def test_a_callable_may_return_a_timedelta(self) -> None:
        fn = delay_function(lambda attempt: timedelta(seconds=attempt))
        assert delays(fn, 2) == [1.0, 2.0]

    def test_a_negative_delay_from_a_callable_is_refused(self) -> None:
        fn = delay_function(lambda attempt: 5 - 3 * attempt)
        assert fn(1) == 2.0
        with pytest.raises(
            ValueError, match=re.escape("retry_delay(2) returned a negative delay: -1.0")
        ):
            fn(2)

    @pytest.mark.parametrize(
        "retry_delay", [None, 3, timedelta(seconds=3), [1, 2], lambda n: n], ids=repr
    )
    def test_delays_are_floats(self, retry_delay: Any) -> None:
        assert all(type(d) is float for d in delays(delay_function(retry_delay), 3))


class TestExponentialBackoff:
    @pytest.mark.parametrize(
        ("args", "expected"),
        [
            ({"base": 1}, [1.0, 2.0, 4.0, 8.0, 16.0]),
            ({"base": 0.5}, [0.5, 1.0, 2.0, 4.0, 8.0]),
            ({"base": 2, "factor": 3}, [2.0, 6.0, 18.0, 54.0, 162.0]),
            ({"base": 3, "factor": 1}, [3.0, 3.0, 3.0, 3.0, 3.0]),
            ({"base": 0}, [0.0, 0.0, 0.0, 0.0, 0.0]),
            ({"base": 1, "max": 5}, [1.0, 2.0, 4.0, 5.0, 5.0]),
            ({"base": 10, "factor": 2, "max": 10}, [10.0, 10.0, 10.0, 10.0, 10.0]),
        ],
        ids=repr,
    )
    def test_each_delay_grows_by_the_factor_up_to_the_cap(
        self, args: dict[str, float], expected: list[float]
    ) -> None:
        assert delays(exponential_backoff(**args), 5) == expected

    def test_delays_are_floats(self) -> None:
        assert all(type(d) is float for d in delays(exponential_backoff(1, factor=2, max=3), 4))

    def test_the_cap_holds_for_any_number_of_attempts(self) -> None:
        backoff = exponential_backoff(1, max=60)
        assert backoff(2000) == 60.0

    @pytest.mark.parametrize(
        ("args", "message"),
        [
            (
                {"base": -1},
                "exponential_backoff needs base >= 0 and factor >= 1, got -1, 2.0",
            ),
            (
                {"base": 1, "factor": 0.5},
                "exponential_backoff needs base >= 0 and factor >= 1, got 1, 0.5",
            ),
        ],
        ids=repr,
    )
    def test_bad_arguments_are_refused(self, args: dict[str, float], message: str) -> None:
        with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
            exponential_backoff(**args)

    def test_a_backoff_is_a_valid_retry_delay(self) -> None:
        assert delays(delay_function(exponential_backoff(1)), 3) == [1.0, 2.0, 4.0]

    def test_it_is_exported_from_the_package(self) -> None:
        assert asyncflow.exponential_backoff is exponential_backoff


class TestJitter:
    @pytest.mark.parametrize("ratio", [0.1, 0.25, 0.5, 1.0])
    def test_delays_stay_within_the_ratio_of_the_backoff(self, ratio: float) -> None:
        backoff = exponential_backoff(1, max=100)
        jittered = jitter(backoff, ratio=ratio, rng=random.Random(1234))
        for attempt in range(1, 201):
            base = backoff(attempt)
            assert base * (1 - ratio) <= jittered(attempt) <= base * (1 + ratio)

    def test_delays_are_actually_spread(self) -> None:
        jittered = jitter(10.0, ratio=0.5, rng=random.Random(7))
        values = {jittered(1) for _ in range(50)}
        assert len(values) == 50
        assert min(values) < 10.0 < max(values)

    def test_the_same_seed_gives_the_same_delays(self) -> None:
        first = jitter(exponential_backoff(2), ratio=0.3, rng=random.Random(42))
        second = jitter(exponential_backoff(2), ratio=0.3, rng=random.Random(42))
        assert delays(first, 10) == delays(second, 10)

    def test_a_number_is_jittered_around_itself(self) -> None:
        jittered = jitter(10, ratio=0.5, rng=random.Random(3))
        for attempt in range(1, 101):
            assert 5.0 <= jittered(attempt) <= 15.0

    def test_a_zero_ratio_changes_nothing(self) -> None:
        jittered = jitter(exponential_backoff(3), ratio=0.0, rng=random.Random(0))
        assert delays(jittered, 4) == [3.0, 6.0, 12.0, 24.0]

    def test_a_full_ratio_never_goes_negative(self) -> None:
        jittered = jitter(4.0, ratio=1.0, rng=random.Random(99))
        assert all(0.0 <= jittered(n) <= 8.0 for n in range(1, 201))

    def test_the_default_ratio_is_ten_percent(self) -> None:
        jittered = jitter(100.0, rng=random.Random(5))
        assert all(90.0 <= jittered(n) <= 110.0 for n in range(1, 201))

    def test_a_jittered_backoff_works_without_a_given_random_source(self) -> None:
        jittered = jitter(exponential_backoff(1), ratio=0.2)
        assert 0.8 <= jittered(1) <= 1.2

    @pytest.mark.parametrize("ratio", [-0.1, 1.5, 2])
    def test_a_ratio_outside_zero_to_one_is_refused(self, ratio: float) -> None:
        message = f"jitter ratio must be within [0, 1], got {ratio}"
        with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
            jitter(1.0, ratio=ratio)

    def test_a_jittered_backoff_is_a_valid_retry_delay(self) -> None:
        fn = delay_function(jitter(exponential_backoff(1), ratio=0.5, rng=random.Random(0)))
        assert all(0.5 * 2 ** (n - 1) <= fn(n) <= 1.5 * 2 ** (n - 1) for n in range(1, 6))

    def test_it_is_exported_from_the_package(self) -> None:
        assert asyncflow.jitter is jitter
