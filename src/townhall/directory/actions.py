"""Writes for the directory. Each checks permission, changes, records an audit entry in the same
transaction and queues its events for after commit. None commits.

Permissions: `directory:edit` for the directory, office status and incidents; `queues:operate`
for visit events. Both are limited to the actor's own organizations, except for administrators
and the system (see `queries.can_manage`).
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from townhall.accounts import actions as account_actions
from townhall.accounts import queries as account_queries
from townhall.actor import Actor
from townhall.audit.actions import record
from townhall.db import utcnow
from townhall.directory import hours, queries
from townhall.directory.models import (
    CATEGORY_TAXONOMY,
    CHANNELS,
    LIFE_EVENT_TAXONOMY,
    LOCATION_TYPES,
    OFFICE_CONDITIONS,
    SERVICE_STATUSES,
    VISIT_EVENT_TYPES,
    CostOption,
    DirectoryOrganization,
    Location,
    OfficeStatusSignal,
    Phone,
    RequiredDocument,
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
from townhall.errors import ConflictError, NotFoundError, PermissionDenied, TownhallError
from townhall.events import EventBus, publish_after_commit
from townhall.notify import actions as notify

if TYPE_CHECKING:
    from townhall.config import Settings
    from townhall.jobs import JobQueue

SERVICE_FIELDS = (
    "name",
    "alternate_name",
    "description",
    "url",
    "email",
    "status",
    "interpretation_services",
    "application_process",
    "fees_description",
    "wait_time",
    "accreditations",
    "eligibility_description",
    "minimum_age",
    "maximum_age",
    "assured_date",
    "assurer_email",
    "licenses",
    "alert",
    "steps",
    "processing_days",
    "target_days",
    "channels",
    "keywords",
    "online_form_url",
    "accepts_requests",
    "typical_visit_minutes",
    "languages",
    "code",
)
LOCATION_FIELDS = (
    "name",
    "alternate_name",
    "description",
    "transportation",
    "url",
    "location_type",
    "latitude",
    "longitude",
    "address_1",
    "address_2",
    "city",
    "region",
    "state_province",
    "postal_code",
    "country",
    "timezone",
    "holiday_country",
    "holiday_subdivision",
    "observes_public_holidays",
    "desks",
    "wheelchair_accessible",
    "district_code",
    "email",
    "languages",
    "accessibility",
    "external_identifier",
    "external_identifier_type",
)
# Events older than this are refused: a kiosk replaying a week-old buffer is a bug to look at.
VISIT_EVENT_MAX_AGE = timedelta(days=7)
VISIT_EVENT_MAX_SKEW = timedelta(minutes=5)
PUBLIC_STATUS_CHANNEL = "public.status"


def invalid(field: str, message: str) -> TownhallError:
    return TownhallError(
        422,
        "invalid_request",
        f"{field}: {message}",
        errors=[{"loc": ["body", field], "message": message, "type": "value_error"}],
    )


def slugify(text: str, max_length: int = 100) -> str:
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-")
    return (slug or "item")[:max_length].strip("-") or "item"


def _jsonable(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    return value.isoformat() if hasattr(value, "isoformat") else value


def _require(actor: Actor, permission: str, owner: DirectoryOrganization | None, what: str) -> None:
    actor.require(permission)
    if not queries.can_manage(actor, permission, owner):
        raise PermissionDenied(f"{permission} for {what}")


# --- organizations ------------------------------------------------------------------------------


def ensure_directory_organization(
    session: Session,
    *,
    actor: Actor,
    organization_slug: str,
    create_name: str | None = None,
    hsds_id: str | None = None,
    **hsds_fields: Any,
) -> DirectoryOrganization:
    """The directory profile of an accounts organization, created on first use.

    With `create_name`, a missing accounts organization is created too (needs
    `organizations:manage`); without it, a missing one is a 404.
    """
    organization = account_queries.organization_by_slug(session, organization_slug)
    if organization is None:
        if create_name is None:
            raise NotFoundError("organization", organization_slug)
        organization = account_actions.create_organization(
            session, actor=actor, slug=organization_slug, name=create_name, kind="office"
        )
    profile = queries.directory_organization(session, organization.id)
    if profile is not None:
        return profile
    actor.require("directory:edit")
    profile = DirectoryOrganization(
        id=hsds_id or str(uuid.uuid4()),
        organization_id=organization.id,
        **{k: v for k, v in hsds_fields.items() if v is not None},
    )
    profile.organization = organization
    session.add(profile)
    session.flush()
    record(
        session,
        actor=actor,
        action="directory.organization.create",
        object_type="directory_organization",
        object_id=profile.id,
        changes={
            "organization": organization_slug,
            **{k: _jsonable(v) for k, v in hsds_fields.items()},
        },
    )
    return profile


# --- taxonomy -----------------------------------------------------------------------------------


def ensure_taxonomy(session: Session, name: str, description: str = "", **fields: Any) -> Taxonomy:
    taxonomy = queries.taxonomy_by_name(session, name)
    if taxonomy is None:
        taxonomy = Taxonomy(name=name, description=description, **fields)
        session.add(taxonomy)
        session.flush()
    return taxonomy


def ensure_term(session: Session, taxonomy_name: str, name: str) -> TaxonomyTerm:
    taxonomy = ensure_taxonomy(
        session,
        taxonomy_name,
        {
            CATEGORY_TAXONOMY: "Service categories of this directory.",
            LIFE_EVENT_TAXONOMY: "Life events residents go through (EU CPSV-AP public services "
            "are grouped by life event).",
        }.get(taxonomy_name, ""),
    )
    code = slugify(name, 100)
    term = session.scalar(
        select(TaxonomyTerm).where(
            TaxonomyTerm.taxonomy_id == taxonomy.id, TaxonomyTerm.code == code
        )
    )
    if term is None:
        term = TaxonomyTerm(
            taxonomy_id=taxonomy.id,
            code=code,
            slug=code,
            name=name,
            description=name,
            taxonomy=taxonomy.name,
        )
        session.add(term)
        session.flush()
    return term


def _set_terms(session: Session, service: Service, taxonomy: str, names: Sequence[str]) -> None:
    wanted = [
        ensure_term(session, taxonomy, n) for n in dict.fromkeys(n.strip() for n in names) if n
    ]
    wanted_ids = {t.id for t in wanted}
    for link in list(service.terms):
        if link.term.taxonomy == taxonomy and link.taxonomy_term_id not in wanted_ids:
            service.terms.remove(link)
    present = {link.taxonomy_term_id for link in service.terms}
    for term in wanted:
        if term.id not in present:
            link = ServiceTerm(taxonomy_term_id=term.id)
            link.term = term
            service.terms.append(link)


# --- services -----------------------------------------------------------------------------------


def _check_service_values(values: dict[str, Any]) -> None:
    if "status" in values and values["status"] not in SERVICE_STATUSES:
        raise invalid("status", f"must be one of {list(SERVICE_STATUSES)}")
    unknown = [c for c in values.get("channels") or [] if c not in CHANNELS]
    if unknown:
        raise invalid("channels", f"unknown channel(s) {unknown}; use {list(CHANNELS)}")
    low, high = values.get("minimum_age"), values.get("maximum_age")
    if low is not None and high is not None and low > high:
        raise invalid("minimum_age", "must not be above maximum_age")


def _set_documents(service: Service, documents: Sequence[dict[str, Any] | str]) -> None:
    service.required_documents.clear()
    for n, item in enumerate(documents):
        doc = {"document": item} if isinstance(item, str) else dict(item)
        service.required_documents.append(
            RequiredDocument(
                id=doc.get("id") or str(uuid.uuid4()),
                document=doc["document"],
                uri=doc.get("uri"),
                position=n,
            )
        )


def _set_costs(service: Service, costs: Sequence[dict[str, Any]]) -> None:
    service.cost_options.clear()
    for n, item in enumerate(costs):
        amount = item.get("amount")
        service.cost_options.append(
            CostOption(
                id=item.get("id") or str(uuid.uuid4()),
                option=item.get("option"),
                amount=Decimal(str(amount)) if amount is not None else None,
                currency=item.get("currency"),
                amount_description=item.get("amount_description"),
                valid_from=item.get("valid_from"),
                valid_to=item.get("valid_to"),
                position=n,
            )
        )


def _set_locations(session: Session, service: Service, refs: Sequence[str]) -> None:
    wanted = []
    for ref in dict.fromkeys(refs):
        location = queries.location_by_ref(session, ref)
        if location is None:
            raise NotFoundError("location", ref)
        wanted.append(location)
    wanted_ids = {loc.id for loc in wanted}
    for link in list(service.service_at_locations):
        if link.location_id not in wanted_ids:
            service.service_at_locations.remove(link)
    present = {link.location_id for link in service.service_at_locations}
    for location in wanted:
        if location.id not in present:
            link = ServiceAtLocation(location_id=location.id)
            link.location = location
            service.service_at_locations.append(link)


def _set_phone(session: Session, *, number: str | None, **owner: str) -> None:
    column, owner_id = next(iter(owner.items()))
    session.execute(
        delete(Phone).where(
            getattr(Phone, column) == owner_id,
            Phone.contact_id.is_(None),
            Phone.service_at_location_id.is_(None),
        )
    )
    if number:
        session.add(Phone(number=number, type="voice", **owner))


def _related_ids(session: Session, refs: Sequence[str]) -> list[str]:
    ids = []
    for ref in refs:
        other = queries.service_by_ref(session, ref)
        if other is None:
            raise NotFoundError("service", ref)
        ids.append(other.id)
    return ids


def create_service(
    session: Session,
    *,
    actor: Actor,
    slug: str,
    name: str,
    organization_slug: str,
    documents: Sequence[dict[str, Any] | str] = (),
    cost_options: Sequence[dict[str, Any]] = (),
    categories: Sequence[str] = (),
    life_events: Sequence[str] = (),
    locations: Sequence[str] = (),
    related_services: Sequence[str] = (),
    phone: str | None = None,
    service_id: str | None = None,
    bus: EventBus | None = None,
    **fields: Any,
) -> Service:
    """Create a service of an organization; 409 if the slug or code is taken."""
    actor.require("directory:edit")
    owner = ensure_directory_organization(session, actor=actor, organization_slug=organization_slug)
    _require(actor, "directory:edit", owner, organization_slug)
    unknown = set(fields) - set(SERVICE_FIELDS)
    if unknown:
        raise AssertionError(f"unknown service fields {unknown}")
    values = {k: v for k, v in fields.items() if v is not None}
    _check_service_values(values)
    if queries.service_by_slug(session, slug):
        raise ConflictError(f"A service with slug {slug!r} already exists.")
    if values.get("code") and queries.service_by_ref(session, values["code"]):
        raise ConflictError(f"A service with code {values['code']!r} already exists.")
    service = Service(
        id=service_id or str(uuid.uuid4()), slug=slug, name=name, organization_id=owner.id, **values
    )
    service.organization = owner
    service.related_service_ids = _related_ids(session, related_services)
    session.add(service)
    session.flush()
    _set_documents(service, documents)
    _set_costs(service, cost_options)
    _set_terms(session, service, CATEGORY_TAXONOMY, categories)
    _set_terms(session, service, LIFE_EVENT_TAXONOMY, life_events)
    _set_locations(session, service, locations)
    _set_phone(session, number=phone, service_id=service.id)
    session.flush()
    record(
        session,
        actor=actor,
        action="directory.service.create",
        object_type="directory_service",
        object_id=service.id,
        changes={
            "slug": slug,
            "name": name,
            "organization": organization_slug,
            **{k: _jsonable(v) for k, v in values.items()},
            "documents": [d if isinstance(d, str) else d.get("document") for d in documents],
            "categories": list(categories),
            "life_events": list(life_events),
            "locations": list(locations),
        },
    )
    publish_after_commit(session, bus, "public.directory", "service.created", {"slug": slug})
    return service


def update_service(
    session: Session,
    *,
    actor: Actor,
    slug: str,
    bus: EventBus | None = None,
    **fields: Any,
) -> Service:
    """PATCH semantics: only the given fields change; lists given replace the old ones."""
    service = queries.service_by_slug(session, slug)
    if service is None:
        raise NotFoundError("service", slug)
    _require(actor, "directory:edit", service.organization, slug)
    changes: dict[str, Any] = {}
    scalar = {k: v for k, v in fields.items() if k in SERVICE_FIELDS}
    _check_service_values({k: v for k, v in scalar.items() if v is not None})
    if scalar.get("code") and scalar["code"] != service.code:
        other = queries.service_by_ref(session, scalar["code"])
        if other is not None and other.id != service.id:
            raise ConflictError(f"A service with code {scalar['code']!r} already exists.")
    for name, value in scalar.items():
        if name == "name" and value is None:
            continue
        if getattr(service, name) != value:
            changes[name] = [_jsonable(getattr(service, name)), _jsonable(value)]
            setattr(service, name, value)
    if fields.get("documents") is not None:
        _set_documents(service, fields["documents"])
        changes["documents"] = [
            d if isinstance(d, str) else d.get("document") for d in fields["documents"]
        ]
    if fields.get("cost_options") is not None:
        _set_costs(service, fields["cost_options"])
        changes["cost_options"] = [_jsonable(c.get("amount")) for c in fields["cost_options"]]
    for key, taxonomy in (("categories", CATEGORY_TAXONOMY), ("life_events", LIFE_EVENT_TAXONOMY)):
        if fields.get(key) is not None:
            _set_terms(session, service, taxonomy, fields[key])
            changes[key] = list(fields[key])
    if fields.get("locations") is not None:
        _set_locations(session, service, fields["locations"])
        changes["locations"] = list(fields["locations"])
    if fields.get("related_services") is not None:
        service.related_service_ids = _related_ids(session, fields["related_services"])
        changes["related_services"] = list(fields["related_services"])
    if "phone" in fields and fields["phone"] is not None:
        _set_phone(session, number=fields["phone"], service_id=service.id)
        changes["phone"] = fields["phone"]
    unknown = set(fields) - set(SERVICE_FIELDS) - {
        "documents", "cost_options", "categories", "life_events", "locations",
        "related_services", "phone",
    }  # fmt: skip
    if unknown:
        raise AssertionError(f"unknown service fields {unknown}")
    if not changes:
        return service
    service.updated_at = utcnow()
    session.flush()
    record(
        session,
        actor=actor,
        action="directory.service.update",
        object_type="directory_service",
        object_id=service.id,
        changes=changes,
    )
    publish_after_commit(
        session,
        bus,
        "public.directory",
        "service.updated",
        {"slug": slug, "fields": sorted(changes)},
    )
    return service


def retire_service(session: Session, *, actor: Actor, slug: str) -> Service:
    """Mark a service defunct (HSDS status): it leaves searches and pages, the record stays."""
    service = queries.service_by_slug(session, slug)
    if service is None or service.status == "defunct":
        raise NotFoundError("service", slug)
    _require(actor, "directory:edit", service.organization, slug)
    record(
        session,
        actor=actor,
        action="directory.service.retire",
        object_type="directory_service",
        object_id=service.id,
        changes={"status": [service.status, "defunct"]},
    )
    service.status = "defunct"
    service.updated_at = utcnow()
    return service


# --- locations (offices) ------------------------------------------------------------------------


def _check_location_values(values: dict[str, Any]) -> None:
    if "timezone" in values and not hours.is_valid_zone(values["timezone"]):
        raise invalid("timezone", f"unknown IANA time zone {values['timezone']!r}")
    if "location_type" in values and values["location_type"] not in LOCATION_TYPES:
        raise invalid("location_type", f"must be one of {list(LOCATION_TYPES)}")
    country = values.get("holiday_country")
    if country and not hours.is_valid_holiday_country(country, values.get("holiday_subdivision")):
        raise invalid(
            "holiday_country",
            f"no public holiday calendar for {country!r} / {values.get('holiday_subdivision')!r}",
        )
    if values.get("desks") is not None and values["desks"] < 1:
        raise invalid("desks", "must be at least 1")


def create_location(
    session: Session,
    *,
    actor: Actor,
    slug: str,
    name: str,
    organization_slug: str | None,
    weekly_hours: Sequence[tuple[int, time, time]] = (),
    phone: str | None = None,
    location_id: str | None = None,
    bus: EventBus | None = None,
    **fields: Any,
) -> Location:
    """Create an office or other location. `weekly_hours` are (weekday, opens, closes) in the
    location's local time."""
    actor.require("directory:edit")
    owner = None
    if organization_slug is not None:
        owner = ensure_directory_organization(
            session, actor=actor, organization_slug=organization_slug
        )
    _require(actor, "directory:edit", owner, organization_slug or "locations without organization")
    unknown = set(fields) - set(LOCATION_FIELDS)
    if unknown:
        raise AssertionError(f"unknown location fields {unknown}")
    values = {k: v for k, v in fields.items() if v is not None}
    _check_location_values(values)
    if queries.location_by_slug(session, slug):
        raise ConflictError(f"A location with slug {slug!r} already exists.")
    location = Location(
        id=location_id or str(uuid.uuid4()),
        slug=slug,
        name=name,
        organization_id=owner.id if owner else None,
        **values,
    )
    if location.address_1 and not location.address_id:
        location.address_id = str(uuid.uuid4())
    session.add(location)
    session.flush()
    _replace_weekly(session, location, weekly_hours)
    _set_phone(session, number=phone, location_id=location.id)
    record(
        session,
        actor=actor,
        action="directory.location.create",
        object_type="directory_location",
        object_id=location.id,
        changes={
            "slug": slug,
            "name": name,
            "organization": organization_slug,
            **{k: _jsonable(v) for k, v in values.items()},
            "weekly_hours": [[d, o.isoformat(), c.isoformat()] for d, o, c in weekly_hours],
        },
    )
    publish_after_commit(session, bus, "public.directory", "location.created", {"slug": slug})
    return location


def update_location(
    session: Session, *, actor: Actor, slug: str, phone: str | None = None, **fields: Any
) -> Location:
    location = _location_for(session, actor, slug, "directory:edit")
    unknown = set(fields) - set(LOCATION_FIELDS)
    if unknown:
        raise AssertionError(f"unknown location fields {unknown}")
    values = {k: v for k, v in fields.items() if v is not None or k in ("holiday_subdivision",)}
    merged = {
        "holiday_country": location.holiday_country,
        "holiday_subdivision": location.holiday_subdivision,
        **values,
    }
    _check_location_values(merged)
    changes = {}
    for name, value in values.items():
        if getattr(location, name) != value:
            changes[name] = [_jsonable(getattr(location, name)), _jsonable(value)]
            setattr(location, name, value)
    if phone is not None:
        _set_phone(session, number=phone, location_id=location.id)
        changes["phone"] = phone
    if changes:
        location.updated_at = utcnow()
        record(
            session,
            actor=actor,
            action="directory.location.update",
            object_type="directory_location",
            object_id=location.id,
            changes=changes,
        )
    return location


def _location_for(session: Session, actor: Actor, slug: str, permission: str) -> Location:
    location = queries.location_by_slug(session, slug)
    if location is None:
        raise NotFoundError("location", slug)
    _require(actor, permission, location.organization, slug)
    return location


def _check_weekly(weekly_hours: Sequence[tuple[int, time, time]]) -> None:
    by_day: dict[int, list[tuple[time, time]]] = {}
    for weekday, opens, closes in weekly_hours:
        if not 0 <= weekday <= 6:
            raise invalid("hours", f"weekday {weekday} is not 0 (Monday) to 6 (Sunday)")
        if opens == closes:
            raise invalid("hours", f"an interval opens and closes at {opens:%H:%M}")
        by_day.setdefault(weekday, []).append((opens, closes))
    for weekday, spans in by_day.items():
        spans.sort()
        for i, (opens, closes) in enumerate(spans[:-1]):
            crosses_midnight = closes <= opens
            if crosses_midnight or closes > spans[i + 1][0]:
                raise invalid("hours", f"intervals of {hours.WEEKDAY_CODES[weekday]} overlap")


def _replace_weekly(
    session: Session, location: Location, weekly_hours: Sequence[tuple[int, time, time]]
) -> None:
    _check_weekly(weekly_hours)
    session.execute(
        delete(Schedule).where(
            Schedule.location_id == location.id,
            Schedule.service_id.is_(None),
            Schedule.service_at_location_id.is_(None),
            Schedule.is_exception.is_(False),
        )
    )
    for weekday, opens, closes in sorted(weekly_hours):
        session.add(
            Schedule(
                location_id=location.id,
                freq="WEEKLY",
                wkst="MO",
                interval=1,
                byday=hours.WEEKDAY_CODES[weekday],
                opens_at=opens,
                closes_at=closes,
                description=f"Open {hours.WEEKDAY_CODES[weekday]} {opens:%H:%M}-{closes:%H:%M} "
                f"({location.timezone})",
            )
        )
    session.flush()


def set_weekly_hours(
    session: Session,
    *,
    actor: Actor,
    slug: str,
    weekly_hours: Sequence[tuple[int, time, time]],
    bus: EventBus | None = None,
) -> Location:
    """Replace the office's weekly opening hours."""
    location = _location_for(session, actor, slug, "directory:edit")
    before = [
        [s.byday, _jsonable(s.opens_at), _jsonable(s.closes_at)]
        for s in queries.location_schedules(session, location)
        if not s.is_exception
    ]
    _replace_weekly(session, location, weekly_hours)
    location.updated_at = utcnow()
    record(
        session,
        actor=actor,
        action="directory.location.hours",
        object_type="directory_location",
        object_id=location.id,
        changes={
            "before": before,
            "after": [
                [hours.WEEKDAY_CODES[d], o.isoformat(), c.isoformat()] for d, o, c in weekly_hours
            ],
        },
    )
    _publish_office(session, bus, location)
    return location


def add_exception(
    session: Session,
    *,
    actor: Actor,
    slug: str,
    first: date,
    last: date | None,
    closed: bool,
    opens: time | None = None,
    closes: time | None = None,
    note: str = "",
    bus: EventBus | None = None,
) -> Schedule:
    """Special hours or a closure for a range of local dates (replaces the weekly hours)."""
    location = _location_for(session, actor, slug, "directory:edit")
    last = last or first
    if last < first:
        raise invalid("valid_to", "must not be before valid_from")
    if (last - first).days > 366:
        raise invalid("valid_to", "an exception covers at most a year")
    if not closed and (opens is None or closes is None):
        raise invalid("opens_at", "special hours need opens_at and closes_at (or closed: true)")
    if not closed and opens == closes:
        raise invalid("closes_at", "must differ from opens_at")
    schedule = Schedule(
        location_id=location.id,
        is_exception=True,
        closed=closed,
        valid_from=first,
        valid_to=last,
        opens_at=None if closed else opens,
        closes_at=None if closed else closes,
        description=note or ("Closed" if closed else "Special opening hours"),
    )
    session.add(schedule)
    session.flush()
    location.updated_at = utcnow()
    record(
        session,
        actor=actor,
        action="directory.location.exception.add",
        object_type="directory_location",
        object_id=location.id,
        changes={
            "schedule_id": schedule.id,
            "first": first.isoformat(),
            "last": last.isoformat(),
            "closed": closed,
            "opens": _jsonable(opens),
            "closes": _jsonable(closes),
            "note": note,
        },
    )
    _publish_office(session, bus, location)
    return schedule


def remove_exception(
    session: Session, *, actor: Actor, slug: str, schedule_id: str, bus: EventBus | None = None
) -> None:
    location = _location_for(session, actor, slug, "directory:edit")
    schedule = session.get(Schedule, schedule_id)
    if schedule is None or schedule.location_id != location.id or not schedule.is_exception:
        raise NotFoundError("schedule", schedule_id)
    record(
        session,
        actor=actor,
        action="directory.location.exception.remove",
        object_type="directory_location",
        object_id=location.id,
        changes={"schedule_id": schedule_id},
    )
    session.delete(schedule)
    location.updated_at = utcnow()
    session.flush()
    _publish_office(session, bus, location)


# --- live status -------------------------------------------------------------------------------


def _publish_office(
    session: Session, bus: EventBus | None, location: Location, type: str = "office.updated"
) -> None:
    if bus is None:
        return
    session.flush()
    live = queries.office_live(session, location)
    publish_after_commit(session, bus, f"office.{location.slug}", type, live)
    publish_after_commit(session, bus, PUBLIC_STATUS_CHANNEL, type, live)


def set_office_status(
    session: Session,
    *,
    actor: Actor,
    slug: str,
    condition: str,
    message: str | None = None,
    expected_return_at: datetime | None = None,
    bus: EventBus | None = None,
    now: datetime | None = None,
    followers: StatusFollowers | None = None,
) -> Location:
    """Staff say how the office is doing: normal, reduced service or unexpectedly closed.
    With `followers`, a real change is announced to the office's status followers at once
    (without, the scheduled watch announces it within a minute)."""
    now = now or utcnow()
    location = _location_for(session, actor, slug, "directory:edit")
    if condition not in OFFICE_CONDITIONS:
        raise invalid("condition", f"must be one of {list(OFFICE_CONDITIONS)}")
    if condition != "normal" and not (message or "").strip():
        raise invalid("message", f"a {condition.replace('_', ' ')} office needs a public message")
    if expected_return_at is not None:
        if expected_return_at.tzinfo is None:
            raise invalid("expected_return_at", "needs a time zone")
        if expected_return_at <= now:
            raise invalid("expected_return_at", "must be in the future")
        if condition == "normal":
            raise invalid("expected_return_at", "only for a closed or reduced office")
    changes = {
        "condition": [location.condition, condition],
        "message": [location.status_message, message],
        "expected_return_at": [
            _jsonable(location.expected_return_at),
            _jsonable(expected_return_at),
        ],
    }
    new_message = (message or None) if condition != "normal" else None
    changed = (
        location.condition != condition
        or (location.status_message or None) != new_message
        or location.expected_return_at != expected_return_at
    )
    location.condition = condition
    location.status_message = message if condition != "normal" else None
    location.expected_return_at = expected_return_at
    location.status_changed_at = now
    record(
        session,
        actor=actor,
        action="directory.office.status",
        object_type="directory_location",
        object_id=location.id,
        changes=changes,
    )
    _publish_office(session, bus, location, "office.status")
    if followers is not None:
        watch_office_status(
            session, location=location, followers=followers, now=now, staff_change=changed
        )
    return location


def open_incident(
    session: Session,
    *,
    actor: Actor,
    service_slug: str,
    message: str,
    location_slug: str | None = None,
    expected_end_at: datetime | None = None,
    bus: EventBus | None = None,
) -> ServiceIncident:
    service = queries.service_by_slug(session, service_slug)
    if service is None:
        raise NotFoundError("service", service_slug)
    location = None
    if location_slug is not None:
        location = _location_for(session, actor, location_slug, "directory:edit")
    else:
        _require(actor, "directory:edit", service.organization, service_slug)
    if not message.strip():
        raise invalid("message", "must not be empty")
    now = utcnow()
    if expected_end_at is not None and expected_end_at <= now:
        raise invalid("expected_end_at", "must be in the future")
    incident = ServiceIncident(
        service_id=service.id,
        location_id=location.id if location else None,
        message=message,
        starts_at=now,
        expected_end_at=expected_end_at,
        created_by=actor.label,
    )
    incident.service = service
    incident.location = location
    session.add(incident)
    session.flush()
    record(
        session,
        actor=actor,
        action="directory.incident.open",
        object_type="directory_incident",
        object_id=incident.id,
        changes={
            "service": service_slug,
            "location": location_slug,
            "message": message,
            "expected_end_at": _jsonable(expected_end_at),
        },
    )
    _publish_incident(session, bus, incident, "service.incident")
    return incident


def resolve_incident(
    session: Session, *, actor: Actor, incident_id: int, bus: EventBus | None = None
) -> ServiceIncident:
    incident = session.get(ServiceIncident, incident_id)
    if incident is None or incident.resolved_at is not None:
        raise NotFoundError("incident", incident_id)
    owner = incident.location.organization if incident.location else incident.service.organization
    _require(actor, "directory:edit", owner, f"incident {incident_id}")
    incident.resolved_at = utcnow()
    record(
        session,
        actor=actor,
        action="directory.incident.resolve",
        object_type="directory_incident",
        object_id=incident.id,
        changes={"resolved_at": incident.resolved_at.isoformat()},
    )
    _publish_incident(session, bus, incident, "service.incident_resolved")
    return incident


def _publish_incident(
    session: Session, bus: EventBus | None, incident: ServiceIncident, type: str
) -> None:
    data = {
        "id": incident.id,
        "service": incident.service.slug,
        "message": incident.message,
        "location": incident.location.slug if incident.location else None,
        "expected_end_at": _jsonable(incident.expected_end_at),
        "resolved": incident.resolved_at is not None,
    }
    publish_after_commit(session, bus, f"service.{incident.service.slug}", type, data)
    publish_after_commit(session, bus, PUBLIC_STATUS_CHANNEL, type, data)
    locations = (
        [incident.location]
        if incident.location
        else [link.location for link in incident.service.service_at_locations]
    )
    for location in locations:
        _publish_office(session, bus, location)


# --- queues -------------------------------------------------------------------------------------


@dataclass
class VisitOutcome:
    event: VisitEvent
    ticket: Ticket
    duplicate: bool


def _fold(ticket: Ticket, event: VisitEvent) -> None:
    """Apply one event to its ticket. Order-independent: each type sets its own timestamp
    (the latest wins for repeated calls), and the state follows from the timestamps."""
    at = event.occurred_at
    if event.type == "issued":
        ticket.issued_at = at
        ticket.first_service_id = event.service_id
        if ticket.transferred_at is None:
            ticket.service_id = event.service_id
    elif event.type == "called":
        if ticket.called_at is None or at > ticket.called_at:
            ticket.called_at = at
            ticket.desk = event.desk
    elif event.type == "served":
        ticket.served_at = at
    elif event.type == "no_show":
        ticket.no_show_at = at
    elif event.type == "transferred" and (
        ticket.transferred_at is None or at > ticket.transferred_at
    ):
        ticket.transferred_at = at
        ticket.service_id = event.to_service_id
    if ticket.service_id is None:
        ticket.service_id = event.service_id
    ticket.state = _ticket_state(ticket)
    ticket.updated_at = utcnow()


def _ticket_state(ticket: Ticket) -> str:
    if ticket.served_at is not None:
        return "served"
    if ticket.no_show_at is not None:
        return "no_show"
    called_after_transfer = ticket.called_at is not None and (
        ticket.transferred_at is None or ticket.called_at > ticket.transferred_at
    )
    return "called" if called_after_transfer else "waiting"


def record_visit_event(
    session: Session,
    *,
    actor: Actor,
    location_slug: str,
    event_id: str,
    type: str,
    ticket_code: str,
    service_ref: str | None = None,
    occurred_at: datetime | None = None,
    desk: str | None = None,
    to_service_ref: str | None = None,
    bus: EventBus | None = None,
    now: datetime | None = None,
) -> VisitOutcome:
    """Store a queue event and fold it into its ticket. Idempotent by `event_id`: the same
    event again returns the stored one (`duplicate`); a different event under a used id is a
    409. Events may arrive in any order."""
    now = now or utcnow()
    location = _location_for(session, actor, location_slug, "queues:operate")
    if type not in VISIT_EVENT_TYPES:
        raise invalid("type", f"must be one of {list(VISIT_EVENT_TYPES)}")
    sent_time = occurred_at
    occurred_at = occurred_at or now
    if occurred_at.tzinfo is None:
        raise invalid("occurred_at", "needs a time zone")
    if occurred_at > now + VISIT_EVENT_MAX_SKEW:
        raise invalid("occurred_at", "is in the future")
    if occurred_at < now - VISIT_EVENT_MAX_AGE:
        raise invalid("occurred_at", "is more than 7 days old")
    service = None
    if service_ref:
        service = queries.service_by_ref(session, service_ref)
        if service is None:
            raise NotFoundError("service", service_ref)
    to_service = None
    if type == "transferred":
        if not to_service_ref:
            raise invalid("to_service", "a transfer names the service it goes to")
        to_service = queries.service_by_ref(session, to_service_ref)
        if to_service is None:
            raise NotFoundError("service", to_service_ref)
    if type == "issued" and service is None:
        raise invalid("service", "an issued ticket names its service")

    existing = session.scalar(select(VisitEvent).where(VisitEvent.event_id == event_id))
    if existing is not None:
        return _duplicate(session, existing, location, type, ticket_code, sent_time)

    offered = {link.service_id for link in _links(session, location)}
    for named in (service, to_service):
        if named is not None and named.id not in offered:
            raise invalid("service", f"{named.slug} is not offered at {location.slug}")
    if to_service is not None and service is not None and to_service.id == service.id:
        raise invalid("to_service", "a transfer goes to another service")

    business_date = queries.local_date(location, occurred_at)
    ticket = queries.ticket(session, location, business_date, ticket_code)
    if ticket is None and type != "issued":
        # Past midnight at a night counter the ticket belongs to the previous day.
        ticket = queries.ticket(session, location, business_date - timedelta(days=1), ticket_code)
        if ticket is not None and ticket.state in ("served", "no_show"):
            ticket = None
    if ticket is not None and type == "issued" and ticket.issued_at is not None:
        raise ConflictError(
            f"Ticket {ticket_code} was already issued at {location.slug} on {business_date}."
        )
    if ticket is None:
        ticket = Ticket(
            location_id=location.id,
            business_date=business_date,
            code=ticket_code,
            service_id=service.id if service else None,
            state="waiting",
        )
        session.add(ticket)
    event = VisitEvent(
        event_id=event_id,
        location_id=location.id,
        type=type,
        ticket_code=ticket_code,
        service_id=service.id if service else None,
        to_service_id=to_service.id if to_service else None,
        desk=desk,
        occurred_at=occurred_at,
        received_at=now,
        recorded_by=actor.label,
    )
    _fold(ticket, event)
    try:
        with session.begin_nested():
            session.flush()
            event.ticket_id = ticket.id
            session.add(event)
            session.flush()
    except IntegrityError:
        # A concurrent sender stored the same event id or ticket first; a retry sees it.
        raise ConflictError("A concurrent queue event conflicted; send it again.") from None
    record(
        session,
        actor=actor,
        action=f"directory.visit.{type}",
        object_type="directory_ticket",
        object_id=ticket.id,
        changes={
            "event_id": event_id,
            "location": location.slug,
            "ticket": ticket_code,
            "service": service.slug if service else None,
            "to_service": to_service.slug if to_service else None,
            "desk": desk,
            "occurred_at": occurred_at.isoformat(),
            "state": ticket.state,
        },
    )
    _publish_office(session, bus, location, "queue.updated")
    return VisitOutcome(event, ticket, duplicate=False)


def _links(session: Session, location: Location) -> list[ServiceAtLocation]:
    return list(
        session.scalars(
            select(ServiceAtLocation).where(ServiceAtLocation.location_id == location.id)
        )
    )


def _duplicate(
    session: Session,
    existing: VisitEvent,
    location: Location,
    type: str,
    ticket_code: str,
    occurred_at: datetime | None,
) -> VisitOutcome:
    """The stored event again. A retry without `occurred_at` matches on the rest: its
    arrival time is not the event's time, and a kiosk's retry must not become a conflict."""
    same = (
        existing.location_id == location.id
        and existing.type == type
        and existing.ticket_code == ticket_code
        and (occurred_at is None or abs((existing.occurred_at - occurred_at).total_seconds()) < 1)
    )
    if not same:
        raise ConflictError(
            f"Event id {existing.event_id} was already used for a different event "
            f"({existing.type} of ticket {existing.ticket_code})."
        )
    ticket = session.get(Ticket, existing.ticket_id)
    assert ticket is not None
    return VisitOutcome(existing, ticket, duplicate=True)


def issue_ticket(
    session: Session,
    *,
    actor: Actor,
    location_slug: str,
    service_ref: str,
    bus: EventBus | None = None,
    now: datetime | None = None,
    idempotency_key: str | None = None,
) -> VisitOutcome:
    """A kiosk or counter hands out the next ticket number for a service (A001, A002...).

    With `idempotency_key`, a retry of the same press (a kiosk that lost the answer) gets the
    ticket already issued (`duplicate`) instead of a second one; the same key for another
    service is a 409."""
    now = now or utcnow()
    location = _location_for(session, actor, location_slug, "queues:operate")
    service = queries.service_by_ref(session, service_ref)
    if service is None:
        raise NotFoundError("service", service_ref)
    event_id = _keyed_event_id(location, "issue", idempotency_key)
    replay = _replayed(session, event_id, service_id=service.id)
    if replay is not None:
        return replay
    prefix = (service.code or service.slug)[:1].upper()
    today = queries.local_date(location, now)
    issued = (
        session.scalar(
            select(func.count())
            .select_from(Ticket)
            .where(Ticket.location_id == location.id, Ticket.business_date == today)
        )
        or 0
    )
    number = issued + 1
    while queries.ticket(session, location, today, f"{prefix}{number:03d}") is not None:
        number += 1
    return record_visit_event(
        session,
        actor=actor,
        location_slug=location_slug,
        event_id=event_id,
        type="issued",
        ticket_code=f"{prefix}{number:03d}",
        service_ref=service.id,
        occurred_at=now,
        bus=bus,
        now=now,
    )


def call_next_ticket(
    session: Session,
    *,
    actor: Actor,
    location_slug: str,
    desk: str,
    service_refs: Sequence[str] = (),
    bus: EventBus | None = None,
    now: datetime | None = None,
    idempotency_key: str | None = None,
) -> VisitOutcome | None:
    """Call whoever has waited longest (for the given services, or any); None if nobody waits.
    With `idempotency_key`, a retry answers the ticket that call took (`duplicate`) instead of
    calling a second person; the same key from another desk is a 409."""
    now = now or utcnow()
    location = _location_for(session, actor, location_slug, "queues:operate")
    event_id = _keyed_event_id(location, "call", idempotency_key)
    replay = _replayed(session, event_id, desk=desk)
    if replay is not None:
        return replay
    service_ids = []
    for ref in service_refs:
        service = queries.service_by_ref(session, ref)
        if service is None:
            raise NotFoundError("service", ref)
        service_ids.append(service.id)
    ticket = queries.next_waiting_ticket(session, location, now, service_ids)
    if ticket is None:
        return None
    return record_visit_event(
        session,
        actor=actor,
        location_slug=location_slug,
        event_id=event_id,
        type="called",
        ticket_code=ticket.code,
        service_ref=ticket.service_id,
        desk=desk,
        occurred_at=now,
        bus=bus,
        now=now,
    )


def _keyed_event_id(location: Location, operation: str, key: str | None) -> str:
    """The event id of a keyed kiosk call: the same key at the same office for the same
    operation always names the same event (hashed: keys are the client's, ids are ours)."""
    if key is None:
        return f"th-{uuid.uuid4()}"
    digest = hashlib.sha256(f"{location.id}|{operation}|{key}".encode()).hexdigest()
    return f"key-{operation}-{digest[:48]}"


def _replayed(
    session: Session, event_id: str, *, service_id: str | None = None, desk: str | None = None
) -> VisitOutcome | None:
    """The outcome of an earlier call with the same idempotency key, or None. A key reused
    for a different request (another service, another desk) is a 409."""
    existing = session.scalar(select(VisitEvent).where(VisitEvent.event_id == event_id))
    if existing is None:
        return None
    if (service_id is not None and existing.service_id != service_id) or (
        desk is not None and existing.desk != desk
    ):
        raise ConflictError("This Idempotency-Key was already used for a different request.")
    ticket = session.get(Ticket, existing.ticket_id)
    assert ticket is not None
    return VisitOutcome(existing, ticket, duplicate=True)


# --- followers of an office's live status -------------------------------------------------------

OFFICE_STATUS_EVENT = "office.status_changed"
# A wait announcement per office at most this often: a queue that grows and shrinks around a
# threshold all afternoon must not fill an inbox.
WAIT_ALERT_MIN_INTERVAL = timedelta(minutes=15)
# Falling back below a threshold counts only under this share of it (hysteresis).
WAIT_ALERT_HYSTERESIS = 0.8
# Changes between these states follow the published hours: routine, so for systems only.
_ROUTINE_STATES = frozenset({"open", "closed"})
_ROUTINE_WITH_CONDITION = frozenset({"closed", "reduced"})


@dataclass(frozen=True)
class StatusFollowers:
    """Where office-status announcements go and what their links say."""

    jobs: JobQueue | None
    base_url: str
    site_name: str
    wait_thresholds: tuple[int, ...] = (30, 60)

    @classmethod
    def from_settings(cls, settings: Settings, jobs: JobQueue | None) -> StatusFollowers:
        return cls(
            jobs=jobs,
            base_url=settings.base_url.rstrip("/"),
            site_name=settings.site_name,
            wait_thresholds=tuple(sorted(m for m in settings.office_wait_alert_minutes if m > 0)),
        )

    def office_url(self, slug: str) -> str:
        return f"{self.base_url}/offices/{slug}"

    def unsubscribe_url(self, token: str) -> str:
        return f"{self.base_url}/notify/unsubscribe/{token}"


def status_topic(location: Location) -> str:
    return f"office-status:{location.slug}"


def wait_band(minutes: int, thresholds: Sequence[int], previous: int = 0) -> int:
    """How many thresholds the wait has reached. Going down needs the wait to fall under
    `WAIT_ALERT_HYSTERESIS` of the threshold, so a wait hovering at one does not flap."""
    band = sum(1 for t in thresholds if minutes >= t)
    if band < previous:
        holding = sum(1 for t in thresholds[:previous] if minutes >= t * WAIT_ALERT_HYSTERESIS)
        band = max(band, holding)
    return band


def _longest_wait(live: dict[str, Any]) -> int:
    if live["status"]["state"] not in ("open", "reduced"):
        return 0
    return max((q["estimated_wait_minutes"] for q in live["queues"]), default=0)


def _change_kind(before: OfficeStatusSignal, state: str, band: int) -> str | None:
    """`status` (people and systems hear), `schedule` (systems only) or `wait`; None when
    nothing meaningful changed."""
    if before.state != state:
        pair = {before.state, state}
        routine = pair <= _ROUTINE_STATES or pair <= _ROUTINE_WITH_CONDITION
        return "schedule" if routine else "status"
    if band != before.wait_band:
        return "wait"
    return None


def watch_office_status(
    session: Session,
    *,
    location: Location,
    followers: StatusFollowers,
    now: datetime | None = None,
    staff_change: bool = False,
) -> str | None:
    """Compare the office's live status with what its followers were last told; announce a
    meaningful change (email with one-click unsubscribe, webhooks) and remember it.

    The rule (docs/directory.md): a change of state involving a reduced service or an
    unexpected closure, and any change staff make (`staff_change`), goes to everyone; the
    daily opening and closing that the published hours already say go to webhooks only; a
    longest estimated wait crossing one of `wait_thresholds` goes to everyone, with
    hysteresis and at most once per `WAIT_ALERT_MIN_INTERVAL`. The first look at an office
    is recorded silently. Returns the kind announced (`status`, `schedule`, `wait`) or None.
    Idempotent: the same status twice announces once.
    """
    now = now or utcnow()
    session.flush()
    live = queries.office_live(session, location, now)
    state = live["status"]["state"]
    longest = _longest_wait(live)
    signal = session.get(OfficeStatusSignal, location.id, with_for_update=True)
    if signal is None:
        band = wait_band(longest, followers.wait_thresholds)
        session.add(
            OfficeStatusSignal(
                location_id=location.id,
                state=state,
                wait_band=band,
                longest_wait_minutes=longest,
                changed_at=now,
                checked_at=now,
            )
        )
        if not staff_change:
            return None
        kind: str | None = "status"
    else:
        band = wait_band(longest, followers.wait_thresholds, signal.wait_band)
        kind = "status" if staff_change else _change_kind(signal, state, band)
        if (
            kind == "wait"
            and signal.wait_announced_at is not None
            and now - signal.wait_announced_at < WAIT_ALERT_MIN_INTERVAL
        ):
            kind = None  # not recorded either: told later if it still holds
        if kind is not None:
            # Written only on news: a minute-by-minute watch would otherwise rewrite every
            # office's row all day for nothing.
            signal.checked_at = now
            signal.longest_wait_minutes = longest
            signal.state, signal.wait_band, signal.changed_at = state, band, now
            if kind == "wait":
                signal.wait_announced_at = now
    if kind is not None:
        _announce_office_status(session, location, live, kind, longest, followers)
    return kind


def _announce_office_status(
    session: Session,
    location: Location,
    live: dict[str, Any],
    kind: str,
    longest: int,
    followers: StatusFollowers,
) -> None:
    status = live["status"]
    notify.notify_topics(
        session,
        topics=[status_topic(location)],
        event_type=OFFICE_STATUS_EVENT,
        email_template="office.status_changed",
        personalisation={
            "site_name": followers.site_name,
            "office_name": location.name,
            "status_label": status["label"],
            "status_text": live["status_text"],
            "message": status["message"] or "",
            "longest_wait": f"{longest} minutes" if status["state"] in ("open", "reduced") else "-",
            "office_url": followers.office_url(location.slug),
        },
        payload={"change": kind, **live},
        reference=status_topic(location),
        unsubscribe_url_for=lambda subscription: followers.unsubscribe_url(subscription.token),
        jobs=followers.jobs,
        channels=("webhook",) if kind == "schedule" else ("email", "webhook"),
    )


def follow_office_status(
    session: Session,
    *,
    actor: Actor,
    slug: str,
    email: str,
    followers: StatusFollowers,
) -> str:
    """A resident follows an office's live status by email. A new follower gets a
    confirmation carrying the one-click unsubscribe link (an address typed in by someone else
    can leave at once). Idempotent. Returns the unsubscribe URL."""
    location = queries.location_by_slug(session, slug)
    if location is None:
        raise NotFoundError("office", slug)
    topic = status_topic(location)
    unsubscribe_url = notify.follow_by_email(
        session,
        actor=actor,
        topic=topic,
        email=email,
        personalisation={
            "site_name": followers.site_name,
            "topic_label": f"the live status of {location.name}",
        },
        unsubscribe_url_for=followers.unsubscribe_url,
        jobs=followers.jobs,
    )
    # The baseline, so the first check after this does not announce old news.
    watch_office_status(session, location=location, followers=followers)
    return unsubscribe_url
