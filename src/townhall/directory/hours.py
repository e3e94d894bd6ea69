"""Opening hours: is a place open at an instant, until when, and when does it next open.

Pure functions over plain values, so every edge case is tested without a database:

- Hours are wall-clock times in the place's IANA time zone. Each day's intervals are turned into
  UTC instants through `zoneinfo`, so a daylight-saving change shortens or lengthens the day
  instead of shifting the hours. A wall time that does not exist (02:30 on the spring-forward
  night) is read with the offset before the change, which lands it one hour later in real time,
  the way clocks are set forward.
- An interval whose closing time is not after its opening time ends on the next day (22:00-02:00).
- Exceptions replace the weekly hours of the days they cover: either closed, or special hours.
- Public holidays (the `holidays` package, for the place's country and subdivision) close the
  place unless an exception for that day says otherwise.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import holidays as holidays_lib

WEEKDAY_CODES = ("MO", "TU", "WE", "TH", "FR", "SA", "SU")
# How far ahead "next opening" looks: longer than any holiday season.
LOOKAHEAD_DAYS = 21


@dataclass(frozen=True)
class WeeklyHours:
    weekday: int  # 0 = Monday
    opens: time
    closes: time
    valid_from: date | None = None  # the rule applies from this local date on
    valid_to: date | None = None  # ... up to and including this one

    def applies(self, day: date) -> bool:
        return (self.valid_from is None or day >= self.valid_from) and (
            self.valid_to is None or day <= self.valid_to
        )


@dataclass(frozen=True)
class ExceptionDay:
    """Special hours or a closure for `first`..`last` (inclusive)."""

    first: date
    last: date
    closed: bool
    opens: time | None = None
    closes: time | None = None
    note: str = ""


@dataclass(frozen=True)
class Calendar:
    timezone: str
    weekly: tuple[WeeklyHours, ...]
    exceptions: tuple[ExceptionDay, ...] = ()
    holiday_country: str | None = None
    holiday_subdivision: str | None = None
    observes_public_holidays: bool = True


@dataclass(frozen=True)
class OpenState:
    is_open: bool
    closes_at: datetime | None  # UTC, when open
    next_opens_at: datetime | None  # UTC, when closed (None: nothing within the lookahead)
    closed_reason: str | None = None  # "holiday: Memorial Day", "exception: ...", None
    today: list[tuple[datetime, datetime]] = field(default_factory=list)  # today's intervals


def zone(name: str) -> ZoneInfo:
    """The ZoneInfo for `name`; raises ValueError for an unknown zone."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown time zone {name!r}") from exc


def is_valid_zone(name: str) -> bool:
    try:
        zone(name)
    except ValueError:
        return False
    return True


@lru_cache(maxsize=64)
def _holiday_calendar(country: str, subdivision: str | None, year: int) -> dict[date, str]:
    try:
        found = holidays_lib.country_holidays(country, subdiv=subdivision, years=[year])
    except NotImplementedError:
        return {}
    return dict(found.items())


def holiday_name(day: date, country: str | None, subdivision: str | None) -> str | None:
    if not country:
        return None
    return _holiday_calendar(country.upper(), subdivision, day.year).get(day)


def is_valid_holiday_country(country: str, subdivision: str | None = None) -> bool:
    try:
        holidays_lib.country_holidays(country.upper(), subdiv=subdivision, years=[2026])
    except (NotImplementedError, KeyError):
        return False
    return True


def to_utc(day: date, at: time, tz: ZoneInfo) -> datetime:
    """The UTC instant of wall time `at` on `day` in `tz` (gaps resolved by the earlier offset)."""
    return datetime.combine(day, at, tzinfo=tz).astimezone(UTC)


def _day_intervals(calendar: Calendar, day: date, tz: ZoneInfo) -> tuple[list[tuple], str | None]:
    """The intervals that start on `day`, as UTC pairs, and why the day is closed if it is."""
    spans: list[tuple[time, time]] = []
    reason: str | None = None
    exception = next((e for e in calendar.exceptions if e.first <= day <= e.last), None)
    if exception is not None:
        if exception.closed or exception.opens is None or exception.closes is None:
            return [], f"exception: {exception.note}" if exception.note else "exception"
        spans = [(exception.opens, exception.closes)]
    else:
        holiday = (
            holiday_name(day, calendar.holiday_country, calendar.holiday_subdivision)
            if calendar.observes_public_holidays
            else None
        )
        if holiday:
            return [], f"holiday: {holiday}"
        spans = [
            (w.opens, w.closes)
            for w in calendar.weekly
            if w.weekday == day.weekday() and w.applies(day)
        ]
    result = []
    for opens, closes in sorted(spans):
        start = to_utc(day, opens, tz)
        end_day = day if closes > opens else day + timedelta(days=1)
        end = to_utc(end_day, closes, tz)
        if end > start:
            result.append((start, end))
    return result, reason


def intervals(calendar: Calendar, first: date, last: date) -> list[tuple[datetime, datetime]]:
    """Every opening interval starting between `first` and `last` local dates, merged."""
    tz = zone(calendar.timezone)
    spans: list[tuple[datetime, datetime]] = []
    day = first
    while day <= last:
        spans.extend(_day_intervals(calendar, day, tz)[0])
        day += timedelta(days=1)
    return _merge(spans)


def _merge(spans: Iterable[tuple[datetime, datetime]]) -> list[tuple[datetime, datetime]]:
    merged: list[tuple[datetime, datetime]] = []
    for start, end in sorted(spans):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
        else:
            merged.append((start, end))
    return merged


def open_state(calendar: Calendar, now: datetime) -> OpenState:
    """Whether the place is open at `now` (aware), until when, or when it next opens."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    tz = zone(calendar.timezone)
    local_today = now.astimezone(tz).date()
    # Start the day before: yesterday's late interval may still be running after midnight.
    spans = intervals(
        calendar, local_today - timedelta(days=1), local_today + timedelta(LOOKAHEAD_DAYS)
    )
    today = [(s, e) for s, e in spans if s.astimezone(tz).date() == local_today or s <= now < e]
    for start, end in spans:
        if start <= now < end:
            return OpenState(True, end, None, None, today)
    upcoming = next((s for s, _ in spans if s > now), None)
    _, reason = _day_intervals(calendar, local_today, tz)
    return OpenState(False, None, upcoming, reason, today)


def weekly_from_rows(
    rows: Sequence[tuple[str | None, time | None, time | None, date | None, date | None]],
) -> list[WeeklyHours]:
    """HSDS weekly rows (`byday` like "MO,TU", opens, closes, valid_from, valid_to) to
    `WeeklyHours`; rows without times or days are skipped (they describe hours in words only)."""
    result = []
    for byday, opens, closes, valid_from, valid_to in rows:
        if not byday or opens is None or closes is None:
            continue
        for code in byday.split(","):
            code = code.strip().upper()[-2:]
            if code in WEEKDAY_CODES:
                result.append(
                    WeeklyHours(WEEKDAY_CODES.index(code), opens, closes, valid_from, valid_to)
                )
    return result
