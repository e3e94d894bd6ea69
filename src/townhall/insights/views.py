"""Insight pages: the manager's dashboard and the policy maker's area indicators.

Server-rendered HTML, complete without JavaScript: every chart is inline SVG with its numbers
as a table, and the choices (service, office, period) are plain GET forms.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse

from townhall.accounts.auth import requires
from townhall.actor import Actor
from townhall.deps import DbSession
from townhall.insights import charts, queries
from townhall.service_requests import queries as request_queries
from townhall.web.pages import render

router = APIRouter(include_in_schema=False)
Reader = Annotated[Actor, Depends(requires("insights:read"))]
HISTORY_DAYS_SHOWN = 56
STYLESHEETS = ("/catalog-assets/catalog.css", "/insights-assets/insights.css")
# The published dataset whose GeoJSON outlines the map draws (the demo city publishes it), with
# a `code` or `district_code` property per feature.
BOUNDARIES_DATASET = "district-boundaries"


def _outlines_url(db: DbSession, actor: Actor) -> str | None:
    """Where the map fetches district outlines, or None (no map) when the dataset is not
    published or not readable by the actor."""
    from townhall.datastore import query as datastore_query
    from townhall.errors import TownhallError

    try:
        datastore_query.published_table(db, actor, BOUNDARIES_DATASET)
    except TownhallError:
        return None
    return f"/api/v1/datasets/{BOUNDARIES_DATASET}/download.geojson"


def _short(day: date) -> str:
    return day.strftime("%b %d")


def _demand_chart(
    db: DbSession, at: queries.Clock, service: str | None, service_name: str | None
) -> tuple[charts.Chart, dict[str, Any]]:
    result, _days, _values = queries.forecast(db, at, service=service, weeks=4)
    calendar, series = queries.daily_series(
        db, at, days=HISTORY_DAYS_SHOWN, by="service" if service else None, last=at.today
    )
    values = series.get(service, [0] * len(calendar))
    # Today is not over: shown as history only up to yesterday, the forecast starts today.
    history = [(_short(d), float(v)) for d, v in zip(calendar[:-1], values[:-1], strict=True)]
    future = [(_short(p.start), p.value, p.lower, p.upper) for p in result.daily]
    what = service_name or "all services"
    chart = charts.line_chart(
        "demand",
        f"Requests per day, {what}: the last 8 weeks and a 4-week forecast",
        history,
        future,
        value_label="Requests",
    )
    return chart, {"method": result.method, "level": result.level, "today": values[-1]}


def _staffing_chart(
    db: DbSession, request: Request, at: queries.Clock, office: str | None
) -> tuple[charts.Chart | None, dict[str, Any] | None, list[dict[str, Any]]]:
    settings = request.app.state.settings
    data = queries.staffing(
        db,
        at,
        weeks=8,
        target_seconds=settings.insights_service_level_seconds,
        target_level=settings.insights_service_level_target,
    )
    offices = data["offices"]
    chosen = next((o for o in offices if o["office"] == office), offices[0] if offices else None)
    if chosen is None:
        return None, None, offices
    grid = [[0.0] * 24 for _ in range(7)]
    for hour in chosen["hours"]:
        grid[hour["weekday"]][hour["hour"]] = hour["agents"]
    used = [h for h in range(24) if any(grid[d][h] for d in range(7))] or list(range(24))
    hours = list(range(min(used), max(used) + 1))
    chart = charts.heatmap(
        "staffing",
        f"Desks needed per hour of the week at {chosen['name']}",
        queries.WEEKDAYS,
        [f"{h:02d}:00" for h in hours],
        [[grid[d][h] for h in hours] for d in range(7)],
        value_label=f"Desks to serve {settings.insights_service_level_target:.0%} within "
        f"{settings.insights_service_level_seconds // 60} minutes",
    )
    return chart, chosen, offices


@router.get("/insights", response_class=HTMLResponse)
def dashboard(
    request: Request,
    db: DbSession,
    actor: Reader,
    service: Annotated[str | None, Query(max_length=64)] = None,
    office: Annotated[str | None, Query(max_length=100)] = None,
) -> HTMLResponse:
    """The manager's view: backlog and SLA, demand and its forecast, spikes, staffing needs,
    productivity per team and per person."""
    at = queries.clock(db, request.app.state.settings.insights_timezone)
    services = request_queries.list_services(db, include_inactive=True)
    names = {s.code: s.name for s in services}
    if service not in names:
        service = None
    backlog = queries.backlog(db, at)
    top = backlog["by_service"][:12]
    backlog_chart = charts.bar_chart(
        "backlog",
        "Open requests by service (breached SLA in red)",
        [(item["name"], item["open"]) for item in top],
        value_label="Open",
        highlight=[item["breached"] for item in top],
        highlight_label="Breached",
    )
    demand_chart, demand_info = _demand_chart(db, at, service, names.get(service or ""))
    staffing_chart, staffing_office, staffing_offices = _staffing_chart(db, request, at, office)
    productivity = queries.productivity(db, at, weeks=4, names_for=actor)
    return render(
        request,
        "insights/dashboard.html",
        {
            "at": at,
            "backlog": backlog,
            "backlog_chart": backlog_chart,
            "demand_chart": demand_chart,
            "demand_info": demand_info,
            "alerts": queries.alerts(db, at)["alerts"],
            "services": services,
            "service": service,
            "staffing_chart": staffing_chart,
            "staffing_office": staffing_office,
            "staffing_offices": staffing_offices,
            "productivity": productivity,
            "stylesheets": STYLESHEETS,
        },
        actor=actor,
    )


@router.get("/insights/areas", response_class=HTMLResponse)
def areas_page(
    request: Request,
    db: DbSession,
    actor: Reader,
    days: Annotated[int, Query(ge=7, le=730)] = 365,
) -> HTMLResponse:
    """The policy maker's view: which districts need help most, and why."""
    settings = request.app.state.settings
    at = queries.clock(db, settings.insights_timezone)
    population = queries.district_population(
        db, request.app.state.runtime, actor, settings.insights_population_dataset
    )
    data = queries.areas(db, at, days=days, population=population)
    scored = [d for d in data["districts"] if d["need_score"] is not None]
    chart = charts.bar_chart(
        "need",
        "Need score by district (1 = the city's level; higher needs more help)",
        [(d["district"], d["need_score"]) for d in scored],
        value_label="Need score",
    )
    return render(
        request,
        "insights/areas.html",
        {
            "at": at,
            "data": data,
            "chart": chart,
            "days": days,
            "period_start": at.today - timedelta(days=days - 1),
            "outlines": _outlines_url(db, actor),
            "map_scores": {
                d["district"]: {"need_score": d["need_score"], "rank": d["rank"]}
                for d in data["districts"]
            },
            "stylesheets": STYLESHEETS,
        },
        actor=actor,
    )
