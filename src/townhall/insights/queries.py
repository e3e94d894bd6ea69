"""Reads for insights: indicators built from the service-request and directory slices' aggregate
queries (which GROUP BY in SQL), shaped for the API and the pages. No query writes.

Time: every indicator is computed "as of" an instant. By default that is now; when the newest
request is more than `FROZEN_AFTER` old (a frozen extract, such as the demo city), it is the
newest request's time, so the dashboards show the data's own last days rather than empty ones.
Days, weeks and hours of the week are local to `insights_timezone`.
"""

from __future__ import annotations

import math
import statistics
import threading
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy.orm import Session

from townhall.accounts import queries as account_queries
from townhall.actor import Actor
from townhall.db import utcnow
from townhall.directory import queries as directory_queries
from townhall.insights import erlang
from townhall.insights.forecast import Forecast, forecast_daily
from townhall.service_requests import queries as request_queries

FROZEN_AFTER = timedelta(days=7)
AT_RISK_WITHIN = timedelta(hours=24)
FORECAST_HISTORY_DAYS = 365
ALERT_BASELINE_DAYS = 28
ALERT_Z = 3.5
ALERT_MIN_COUNT = 5
TREND_DAYS = 28
WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


@dataclass(frozen=True)
class Clock:
    """The instant indicators are computed at, and its local calendar."""

    now: datetime
    zone: str
    frozen: bool

    @property
    def today(self) -> date:
        return self.now.astimezone(ZoneInfo(self.zone)).date()

    def day_start(self, day: date) -> datetime:
        """The UTC instant at which local `day` begins."""
        return datetime.combine(day, time(), ZoneInfo(self.zone)).astimezone(UTC)


def clock(session: Session, zone: str, *, as_of: datetime | None = None) -> Clock:
    if as_of is not None:
        return Clock(as_of.astimezone(UTC), zone, frozen=True)
    now = utcnow()
    latest = request_queries.latest_request_at(session)
    if latest is not None and now - latest > FROZEN_AFTER:
        return Clock(latest, zone, frozen=True)
    return Clock(now, zone, frozen=False)


def _organization_names(session: Session) -> dict[int, str]:
    return {o.id: o.name for o in account_queries.list_organizations(session)}


# --- backlog ---------------------------------------------------------------------------------


def backlog(session: Session, at: Clock) -> dict[str, Any]:
    """Open requests by service, office, sub-status, age and SLA state."""
    rows = request_queries.backlog_counts(session, now=at.now, at_risk_within=AT_RISK_WITHIN)
    offices = _organization_names(session)
    by_service: dict[str, dict[str, Any]] = {}
    by_office: dict[str, dict[str, Any]] = {}
    by_sub_status: dict[str, int] = defaultdict(int)
    by_age = dict.fromkeys(request_queries.AGE_BUCKETS, 0)
    by_sla: dict[str, int] = dict.fromkeys(
        ("breached", "at_risk", "on_time", "paused", "no_sla"), 0
    )
    for row in rows:
        n = int(row["count"])
        service = by_service.setdefault(
            row["service"],
            {"service": row["service"], "name": row["service_name"], "open": 0, "breached": 0,
             "at_risk": 0},
        )  # fmt: skip
        office_name = offices.get(row["organization_id"], "No office")
        office = by_office.setdefault(
            office_name, {"office": office_name, "open": 0, "breached": 0, "at_risk": 0}
        )
        for bucket in (service, office):
            bucket["open"] += n
            if row["sla"] in ("breached", "at_risk"):
                bucket[row["sla"]] += n
        by_sub_status[row["sub_status"]] += n
        by_age[row["age"]] += n
        by_sla[row["sla"]] += n

    def ranked(items: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
        return sorted(items.values(), key=lambda i: (-i["open"], str(next(iter(i.values())))))

    return {
        "as_of": at.now,
        "open": sum(by_sla.values()),
        "breached": by_sla["breached"],
        "at_risk": by_sla["at_risk"],
        "by_sla": by_sla,
        "by_age": by_age,
        "by_sub_status": dict(sorted(by_sub_status.items())),
        "by_service": ranked(by_service),
        "by_office": ranked(by_office),
    }


# --- productivity ----------------------------------------------------------------------------


def _week_start(day: date) -> date:
    return day - timedelta(days=day.weekday())


def _round(value: float | None, digits: int = 1) -> float | None:
    return None if value is None else round(float(value), digits)


def productivity(session: Session, at: Clock, *, weeks: int, names_for: Actor) -> dict[str, Any]:
    """Requests resolved per staff member and per office (team), per local week, with the
    median hours to resolve. Staff names only for `insights:read` callers; others see their
    own row named and the rest as "Staff member N"."""
    last_monday = _week_start(at.today)
    first_monday = last_monday - timedelta(weeks=weeks - 1)
    start, end = at.day_start(first_monday), at.now
    week_labels = [(first_monday + timedelta(weeks=i)).isoformat() for i in range(weeks)]
    offices = _organization_names(session)
    kwargs = {"start": start, "end": end, "zone": at.zone}
    per_user_week = request_queries.closed_work(
        session, **kwargs, by_user=True, by_week=True, with_median=False
    )
    per_user = request_queries.closed_work(session, **kwargs, by_user=True, by_week=False)
    per_team = request_queries.closed_work(session, **kwargs, by_user=False, by_week=False)
    show_names = names_for.can("insights:read")

    staff: dict[tuple[int | None, int | None], dict[str, Any]] = {}
    for row in per_user:
        staff[(row["user_id"], row["organization_id"])] = {
            "user_id": row["user_id"],
            "office": offices.get(row["organization_id"], "No office"),
            "closed": int(row["closed"]),
            "median_hours_to_resolve": _round(row["median_hours"]),
            "per_week": dict.fromkeys(week_labels, 0),
        }
    for row in per_user_week:
        entry = staff.get((row["user_id"], row["organization_id"]))
        if entry is not None and row["week"] in entry["per_week"]:
            entry["per_week"][row["week"]] = int(row["closed"])
    ordered = sorted(staff.values(), key=lambda s: (-s["closed"], s["office"], s["user_id"] or 0))
    pseudonym = 0
    visible = [
        e["user_id"]
        for e in ordered
        if e["user_id"] is not None and (show_names or e["user_id"] == names_for.user_id)
    ]
    known = account_queries.display_names(session, visible)
    for entry in ordered:
        user_id = entry["user_id"]
        if user_id is None:
            entry["name"] = "Unassigned"
        elif show_names or user_id == names_for.user_id:
            entry["name"] = known.get(user_id, f"User {user_id}")
        else:
            pseudonym += 1
            entry["name"] = f"Staff member {pseudonym}"
        if not show_names and user_id != names_for.user_id:
            entry["user_id"] = None

    teams: dict[int | None, dict[str, Any]] = {}
    for row in per_team:
        teams[row["organization_id"]] = {
            "office": offices.get(row["organization_id"], "No office"),
            "closed": int(row["closed"]),
            "median_hours_to_resolve": _round(row["median_hours"]),
            "per_week": dict.fromkeys(week_labels, 0),
        }
    for row in per_user_week:
        team = teams.get(row["organization_id"])
        if team is not None and row["week"] in team["per_week"]:
            team["per_week"][row["week"]] += int(row["closed"])
    return {
        "as_of": at.now,
        "weeks": week_labels,
        "names_shown": show_names,
        "staff": ordered,
        "teams": sorted(teams.values(), key=lambda t: (-t["closed"], t["office"])),
    }


# --- demand ----------------------------------------------------------------------------------


def _days(first: date, last: date) -> list[date]:
    return [first + timedelta(days=i) for i in range((last - first).days + 1)]


def daily_series(
    session: Session, at: Clock, *, days: int, by: str | None, last: date | None = None
) -> tuple[list[date], dict[str | None, list[int]]]:
    """Requests per local day for the `days` days ending on `last` (default today), per key
    (service or district code; None for the total). Missing days are zeros."""
    last = last or at.today
    first = last - timedelta(days=days - 1)
    start, end = at.day_start(first), at.day_start(last + timedelta(days=1))
    rows = request_queries.daily_request_counts(session, start=start, end=end, zone=at.zone, by=by)
    calendar = _days(first, last)
    index = {d.isoformat(): i for i, d in enumerate(calendar)}
    series: dict[str | None, list[int]] = {}
    for day, key, count in rows:
        if day in index:
            series.setdefault(key, [0] * len(calendar))[index[day]] += count
    return calendar, series


def _slope_per_week(values: Sequence[float]) -> float:
    """Least-squares slope of weekly totals, per week."""
    n = len(values)
    if n < 2:
        return 0.0
    mean_x, mean_y = (n - 1) / 2, sum(values) / n
    num = sum((i - mean_x) * (v - mean_y) for i, v in enumerate(values))
    den = sum((i - mean_x) ** 2 for i in range(n))
    return num / den


def demand(
    session: Session, at: Clock, *, days: int, unit: str, by: str | None, top: int
) -> dict[str, Any]:
    """Requests per day or week, in total or per service or district, with a trend: the change
    of the last 28 days against the 28 before, and the slope of weekly totals."""
    span = max(days, 2 * TREND_DAYS)
    calendar, series = daily_series(session, at, days=span, by=by)
    shown = calendar[-days:]
    result = []
    for key, values in series.items():
        recent = sum(values[-TREND_DAYS:])
        before = sum(values[-2 * TREND_DAYS : -TREND_DAYS])
        visible = values[-days:]
        if unit == "week":
            weekly: dict[date, int] = defaultdict(int)
            for day, value in zip(shown, visible, strict=True):
                weekly[_week_start(day)] += value
            points = [{"period": d.isoformat(), "count": n} for d, n in sorted(weekly.items())]
        else:
            points = [
                {"period": d.isoformat(), "count": n} for d, n in zip(shown, visible, strict=True)
            ]
        full_weeks = [sum(visible[i : i + 7]) for i in range(len(visible) % 7, len(visible), 7)]
        result.append(
            {
                "key": key,
                "total": sum(visible),
                "points": points,
                "trend": {
                    "last_28_days": recent,
                    "previous_28_days": before,
                    "change_percent": _round((recent - before) / before * 100) if before else None,
                    "slope_per_week": _round(_slope_per_week(full_weeks), 2),
                },
            }
        )
    result.sort(key=lambda s: (-s["total"], str(s["key"])))
    return {
        "as_of": at.now,
        "unit": unit,
        "by": by or "total",
        "from": shown[0].isoformat(),
        "to": shown[-1].isoformat(),
        "series": result[:top],
        "more": max(0, len(result) - top),
    }


# --- forecast --------------------------------------------------------------------------------

_forecast_cache_lock = threading.Lock()
_forecast_cache: dict[tuple[Any, ...], Forecast] = {}
FORECAST_CACHE_SIZE = 64


def forecast(
    session: Session, at: Clock, *, service: str | None, weeks: int, level: float = 0.95
) -> tuple[Forecast, list[date], list[int]]:
    """Forecast the next `weeks` weeks of daily requests (all, or one service code) from up to
    a year of history ending yesterday (today is not over yet). Cached per history: the same
    history gives the same forecast, so a dashboard reload does not refit."""
    yesterday = at.today - timedelta(days=1)
    calendar, series = daily_series(
        session, at, days=FORECAST_HISTORY_DAYS, by="service" if service else None, last=yesterday
    )
    values = series.get(service, [0] * len(calendar))
    # Leading days before the first request are not history (a new service, a new install).
    first = next((i for i, v in enumerate(values) if v), len(values))
    calendar, values = calendar[first:], values[first:]
    key = (service, yesterday, weeks, level, tuple(values))
    with _forecast_cache_lock:
        cached = _forecast_cache.get(key)
    if cached is None:
        cached = forecast_daily(values, yesterday, horizon_days=weeks * 7, level=level)
        with _forecast_cache_lock:
            if len(_forecast_cache) >= FORECAST_CACHE_SIZE:
                _forecast_cache.pop(next(iter(_forecast_cache)))
            _forecast_cache[key] = cached
    return cached, calendar, values


# --- alerts ----------------------------------------------------------------------------------


def robust_z(value: float, baseline: Sequence[float]) -> float:
    """How unusual `value` is against `baseline`: (value - median) / (1.4826 x MAD), the MAD
    floored at 1/1.4826 so a flat baseline of small counts does not make every change a spike."""
    middle = statistics.median(baseline)
    mad = statistics.median(abs(v - middle) for v in baseline)
    scale = 1.4826 * max(mad, 1 / 1.4826)
    return (value - middle) / scale


def alerts(session: Session, at: Clock) -> dict[str, Any]:
    """Spikes today (local): a service or district whose count today is at least `ALERT_Z`
    robust z-scores above its last 28 days, and at least `ALERT_MIN_COUNT`."""
    found = []
    for by in ("service", "district", None):
        _, series = daily_series(session, at, days=ALERT_BASELINE_DAYS + 1, by=by)
        for key, values in series.items():
            today, baseline = values[-1], values[:-1]
            z = robust_z(today, baseline)
            if today >= ALERT_MIN_COUNT and z >= ALERT_Z:
                found.append(
                    {
                        "kind": by or "total",
                        "key": key,
                        "today": today,
                        "baseline_median": statistics.median(baseline),
                        "robust_z": round(z, 2),
                        "message": f"{today} requests today for {by or 'all'} {key or ''}".replace(
                            "  ", " "
                        ).strip()
                        + f", against a usual {statistics.median(baseline):g} a day",
                    }
                )
    found.sort(key=lambda a: -a["robust_z"])
    return {
        "as_of": at.now,
        "day": at.today.isoformat(),
        "threshold_z": ALERT_Z,
        "baseline_days": ALERT_BASELINE_DAYS,
        "alerts": found,
    }


# --- areas -----------------------------------------------------------------------------------


def district_population(
    session: Session, runtime: Any, actor: Actor, slug: str
) -> dict[str, int] | None:
    """district code -> residents, from the published population dataset; None when the
    dataset is missing, unreadable or lacks the two columns."""
    import json

    from townhall.datastore import query as datastore_query
    from townhall.datastore.engine import query_engine
    from townhall.errors import TownhallError

    try:
        table = datastore_query.published_table(session, actor, slug)
        names = {c["name"] for c in table.columns}
        if not {"district_code", "population"} <= names:
            return None
        result = datastore_query.query_rows(
            query_engine(runtime),
            table,
            datastore_query.RowsRequest(fields=["district_code", "population"], limit=10_000),
        )
    except TownhallError:
        return None
    population: dict[str, int] = {}
    for raw in result.rows_json:
        row = json.loads(raw)
        if row.get("district_code") and isinstance(row.get("population"), int | float):
            population[str(row["district_code"])] = int(row["population"])
    return population or None


def areas(
    session: Session, at: Clock, *, days: int, population: dict[str, int] | None
) -> dict[str, Any]:
    """Per district: requests and requests per 1,000 residents, median hours to resolve, SLA
    breach rate, their gaps to the city, and a need score ranking the districts."""
    start = at.day_start(at.today - timedelta(days=days - 1))
    end = at.now
    rows = request_queries.resolution_summary(
        session, start=start, end=end, now=at.now, by="district"
    )
    city = request_queries.resolution_summary(session, start=start, end=end, now=at.now, by=None)
    whole = city[0] if city else {"requests": 0, "median_hours": None, "with_sla": 0, "breached": 0}
    city_breach = (whole["breached"] or 0) / whole["with_sla"] if whole["with_sla"] else None
    located = [r for r in rows if r["key"]]
    city_population = sum(population.values()) if population else None
    located_requests = sum(int(r["requests"]) for r in located)
    city_rate = located_requests / city_population * 1000 if city_population else None
    districts = []
    for row in located:
        code = str(row["key"])
        residents = population.get(code) if population else None
        rate = int(row["requests"]) / residents * 1000 if residents else None
        breach = int(row["breached"] or 0) / row["with_sla"] if row["with_sla"] else None
        median_hours = _round(row["median_hours"])
        ratios = [
            value / reference
            for value, reference in (
                (rate, city_rate),
                (median_hours, whole["median_hours"]),
                (breach, city_breach),
            )
            if value is not None and reference
        ]
        districts.append(
            {
                "district": code,
                "requests": int(row["requests"]),
                "population": residents,
                "requests_per_1000": _round(rate, 1),
                "median_hours_to_resolve": median_hours,
                "sla_breach_rate": _round(breach, 3),
                "response_gap_percent": _round(
                    (median_hours / whole["median_hours"] - 1) * 100
                    if median_hours is not None and whole["median_hours"]
                    else None
                ),
                "breach_gap_points": _round(
                    (breach - city_breach) * 100
                    if breach is not None and city_breach is not None
                    else None
                ),
                "need_score": _round(sum(ratios) / len(ratios), 3) if ratios else None,
            }
        )
    districts.sort(key=lambda d: (-(d["need_score"] or 0), d["district"]))
    for rank, district in enumerate(districts, start=1):
        district["rank"] = rank
    return {
        "as_of": at.now,
        "from": (at.today - timedelta(days=days - 1)).isoformat(),
        "to": at.today.isoformat(),
        "population_known": population is not None,
        "city": {
            "requests": int(whole["requests"] or 0),
            "unlocated_requests": sum(int(r["requests"]) for r in rows if not r["key"]),
            "requests_per_1000": _round(city_rate, 1),
            "median_hours_to_resolve": _round(whole["median_hours"]),
            "sla_breach_rate": _round(city_breach, 3),
        },
        "districts": districts,
    }


# --- staffing --------------------------------------------------------------------------------


def staffing(
    session: Session,
    at: Clock,
    *,
    weeks: int,
    target_seconds: int,
    target_level: float,
    office: str | None = None,
) -> dict[str, Any]:
    """Per office: visitors arriving per hour of the week (local to the office) averaged over
    the last `weeks` weeks, the mean desk time, and the desks Erlang C says each hour needs
    to serve `target_level` of visitors within `target_seconds`."""
    end = at.now
    start = end - timedelta(weeks=weeks)
    locations = {
        loc.id: loc for loc in directory_queries.list_locations(session, physical_only=True)
    }
    if office is not None:
        locations = {k: v for k, v in locations.items() if v.slug == office}
    arrivals = directory_queries.ticket_arrivals_per_hour(session, start=start, end=end)
    handling = directory_queries.ticket_handling_seconds(session, start=start, end=end)
    counts: dict[str, list[list[int]]] = {}
    for location_id, hour_text, n in arrivals:
        location = locations.get(location_id)
        if location is None:
            continue
        moment = datetime.strptime(hour_text, "%Y-%m-%d %H").replace(tzinfo=UTC)
        local = moment.astimezone(ZoneInfo(location.timezone or "UTC"))
        grid = counts.setdefault(location_id, [[0] * 24 for _ in range(7)])
        grid[local.weekday()][local.hour] += n
    offices = []
    for location_id, grid in counts.items():
        location = locations[location_id]
        mean_seconds, visits = handling.get(location_id, (None, 0))
        if mean_seconds is None:
            # No served visits yet: the services' typical visit time, as the live queue does.
            mean_seconds = 8 * 60.0
        hours = []
        peak = 0
        for weekday in range(7):
            for hour in range(24):
                if not grid[weekday][hour]:
                    continue
                rate = grid[weekday][hour] / weeks
                need = erlang.agents_needed(
                    rate, mean_seconds, target_seconds=target_seconds, target_level=target_level
                )
                peak = max(peak, need.agents)
                hours.append(
                    {
                        "weekday": weekday,
                        "day": WEEKDAYS[weekday],
                        "hour": hour,
                        "arrivals_per_hour": round(rate, 2),
                        "traffic_erlangs": round(need.traffic, 2),
                        "agents": need.agents,
                        "service_level": round(need.service_level, 3),
                        "average_wait_seconds": round(need.average_wait_seconds, 1),
                        "occupancy": round(need.occupancy, 3),
                    }
                )
        offices.append(
            {
                "office": location.slug,
                "name": location.name,
                "timezone": location.timezone,
                "desks": location.desks,
                "handling_seconds": round(mean_seconds, 1),
                "visits_measured": visits,
                "peak_agents": peak,
                "understaffed_hours": sum(1 for h in hours if h["agents"] > (location.desks or 1)),
                "hours": hours,
            }
        )
    offices.sort(key=lambda o: o["name"])
    return {
        "as_of": at.now,
        "weeks": weeks,
        "target_seconds": target_seconds,
        "target_level": target_level,
        "offices": offices,
    }


def finite(value: float) -> float | None:
    return value if math.isfinite(value) else None
