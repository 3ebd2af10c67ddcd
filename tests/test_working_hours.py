"""Unit tests for routing.working_hours (explicit instants only, no wall clock)."""

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from pydantic import ValidationError

from routing.working_hours import DAY_NAMES, WorkingHours, WorkingHoursConfig

SH = ZoneInfo("Asia/Shanghai")
NY = ZoneInfo("America/New_York")
SPLIT = ["09:00-12:00", "13:30-18:00"]
WEEKDAYS = {day: SPLIT for day in ("mon", "tue", "wed", "thu", "fri")}


def sh(*args: int) -> datetime:
    return datetime(*args, tzinfo=SH)


def calendar(**overrides) -> WorkingHours:
    return WorkingHours(WorkingHoursConfig.model_validate({"weekly": WEEKDAYS, **overrides}))


@pytest.fixture
def office() -> WorkingHours:
    """Mon-Fri split shift, CN holidays (the default)."""
    return calendar()


@pytest.fixture
def shop() -> WorkingHours:
    """Like office, plus Saturdays and the extra closed/open dates of the example config."""
    return calendar(
        weekly={**WEEKDAYS, "sat": ["10:00-16:00"]},
        closed_dates=["2026-12-24"],
        open_dates={"2026-12-27": ["10:00-15:00"]},
    )


# --------------------------------------------------------------------------- opening


def test_friday_evening_opens_monday(office: WorkingHours) -> None:
    friday = sh(2026, 11, 27, 20, 0)
    assert not office.is_open(friday)
    monday = office.next_open(friday)
    assert monday == sh(2026, 11, 30, 9, 0)
    assert office.describe(monday, "zh", now=friday) == "周一 09:00 (北京时间)"
    assert office.describe(monday, "en", now=friday) == "Monday 09:00 (Beijing time)"


def test_lunch_break(office: WorkingHours) -> None:
    lunch = sh(2026, 11, 30, 12, 30)
    assert office.is_open(sh(2026, 11, 30, 11, 59))
    assert not office.is_open(lunch)
    assert office.next_open(lunch) == sh(2026, 11, 30, 13, 30)
    assert office.describe(office.next_open(lunch), "zh", now=lunch) == "今天 13:30 (北京时间)"
    assert office.describe(office.next_open(lunch), "en", now=lunch) == "today 13:30 (Beijing time)"


def test_period_bounds_are_half_open(office: WorkingHours) -> None:
    assert office.is_open(sh(2026, 11, 30, 9, 0))
    assert not office.is_open(sh(2026, 11, 30, 12, 0))
    assert office.is_open(sh(2026, 11, 30, 13, 30))
    assert not office.is_open(sh(2026, 11, 30, 18, 0))


def test_next_open_when_open_is_now(office: WorkingHours) -> None:
    at = sh(2026, 11, 30, 10, 15)
    assert office.next_open(at) == at


def test_next_close(office: WorkingHours) -> None:
    assert office.next_close(sh(2026, 11, 30, 10, 0)) == sh(2026, 11, 30, 12, 0)
    closed = sh(2026, 11, 30, 12, 30)
    assert office.next_close(closed) == closed


def test_next_close_merges_across_midnight() -> None:
    night = calendar(weekly={"fri": ["18:00-24:00"], "sat": ["00:00-02:00", "02:00-03:00"]})
    assert night.next_close(sh(2026, 11, 27, 20, 0)) == sh(2026, 11, 28, 3, 0)
    assert night.is_open(sh(2026, 11, 27, 23, 59))
    assert not night.is_open(sh(2026, 11, 28, 3, 0))


def test_tomorrow_and_far_dates_in_description(office: WorkingHours) -> None:
    evening = sh(2026, 11, 30, 19, 0)
    assert office.describe(office.next_open(evening), "zh", now=evening) == "明天 09:00 (北京时间)"
    assert office.describe(office.next_open(evening), "en", now=evening) == "tomorrow 09:00 (Beijing time)"
    far = sh(2026, 12, 28, 9, 0)
    assert office.describe(far, "zh", now=evening) == "12月28日 周一 09:00 (北京时间)"
    assert office.describe(far, "en", now=evening) == "Monday 28 December 09:00 (Beijing time)"


def test_describe_in_customer_time_zone(office: WorkingHours) -> None:
    friday = sh(2026, 11, 27, 20, 0)
    monday = office.next_open(friday)  # 09:00 Beijing = 01:00 London, still Monday
    assert office.describe(monday, "en", "Europe/London", now=friday) == "Monday 01:00 (London time)"
    assert office.describe(monday, "zh", NY, now=friday) == "周日 20:00 (纽约时间)"
    assert office.describe(monday, "en", "Asia/Kolkata", now=friday) == "Monday 06:30 (UTC+05:30)"
    assert office.describe(monday, "en", "America/Sao_Paulo", now=friday) == "Sunday 22:00 (UTC-03:00)"
    assert office.describe(monday, "en", UTC, now=friday) == "Monday 01:00 (UTC)"


def test_instant_given_in_utc(office: WorkingHours) -> None:
    at = datetime(2026, 11, 30, 1, 30, tzinfo=UTC)  # 09:30 in Shanghai
    assert office.is_open(at)
    close = office.next_close(at)
    assert close == datetime(2026, 11, 30, 4, 0, tzinfo=UTC)
    assert close.tzinfo is UTC  # results keep the caller's zone
    assert not office.is_open(datetime(2026, 11, 30, 0, 59, tzinfo=UTC))  # 08:59 in Shanghai


def test_naive_datetime_rejected(office: WorkingHours) -> None:
    with pytest.raises(ValueError, match="time-zone-aware"):
        office.is_open(datetime(2026, 11, 30, 10, 0))


# --------------------------------------------------------------------------- holidays


def test_cn_public_holiday_is_closed(office: WorkingHours) -> None:
    national_day = sh(2026, 10, 1, 10, 0)  # a Thursday
    assert not office.is_open(national_day)
    reopen = office.next_open(national_day)
    assert reopen == sh(2026, 10, 8, 9, 0)  # Oct 1-7 off (incl. observed/substituted days)
    assert office.describe(reopen, "zh", now=national_day) == "10月8日 周四 09:00 (北京时间)"


def test_cn_make_up_workday_follows_configured_weekday(shop: WorkingHours) -> None:
    make_up_saturday = sh(2026, 10, 10, 9, 30)  # 调休上班; normal Saturdays open at 10:00
    assert shop.is_open(make_up_saturday)
    assert not shop.is_open(sh(2026, 10, 10, 12, 45))  # Monday's lunch break applies
    assert not shop.is_open(sh(2026, 10, 17, 9, 30))  # an ordinary Saturday
    assert shop.is_open(sh(2026, 9, 20, 17, 0))  # Sunday 调休上班
    assert shop.is_open(sh(2026, 2, 14, 9, 0))  # Saturday before Spring Festival


def test_workdays_follow_other_weekday() -> None:
    cal = calendar(weekly={**WEEKDAYS, "fri": ["09:00-15:00"]}, workdays_follow="fri")
    assert cal.is_open(sh(2026, 9, 20, 13, 0))
    assert not cal.is_open(sh(2026, 9, 20, 16, 0))


def test_holidays_disabled() -> None:
    cal = calendar(holidays=None)
    assert cal.is_open(sh(2026, 10, 1, 10, 0))
    assert not cal.is_open(sh(2026, 10, 10, 10, 0))


def test_closed_and_open_dates(shop: WorkingHours) -> None:
    assert not shop.is_open(sh(2026, 12, 24, 10, 0))  # Thursday, closed_dates
    assert shop.is_open(sh(2026, 12, 27, 11, 0))  # Sunday, open_dates
    assert not shop.is_open(sh(2026, 12, 27, 15, 0))
    assert shop.next_open(sh(2026, 12, 26, 17, 0)) == sh(2026, 12, 27, 10, 0)


def test_always_open() -> None:
    cal = WorkingHours(WorkingHoursConfig(always_open=True))
    at = sh(2026, 10, 1, 3, 0)
    assert cal.is_open(at)
    assert cal.next_open(at) == at
    assert cal.next_close(at) is None
    assert cal.working_time_between(at, at + timedelta(days=3)) == timedelta(days=3)
    assert cal.add_working_time(at, timedelta(hours=50)) == at + timedelta(hours=50)


def test_never_open() -> None:
    cal = calendar(weekly={}, holidays=None)
    at = sh(2026, 11, 30, 10, 0)
    assert cal.next_open(at) is None
    assert cal.next_close(at) == at
    assert cal.working_time_between(at, at + timedelta(days=30)) == timedelta()
    assert cal.add_working_time(at, timedelta(minutes=1)) is None


def test_all_day_calendar_never_closes() -> None:
    cal = calendar(weekly={day: ["00:00-24:00"] for day in DAY_NAMES}, holidays=None)
    assert cal.next_close(sh(2026, 11, 30, 10, 0)) is None


# --------------------------------------------------------------------------- SLA arithmetic


def test_working_time_across_weekend(office: WorkingHours) -> None:
    friday = sh(2026, 11, 27, 17, 0)
    monday = sh(2026, 11, 30, 10, 0)
    assert office.working_time_between(friday, monday) == timedelta(hours=2)
    assert office.working_time_between(monday, friday) == -timedelta(hours=2)


def test_working_time_across_lunch_break(office: WorkingHours) -> None:
    assert office.working_time_between(sh(2026, 11, 30, 11, 0), sh(2026, 11, 30, 14, 30)) == timedelta(
        hours=2
    )
    assert office.working_time_between(sh(2026, 11, 30, 12, 10), sh(2026, 11, 30, 12, 50)) == timedelta()


def test_add_working_time_across_night_and_holiday(office: WorkingHours) -> None:
    start = sh(2026, 9, 30, 17, 0)  # one hour left before National Day
    assert office.add_working_time(start, timedelta(hours=2)) == sh(2026, 10, 8, 10, 0)
    assert office.working_time_between(start, sh(2026, 10, 8, 10, 0)) == timedelta(hours=2)


def test_add_working_time_edges(office: WorkingHours) -> None:
    monday = sh(2026, 11, 30, 11, 0)
    assert office.add_working_time(monday, timedelta(hours=1)) == sh(2026, 11, 30, 12, 0)  # not 13:30
    assert office.add_working_time(monday, timedelta(hours=1, minutes=1)) == sh(2026, 11, 30, 13, 31)
    assert office.add_working_time(sh(2026, 11, 30, 12, 30), timedelta()) == sh(2026, 11, 30, 13, 30)
    with pytest.raises(ValueError, match="negative"):
        office.add_working_time(monday, -timedelta(minutes=1))


def test_working_time_over_dst_change() -> None:
    cal = calendar(
        timezone="America/New_York", holidays=None, weekly={"sat": ["00:00-24:00"], "sun": ["00:00-24:00"]}
    )
    saturday = datetime(2026, 3, 7, 0, 0, tzinfo=NY)
    monday = datetime(2026, 3, 9, 0, 0, tzinfo=NY)
    assert cal.working_time_between(saturday, monday) == timedelta(hours=47)  # clocks spring forward
    assert cal.next_close(saturday) == monday
    assert cal.add_working_time(saturday, timedelta(hours=47)) == monday


# --------------------------------------------------------------------------- validation


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"weekly": {"mon": ["09:00-12:00", "11:00-14:00"]}}, "'09:00-12:00' and '11:00-14:00' overlap"),
        ({"weekly": {"mon": ["13:00-14:00", "09:00-12:00"]}}, "time order"),
        ({"timezone": "Mars/Base"}, "unknown time zone 'Mars/Base'"),
        ({"weekly": {"mon": ["09:00-25:00"]}}, "invalid time '25:00'"),
        ({"weekly": {"mon": ["09:60-10:00"]}}, "invalid time '09:60'"),
        ({"weekly": {"mon": ["9-18"]}}, "expected 'HH:MM-HH:MM'"),
        ({"weekly": {"mon": ["18:00-09:00"]}}, "ends before it starts"),
        ({"weekly": {"mon2": ["09:00-18:00"]}}, "unknown day 'mon2'"),
        ({"workdays_follow": "monday"}, "unknown day 'monday'"),
        ({"holidays": {"country": "XX"}}, "unknown holiday country 'XX'"),
        ({"holidays": {"country": "CN", "subdiv": "ZZ"}}, "unknown holiday subdivision"),
        (
            {"closed_dates": ["2026-12-27"], "open_dates": {"2026-12-27": ["10:00-12:00"]}},
            "both closed_dates and open_dates",
        ),
        ({"opening": True}, "Extra inputs are not permitted"),
    ],
)
def test_validation_errors(overrides: dict, message: str) -> None:
    with pytest.raises(ValidationError) as exc:
        WorkingHoursConfig.model_validate(overrides)
    assert message in str(exc.value)


def test_error_location_points_at_the_period() -> None:
    with pytest.raises(ValidationError) as exc:
        WorkingHoursConfig.model_validate({"weekly": {"tue": ["09:00-12:00", "25:00-26:00"]}})
    assert exc.value.errors()[0]["loc"] == ("weekly", "tue", 1)


def test_midnight_end_and_round_trip() -> None:
    cfg = WorkingHoursConfig.model_validate(
        {"weekly": {"fri": ["20:00-24:00"]}, "open_dates": {"2026-12-27": ["10:00-15:00"]}}
    )
    dumped = cfg.model_dump(mode="json")
    assert dumped["weekly"] == {"fri": ["20:00-24:00"]}
    assert dumped["holidays"] == {"country": "CN", "subdiv": None}
    assert WorkingHoursConfig.model_validate(dumped) == cfg
