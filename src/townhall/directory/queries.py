"""Reads for the directory: lookups, search, open-now, live office status, queues, nearby offices.

Nothing here commits. Functions that depend on the time take `now` so tests can pin it.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import Select, func, or_, select
from sqlalchemy.orm import Session

from townhall.actor import Actor
from townhall.db import utcnow
from townhall.directory import hours, search
from townhall.directory.models import (
    CATEGORY_TAXONOMY,
    LIFE_EVENT_TAXONOMY,
    DirectoryOrganization,
    Location,
    Schedule,
    Service,
    ServiceAtLocation,
    ServiceIncident,
    ServiceTerm,
    Taxonomy,
    TaxonomyTerm,
    Ticket,
    VisitEvent,
)

# Recent visits used to estimate how long one visit takes, and how recent a desk's last call
# must be for the desk to count as open.
SERVICE_TIME_SAMPLE = 30
SERVICE_TIME_WINDOW = timedelta(days=14)
DESK_ACTIVE_WINDOW = timedelta(minutes=45)


# --- permissions ------------------------------------------------------------------------------


def account_organization_id(owner: DirectoryOrganization | None) -> int | None:
    return owner.organization_id if owner is not None else None


def can_manage(actor: Actor, permission: str, owner: DirectoryOrganization | None) -> bool:
    """Admins and the system act anywhere; others only for their own organizations."""
    if not actor.can(permission):
        return False
    if actor.can("system:admin"):
        return True
    return owner is not None and owner.organization_id in actor.organization_ids


# --- lookups ------------------------------------------------------------------------------------


def service_by_slug(session: Session, slug: str) -> Service | None:
    return session.scalar(select(Service).where(Service.slug == slug))


def service_by_ref(session: Session, ref: str) -> Service | None:
    """A service by slug, HSDS id or code (what a kiosk knows)."""
    return session.scalar(
        select(Service).where(or_(Service.slug == ref, Service.id == ref, Service.code == ref))
    )


def location_by_slug(session: Session, slug: str) -> Location | None:
    return session.scalar(select(Location).where(Location.slug == slug))


def location_by_ref(session: Session, ref: str) -> Location | None:
    return session.scalar(select(Location).where(or_(Location.slug == ref, Location.id == ref)))


def directory_organization(session: Session, organization_id: int) -> DirectoryOrganization | None:
    return session.scalar(
        select(DirectoryOrganization).where(
            DirectoryOrganization.organization_id == organization_id
        )
    )


def taxonomy_by_name(session: Session, name: str) -> Taxonomy | None:
    return session.scalar(select(Taxonomy).where(Taxonomy.name == name))


def terms_of(service: Service, taxonomy: str) -> list[TaxonomyTerm]:
    return sorted(
        (st.term for st in service.terms if st.term.taxonomy == taxonomy), key=lambda t: t.name
    )


def terms_in(session: Session, taxonomy: str) -> list[tuple[TaxonomyTerm, int]]:
    """A taxonomy's terms with how many active services carry each."""
    rows = session.execute(
        select(TaxonomyTerm, func.count(Service.id))
        .join(Taxonomy, TaxonomyTerm.taxonomy_id == Taxonomy.id)
        .outerjoin(ServiceTerm, ServiceTerm.taxonomy_term_id == TaxonomyTerm.id)
        .outerjoin(Service, (Service.id == ServiceTerm.service_id) & (Service.status != "defunct"))
        .where(Taxonomy.name == taxonomy)
        .group_by(TaxonomyTerm.id)
        .order_by(TaxonomyTerm.name)
    ).all()
    return [(term, count) for term, count in rows]


def term_by_slug(session: Session, taxonomy: str, slug: str) -> TaxonomyTerm | None:
    return session.scalar(
        select(TaxonomyTerm)
        .join(Taxonomy, TaxonomyTerm.taxonomy_id == Taxonomy.id)
        .where(Taxonomy.name == taxonomy, TaxonomyTerm.slug == slug)
    )


def services_query(
    *,
    include_defunct: bool = False,
    organization_id: str | None = None,
    taxonomy_term_id: str | None = None,
    taxonomy_id: str | None = None,
    modified_after: datetime | None = None,
    location_ids: Sequence[str] | None = None,
) -> Select[tuple[Service]]:
    query = select(Service)
    if not include_defunct:
        query = query.where(Service.status != "defunct")
    if organization_id:
        query = query.where(Service.organization_id == organization_id)
    if taxonomy_term_id:
        query = query.where(
            Service.id.in_(
                select(ServiceTerm.service_id).where(
                    ServiceTerm.taxonomy_term_id == taxonomy_term_id
                )
            )
        )
    if taxonomy_id:
        query = query.where(
            Service.id.in_(
                select(ServiceTerm.service_id)
                .join(TaxonomyTerm, TaxonomyTerm.id == ServiceTerm.taxonomy_term_id)
                .where(TaxonomyTerm.taxonomy_id == taxonomy_id)
            )
        )
    if modified_after is not None:
        query = query.where(Service.updated_at >= modified_after)
    if location_ids is not None:
        query = query.where(
            Service.id.in_(
                select(ServiceAtLocation.service_id).where(
                    ServiceAtLocation.location_id.in_(location_ids)
                )
            )
        )
    return query.order_by(Service.name, Service.id)


def list_services(session: Session, **filters: Any) -> list[Service]:
    return list(session.scalars(services_query(**filters)))


def list_locations(session: Session, *, physical_only: bool = False) -> list[Location]:
    query = select(Location).order_by(Location.name)
    if physical_only:
        query = query.where(Location.location_type == "physical")
    return list(session.scalars(query))


# --- search -------------------------------------------------------------------------------------


def search_document(service: Service) -> search.Document:
    terms = " ".join(st.term.name for st in service.terms)
    return search.Document(
        key=service.id,
        fields={
            "name": f"{service.name} {service.alternate_name or ''}",
            "keywords": " ".join(service.keywords or []),
            "terms": terms,
            "description": f"{service.description} {service.eligibility_description or ''}",
        },
    )


@dataclass
class SearchOutcome:
    services: list[Service]
    scores: dict[str, float]
    did_you_mean: list[str] = field(default_factory=list)


def search_services(
    session: Session, q: str, *, candidates: Sequence[Service] | None = None
) -> SearchOutcome:
    """Active and temporarily closed services matching `q`, best first."""
    pool = list(candidates) if candidates is not None else list_services(session)
    documents = [search_document(s) for s in pool]
    hits = search.rank(documents, q)
    by_id = {s.id: s for s in pool}
    found = [by_id[h.key] for h in hits]
    did_you_mean = search.suggestions(documents, q) if len(found) < 3 else []
    return SearchOutcome(found, {h.key: h.score for h in hits}, did_you_mean)


# --- hours --------------------------------------------------------------------------------------


def location_schedules(session: Session, location: Location) -> list[Schedule]:
    return list(
        session.scalars(
            select(Schedule)
            .where(Schedule.location_id == location.id)
            .order_by(Schedule.is_exception, Schedule.valid_from, Schedule.byday, Schedule.opens_at)
        )
    )


def calendar_for(location: Location, schedules: Sequence[Schedule]) -> hours.Calendar:
    weekly = hours.weekly_from_rows(
        [
            (s.byday, s.opens_at, s.closes_at, s.valid_from, s.valid_to)
            for s in schedules
            if not s.is_exception and s.freq in (None, "WEEKLY")
        ]
    )
    exceptions = tuple(
        hours.ExceptionDay(
            first=s.valid_from,
            last=s.valid_to or s.valid_from,
            closed=s.closed,
            opens=s.opens_at,
            closes=s.closes_at,
            note=s.description or "",
        )
        for s in schedules
        if s.is_exception and s.valid_from is not None
    )
    return hours.Calendar(
        timezone=location.timezone,
        weekly=tuple(weekly),
        exceptions=exceptions,
        holiday_country=location.holiday_country,
        holiday_subdivision=location.holiday_subdivision,
        observes_public_holidays=location.observes_public_holidays,
    )


def weekly_table(schedules: Sequence[Schedule]) -> list[tuple[str, list[str]]]:
    """("Monday", ["08:30-12:00", "13:00-16:30"]) for each day, for pages (en dashes)."""
    names = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
    weekly = hours.weekly_from_rows(
        [(s.byday, s.opens_at, s.closes_at, None, None) for s in schedules if not s.is_exception]
    )
    table = []
    for day, name in enumerate(names):
        spans = sorted((w.opens, w.closes) for w in weekly if w.weekday == day)
        table.append((name, [f"{o:%H:%M}–{c:%H:%M}" for o, c in spans]))
    return table


# --- live status ---------------------------------------------------------------------------------


@dataclass
class OfficeStatus:
    state: str  # open | closed | reduced | unexpectedly_closed
    label: str
    message: str | None
    expected_return_at: datetime | None
    closes_at: datetime | None
    next_opens_at: datetime | None
    closed_reason: str | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "state": self.state,
            "label": self.label,
            "message": self.message,
            "expected_return_at": _iso(self.expected_return_at),
            "closes_at": _iso(self.closes_at),
            "next_opens_at": _iso(self.next_opens_at),
            "closed_reason": self.closed_reason,
        }


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


STATE_LABELS = {
    "open": "Open now",
    "closed": "Closed",
    "reduced": "Reduced service",
    "unexpectedly_closed": "Closed unexpectedly",
}


def office_status(
    session: Session, location: Location, now: datetime | None = None
) -> OfficeStatus:
    """What residents see: the staff-set condition layered over the schedule.

    An unexpected closure wins while it lasts (until its expected return, if given); "reduced"
    only shows while the schedule says open.
    """
    now = now or utcnow()
    state = hours.open_state(calendar_for(location, location_schedules(session, location)), now)
    closure_over = location.expected_return_at is not None and location.expected_return_at <= now
    if location.condition == "unexpectedly_closed" and not closure_over:
        return OfficeStatus(
            "unexpectedly_closed",
            STATE_LABELS["unexpectedly_closed"],
            location.status_message,
            location.expected_return_at,
            None,
            location.expected_return_at or state.next_opens_at,
            "unexpected closure",
        )
    if state.is_open:
        kind = "reduced" if location.condition == "reduced" else "open"
        message = location.status_message if location.condition != "normal" else None
        return OfficeStatus(kind, STATE_LABELS[kind], message, None, state.closes_at, None, None)
    return OfficeStatus(
        "closed",
        STATE_LABELS["closed"],
        location.status_message if location.condition == "reduced" else None,
        None,
        None,
        state.next_opens_at,
        state.closed_reason,
    )


def _local_label(value: datetime | None, tz: str, now: datetime) -> str | None:
    if value is None:
        return None
    zone = hours.zone(tz)
    local = value.astimezone(zone)
    if local.date() == now.astimezone(zone).date():
        return f"today {local:%H:%M}"
    return f"{local:%a %d %b %H:%M}"


def status_text(status: OfficeStatus, tz: str, now: datetime | None = None) -> str:
    """One line a resident reads: "Open now, until 16:30" / "Closed (Memorial Day), opens
    Tue 26 May 08:30", in the office's local time."""
    now = now or utcnow()
    if status.state in ("open", "reduced"):
        until = _local_label(status.closes_at, tz, now)
        return f"{status.label}, until {until.removeprefix('today ')}" if until else status.label
    if status.state == "unexpectedly_closed":
        back = _local_label(status.expected_return_at, tz, now)
        return f"{status.label}, expected back {back}" if back else status.label
    opens = _local_label(status.next_opens_at, tz, now)
    reason = f" ({status.closed_reason.split(': ', 1)[-1]})" if status.closed_reason else ""
    return f"Closed{reason}, opens {opens}" if opens else f"Closed{reason}"


def active_incidents(
    session: Session,
    *,
    service_id: str | None = None,
    location_id: str | None = None,
    now: datetime | None = None,
) -> list[ServiceIncident]:
    now = now or utcnow()
    query = select(ServiceIncident).where(
        ServiceIncident.resolved_at.is_(None), ServiceIncident.starts_at <= now
    )
    if service_id is not None:
        query = query.where(ServiceIncident.service_id == service_id)
    if location_id is not None:
        query = query.where(
            or_(ServiceIncident.location_id == location_id, ServiceIncident.location_id.is_(None))
        )
    return list(session.scalars(query.order_by(ServiceIncident.starts_at.desc())))


def local_date(location: Location, at: datetime) -> date:
    return at.astimezone(hours.zone(location.timezone)).date()


@dataclass
class QueueSummary:
    service_id: str
    service_slug: str
    service_name: str
    waiting: int
    estimated_wait_minutes: int
    average_visit_minutes: float
    served_today: int

    def as_dict(self) -> dict[str, Any]:
        return {
            "service": self.service_slug,
            "service_name": self.service_name,
            "waiting": self.waiting,
            "estimated_wait_minutes": self.estimated_wait_minutes,
            "average_visit_minutes": self.average_visit_minutes,
            "served_today": self.served_today,
        }


def open_desks(session: Session, location: Location, now: datetime) -> int:
    """Desks that called someone recently; the location's desk count when none did yet."""
    recent = session.scalar(
        select(func.count(func.distinct(VisitEvent.desk))).where(
            VisitEvent.location_id == location.id,
            VisitEvent.type == "called",
            VisitEvent.desk.is_not(None),
            VisitEvent.occurred_at >= now - DESK_ACTIVE_WINDOW,
            VisitEvent.occurred_at <= now,
        )
    )
    return max(1, recent or location.desks or 1)


def average_visit_minutes(
    session: Session, location: Location, service: Service, now: datetime
) -> float:
    """Mean desk time of the last visits (called to served), or the service's typical time."""
    rows = session.execute(
        select(Ticket.called_at, Ticket.served_at)
        .where(
            Ticket.location_id == location.id,
            Ticket.service_id == service.id,
            Ticket.served_at.is_not(None),
            Ticket.called_at.is_not(None),
            Ticket.served_at >= now - SERVICE_TIME_WINDOW,
        )
        .order_by(Ticket.served_at.desc())
        .limit(SERVICE_TIME_SAMPLE)
    ).all()
    durations = [
        (served - called).total_seconds() / 60
        for called, served in rows
        if served > called and (served - called) < timedelta(hours=3)
    ]
    if not durations:
        return float(service.typical_visit_minutes)
    return round(statistics.fmean(durations), 1)


def queue_summaries(
    session: Session, location: Location, now: datetime | None = None
) -> list[QueueSummary]:
    """Per service offered at the location: people waiting, estimated wait, served today.

    Estimated wait for someone taking a ticket now: the people ahead times the recent average
    visit time, shared by the desks that are open (desks serve every service's queue).
    """
    now = now or utcnow()
    today = local_date(location, now)
    services = list(
        session.scalars(
            select(Service)
            .join(ServiceAtLocation, ServiceAtLocation.service_id == Service.id)
            .where(ServiceAtLocation.location_id == location.id, Service.status != "defunct")
            .order_by(Service.name)
        )
    )
    waiting = dict(
        session.execute(
            select(Ticket.service_id, func.count())
            .where(
                Ticket.location_id == location.id,
                Ticket.business_date == today,
                Ticket.state == "waiting",
            )
            .group_by(Ticket.service_id)
        ).all()
    )
    served = dict(
        session.execute(
            select(Ticket.service_id, func.count())
            .where(
                Ticket.location_id == location.id,
                Ticket.business_date == today,
                Ticket.state == "served",
            )
            .group_by(Ticket.service_id)
        ).all()
    )
    desks = open_desks(session, location, now)
    result = []
    for service in services:
        count = waiting.get(service.id, 0)
        average = average_visit_minutes(session, location, service, now)
        result.append(
            QueueSummary(
                service.id,
                service.slug,
                service.name,
                count,
                math.ceil(count * average / desks),
                average,
                served.get(service.id, 0),
            )
        )
    return result


def office_live(session: Session, location: Location, now: datetime | None = None) -> dict:
    """Everything a live page shows for one office, as published on `office.<slug>`."""
    now = now or utcnow()
    queues = queue_summaries(session, location, now)
    status = office_status(session, location, now)
    return {
        "office": location.slug,
        "name": location.name,
        "status": status.as_dict(),
        "status_text": status_text(status, location.timezone, now),
        "queues": [q.as_dict() for q in queues],
        "waiting": sum(q.waiting for q in queues),
        "served_today": sum(q.served_today for q in queues),
        "incidents": [
            {"service": i.service.slug, "message": i.message, "id": i.id}
            for i in active_incidents(session, location_id=location.id, now=now)
        ],
        "at": now.isoformat(),
    }


def ticket(session: Session, location: Location, business_date: date, code: str) -> Ticket | None:
    return session.scalar(
        select(Ticket).where(
            Ticket.location_id == location.id,
            Ticket.business_date == business_date,
            Ticket.code == code,
        )
    )


def next_waiting_ticket(
    session: Session, location: Location, now: datetime, service_ids: Sequence[str] | None = None
) -> Ticket | None:
    query = select(Ticket).where(
        Ticket.location_id == location.id,
        Ticket.business_date == local_date(location, now),
        Ticket.state == "waiting",
    )
    if service_ids:
        query = query.where(Ticket.service_id.in_(service_ids))
    # Whoever has waited longest (a transfer counts from the transfer) goes first.
    return session.scalar(
        query.order_by(func.coalesce(Ticket.transferred_at, Ticket.issued_at), Ticket.id).limit(1)
    )


# --- nearby -------------------------------------------------------------------------------------


def distance_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance (haversine)."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 6371.0088 * 2 * math.asin(math.sqrt(min(1.0, a)))


@dataclass
class NearbyOffice:
    location: Location
    distance_km: float | None
    status: OfficeStatus
    queue: QueueSummary | None


def offices_for_service(
    session: Session,
    service: Service,
    *,
    lat: float | None = None,
    lon: float | None = None,
    now: datetime | None = None,
) -> list[NearbyOffice]:
    """The physical places offering `service`: open ones first, then by distance (when a point
    is given) or name."""
    now = now or utcnow()
    result = []
    for link in service.service_at_locations:
        location = link.location
        if location.location_type != "physical":
            continue
        distance = None
        if lat is not None and lon is not None and location.latitude is not None:
            distance = round(distance_km(lat, lon, location.latitude, location.longitude or 0), 2)
        queue = next(
            (q for q in queue_summaries(session, location, now) if q.service_id == service.id),
            None,
        )
        result.append(
            NearbyOffice(location, distance, office_status(session, location, now), queue)
        )
    open_states = ("open", "reduced")
    result.sort(
        key=lambda n: (
            n.status.state not in open_states,
            n.distance_km if n.distance_km is not None else math.inf,
            n.location.name,
        )
    )
    return result


def locations_near(
    session: Session, lat: float, lon: float, radius_m: float
) -> list[tuple[Location, float]]:
    found = []
    for location in list_locations(session):
        if location.latitude is None or location.longitude is None:
            continue
        km = distance_km(lat, lon, location.latitude, location.longitude)
        if km * 1000 <= radius_m:
            found.append((location, km))
    return sorted(found, key=lambda pair: pair[1])


def postcode_centroid(session: Session, postcode: str) -> tuple[float, float] | None:
    """The mean position of the directory's locations with this postcode."""
    rows = session.execute(
        select(Location.latitude, Location.longitude).where(
            Location.postal_code == postcode, Location.latitude.is_not(None)
        )
    ).all()
    if not rows:
        return None
    return (
        statistics.fmean(r[0] for r in rows),
        statistics.fmean(r[1] for r in rows if r[1] is not None),
    )


def category_taxonomy_names() -> tuple[str, str]:
    return CATEGORY_TAXONOMY, LIFE_EVENT_TAXONOMY


# --- aggregates for the insights slice (GROUP BY in SQL; small results) -------------------------

# Desk times outside this range are a forgotten "served" click, not a visit.
LONGEST_PLAUSIBLE_VISIT_SECONDS = 3 * 3600


def ticket_arrivals_per_hour(
    session: Session, *, start: datetime, end: datetime
) -> list[tuple[str, str, int]]:
    """(location id, UTC hour 'YYYY-MM-DD HH', tickets issued) for tickets issued in
    [start, end). Each location's own time zone is applied by the caller to this small
    result."""
    from townhall.sqltime import utc_hour

    hour = utc_hour(session, Ticket.issued_at).label("hour")
    query = (
        select(Ticket.location_id, hour, func.count())
        .where(Ticket.issued_at >= start, Ticket.issued_at < end)
        .group_by(Ticket.location_id, hour)
    )
    return [(str(loc), str(h), int(n)) for loc, h, n in session.execute(query)]


def ticket_handling_seconds(
    session: Session, *, start: datetime, end: datetime
) -> dict[str, tuple[float, int]]:
    """location id -> (mean desk seconds from call to served, visits counted) for visits
    served in [start, end)."""
    from townhall.sqltime import seconds_between

    seconds = seconds_between(session, Ticket.called_at, Ticket.served_at)
    query = (
        select(Ticket.location_id, func.avg(seconds), func.count())
        .where(
            Ticket.served_at >= start,
            Ticket.served_at < end,
            Ticket.called_at.is_not(None),
            seconds > 0,
            seconds < LONGEST_PLAUSIBLE_VISIT_SECONDS,
        )
        .group_by(Ticket.location_id)
    )
    return {str(loc): (float(avg), int(n)) for loc, avg, n in session.execute(query)}
