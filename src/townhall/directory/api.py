"""Native JSON routes for the directory under /api/v1/directory: staff edits, live status,
the kiosk's queue events, and the public reads the resident pages use."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Header, Path, Query, Request
from fastapi.responses import Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from townhall.accounts.auth import PublicActor, requires
from townhall.actor import Actor
from townhall.db import utcnow
from townhall.deps import DbSession
from townhall.directory import actions, cpsv, hsds, queries
from townhall.directory.hours import WEEKDAY_CODES
from townhall.directory.models import (
    CATEGORY_TAXONOMY,
    LIFE_EVENT_TAXONOMY,
    Location,
    Phone,
    Service,
    ServiceIncident,
    Ticket,
)
from townhall.directory.schemas import (
    CallNext,
    ExceptionCreate,
    ExceptionPublic,
    HoursPublic,
    HoursReplace,
    ImportResult,
    IncidentCreate,
    IncidentPublic,
    LocationCreate,
    LocationPublic,
    LocationUpdate,
    NearbyPublic,
    OfficeFollow,
    OfficeLive,
    OfficeStatusPublic,
    OfficeStatusUpdate,
    QueuePublic,
    ServiceCreate,
    ServicePage,
    ServicePublic,
    ServiceSummary,
    ServiceUpdate,
    TicketIssue,
    TicketPublic,
    VisitEventIn,
    VisitEventResult,
)
from townhall.errors import NotFoundError, TownhallError

router = APIRouter(prefix="/api/v1/directory", tags=["directory"])
Editor = Annotated[Actor, Depends(requires("directory:edit"))]
Operator = Annotated[Actor, Depends(requires("queues:operate"))]
AtParam = Annotated[
    datetime | None,
    Query(description="Answer as of this instant (with a time zone); default now."),
]


def _bus(request: Request) -> Any:
    return request.app.state.runtime.events


def _at(at: datetime | None) -> datetime:
    if at is None:
        return utcnow()
    if at.tzinfo is None:
        raise TownhallError(422, "invalid_request", "at: needs a time zone, e.g. 2026-05-01T09:00Z")
    return at


def service_summary(service: Service) -> ServiceSummary:
    return ServiceSummary(
        id=service.id,
        slug=service.slug,
        code=service.code,
        name=service.name,
        description=service.description,
        status=service.status,
        organization=service.organization.organization.slug if service.organization else None,
        categories=[t.name for t in queries.terms_of(service, CATEGORY_TAXONOMY)],
        life_events=[t.name for t in queries.terms_of(service, LIFE_EVENT_TAXONOMY)],
        updated_at=service.updated_at,
    )


def service_public(session: Session, service: Service) -> ServicePublic:
    related = []
    for related_id in service.related_service_ids or []:
        other = session.get(Service, related_id)
        if other is not None:
            related.append(other.slug)
    return ServicePublic(
        **service_summary(service).model_dump(),
        alternate_name=service.alternate_name,
        url=service.url,
        email=service.email,
        application_process=service.application_process,
        eligibility_description=service.eligibility_description,
        fees_description=service.fees_description,
        minimum_age=service.minimum_age,
        maximum_age=service.maximum_age,
        alert=service.alert,
        steps=service.steps or [],
        processing_days=service.processing_days,
        target_days=service.target_days,
        channels=service.channels or [],
        keywords=service.keywords or [],
        online_form_url=service.online_form_url,
        accepts_requests=service.accepts_requests,
        typical_visit_minutes=service.typical_visit_minutes,
        languages=service.languages or [],
        documents=[d.document for d in service.required_documents],
        cost_options=[
            {
                "option": c.option,
                "amount": c.amount,
                "currency": c.currency,
                "amount_description": c.amount_description,
            }
            for c in service.cost_options
        ],
        locations=sorted(link.location.slug for link in service.service_at_locations),
        related_services=related,
        created_at=service.created_at,
    )


def location_public(session: Session, location: Location, now: datetime) -> LocationPublic:
    schedules = queries.location_schedules(session, location)
    phone = session.scalar(
        select(Phone.number).where(Phone.location_id == location.id).order_by(Phone.id).limit(1)
    )
    return LocationPublic(
        **{
            name: getattr(location, name)
            for name in LocationPublic.model_fields
            if name not in ("organization", "phone", "hours", "exceptions", "status")
        },
        organization=location.organization.organization.slug if location.organization else None,
        phone=phone,
        hours=[
            HoursPublic(day=code, opens=s.opens_at, closes=s.closes_at)
            for s in schedules
            if not s.is_exception and s.opens_at and s.closes_at and s.byday
            for code in s.byday.split(",")
            if code.strip() in WEEKDAY_CODES
        ],
        exceptions=[
            ExceptionPublic(
                id=s.id,
                valid_from=s.valid_from,
                valid_to=s.valid_to,
                closed=s.closed,
                opens_at=s.opens_at,
                closes_at=s.closes_at,
                note=s.description,
            )
            for s in schedules
            if s.is_exception
        ],
        status=OfficeStatusPublic(**queries.office_status(session, location, now).as_dict()),
    )


def _service(session: Session, slug: str) -> Service:
    service = queries.service_by_slug(session, slug)
    if service is None or service.status == "defunct":
        raise NotFoundError("service", slug)
    return service


def _location(session: Session, slug: str) -> Location:
    location = queries.location_by_slug(session, slug)
    if location is None:
        raise NotFoundError("location", slug)
    return location


# --- services -----------------------------------------------------------------------------------


@router.get("/services", response_model=ServicePage, summary="Find services")
def list_services(
    db: DbSession,
    _actor: PublicActor,
    q: Annotated[str, Query(max_length=200, description="Words, typos forgiven")] = "",
    category: Annotated[str | None, Query(max_length=120, description="Category slug")] = None,
    life_event: Annotated[str | None, Query(max_length=120)] = None,
    organization: Annotated[str | None, Query(max_length=100)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0, le=100_000)] = 0,
) -> ServicePage:
    services = _filtered(db, category, life_event, organization)
    did_you_mean: list[str] = []
    if q.strip():
        outcome = queries.search_services(db, q, candidates=services)
        services, did_you_mean = outcome.services, outcome.did_you_mean
    return ServicePage(
        total=len(services),
        limit=limit,
        offset=offset,
        items=[service_summary(s) for s in services[offset : offset + limit]],
        did_you_mean=did_you_mean,
    )


def _filtered(
    db: Session, category: str | None, life_event: str | None, organization: str | None
) -> list[Service]:
    filters: dict[str, Any] = {}
    services = None
    for taxonomy, slug in ((CATEGORY_TAXONOMY, category), (LIFE_EVENT_TAXONOMY, life_event)):
        if slug:
            term = queries.term_by_slug(db, taxonomy, slug)
            if term is None:
                return []
            found = {s.id for s in queries.list_services(db, taxonomy_term_id=term.id)}
            services = found if services is None else services & found
    if organization:
        from townhall.accounts import queries as account_queries

        org = account_queries.organization_by_slug(db, organization)
        profile = queries.directory_organization(db, org.id) if org else None
        if profile is None:
            return []
        filters["organization_id"] = profile.id
    result = queries.list_services(db, **filters)
    return [s for s in result if services is None or s.id in services]


@router.post("/services", response_model=ServicePublic, status_code=201, summary="Add a service")
def create_service(
    body: ServiceCreate, db: DbSession, actor: Editor, request: Request
) -> ServicePublic:
    fields = body.action_fields(exclude_unset=False)
    fields = {k: v for k, v in fields.items() if v is not None and k != "name"}
    service = actions.create_service(
        db,
        actor=actor,
        slug=body.slug,
        name=body.name,
        organization_slug=body.organization,
        bus=_bus(request),
        **fields,
    )
    return service_public(db, service)


@router.get("/services/{slug}", response_model=ServicePublic, summary="One service")
def read_service(slug: str, db: DbSession, _actor: PublicActor) -> ServicePublic:
    return service_public(db, _service(db, slug))


@router.patch("/services/{slug}", response_model=ServicePublic, summary="Change a service")
def update_service(
    slug: str, body: ServiceUpdate, db: DbSession, actor: Editor, request: Request
) -> ServicePublic:
    _service(db, slug)
    fields = body.action_fields(exclude_unset=True)
    service = actions.update_service(db, actor=actor, slug=slug, bus=_bus(request), **fields)
    return service_public(db, service)


@router.delete("/services/{slug}", response_model=ServicePublic, summary="Retire a service")
def retire_service(slug: str, db: DbSession, actor: Editor) -> ServicePublic:
    return service_public(db, actions.retire_service(db, actor=actor, slug=slug))


@router.get(
    "/services/{slug}/offices", response_model=list[NearbyPublic], summary="Where to get it"
)
def service_offices(
    slug: str,
    db: DbSession,
    _actor: PublicActor,
    lat: Annotated[float | None, Query(ge=-90, le=90)] = None,
    lon: Annotated[float | None, Query(ge=-180, le=180)] = None,
    at: AtParam = None,
) -> list[NearbyPublic]:
    """Offices offering the service: open ones first, nearest first when a point is given."""
    if (lat is None) != (lon is None):
        raise TownhallError(422, "invalid_request", "lat: give lat and lon together")
    service = _service(db, slug)
    return [
        nearby_public(n)
        for n in queries.offices_for_service(db, service, lat=lat, lon=lon, now=_at(at))
    ]


def nearby_public(n: queries.NearbyOffice) -> NearbyPublic:
    location = n.location
    return NearbyPublic(
        office=location.slug,
        name=location.name,
        address=", ".join(p for p in (location.address_1, location.city) if p) or None,
        latitude=location.latitude,
        longitude=location.longitude,
        distance_km=n.distance_km,
        status=OfficeStatusPublic(**n.status.as_dict()),
        waiting=n.queue.waiting if n.queue else None,
        estimated_wait_minutes=n.queue.estimated_wait_minutes if n.queue else None,
    )


@router.post(
    "/services/{slug}/incidents",
    response_model=IncidentPublic,
    status_code=201,
    summary="Report a service incident",
)
def open_incident(
    slug: str, body: IncidentCreate, db: DbSession, actor: Editor, request: Request
) -> IncidentPublic:
    incident = actions.open_incident(
        db,
        actor=actor,
        service_slug=slug,
        message=body.message,
        location_slug=body.office,
        expected_end_at=body.expected_end_at,
        bus=_bus(request),
    )
    return incident_public(incident)


def incident_public(incident: ServiceIncident) -> IncidentPublic:
    return IncidentPublic(
        id=incident.id,
        service=incident.service.slug,
        office=incident.location.slug if incident.location else None,
        message=incident.message,
        starts_at=incident.starts_at,
        expected_end_at=incident.expected_end_at,
        resolved_at=incident.resolved_at,
    )


@router.post("/incidents/{incident_id}/resolve", response_model=IncidentPublic, summary="Resolve")
def resolve_incident(
    incident_id: Annotated[int, Path(ge=1, le=2**62)],
    db: DbSession,
    actor: Editor,
    request: Request,
) -> IncidentPublic:
    return incident_public(
        actions.resolve_incident(db, actor=actor, incident_id=incident_id, bus=_bus(request))
    )


@router.get("/incidents", response_model=list[IncidentPublic], summary="Current incidents")
def list_incidents(db: DbSession, _actor: PublicActor) -> list[IncidentPublic]:
    return [incident_public(i) for i in queries.active_incidents(db)]


# --- offices ------------------------------------------------------------------------------------


@router.get("/offices", response_model=list[LocationPublic], summary="Every office")
def list_offices(db: DbSession, _actor: PublicActor, at: AtParam = None) -> list[LocationPublic]:
    now = _at(at)
    return [location_public(db, loc, now) for loc in queries.list_locations(db)]


@router.post("/offices", response_model=LocationPublic, status_code=201, summary="Add an office")
def create_office(
    body: LocationCreate, db: DbSession, actor: Editor, request: Request
) -> LocationPublic:
    fields = body.model_dump(exclude={"slug", "name", "organization", "hours", "phone"})
    location = actions.create_location(
        db,
        actor=actor,
        slug=body.slug,
        name=body.name,
        organization_slug=body.organization,
        weekly_hours=[h.as_tuple() for h in body.hours],
        phone=body.phone,
        bus=_bus(request),
        **{k: v for k, v in fields.items() if v is not None},
    )
    return location_public(db, location, utcnow())


@router.get("/offices/{slug}", response_model=LocationPublic, summary="One office")
def read_office(
    slug: str, db: DbSession, _actor: PublicActor, at: AtParam = None
) -> LocationPublic:
    return location_public(db, _location(db, slug), _at(at))


@router.patch("/offices/{slug}", response_model=LocationPublic, summary="Change an office")
def update_office(slug: str, body: LocationUpdate, db: DbSession, actor: Editor) -> LocationPublic:
    _location(db, slug)
    fields = body.model_dump(exclude_unset=True)
    phone = fields.pop("phone", None)
    location = actions.update_location(db, actor=actor, slug=slug, phone=phone, **fields)
    return location_public(db, location, utcnow())


@router.put("/offices/{slug}/hours", response_model=LocationPublic, summary="Weekly hours")
def replace_hours(
    slug: str, body: HoursReplace, db: DbSession, actor: Editor, request: Request
) -> LocationPublic:
    _location(db, slug)
    location = actions.set_weekly_hours(
        db,
        actor=actor,
        slug=slug,
        weekly_hours=[h.as_tuple() for h in body.hours],
        bus=_bus(request),
    )
    return location_public(db, location, utcnow())


@router.post(
    "/offices/{slug}/exceptions",
    response_model=ExceptionPublic,
    status_code=201,
    summary="Special hours or a closure",
)
def add_exception(
    slug: str, body: ExceptionCreate, db: DbSession, actor: Editor, request: Request
) -> ExceptionPublic:
    _location(db, slug)
    schedule = actions.add_exception(
        db,
        actor=actor,
        slug=slug,
        first=body.valid_from,
        last=body.valid_to,
        closed=body.closed,
        opens=body.opens_at,
        closes=body.closes_at,
        note=body.note,
        bus=_bus(request),
    )
    return ExceptionPublic(
        id=schedule.id,
        valid_from=schedule.valid_from,
        valid_to=schedule.valid_to,
        closed=schedule.closed,
        opens_at=schedule.opens_at,
        closes_at=schedule.closes_at,
        note=schedule.description,
    )


@router.delete(
    "/offices/{slug}/exceptions/{schedule_id}", status_code=204, summary="Remove an exception"
)
def remove_exception(
    slug: str, schedule_id: str, db: DbSession, actor: Editor, request: Request
) -> None:
    _location(db, slug)
    actions.remove_exception(db, actor=actor, slug=slug, schedule_id=schedule_id, bus=_bus(request))


@router.put("/offices/{slug}/status", response_model=OfficeLive, summary="Set office status")
def set_status(
    slug: str, body: OfficeStatusUpdate, db: DbSession, actor: Editor, request: Request
) -> OfficeLive:
    _location(db, slug)
    location = actions.set_office_status(
        db,
        actor=actor,
        slug=slug,
        condition=body.condition,
        message=body.message,
        expected_return_at=body.expected_return_at,
        bus=_bus(request),
        followers=status_followers(request),
    )
    return OfficeLive.model_validate(queries.office_live(db, location))


def status_followers(request: Request) -> actions.StatusFollowers:
    return actions.StatusFollowers.from_settings(
        request.app.state.settings, request.app.state.runtime.jobs
    )


@router.post(
    "/offices/{slug}/follow", status_code=201, summary="Follow an office's live status by email"
)
def follow_office(
    slug: str, body: OfficeFollow, db: DbSession, actor: PublicActor, request: Request
) -> dict[str, Any]:
    """The address gets a confirmation with a one-click unsubscribe link, then an email
    when the office closes unexpectedly, reopens, changes its service, or its wait crosses
    a threshold (see docs/directory.md for the rule)."""
    _location(db, slug)
    actions.follow_office_status(
        db, actor=actor, slug=slug, email=body.email, followers=status_followers(request)
    )
    return {"ok": True}


@router.get("/offices/{slug}/live", response_model=OfficeLive, summary="Live status and queues")
def office_live(slug: str, db: DbSession, _actor: PublicActor, at: AtParam = None) -> OfficeLive:
    return OfficeLive.model_validate(queries.office_live(db, _location(db, slug), _at(at)))


@router.get("/status", response_model=list[OfficeLive], summary="Every office, live")
def status_board(db: DbSession, _actor: PublicActor, at: AtParam = None) -> list[OfficeLive]:
    now = _at(at)
    return [
        OfficeLive.model_validate(queries.office_live(db, loc, now))
        for loc in queries.list_locations(db, physical_only=True)
    ]


# --- queues (kiosk and counter) -----------------------------------------------------------------


def ticket_public(db: Session, ticket: Ticket, location: Location) -> TicketPublic:
    service = db.get(Service, ticket.service_id) if ticket.service_id else None
    return TicketPublic(
        ticket=ticket.code,
        office=location.slug,
        service=service.slug if service else None,
        state=ticket.state,
        desk=ticket.desk,
        business_date=ticket.business_date,
        issued_at=ticket.issued_at,
        called_at=ticket.called_at,
        served_at=ticket.served_at,
    )


def _visit_result(db: Session, outcome: actions.VisitOutcome, slug: str) -> VisitEventResult:
    location = _location(db, slug)
    return VisitEventResult(
        duplicate=outcome.duplicate,
        event_id=outcome.event.event_id,
        ticket=ticket_public(db, outcome.ticket, location),
        queue=[QueuePublic(**q.as_dict()) for q in queries.queue_summaries(db, location)],
    )


@router.post(
    "/offices/{slug}/visits",
    response_model=VisitEventResult,
    summary="Record a queue event (kiosk API)",
    responses={200: {"description": "A duplicate of an event already stored"}},
)
def post_visit_event(
    slug: str, body: VisitEventIn, db: DbSession, actor: Operator, request: Request
) -> VisitEventResult:
    """Ticket issued, called, served, no-show or transferred. Idempotent by `event_id`; events
    may come out of order (each sets its own time on the ticket)."""
    _location(db, slug)
    outcome = actions.record_visit_event(
        db,
        actor=actor,
        location_slug=slug,
        event_id=body.event_id,
        type=body.type,
        ticket_code=body.ticket,
        service_ref=body.service,
        occurred_at=body.occurred_at,
        desk=body.desk,
        to_service_ref=body.to_service,
        bus=_bus(request),
    )
    return _visit_result(db, outcome, slug)


# A kiosk that lost an answer sends the same key again and gets the same ticket back.
IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=100,
        pattern=r"^[A-Za-z0-9._:-]+$",
        description="Makes a retried call safe: the same key at the same office answers the "
        "first call's ticket (`duplicate: true`) instead of acting twice.",
    ),
]


@router.post(
    "/offices/{slug}/tickets",
    response_model=VisitEventResult,
    status_code=201,
    summary="Issue",
    responses={200: {"description": "A retry with an Idempotency-Key already used"}},
)
def issue_ticket(
    slug: str,
    body: TicketIssue,
    db: DbSession,
    actor: Operator,
    request: Request,
    response: Response,
    idempotency_key: IdempotencyKey = None,
) -> VisitEventResult:
    _location(db, slug)
    outcome = actions.issue_ticket(
        db,
        actor=actor,
        location_slug=slug,
        service_ref=body.service,
        bus=_bus(request),
        idempotency_key=idempotency_key,
    )
    if outcome.duplicate:
        response.status_code = 200
    return _visit_result(db, outcome, slug)


@router.post(
    "/offices/{slug}/call-next", response_model=VisitEventResult | None, summary="Call next"
)
def call_next(
    slug: str,
    body: CallNext,
    db: DbSession,
    actor: Operator,
    request: Request,
    idempotency_key: IdempotencyKey = None,
) -> VisitEventResult | None:
    """Call whoever has waited longest; `null` when nobody is waiting."""
    _location(db, slug)
    outcome = actions.call_next_ticket(
        db,
        actor=actor,
        location_slug=slug,
        desk=body.desk,
        service_refs=body.services,
        bus=_bus(request),
        idempotency_key=idempotency_key,
    )
    return _visit_result(db, outcome, slug) if outcome else None


# --- import and export ---------------------------------------------------------------------------


@router.get(
    "/cpsv",
    summary="The directory as CPSV-AP (Turtle or JSON-LD)",
    response_class=Response,
    responses={200: {"content": {"text/turtle": {}, "application/ld+json": {}}}},
)
def export_cpsv(
    request: Request,
    db: DbSession,
    _actor: PublicActor,
    format: Annotated[str, Query(pattern="^(turtle|jsonld)$")] = "turtle",
) -> Response:
    body = cpsv.serialize(db, request.app.state.settings.base_url, format)
    return Response(body, media_type=cpsv.FORMATS[format])


@router.post("/import/hsds", response_model=ImportResult, summary="Import HSDS documents")
def import_hsds(
    db: DbSession,
    actor: Editor,
    payload: Annotated[Any, Body(description="An HSDS object, a list, a page or tabular form.")],
) -> ImportResult:
    report = hsds.import_hsds(db, actor=actor, payload=payload)
    return ImportResult(**report.as_dict())
