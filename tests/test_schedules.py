"""Schedules, clocks, filters and adjustments: Prefect 1.x's behaviour, daylight saving included.

Times are pendulum DateTimes. The daylight-saving cases are the ones Prefect 1.x pins down: an
interval of whole days keeps the local hour, a shorter one is exact elapsed time; cron follows
the wall clock (and reads a repeated hour as its standard-time occurrence).
"""

from __future__ import annotations

import itertools
import operator
import subprocess
import sys
from datetime import UTC, datetime, time, timedelta
from typing import TYPE_CHECKING, Any

import pendulum
import pytest
from hypothesis import given
from hypothesis import strategies as st

from asyncflow.schedules import CronSchedule, IntervalSchedule, Schedule, adjustments, filters
from asyncflow.schedules.clocks import Clock, ClockEvent, CronClock, DatesClock, IntervalClock

if TYPE_CHECKING:
    from collections.abc import Iterable

NY = "America/New_York"
DT = pendulum.datetime(2019, 1, 1)


def first(events: Iterable[ClockEvent], n: int) -> list[ClockEvent]:
    return list(itertools.islice(events, n))


def hours(events: list[ClockEvent], tz: str) -> list[int]:
    return [e.start_time.in_tz(tz).hour for e in events]


class TestTheExtra:
    @pytest.mark.parametrize(
        ("blocked", "statement", "feature"),
        [
            ("pendulum", "import asyncflow.schedules", "asyncflow.schedules"),
            (
                "croniter",
                "from asyncflow.schedules.clocks import CronClock; CronClock('* * * * *')",
                "CronClock",
            ),
        ],
    )
    def test_a_missing_library_names_the_schedules_extra(
        self, blocked: str, statement: str, feature: str
    ) -> None:
        code = (
            f"import sys; sys.modules[{blocked!r}] = None\n"
            f"try:\n    {statement}\nexcept ImportError as exc:\n    print(type(exc).__name__, exc)"
        )
        done = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True
        )
        assert done.stdout.strip() == (
            f"MissingDependencyError {feature} needs {blocked!r}, which is not installed: "
            "pip install 'asyncflow[schedules]'"
        )


class TestClockEvent:
    def test_carries_a_time_parameter_defaults_and_labels(self) -> None:
        e = ClockEvent(DT, parameter_defaults={"x": 1}, labels=["a"])
        assert (e.start_time, e.parameter_defaults, e.labels) == (DT, {"x": 1}, ["a"])
        assert ClockEvent(DT).parameter_defaults == {}

    def test_compares_with_datetimes_by_time(self) -> None:
        e = ClockEvent(DT)
        assert e == DT
        assert e < DT.add(days=1)
        assert e > DT.subtract(days=1)
        assert e != "2019-01-01"

    @pytest.mark.parametrize(
        "other",
        [ClockEvent(DT, parameter_defaults={"x": 2}), ClockEvent(DT, labels=["b"])],
    )
    def test_events_differ_by_parameters_and_labels(self, other: ClockEvent) -> None:
        assert ClockEvent(DT, parameter_defaults={"x": 1}, labels=["a"]) != other

    def test_events_hash_by_time_and_show_their_parts(self) -> None:
        e = ClockEvent(DT, parameter_defaults={"x": 1}, labels=["a"])
        assert hash(e) == hash(DT)
        assert repr(e) == "<ClockEvent 2019-01-01 00:00:00+00:00, ['a'], {'x': 1}>"

    @pytest.mark.parametrize("op", ["<", ">"])
    def test_ordering_against_other_types_is_a_type_error(self, op: str) -> None:
        compare = operator.lt if op == "<" else operator.gt
        with pytest.raises(TypeError, match=f"'{op}' not supported"):
            compare(ClockEvent(DT), 1)


class TestClock:
    def test_the_base_clock_has_no_events(self) -> None:
        with pytest.raises(NotImplementedError):
            Clock().events()

    def test_dates_become_pendulum_datetimes(self) -> None:
        c = Clock(start_date=datetime(2020, 1, 1, tzinfo=UTC))
        assert isinstance(c.start_date, pendulum.DateTime)

    def test_a_start_date_that_is_not_a_datetime_is_refused(self) -> None:
        with pytest.raises(TypeError, match="start_date must be a datetime"):
            Clock(start_date="2020-01-01")  # type: ignore[arg-type]


class TestIntervalClock:
    def test_fires_every_interval_after_the_given_time(self) -> None:
        c = IntervalClock(timedelta(days=1), parameter_defaults={"x": 1}, labels=["l"])
        events = first(c.events(after=DT), 3)
        assert events == [DT.add(days=1), DT.add(days=2), DT.add(days=3)]
        assert all(e.parameter_defaults == {"x": 1} and e.labels == ["l"] for e in events)

    def test_without_a_start_date_it_counts_from_2019(self) -> None:
        c = IntervalClock(timedelta(hours=7))
        assert first(c.events(after=DT.subtract(years=1)), 1) == [DT]

    def test_an_after_in_the_middle_of_an_interval_goes_to_the_next(self) -> None:
        c = IntervalClock(timedelta(hours=1), start_date=DT)
        assert first(c.events(after=DT.add(minutes=30)), 1) == [DT.add(hours=1)]

    def test_nothing_before_the_start_date_nor_after_the_end_date(self) -> None:
        start = pendulum.datetime(2030, 1, 1)
        c = IntervalClock(timedelta(days=1), start_date=start, end_date=start.add(days=2))
        assert first(c.events(after=DT), 5) == [start, start.add(days=1), start.add(days=2)]

    def test_microseconds_count(self) -> None:
        start = pendulum.datetime(2030, 1, 1, 0, 0, 0, 1)
        c = IntervalClock(timedelta(days=1), start_date=start)
        assert first(c.events(after=start), 1) == [start.add(days=1)]

    @pytest.mark.parametrize(
        ("interval", "error"),
        [(timedelta(0), ValueError), (timedelta(seconds=-1), ValueError), (60, TypeError)],
    )
    def test_the_interval_must_be_a_positive_timedelta(self, interval: Any, error: type) -> None:
        with pytest.raises(error, match="interval"):
            IntervalClock(interval)

    def test_a_long_time_after_a_dst_start_date_the_next_events_are_still_in_the_future(
        self,
    ) -> None:
        start = pendulum.from_timestamp(1582002945.964696).in_tz("US/Pacific")
        now = pendulum.from_timestamp(1593643144.233938)
        c = IntervalClock(timedelta(minutes=1, seconds=15), start_date=start)
        assert all(e > now for e in first(c.events(after=now), 4))

    @given(
        seconds=st.integers(min_value=1, max_value=3 * 86400),
        offset=st.integers(min_value=-(10**8), max_value=10**8),
    )
    def test_events_are_increasing_spaced_by_the_interval_and_after_after(
        self, seconds: int, offset: int
    ) -> None:
        c = IntervalClock(timedelta(seconds=seconds), start_date=DT)
        after = DT.add(seconds=offset)
        events = [e.start_time for e in first(c.events(after=after), 5)]
        assert events[0] > after
        assert events[0] - timedelta(seconds=seconds) <= max(after, DT - timedelta(seconds=1))
        assert all((b - a).total_seconds() == seconds for a, b in itertools.pairwise(events))


class TestIntervalClockDaylightSavingTime:
    @pytest.mark.parametrize("start_tz", [NY, "UTC"])
    def test_hourly_across_spring_forward_runs_every_utc_hour(self, start_tz: str) -> None:
        dt = pendulum.datetime(2018, 3, 10, 23, tz=NY)  # 2am is skipped on 3/11
        events = first(IntervalClock(timedelta(hours=1), dt.in_tz(start_tz)).events(after=dt), 4)
        assert hours(events, NY) == [0, 1, 3, 4]
        assert hours(events, "UTC") == [5, 6, 7, 8]

    def test_hourly_across_fall_back_repeats_1am_local(self) -> None:
        dt = pendulum.datetime(2018, 11, 3, 23, tz=NY)  # 1am happens twice on 11/4
        events = first(IntervalClock(timedelta(hours=1), dt).events(after=dt), 4)
        assert hours(events, NY) == [0, 1, 1, 2]
        assert hours(events, "UTC") == [4, 5, 6, 7]

    @pytest.mark.parametrize(
        ("start", "utc_hours"),
        [((2018, 3, 8), [14, 14, 13, 13]), ((2018, 11, 1), [13, 13, 14, 14])],
    )
    def test_daily_keeps_the_local_hour(self, start: tuple[int, ...], utc_hours: list[int]) -> None:
        dt = pendulum.datetime(*start, 9, tz=NY)
        events = first(IntervalClock(timedelta(days=1), dt).events(after=dt), 4)
        assert hours(events, NY) == [9, 9, 9, 9]
        assert hours(events, "UTC") == utc_hours


class TestCronClock:
    def test_fires_on_the_expression(self) -> None:
        c = CronClock("0 0 * * *", parameter_defaults={"x": 1}, labels=["l"])
        events = first(c.events(after=DT), 2)
        assert events == [DT.add(days=1), DT.add(days=2)]
        assert all(e.parameter_defaults == {"x": 1} and e.labels == ["l"] for e in events)

    def test_the_start_date_itself_can_fire_and_the_end_date_stops(self) -> None:
        start = pendulum.datetime(2050, 1, 1)
        c = CronClock("0 0 * * *", start_date=start, end_date=start.add(days=1))
        assert first(c.events(), 3) == [start, start.add(days=1)]

    @pytest.mark.parametrize("after", [None, pendulum.datetime(2050, 1, 1, 7)])
    def test_a_start_date_off_the_expression_waits_for_the_next_match(self, after: Any) -> None:
        c = CronClock("0 0 * * *", start_date=pendulum.datetime(2050, 1, 1, 6))
        assert first(c.events(after=after), 1) == [pendulum.datetime(2050, 1, 2)]

    def test_microseconds_count(self) -> None:
        c = CronClock("0 0 * * *", start_date=pendulum.datetime(2050, 1, 1, 0, 0, 0, 1))
        assert first(c.events(), 1) == [pendulum.datetime(2050, 1, 2)]

    @pytest.mark.parametrize(
        ("day_or", "expected"),
        [
            (True, ["2018-06-01", "2018-06-02", "2018-06-03", "2018-06-04", "2018-06-11"]),
            (False, ["2018-06-04", "2018-07-02", "2018-09-03", "2018-10-01", "2018-12-03"]),
        ],
    )
    def test_day_or_combines_day_of_month_and_weekday(
        self, day_or: bool, expected: list[str]
    ) -> None:
        # Days 1-4 of the month, or (and) Mondays; June 2018 started on a Friday.
        c = CronClock("0 0 1-4 * 1", day_or=day_or)
        assert c.day_or is day_or
        after = pendulum.datetime(2018, 5, 31)
        assert [str(e.start_time.date()) for e in first(c.events(after=after), 5)] == expected

    def test_day_or_defaults_to_true(self) -> None:
        assert CronClock("* * * * *").day_or is True

    @pytest.mark.parametrize("cron", ["", "* * *", "61 * * * *", "nonsense"])
    def test_an_invalid_expression_is_refused(self, cron: str) -> None:
        with pytest.raises(ValueError, match="Invalid cron string"):
            CronClock(cron)

    def test_times_are_in_the_start_date_time_zone(self) -> None:
        c = CronClock("0 9 * * *", start_date=pendulum.datetime(2020, 1, 1, tz=NY))
        (event,) = first(c.events(after=pendulum.datetime(2020, 6, 1)), 1)
        assert event.start_time.timezone_name == NY
        assert event.start_time.hour == 9


class TestCronClockDaylightSavingTime:
    @pytest.mark.parametrize("start_tz", [NY, "UTC"])
    def test_hourly_across_spring_forward_skips_2am(self, start_tz: str) -> None:
        dt = pendulum.datetime(2018, 3, 10, 23, tz=NY)
        events = first(CronClock("0 * * * *", dt.in_tz(start_tz)).events(after=dt), 4)
        assert hours(events, NY) == [0, 1, 3, 4]
        assert hours(events, "UTC") == [5, 6, 7, 8]

    def test_hourly_across_fall_back_fires_each_local_hour_once(self) -> None:
        dt = pendulum.datetime(2018, 11, 3, 23, tz=NY)
        events = first(CronClock("0 * * * *", dt).events(after=dt), 4)
        assert hours(events, NY) == [0, 1, 2, 3]
        assert hours(events, "UTC") == [4, 6, 7, 8]  # the repeated 1am fires in standard time

    @pytest.mark.parametrize(
        ("start", "utc_hours"),
        [((2018, 3, 8), [14, 14, 13, 13]), ((2018, 11, 1), [13, 13, 14, 14])],
    )
    def test_daily_keeps_the_local_hour(self, start: tuple[int, ...], utc_hours: list[int]) -> None:
        dt = pendulum.datetime(*start, 9, tz=NY)
        events = first(CronClock("0 9 * * *", dt).events(after=dt), 4)
        assert hours(events, NY) == [9, 9, 9, 9]
        assert hours(events, "UTC") == utc_hours

    @pytest.mark.parametrize(
        ("after", "utc_hours"),
        [((2018, 3, 11), [6, 7, 8, 9]), ((2018, 11, 4), [5, 6, 7, 8])],
    )
    def test_a_utc_cron_ignores_local_changes(
        self, after: tuple[int, ...], utc_hours: list[int]
    ) -> None:
        events = first(CronClock("0 * * * *").events(after=pendulum.datetime(*after, tz=NY)), 4)
        assert hours(events, "UTC") == utc_hours

    def test_a_midnight_dst_change_does_not_stall(self) -> None:
        dt = pendulum.datetime(2022, 8, 21, 10, tz="America/Santiago")  # clocks change at 0am
        events = first(CronClock("0 0 * * 0", dt).events(after=dt), 4)
        assert [e.start_time.in_tz("America/Santiago").day for e in events] == [28, 4, 11, 18]


class TestDatesClock:
    def test_fires_on_its_dates_in_order_after_the_given_time(self) -> None:
        dates = [DT.add(days=3), DT.add(days=1), DT.add(days=2)]
        c = DatesClock(dates, parameter_defaults={"x": 1}, labels=["l"])
        assert (c.start_date, c.end_date) == (DT.add(days=1), DT.add(days=3))
        events = list(c.events(after=DT.add(days=1)))
        assert events == [DT.add(days=2), DT.add(days=3)]
        assert events[0].parameter_defaults == {"x": 1}

    def test_needs_a_date(self) -> None:
        with pytest.raises(ValueError, match="at least one date"):
            DatesClock([])


class TestSchedule:
    def test_needs_a_list_of_clocks(self) -> None:
        with pytest.raises(TypeError):
            Schedule()  # type: ignore[call-arg]
        with pytest.raises(TypeError, match="must be a list of clocks"):
            Schedule(clocks=IntervalClock(timedelta(days=1)))  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="is not a Clock"):
            Schedule(clocks=["daily"])  # type: ignore[list-item]
        with pytest.raises(TypeError, match="must be a list of clocks, got 5"):
            Schedule(clocks=5)  # type: ignore[arg-type]

    def test_repr_counts_the_clocks(self) -> None:
        assert repr(Schedule([IntervalClock(timedelta(days=1))])) == "<Schedule: 1 clock(s)>"

    def test_no_clocks_no_times(self) -> None:
        s = Schedule(clocks=[])
        assert (s.next(3), s.start_date, s.end_date) == ([], None, None)

    def test_next_returns_times_or_events(self) -> None:
        s = Schedule(clocks=[IntervalClock(timedelta(days=1))])
        times = s.next(3, after=DT)
        assert times == [DT.add(days=1), DT.add(days=2), DT.add(days=3)]
        assert all(isinstance(t, pendulum.DateTime) for t in times)
        events = s.next(3, after=DT, return_events=True)
        assert all(isinstance(e, ClockEvent) for e in events)
        assert events == times

    def test_clocks_merge_in_time_order(self) -> None:
        s = Schedule(
            clocks=[
                IntervalClock(timedelta(days=1), parameter_defaults={"x": 0}),
                IntervalClock(timedelta(hours=12), parameter_defaults={"x": 1}),
            ]
        )
        events = s.next(6, after=DT, return_events=True)
        assert [e.parameter_defaults["x"] for e in events] == [1, 0, 1, 1, 0, 1]
        assert [e.start_time for e in events] == [
            DT.add(hours=12),
            DT.add(days=1),
            DT.add(days=1),
            DT.add(days=1, hours=12),
            DT.add(days=2),
            DT.add(days=2),
        ]

    def test_equal_events_count_once_but_different_parameters_twice(self) -> None:
        day = pendulum.datetime(2020, 3, 1)
        assert len(Schedule([DatesClock([day]), DatesClock([day])]).next(2, after=DT)) == 1
        s = Schedule(
            [
                DatesClock([day], parameter_defaults={"a": 1}),
                DatesClock([day], parameter_defaults={"a": 2}),
            ]
        )
        events = s.next(2, after=DT, return_events=True)
        assert {e.parameter_defaults["a"] for e in events} == {1, 2}

    def test_clocks_in_different_time_zones_interleave(self) -> None:
        east = CronClock("0 9 * * 1-5", start_date=pendulum.parse("2019-03-14", tz="US/Eastern"))
        west = CronClock("30 6 * * 1-5", start_date=pendulum.parse("2019-03-14", tz="US/Pacific"))
        after = pendulum.datetime(2019, 5, 1)
        e, w = first(east.events(after=after), 3), first(west.events(after=after), 3)
        assert Schedule([east, west]).next(6, after) == [e[0], w[0], e[1], w[1], e[2], w[2]]

    @pytest.mark.parametrize(
        ("kwargs", "expected_days"),
        [
            ({"filters": [filters.is_weekday]}, [1, 2, 3, 4, 7, 8]),
            ({"filters": [filters.is_weekday, filters.is_weekend]}, []),
            ({"or_filters": [filters.on_date(1, 5), filters.on_date(1, 6)]}, [5, 6]),
            ({"not_filters": [filters.is_weekend, filters.on_date(1, 2)]}, [1, 3, 4, 7, 8]),
            (
                {
                    "filters": [filters.is_weekday],
                    "or_filters": [filters.on_date(1, 2), filters.on_date(1, 5)],
                },
                [2],
            ),
        ],
    )
    def test_filters_or_filters_and_not_filters(
        self, kwargs: Any, expected_days: list[int]
    ) -> None:
        # Daily in January 2019: the 1st was a Tuesday; the 5th and 6th a weekend.
        clock = IntervalClock(timedelta(days=1), end_date=pendulum.datetime(2019, 1, 8))
        s = Schedule([clock], **kwargs)
        times = s.next(10, after=DT.subtract(days=1))
        assert [t.day for t in times] == expected_days

    def test_adjustments_apply_in_order_to_kept_times(self) -> None:
        s = Schedule(
            [IntervalClock(timedelta(days=1))],
            filters=[filters.is_weekend],
            adjustments=[adjustments.next_weekday, adjustments.add(timedelta(hours=9))],
        )
        assert s.next(2, after=DT) == [
            pendulum.datetime(2019, 1, 7, 9),
            pendulum.datetime(2019, 1, 7, 9),
        ]

    def test_a_filter_that_never_passes_stops_after_a_bounded_search(self) -> None:
        s = Schedule([IntervalClock(timedelta(minutes=1))], filters=[lambda dt: False])
        assert s.next(1, after=DT) == []

    def test_start_and_end_dates_span_the_clocks(self) -> None:
        s = Schedule(
            [
                IntervalClock(timedelta(hours=1), start_date=DT, end_date=DT.add(days=1)),
                IntervalClock(timedelta(hours=1), start_date=DT.add(days=2)),
            ]
        )
        assert (s.start_date, s.end_date) == (DT, DT.add(days=1))

    @pytest.mark.parametrize("field", ["filters", "or_filters", "not_filters", "adjustments"])
    def test_non_callable_filters_and_adjustments_are_refused(self, field: str) -> None:
        with pytest.raises(TypeError, match=f"{field} must hold callables"):
            Schedule([IntervalClock(timedelta(days=1))], **{field: ["weekday"]})

    @given(
        minutes=st.lists(st.integers(min_value=1, max_value=600), min_size=1, max_size=4),
        n=st.integers(min_value=0, max_value=12),
    )
    def test_next_is_sorted_after_the_given_time_and_has_n_items(
        self, minutes: list[int], n: int
    ) -> None:
        s = Schedule([IntervalClock(timedelta(minutes=m), start_date=DT) for m in minutes])
        after = DT.add(minutes=37)
        times = s.next(n, after=after)
        assert len(times) == n
        assert all(t > after for t in times)
        assert times == sorted(times)


class TestShortcuts:
    def test_interval_schedule_is_one_interval_clock(self) -> None:
        s = IntervalSchedule(start_date=DT, interval=timedelta(hours=2), end_date=DT.add(hours=4))
        assert s.next(5, after=DT.subtract(hours=1)) == [DT, DT.add(hours=2), DT.add(hours=4)]

    def test_interval_schedule_needs_an_interval(self) -> None:
        with pytest.raises(TypeError, match="interval must be a timedelta"):
            IntervalSchedule()

    def test_cron_schedule_is_one_cron_clock(self) -> None:
        s = CronSchedule("0 12 * * *", start_date=DT, day_or=False)
        assert isinstance(s.clocks[0], CronClock)
        assert s.clocks[0].day_or is False
        assert s.next(2, after=DT) == [DT.add(hours=12), DT.add(days=1, hours=12)]


class TestFilters:
    @pytest.mark.parametrize(
        ("fn", "yes", "no"),
        [
            (filters.on_datetime(DT), DT, DT.add(seconds=1)),
            (
                filters.on_date(3, 1),
                pendulum.datetime(2021, 3, 1, 5),
                pendulum.datetime(2021, 3, 2),
            ),
            (filters.at_time(time(4, 30)), DT.add(hours=4, minutes=30), DT.add(hours=4)),
            (filters.between_datetimes(DT, DT.add(days=1)), DT.add(days=1), DT.add(days=2)),
            (filters.between_dates(10, 15, 3, 31), pendulum.datetime(2021, 1, 5), DT.add(months=5)),
            (filters.between_dates(3, 1, 3, 31), pendulum.datetime(2021, 3, 31), DT),
            (filters.between_times(time(22), time(2)), DT.add(hours=1), DT.add(hours=12)),
            (filters.between_times(time(9), time(17)), DT.add(hours=17), DT.add(hours=18)),
            (filters.is_weekday, DT, DT.add(days=4)),
            (filters.is_weekend, DT.add(days=4), DT),
            (filters.is_month_end, pendulum.datetime(2020, 2, 29), pendulum.datetime(2020, 2, 28)),
            (filters.is_month_start, DT, DT.add(days=1)),
            (filters.is_day_of_week(1), DT, DT.add(days=1)),
        ],
    )
    def test_keeps_what_it_says_and_drops_the_rest(self, fn: Any, yes: Any, no: Any) -> None:
        assert fn(yes) is True
        assert fn(no) is False


class TestAdjustments:
    def test_add_moves_later(self) -> None:
        assert adjustments.add(timedelta(hours=3))(DT) == DT.add(hours=3)

    @pytest.mark.parametrize(("day", "expected"), [(5, 7), (6, 7), (7, 7), (1, 1)])
    def test_next_weekday_moves_weekends_to_monday(self, day: int, expected: int) -> None:
        adjusted = adjustments.next_weekday(pendulum.datetime(2019, 1, day, 10))
        assert adjusted == pendulum.datetime(2019, 1, expected, 10)
        assert isinstance(adjusted, pendulum.DateTime)
