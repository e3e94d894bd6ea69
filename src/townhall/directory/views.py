"""Resident pages (no account): find a service, see where and when to get it and the live wait;
office pages and a status board that update over SSE; and the staff counter page.

Every page is complete without JavaScript; `live.js` only keeps the numbers fresh and `map.js`
draws the offices on a Leaflet map.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from townhall.accounts.auth import PublicActor, requires
from townhall.actor import Actor
from townhall.db import utcnow
from townhall.deps import DbSession
from townhall.directory import STATIC_PREFIX, actions, queries
from townhall.directory.models import (
    CATEGORY_TAXONOMY,
    LIFE_EVENT_TAXONOMY,
    Location,
    Phone,
    Service,
    Ticket,
)
from townhall.errors import NotFoundError, TownhallError
from townhall.web.pages import render

router = APIRouter(include_in_schema=False)
Operator = Annotated[Actor, Depends(requires("queues:operate"))]
CHANNEL_LABELS = {
    "online": "Online",
    "in_person": "In person",
    "phone": "By phone",
    "app": "In the city app",
    "mail": "By mail",
}


def _office_card(session: Session, location: Location, now: datetime) -> dict[str, Any]:
    status = queries.office_status(session, location, now)
    queues = queries.queue_summaries(session, location, now)
    return {
        "location": location,
        "status": status,
        "status_text": queries.status_text(status, location.timezone),
        "queues": queues,
        "waiting": sum(q.waiting for q in queues),
        "served_today": sum(q.served_today for q in queues),
    }


def _map_data(locations: list[dict[str, Any]]) -> str:
    points = [
        {
            "slug": item["location"].slug,
            "name": item["location"].name,
            "lat": item["location"].latitude,
            "lon": item["location"].longitude,
            "status": item["status_text"],
            "open": item["status"].state in ("open", "reduced"),
            "url": f"/offices/{item['location'].slug}",
        }
        for item in locations
        if item["location"].latitude is not None
    ]
    # Embedded in a <script type="application/json">: "<" escaped so no text can close the tag.
    return json.dumps(points).replace("<", "\\u003c")


@router.get("/services", response_class=HTMLResponse)
def services_page(
    request: Request,
    db: DbSession,
    actor: PublicActor,
    q: Annotated[str, Query(max_length=200)] = "",
    category: Annotated[str | None, Query(max_length=120)] = None,
    life_event: Annotated[str | None, Query(max_length=120)] = None,
) -> HTMLResponse:
    """Search by words, or browse by category and life event."""
    services = queries.list_services(db)
    heading = "Find a service"
    chosen = None
    for taxonomy, slug in ((CATEGORY_TAXONOMY, category), (LIFE_EVENT_TAXONOMY, life_event)):
        if slug:
            chosen = queries.term_by_slug(db, taxonomy, slug)
            if chosen is None:
                raise NotFoundError("category", slug)
            ids = {s.id for s in queries.list_services(db, taxonomy_term_id=chosen.id)}
            services = [s for s in services if s.id in ids]
            heading = chosen.name
    did_you_mean: list[str] = []
    searched = bool(q.strip())
    if searched:
        outcome = queries.search_services(db, q, candidates=services)
        services, did_you_mean = outcome.services, outcome.did_you_mean
    browsing = not searched and chosen is None
    return render(
        request,
        "directory/services.html",
        {
            "q": q,
            "heading": heading,
            "searched": searched,
            "browsing": browsing,
            "services": [] if browsing else services,
            "did_you_mean": did_you_mean,
            "categories": queries.terms_in(db, CATEGORY_TAXONOMY),
            "life_events": queries.terms_in(db, LIFE_EVENT_TAXONOMY),
            "category_of": {
                s.id: [t.name for t in queries.terms_of(s, CATEGORY_TAXONOMY)] for s in services
            },
            "assets": STATIC_PREFIX,
        },
        actor=actor,
    )


@router.get("/services/{slug}", response_class=HTMLResponse)
def service_page(
    request: Request,
    slug: str,
    db: DbSession,
    actor: PublicActor,
    lat: Annotated[float | None, Query(ge=-90, le=90)] = None,
    lon: Annotated[float | None, Query(ge=-180, le=180)] = None,
) -> HTMLResponse:
    service = queries.service_by_slug(db, slug)
    if service is None or service.status == "defunct":
        raise NotFoundError("service", slug)
    now = utcnow()
    if (lat is None) != (lon is None):
        lat = lon = None
    offices = []
    for nearby in queries.offices_for_service(db, service, lat=lat, lon=lon, now=now):
        card = _office_card(db, nearby.location, now)
        card["distance_km"] = nearby.distance_km
        card["queue"] = nearby.queue
        offices.append(card)
    related = [db.get(Service, rid) for rid in service.related_service_ids or []]
    phone = db.scalar(select(Phone.number).where(Phone.service_id == service.id).limit(1))
    return render(
        request,
        "directory/service.html",
        {
            "service": service,
            "offices": offices,
            "nearest_open": next(
                (o for o in offices if o["status"].state in ("open", "reduced")), None
            ),
            "near_point": lat is not None,
            "categories": queries.terms_of(service, CATEGORY_TAXONOMY),
            "life_events": queries.terms_of(service, LIFE_EVENT_TAXONOMY),
            "incidents": queries.active_incidents(db, service_id=service.id, now=now),
            "channels": [CHANNEL_LABELS.get(c, c) for c in service.channels or []],
            "related": [r for r in related if r is not None and r.status != "defunct"],
            "phone": phone,
            "map_data": _map_data(offices),
            "assets": STATIC_PREFIX,
        },
        actor=actor,
    )


@router.get("/offices", response_class=HTMLResponse)
def offices_page(request: Request, db: DbSession, actor: PublicActor) -> HTMLResponse:
    now = utcnow()
    cards = [_office_card(db, loc, now) for loc in queries.list_locations(db, physical_only=True)]
    return render(
        request,
        "directory/offices.html",
        {"offices": cards, "map_data": _map_data(cards), "assets": STATIC_PREFIX},
        actor=actor,
    )


@router.get("/offices/{slug}", response_class=HTMLResponse)
def office_page(request: Request, slug: str, db: DbSession, actor: PublicActor) -> HTMLResponse:
    location = queries.location_by_slug(db, slug)
    if location is None:
        raise NotFoundError("office", slug)
    now = utcnow()
    card = _office_card(db, location, now)
    schedules = queries.location_schedules(db, location)
    phone = db.scalar(select(Phone.number).where(Phone.location_id == location.id).limit(1))
    can_operate = queries.can_manage(actor, "queues:operate", location.organization)
    return render(
        request,
        "directory/office.html",
        {
            "office": card,
            "location": location,
            "weekly": queries.weekly_table(schedules),
            "exceptions": [
                s for s in schedules if s.is_exception and s.valid_to and s.valid_to >= now.date()
            ],
            "incidents": queries.active_incidents(db, location_id=location.id, now=now),
            "phone": phone,
            "can_operate": can_operate,
            "map_data": _map_data([card]),
            "assets": STATIC_PREFIX,
        },
        actor=actor,
    )


@router.get("/status", response_class=HTMLResponse)
def status_page(request: Request, db: DbSession, actor: PublicActor) -> HTMLResponse:
    now = utcnow()
    cards = [_office_card(db, loc, now) for loc in queries.list_locations(db, physical_only=True)]
    return render(
        request,
        "directory/status.html",
        {
            "offices": cards,
            "incidents": queries.active_incidents(db, now=now),
            "assets": STATIC_PREFIX,
        },
        actor=actor,
    )


# --- staff counter --------------------------------------------------------------------------


def _counter_location(db: Session, actor: Actor, slug: str) -> Location:
    location = queries.location_by_slug(db, slug)
    if location is None:
        raise NotFoundError("office", slug)
    if not queries.can_manage(actor, "queues:operate", location.organization):
        raise TownhallError(403, "permission_denied", f"You do not operate the queue of {slug}.")
    return location


@router.get("/counter/{slug}", response_class=HTMLResponse)
def counter_page(
    request: Request,
    slug: str,
    db: DbSession,
    actor: Operator,
    desk: Annotated[str, Query(max_length=40, pattern=r"^[A-Za-z0-9 -]*$")] = "1",
    message: Annotated[str, Query(max_length=200)] = "",
) -> HTMLResponse:
    location = _counter_location(db, actor, slug)
    now = utcnow()
    current = db.scalar(
        select(Ticket)
        .where(
            Ticket.location_id == location.id,
            Ticket.business_date == queries.local_date(location, now),
            Ticket.state == "called",
            Ticket.desk == desk,
        )
        .order_by(Ticket.called_at.desc())
        .limit(1)
    )
    return render(
        request,
        "directory/counter.html",
        {
            "office": _office_card(db, location, now),
            "location": location,
            "desk": desk or "1",
            "current": current,
            "current_service": db.get(Service, current.service_id)
            if current and current.service_id
            else None,
            "message": message,
            "assets": STATIC_PREFIX,
        },
        actor=actor,
    )


def _back(slug: str, desk: str, message: str) -> RedirectResponse:
    from urllib.parse import urlencode

    return RedirectResponse(
        f"/counter/{slug}?{urlencode({'desk': desk, 'message': message})}", status_code=303
    )


@router.post("/counter/{slug}/call-next")
def counter_call_next(
    request: Request,
    slug: str,
    db: DbSession,
    actor: Operator,
    desk: Annotated[str, Form(min_length=1, max_length=40, pattern=r"^[A-Za-z0-9 -]+$")],
) -> Response:
    _counter_location(db, actor, slug)
    outcome = actions.call_next_ticket(
        db, actor=actor, location_slug=slug, desk=desk, bus=request.app.state.runtime.events
    )
    message = (
        f"Ticket {outcome.ticket.code} called to desk {desk}." if outcome else "Nobody is waiting."
    )
    return _back(slug, desk, message)


@router.post("/counter/{slug}/issue")
def counter_issue(
    request: Request,
    slug: str,
    db: DbSession,
    actor: Operator,
    service: Annotated[str, Form(min_length=1, max_length=100)],
    desk: Annotated[str, Form(max_length=40)] = "1",
) -> Response:
    _counter_location(db, actor, slug)
    outcome = actions.issue_ticket(
        db,
        actor=actor,
        location_slug=slug,
        service_ref=service,
        bus=request.app.state.runtime.events,
    )
    return _back(slug, desk, f"Ticket {outcome.ticket.code} issued.")


@router.post("/counter/{slug}/finish")
def counter_finish(
    request: Request,
    slug: str,
    db: DbSession,
    actor: Operator,
    ticket: Annotated[str, Form(min_length=1, max_length=40, pattern=r"^[A-Za-z0-9-]+$")],
    outcome: Annotated[str, Form(pattern="^(served|no_show)$")],
    desk: Annotated[str, Form(max_length=40)] = "1",
) -> Response:
    import uuid

    _counter_location(db, actor, slug)
    actions.record_visit_event(
        db,
        actor=actor,
        location_slug=slug,
        event_id=f"th-{uuid.uuid4()}",
        type=outcome,
        ticket_code=ticket,
        desk=desk,
        bus=request.app.state.runtime.events,
    )
    label = "served" if outcome == "served" else "marked as no-show"
    return _back(slug, desk, f"Ticket {ticket} {label}.")
