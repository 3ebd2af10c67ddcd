"""Working-hours calendars: when a team is reachable, and SLA clocks in working time.

A calendar is configured per name under ``hours:`` (see :class:`WorkingHoursConfig`)
and evaluated by :class:`WorkingHours`.  Everything takes explicit, time-zone-aware
instants so callers (and tests) never depend on the wall clock.

Precedence for a local date: ``open_dates`` > ``closed_dates`` > public holiday >
make-up workday (调休上班日, uses the ``workdays_follow`` weekday's periods) > ``weekly``.

Public holidays and make-up workdays come from the ``holidays`` package: its country
calendars list days off (including observed and substituted days, e.g. CN 调休放假),
and ``weekend_workdays`` lists the weekend dates that are official working days
(CN 调休上班, e.g. Sat 2026-02-14, Sun 2026-09-20).  CN swaps are published by the
State Council about a year ahead; for later years the package only has the statutory
holidays (weekend ones moved to the next workday) and no swaps until it is updated.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from functools import lru_cache
from itertools import pairwise
from typing import Annotated, Literal, NamedTuple
from zoneinfo import ZoneInfo

import holidays as holidays_lib
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    model_validator,
)

DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
MINUTES_PER_DAY = 24 * 60
# How far to look for the next opening, and how long a continuous opening may run
# before it is treated as "never closes".
SEARCH_HORIZON = timedelta(days=400)


# --------------------------------------------------------------------------- config


class Period(NamedTuple):
    """A half-open local period ``[start, end)`` in minutes after midnight; end may be 1440."""

    start: int
    end: int

    def __str__(self) -> str:
        return f"{_fmt_minutes(self.start)}-{_fmt_minutes(self.end)}"


def _fmt_minutes(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


_PERIOD_RE = re.compile(r"\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*")


def _parse_period(value: object) -> Period:
    if isinstance(value, Period):
        return value
    if not isinstance(value, str) or not (m := _PERIOD_RE.fullmatch(value)):
        raise ValueError(f"invalid period {value!r}: expected 'HH:MM-HH:MM', e.g. '09:00-18:00'")
    sh, sm, eh, em = map(int, m.groups())
    for h, mi in ((sh, sm), (eh, em)):
        if mi > 59 or h > 24 or (h == 24 and mi):
            raise ValueError(
                f"invalid time '{h:02d}:{mi:02d}' in period {value!r}: expected HH:MM between 00:00 and 24:00"
            )
    period = Period(sh * 60 + sm, eh * 60 + em)
    if period.end <= period.start:
        raise ValueError(f"period {value!r} ends before it starts (use 24:00 for midnight)")
    return period


def _check_day_periods(periods: list[Period]) -> list[Period]:
    """Reject unsorted or overlapping periods; touching ones (12:00-13:00, 13:00-…) are fine."""
    for prev, cur in pairwise(periods):
        if cur.start < prev.start:
            raise ValueError(f"periods must be in time order: '{cur}' is listed after '{prev}'")
        if cur.start < prev.end:
            raise ValueError(f"periods '{prev}' and '{cur}' overlap")
    return periods


def _check_day_name(value: str) -> str:
    if value not in DAY_NAMES:
        raise ValueError(f"unknown day {value!r}: expected one of {', '.join(DAY_NAMES)}")
    return value


def _check_timezone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (KeyError, ValueError):  # ZoneInfoNotFoundError is a KeyError
        raise ValueError(
            f"unknown time zone {value!r}: expected an IANA name such as 'Asia/Shanghai'"
        ) from None
    return value


PeriodField = Annotated[Period, BeforeValidator(_parse_period), PlainSerializer(str)]
DayPeriods = Annotated[list[PeriodField], AfterValidator(_check_day_periods)]
DayName = Annotated[str, AfterValidator(_check_day_name)]
TimeZoneName = Annotated[str, AfterValidator(_check_timezone)]


class HolidaysConfig(BaseModel):
    """Which public-holiday calendar of the ``holidays`` package closes the team."""

    model_config = ConfigDict(extra="forbid")

    country: str = "CN"
    subdiv: str | None = None

    @model_validator(mode="after")
    def _known_to_package(self) -> HolidaysConfig:
        try:
            holidays_lib.country_holidays(self.country, subdiv=self.subdiv, years=())
        except NotImplementedError as exc:  # how the package reports unknown codes
            what = f"country {self.country!r}" if self.subdiv is None else "subdivision"
            raise ValueError(
                f"unknown holiday {what} (use an ISO 3166 code the 'holidays' package has): {exc}"
            ) from None
        return self


class WorkingHoursConfig(BaseModel):
    """One named calendar (``hours.<name>`` in the config)."""

    model_config = ConfigDict(extra="forbid")

    timezone: TimeZoneName = "Asia/Shanghai"
    always_open: bool = Field(False, description="7x24; everything else is then ignored")
    weekly: dict[DayName, DayPeriods] = Field(default_factory=dict)
    holidays: HolidaysConfig | None = Field(default_factory=HolidaysConfig)
    workdays_follow: DayName = "mon"
    closed_dates: list[date] = Field(default_factory=list)
    open_dates: dict[date, DayPeriods] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _dates_disjoint(self) -> WorkingHoursConfig:
        if both := sorted(set(self.closed_dates) & self.open_dates.keys()):
            listed = ", ".join(d.isoformat() for d in both)
            raise ValueError(f"dates listed in both closed_dates and open_dates: {listed}")
        return self


# --------------------------------------------------------------------------- calendar


@lru_cache(maxsize=64)
def _public_calendar(country: str, subdiv: str | None, year: int) -> tuple[frozenset[date], frozenset[date]]:
    """(days off, weekend days that are working days) of one year; shared by all calendars."""
    cal = holidays_lib.country_holidays(country, subdiv=subdiv, years=year)
    # weekend_workdays also carries cross-year swaps of every year the package knows.
    return frozenset(cal), frozenset(d for d in cal.weekend_workdays if d.year == year)


Span = tuple[datetime, datetime]  # UTC, half-open


class WorkingHours:
    """Evaluates a :class:`WorkingHoursConfig` (a snapshot: rebuild after config reload).

    Arguments must be time-zone-aware (any zone); returned instants are expressed in
    the zone of the argument they were derived from.  Internally everything is UTC so
    arithmetic stays right across DST changes.
    """

    def __init__(self, config: WorkingHoursConfig) -> None:
        self.tz = ZoneInfo(config.timezone)
        self._always_open = config.always_open
        self._weekly = tuple(tuple(config.weekly.get(day, ())) for day in DAY_NAMES)
        self._follow = DAY_NAMES.index(config.workdays_follow)
        hol = config.holidays
        self._holidays = (hol.country, hol.subdiv) if hol else None
        self._closed = frozenset(config.closed_dates)
        self._open = {d: tuple(p) for d, p in config.open_dates.items()}
        # Per-instance LRU: per-message lookups hit the same few dates over and over.
        self._day_spans = lru_cache(maxsize=256)(self._compute_day_spans)

    # -- per-date schedule

    def _periods(self, day: date) -> tuple[Period, ...]:
        if self._always_open:
            return (Period(0, MINUTES_PER_DAY),)
        if day in self._open:
            return self._open[day]
        if day in self._closed:
            return ()
        if self._holidays:
            days_off, workdays = _public_calendar(*self._holidays, day.year)
            if day in days_off:
                return ()
            if day in workdays:
                return self._weekly[self._follow]
        return self._weekly[day.weekday()]

    def _local_instant(self, day: date, minutes: int) -> datetime:
        days, minutes = divmod(minutes, MINUTES_PER_DAY)  # 24:00 is the next day's 00:00
        local = datetime.combine(day + timedelta(days=days), time(minutes // 60, minutes % 60), self.tz)
        return local.astimezone(UTC)

    def _compute_day_spans(self, day: date) -> tuple[Span, ...]:
        spans = (
            (self._local_instant(day, p.start), self._local_instant(day, p.end)) for p in self._periods(day)
        )
        return tuple((s, e) for s, e in spans if s < e)  # a period inside a DST gap vanishes

    def _local_date(self, utc: datetime) -> date:
        return utc.astimezone(self.tz).date()

    def _open_spans(self, at: datetime) -> Iterator[tuple[datetime, datetime | None]]:
        """Yield maximal open spans ending after ``at`` (UTC), in order, starts clipped to ``at``.

        Periods that touch, e.g. 18:00-24:00 and next day 00:00-02:00, merge into one
        span.  End None = still open after SEARCH_HORIZON; the search stops after
        SEARCH_HORIZON without a new opening.
        """
        if self._always_open:
            yield at, None
            return
        day = self._local_date(at)
        limit = day + SEARCH_HORIZON
        start = end = None
        while day <= limit:
            for s, e in self._day_spans(day):
                if e <= at:
                    continue
                if s == end:
                    end = e
                    continue
                if start is not None:
                    yield start, end
                start, end, limit = max(s, at), e, day + SEARCH_HORIZON
            day += timedelta(days=1)
        if start is not None:
            yield start, (None if end == self._local_instant(day, 0) else end)

    # -- public API

    def is_open(self, at: datetime) -> bool:
        u = _to_utc(at)
        return any(s <= u < e for s, e in self._day_spans(self._local_date(u)))

    def next_open(self, at: datetime) -> datetime | None:
        """``at`` if open now, else the next opening; None if closed for SEARCH_HORIZON."""
        for start, _ in self._open_spans(_to_utc(at)):
            return start.astimezone(at.tzinfo)
        return None

    def next_close(self, at: datetime) -> datetime | None:
        """End of the open span containing ``at`` (``at`` itself if closed); None if it never closes."""
        u = _to_utc(at)
        span = next(self._open_spans(u), None)
        if span is None or span[0] > u:
            return at
        return None if span[1] is None else span[1].astimezone(at.tzinfo)

    def working_time_between(self, a: datetime, b: datetime) -> timedelta:
        """Open time in ``[a, b)``; negative when ``b`` is before ``a``, like ``b - a``."""
        ua, ub = _to_utc(a), _to_utc(b)
        if ub < ua:
            return -self.working_time_between(b, a)
        total = timedelta()
        for start, end in self._open_spans(ua):
            if start >= ub:
                break
            total += (ub if end is None else min(end, ub)) - start
        return total

    def add_working_time(self, start: datetime, duration: timedelta) -> datetime | None:
        """The instant at which ``duration`` of open time has passed since ``start``.

        A zero duration gives the next opening; None if the calendar closes for good
        (SEARCH_HORIZON) before the duration is used up.
        """
        if duration < timedelta():
            raise ValueError(f"duration must not be negative, got {duration}")
        remaining = duration
        for span_start, span_end in self._open_spans(_to_utc(start)):
            if span_end is None or span_end - span_start >= remaining:
                return (span_start + remaining).astimezone(start.tzinfo)
            remaining -= span_end - span_start
        return None

    def describe(
        self,
        at_open: datetime,
        lang: Literal["zh", "en"] = "zh",
        tz: tzinfo | str | None = None,
        *,
        now: datetime,
    ) -> str:
        """Customer-facing text for an opening time, e.g. ``明天 09:00 (北京时间)``.

        ``tz`` is the customer's zone (default: the calendar's); "today"/"tomorrow" are
        relative to ``now`` in that zone, and the date is added beyond six days.
        """
        return describe_time(at_open, now, lang, self.tz if tz is None else tz)


def _to_utc(at: datetime) -> datetime:
    if at.utcoffset() is None:
        raise ValueError(f"time-zone-aware datetime required, got naive {at.isoformat()}")
    return at.astimezone(UTC)


# --------------------------------------------------------------------------- describe

_TZ_NAMES: dict[str, tuple[str, str]] = {
    "Asia/Shanghai": ("北京时间", "Beijing time"),
    "Asia/Chongqing": ("北京时间", "Beijing time"),
    "Asia/Urumqi": ("乌鲁木齐时间", "Urumqi time"),
    "Asia/Hong_Kong": ("香港时间", "Hong Kong time"),
    "Asia/Macau": ("澳门时间", "Macau time"),
    "Asia/Taipei": ("台北时间", "Taipei time"),
    "Asia/Singapore": ("新加坡时间", "Singapore time"),
    "Asia/Kuala_Lumpur": ("吉隆坡时间", "Kuala Lumpur time"),
    "Asia/Tokyo": ("东京时间", "Tokyo time"),
    "Asia/Seoul": ("首尔时间", "Seoul time"),
    "Asia/Bangkok": ("曼谷时间", "Bangkok time"),
    "Asia/Dubai": ("迪拜时间", "Dubai time"),
    "Australia/Sydney": ("悉尼时间", "Sydney time"),
    "Europe/London": ("伦敦时间", "London time"),
    "Europe/Paris": ("巴黎时间", "Paris time"),
    "Europe/Berlin": ("柏林时间", "Berlin time"),
    "Europe/Moscow": ("莫斯科时间", "Moscow time"),
    "America/New_York": ("纽约时间", "New York time"),
    "America/Chicago": ("芝加哥时间", "Chicago time"),
    "America/Los_Angeles": ("洛杉矶时间", "Los Angeles time"),
    "America/Vancouver": ("温哥华时间", "Vancouver time"),
    "America/Toronto": ("多伦多时间", "Toronto time"),
    "UTC": ("UTC", "UTC"),
    "Etc/UTC": ("UTC", "UTC"),
}
_ZH_WEEKDAYS = ("周一", "周二", "周三", "周四", "周五", "周六", "周日")
_EN_WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
_EN_MONTHS = (
    "January", "February", "March", "April", "May", "June",
    "July", "August", "September", "October", "November", "December",
)  # fmt: skip


def describe_time(at: datetime, now: datetime, lang: Literal["zh", "en"], tz: tzinfo | str) -> str:
    """See :meth:`WorkingHours.describe`; usable without a calendar."""
    zone = ZoneInfo(tz) if isinstance(tz, str) else tz
    local = _to_utc(at).astimezone(zone)
    days_away = (local.date() - _to_utc(now).astimezone(zone).date()).days
    en = lang == "en"
    if days_away == 0:
        day = "today" if en else "今天"
    elif days_away == 1:
        day = "tomorrow" if en else "明天"
    elif en:
        day = _EN_WEEKDAYS[local.weekday()]
        if not 0 < days_away <= 6:
            day += f" {local.day} {_EN_MONTHS[local.month - 1]}"
    else:
        day = _ZH_WEEKDAYS[local.weekday()]
        if not 0 < days_away <= 6:
            day = f"{local.month}月{local.day}日 {day}"
    return f"{day} {local:%H:%M} ({_zone_name(zone, local, en)})"


def _zone_name(zone: tzinfo, local: datetime, en: bool) -> str:
    """Friendly name for common zones, else the offset at that instant (``UTC+08:00``)."""
    if names := _TZ_NAMES.get(getattr(zone, "key", str(zone))):
        return names[en]
    offset = local.utcoffset() or timedelta()
    sign = "-" if offset < timedelta() else "+"
    hours, rest = divmod(abs(offset), timedelta(hours=1))
    return f"UTC{sign}{hours:02d}:{rest // timedelta(minutes=1):02d}"
