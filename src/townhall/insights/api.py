"""Native JSON routes for insights under /api/v1/insights: backlog, productivity, demand and its
forecast, spikes, staffing (Erlang C), area indicators and the triage model.

Every indicator is computed "as of" an instant (see `queries.clock`); `as_of` pins it. Reads
need `insights:read`, except productivity (staff see their team's numbers, names only with
`insights:read`) and triage suggestions (a staff tool, `requests:work`).
"""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from pydantic import AwareDatetime, Field

from townhall.accounts.auth import requires
from townhall.actor import Actor
from townhall.deps import DbSession
from townhall.directory import queries as directory_queries
from townhall.errors import ConflictError, NotFoundError, TownhallError
from townhall.insights import actions, queries, triage
from townhall.insights.forecast import Forecast
from townhall.schemas import StrictInput
from townhall.service_requests import queries as request_queries

router = APIRouter(prefix="/api/v1/insights", tags=["insights"])
Reader = Annotated[Actor, Depends(requires("insights:read"))]
Worker = Annotated[Actor, Depends(requires("requests:work"))]
AsOf = Annotated[
    AwareDatetime | None,
    Query(description="Compute as of this instant (with a time zone); default: see docs."),
]


class TriageInput(StrictInput):
    text: str = Field(min_length=1, max_length=10_000, description="The resident's own words.")


EARLIEST_AS_OF, LATEST_AS_OF = 1971, 2199


def insights_clock(request: Request, db: DbSession, as_of: AsOf = None) -> queries.Clock:
    """The instant every indicator of a request is computed at: `?as_of=` (with a time zone)
    or the default of `queries.clock`. One dependency for every endpoint, so each reads,
    bounds and documents `as_of` the same way; FastAPI caches it per request."""
    # Windows reach two years back from `as_of`: keep them inside the calendar.
    if as_of is not None and not EARLIEST_AS_OF <= as_of.year <= LATEST_AS_OF:
        raise TownhallError(
            422,
            "invalid_request",
            f"as_of must fall between {EARLIEST_AS_OF} and {LATEST_AS_OF}.",
            errors=[{"loc": ["query", "as_of"], "message": "out of range", "type": "value_error"}],
        )
    return queries.clock(db, request.app.state.settings.insights_timezone, as_of=as_of)


# Declared after the caller's permission in each route, so an anonymous call is refused
# before its `as_of` is looked at.
At = Annotated[queries.Clock, Depends(insights_clock)]
Days = Annotated[int, Query(ge=7, le=730, description="How many days back.")]
Unit = Annotated[Literal["day", "week"], Query(description="Count per local day or week.")]


@router.get("/backlog", summary="Open requests by service, office, sub-status, age and SLA")
def backlog(db: DbSession, _actor: Reader, at: At) -> dict:
    return {"ok": True, **queries.backlog(db, at)}


@router.get(
    "/productivity",
    summary="Requests resolved per staff member and office per week, median time to resolve",
)
def productivity(
    db: DbSession, actor: Worker, at: At, weeks: Annotated[int, Query(ge=1, le=52)] = 8
) -> dict:
    return {"ok": True, **queries.productivity(db, at, weeks=weeks, names_for=actor)}


@router.get("/demand", summary="Requests per day or week, in total or by service or district")
def demand(
    db: DbSession,
    _actor: Reader,
    at: At,
    days: Days = 90,
    unit: Unit = "day",
    by: Literal["total", "service", "district"] = "total",
    top: Annotated[int, Query(ge=1, le=100)] = 20,
) -> dict:
    grouping = None if by == "total" else by
    return {
        "ok": True,
        **queries.demand(db, at, days=days, unit=unit, by=grouping, top=top),
    }


def forecast_body(
    result: Forecast, history_days: list[date], history: list[int], unit: str
) -> dict[str, Any]:
    points = result.weekly if unit == "week" else result.daily
    return {
        "method": result.method,
        "history_days": result.history_days,
        "history_from": history_days[0].isoformat() if history_days else None,
        "history_to": history_days[-1].isoformat() if history_days else None,
        "level": result.level,
        "unit": unit,
        "points": [
            {
                "period": p.start.isoformat(),
                "forecast": round(p.value, 1),
                "lower": round(p.lower, 1),
                "upper": round(p.upper, 1),
            }
            for p in points
        ],
    }


@router.get("/forecast", summary="Forecast of daily or weekly requests with prediction intervals")
def forecast(
    db: DbSession,
    _actor: Reader,
    at: At,
    service: Annotated[str | None, Query(max_length=64)] = None,
    weeks: Annotated[int, Query(ge=1, le=8)] = 4,
    unit: Unit = "day",
    level: Annotated[float, Query(ge=0.5, le=0.99)] = 0.95,
) -> dict:
    if service is not None and request_queries.service_by_code(db, service) is None:
        raise NotFoundError("service", service)
    result, days, values = queries.forecast(db, at, service=service, weeks=weeks, level=level)
    return {
        "ok": True,
        "as_of": at.now,
        "service": service,
        **forecast_body(result, days, values, unit),
    }


@router.get("/alerts", summary="Spikes today against the last 28 days (robust z-score)")
def alerts(db: DbSession, _actor: Reader, at: At) -> dict:
    return {"ok": True, **queries.alerts(db, at)}


@router.get(
    "/areas",
    summary="Per district: demand per 1,000 residents, response times, SLA breaches, equity gaps",
)
def areas(request: Request, db: DbSession, actor: Reader, at: At, days: Days = 365) -> dict:
    settings = request.app.state.settings
    population = queries.district_population(
        db, request.app.state.runtime, actor, settings.insights_population_dataset
    )
    return {"ok": True, **queries.areas(db, at, days=days, population=population)}


@router.get("/staffing", summary="Desks needed per hour of the week per office (Erlang C)")
def staffing(
    request: Request,
    db: DbSession,
    _actor: Reader,
    at: At,
    weeks: Annotated[int, Query(ge=1, le=26)] = 8,
    office: Annotated[str | None, Query(max_length=100)] = None,
    target_seconds: Annotated[int | None, Query(ge=1, le=86_400)] = None,
    target_level: Annotated[float | None, Query(gt=0, lt=1)] = None,
) -> dict:
    settings = request.app.state.settings
    if office is not None and directory_queries.location_by_slug(db, office) is None:
        raise NotFoundError("office", office)
    return {
        "ok": True,
        **queries.staffing(
            db,
            at,
            weeks=weeks,
            office=office,
            target_seconds=target_seconds or settings.insights_service_level_seconds,
            target_level=target_level or settings.insights_service_level_target,
        ),
    }


def suggestion_for(request: Request, text: str) -> triage.Suggestion | None:
    """The model's suggestion for `text`, or None when this node has no model yet."""
    model = triage.load(triage.model_dir(request.app.state.settings.data_dir))
    return triage.suggest(model, text) if model is not None else None


@router.get("/triage", summary="The triage model on this node: when trained, measured accuracy")
def triage_status(request: Request, _actor: Worker) -> dict:
    meta = triage.status(triage.model_dir(request.app.state.settings.data_dir))
    return {"ok": True, "trained": meta is not None, "model": meta}


@router.post("/triage", summary="Suggest the service and priority for a resident's words")
def triage_suggest(request: Request, body: TriageInput, db: DbSession, _actor: Worker) -> dict:
    suggestion = suggestion_for(request, body.text)
    if suggestion is None:
        raise ConflictError(
            "No triage model has been trained on this node yet. It is trained by the job "
            "insights.train_triage (scheduled, or POST /api/v1/insights/triage/train)."
        )

    def named(code: str) -> dict[str, Any]:
        service = request_queries.service_by_code(db, code)
        return {"code": code, "name": service.name if service else code}

    return {
        "ok": True,
        "service": {**named(suggestion.service), "probability": suggestion.service_probability},
        "alternatives": [{**named(c), "probability": p} for c, p in suggestion.alternatives],
        "priority": {
            "value": suggestion.priority,
            "probability": suggestion.priority_probability,
        },
    }


@router.post("/triage/train", status_code=202, summary="Queue a retraining of the triage model")
def triage_train(request: Request, db: DbSession, actor: Reader) -> dict:
    actions.request_triage_training(db, actor=actor, queue=request.app.state.runtime.jobs)
    return {"ok": True, "queued": actions.TRAIN_TRIAGE_JOB}


def staff_suggestion(app_settings: Any, session: Any, text: str) -> dict[str, Any] | None:
    """The suggestion staff see on a request's page (`app.state.triage_suggestion`): None when
    there is no text or no model on this node."""
    if not text.strip():
        return None
    model = triage.load(triage.model_dir(app_settings.data_dir))
    if model is None:
        return None
    suggestion = triage.suggest(model, text)
    service = request_queries.service_by_code(session, suggestion.service)
    return {
        "service": suggestion.service,
        "service_name": service.name if service else suggestion.service,
        "service_probability": suggestion.service_probability,
        "priority": suggestion.priority,
        "priority_probability": suggestion.priority_probability,
    }
