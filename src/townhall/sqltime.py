"""SQL expressions for time arithmetic that differ between SQLite and PostgreSQL.

Aggregates group by local days, weeks and hours in SQL (GROUP BY), not in Python, so a
dashboard over tens of thousands of rows stays fast. PostgreSQL converts with
`timezone(zone, ts)`; SQLite has no named zones, so the UTC offset is chosen by a `CASE` over
the zone's transitions (daylight saving changes) between two instants, which gives the same
answer as PostgreSQL for every instant inside that range.

SQLite also lacks a median: `median()` registers one as an SQLite aggregate on the session's
connection (idempotent), and uses `percentile_cont(0.5)` on PostgreSQL.
"""

from __future__ import annotations

import statistics
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Float, Integer, String, case, cast, func, literal
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement


def dialect_of(session: Session) -> str:
    return session.get_bind().dialect.name


def _offset_of(zone: ZoneInfo, moment: datetime) -> int:
    return int(moment.astimezone(zone).utcoffset().total_seconds())  # type: ignore[union-attr]


def _offset_spans(zone: ZoneInfo, start: datetime, end: datetime) -> list[tuple[datetime, int]]:
    """[(instant from which the offset applies, offset in seconds)], oldest first.

    Steps a day at a time and, inside a day whose offset changed, an hour at a time: zones
    change offset on the hour, at most a few times a year."""
    moment = start.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    end = end.astimezone(UTC)
    offset = _offset_of(zone, moment)
    spans = [(moment, offset)]
    while moment <= end:
        following = moment + timedelta(days=1)
        if _offset_of(zone, following) != offset:
            hour = moment
            while hour < following:
                hour += timedelta(hours=1)
                current = _offset_of(zone, hour)
                if current != offset:
                    spans.append((hour, current))
                    offset = current
        moment = following
    return spans


def _sqlite_modifier(
    column: ColumnElement[Any], zone: ZoneInfo, start: datetime, end: datetime
) -> ColumnElement[Any]:
    """A `'+N seconds'` modifier for SQLite's date functions: the zone's offset at `column`."""
    spans = _offset_spans(zone, start, end)
    if len(spans) == 1:
        return literal(f"{spans[0][1]:+d} seconds", String)
    whens = [
        (column < boundary, f"{previous:+d} seconds")
        for (boundary, _), (_, previous) in zip(spans[1:], spans[:-1], strict=True)
    ]
    return case(*whens, else_=f"{spans[-1][1]:+d} seconds")


def local_day(
    session: Session, column: Any, zone: str, start: datetime, end: datetime
) -> ColumnElement[Any]:
    """The local calendar day of `column` as 'YYYY-MM-DD' text on both backends. `start`/`end`
    bound the instants the query can see (SQLite needs them for the offset table)."""
    if dialect_of(session) == "postgresql":
        return func.to_char(func.timezone(zone, column), "YYYY-MM-DD")
    return func.date(column, _sqlite_modifier(column, ZoneInfo(zone), start, end))


def local_week(
    session: Session, column: Any, zone: str, start: datetime, end: datetime
) -> ColumnElement[Any]:
    """The Monday starting the local ISO week of `column`, as 'YYYY-MM-DD' text."""
    if dialect_of(session) == "postgresql":
        return func.to_char(func.date_trunc("week", func.timezone(zone, column)), "YYYY-MM-DD")
    # 'weekday 0' moves forward to the next Sunday (or stays on one); 6 days back is Monday.
    return func.date(
        column, _sqlite_modifier(column, ZoneInfo(zone), start, end), "weekday 0", "-6 days"
    )


def utc_hour(session: Session, column: Any) -> ColumnElement[Any]:
    """`column` truncated to its UTC hour, as 'YYYY-MM-DD HH' text (time zones applied later,
    per row of the small aggregated result, when each row may have its own zone)."""
    if dialect_of(session) == "postgresql":
        return func.to_char(func.timezone("UTC", column), "YYYY-MM-DD HH24")
    return func.strftime("%Y-%m-%d %H", column)


def seconds_between(session: Session, earlier: Any, later: Any) -> ColumnElement[Any]:
    """`later - earlier` in seconds (a float), NULL when either is NULL."""
    if dialect_of(session) == "postgresql":
        return cast(func.extract("epoch", later - earlier), Float)
    return (func.julianday(later) - func.julianday(earlier)) * literal(86400.0, Float)


class _Median:
    """SQLite aggregate: the median of the non-NULL values (NULL when there are none)."""

    def __init__(self) -> None:
        self.values: list[float] = []

    def step(self, value: float | None) -> None:
        if value is not None:
            self.values.append(float(value))

    def finalize(self) -> float | None:
        return statistics.median(self.values) if self.values else None


def median(session: Session, expression: ColumnElement[Any]) -> ColumnElement[Any]:
    """An aggregate giving the median of `expression` on either backend."""
    if dialect_of(session) == "postgresql":
        return func.percentile_cont(0.5).within_group(expression)
    connection = session.connection().connection.driver_connection
    # Registering again on the same connection replaces the same function: idempotent.
    connection.create_aggregate("th_median", 1, _Median)  # type: ignore[union-attr]
    return func.th_median(expression, type_=Float)


def as_int(expression: ColumnElement[Any]) -> ColumnElement[Any]:
    return cast(expression, Integer)
