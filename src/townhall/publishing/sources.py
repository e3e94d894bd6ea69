"""What each pipeline reads from the operational records, and how each column is treated.

Reads go straight to the service-request and directory tables (read-only, column by column):
the pipeline is the one place that turns those records into open data, and listing here what
it reads and drops is what makes it reviewable. Direct identifiers are never selected at all.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import h3
from sqlalchemy import select
from sqlalchemy.orm import Session

from townhall.accounts.models import User
from townhall.directory.models import Location, Ticket
from townhall.directory.models import Service as DirectoryService
from townhall.publishing.anonymity import QuasiIdentifier
from townhall.publishing.models import PublicationPipeline
from townhall.publishing.scrub import scrub_text
from townhall.service_requests.models import RequestService, ServiceRequest

ALL = "*"
UNLOCATED = "unlocated"

SERVICE_REQUEST_IDENTIFIERS = (
    "tracking_code", "submission_token", "resident_name", "resident_email", "resident_phone",
    "resident_user_id", "resident_key_hash", "device_id", "account_id", "api_token_id",
    "client_hash", "address", "address_id", "zipcode", "lat", "long (exact)", "media_url",
    "attribute_values", "assigned_user_id", "status_notes", "internal notes", "messages",
    "attachments",
)  # fmt: skip
OFFICE_VISIT_IDENTIFIERS = ("ticket code", "desk", "event ids", "recorded_by", "exact times")


@dataclass
class Extract:
    rows: list[dict[str, Any]]
    quasi_identifiers: list[QuasiIdentifier]
    columns: list[tuple[str, str, str]]  # name, Frictionless type, description
    dp_records: list[tuple[date, str, str]]  # week start, area, category
    dp_areas: list[str]
    dp_categories: list[str]
    dropped: tuple[str, ...]
    free_text: dict[str, Any]
    area_label: str
    category_label: str


def _local(moment: datetime, zone: ZoneInfo) -> datetime:
    return moment.astimezone(zone)


def week_start(moment: datetime, zone: ZoneInfo) -> date:
    local = _local(moment, zone).date()
    return local - timedelta(days=local.weekday())


def time_levels(granularity: str) -> tuple[str, ...]:
    return ("hour", "day", "week", "month") if granularity == "hour" else ("day", "week", "month")


def time_generaliser(granularity: str, zone: ZoneInfo) -> Callable[[Any, int], str]:
    levels = time_levels(granularity)

    def generalise(moment: datetime, level: int) -> str:
        local = _local(moment, zone)
        name = levels[level]
        if name == "hour":
            return local.strftime("%Y-%m-%dT%H:00")
        if name == "day":
            return local.date().isoformat()
        if name == "week":
            return (local.date() - timedelta(days=local.weekday())).isoformat()
        return local.strftime("%Y-%m")

    return generalise


def location_levels(pipeline: PublicationPipeline) -> tuple[str, ...]:
    if pipeline.location_mode == "h3":
        resolution = pipeline.h3_resolution
        cells = tuple(f"h3:{r}" for r in range(resolution, max(resolution - 3, 4), -1))
        return (*cells, "district", "city")
    return ("district", "city")


def location_generaliser(levels: tuple[str, ...]) -> Callable[[Any, int], str]:
    def generalise(raw: tuple[float | None, float | None, str | None], level: int) -> str:
        lat, lon, district = raw
        name = levels[level]
        if name == "city":
            return ALL
        if name == "district":
            return district or UNLOCATED
        if lat is None or lon is None:
            return UNLOCATED
        return h3.latlng_to_cell(lat, lon, int(name.split(":")[1]))

    return generalise


def _window(pipeline: PublicationPipeline, now: datetime) -> datetime:
    return now - timedelta(days=pipeline.window_days)


def staff_names(session: Session) -> list[str]:
    return [name for name in session.scalars(select(User.display_name)) if name]


def service_requests(session: Session, pipeline: PublicationPipeline, now: datetime) -> Extract:
    zone = ZoneInfo(pipeline.timezone)
    services = {s.id: s for s in session.scalars(select(RequestService))}
    staff = staff_names(session)
    query = select(
        ServiceRequest.service_id,
        ServiceRequest.requested_at,
        ServiceRequest.closed_at,
        ServiceRequest.status,
        ServiceRequest.resolution,
        ServiceRequest.lat,
        ServiceRequest.long,
        ServiceRequest.district_code,
        ServiceRequest.public_description,
        # Read only to check the scrubbed text against; never published.
        ServiceRequest.resident_name,
        ServiceRequest.resident_email,
        ServiceRequest.resident_phone,
    ).where(
        ServiceRequest.requested_at >= _window(pipeline, now),
        ServiceRequest.requested_at < now,
        ServiceRequest.hidden.is_(False),
    )
    rows: list[dict[str, Any]] = []
    dp_records: list[tuple[date, str, str]] = []
    found: dict[str, int] = {}
    with_findings = 0
    blanked = 0
    for record in session.execute(query):
        service = services.get(record.service_id)
        code = service.code if service else "unknown"
        group = (service.group if service else None) or code
        scrubbed = scrub_text(record.public_description, known_names=[record.resident_name, *staff])
        text = scrubbed.text
        if scrubbed.found:
            with_findings += 1
            for kind, count in scrubbed.found.items():
                found[kind] = found.get(kind, 0) + count
        if _leaks_own_identifiers(text, record):
            text, blanked = "", blanked + 1
        days_to_close = None
        if record.closed_at is not None:
            days_to_close = max(0, (record.closed_at - record.requested_at).days)
        rows.append(
            {
                "category": (code, group),
                "area": (record.lat, record.long, record.district_code),
                "requested": record.requested_at,
                "status": record.status,
                "resolution": record.resolution or "",
                "days_to_close": days_to_close,
                "description": text,
            }
        )
        dp_records.append(
            (week_start(record.requested_at, zone), record.district_code or UNLOCATED, group)
        )
    levels = location_levels(pipeline)
    quasi = [
        QuasiIdentifier("area", levels, location_generaliser(levels)),
        QuasiIdentifier(
            "requested",
            time_levels(pipeline.time_granularity),
            time_generaliser(pipeline.time_granularity, zone),
        ),
        QuasiIdentifier(
            "category",
            ("service", "group", "all"),
            lambda raw, level: (raw[0], raw[1], ALL)[level],
        ),
    ]
    return Extract(
        rows=rows,
        quasi_identifiers=quasi,
        columns=[
            (
                "category",
                "string",
                "The request's service code, or its group, or * (see category_level)",
            ),
            ("category_level", "string", "How precise category is: service, group or all"),
            ("area", "string", "Where: an H3 cell, a district code or * (see area_level)"),
            ("area_level", "string", "How precise area is: h3:<resolution>, district or city"),
            (
                "requested",
                "string",
                "When it was requested, local time, rounded down to the "
                "start of the period in requested_level",
            ),
            ("requested_level", "string", "How precise requested is: hour, day, week or month"),
            ("status", "string", "open or closed"),
            ("resolution", "string", "How a closed request ended"),
            ("days_to_close", "integer", "Whole days from request to closing; empty if open"),
            ("description", "string", "The resident's description with personal data removed"),
        ],
        dp_records=dp_records,
        dp_areas=list(pipeline.dp_areas),
        dp_categories=sorted({(s.group or s.code) for s in services.values()}),
        dropped=SERVICE_REQUEST_IDENTIFIERS,
        free_text={
            "column": "description",
            "found": found,
            "rows_with_findings": with_findings,
            "own_identifier_leaks_blanked": blanked,
        },
        area_label="district",
        category_label="service group",
    )


def _leaks_own_identifiers(text: str, record: Any) -> bool:
    """Whether the resident's own name, email or phone survived scrubbing (then the text is
    dropped whole: the last line of defence)."""
    lowered = text.lower()
    for value in (record.resident_email, record.resident_name):
        if value and len(value) >= 5 and value.lower() in lowered:
            return True
    phone = "".join(ch for ch in (record.resident_phone or "") if ch.isdigit())
    return len(phone) >= 7 and phone[-7:] in "".join(ch for ch in text if ch.isdigit())


def _round_minutes(start: datetime | None, end: datetime | None, step: int = 5) -> int | None:
    if start is None or end is None or end < start:
        return None
    minutes = (end - start).total_seconds() / 60
    return int(round(minutes / step) * step)


def office_visits(session: Session, pipeline: PublicationPipeline, now: datetime) -> Extract:
    zone = ZoneInfo(pipeline.timezone)
    locations = {loc.id: loc for loc in session.scalars(select(Location))}
    services = {s.id: s for s in session.scalars(select(DirectoryService))}
    query = select(
        Ticket.location_id,
        Ticket.service_id,
        Ticket.state,
        Ticket.issued_at,
        Ticket.called_at,
        Ticket.served_at,
        Ticket.no_show_at,
    ).where(
        Ticket.issued_at.is_not(None),
        Ticket.issued_at >= _window(pipeline, now),
        Ticket.business_date < _local(now, zone).date(),
        Ticket.state.in_(("served", "no_show", "transferred")),
    )
    rows: list[dict[str, Any]] = []
    dp_records: list[tuple[date, str, str]] = []
    for ticket in session.execute(query):
        location = locations.get(ticket.location_id)
        office = location.slug if location else "unknown"
        service = services.get(ticket.service_id) if ticket.service_id else None
        service_slug = service.slug if service else "unknown"
        rows.append(
            {
                "office": office,
                "service": service_slug,
                "issued": ticket.issued_at,
                "outcome": ticket.state,
                "wait_minutes": _round_minutes(ticket.issued_at, ticket.called_at),
                "service_minutes": _round_minutes(ticket.called_at, ticket.served_at),
            }
        )
        dp_records.append((week_start(ticket.issued_at, zone), office, service_slug))
    quasi = [
        QuasiIdentifier("office", ("office", "all"), lambda raw, level: (raw, ALL)[level]),
        QuasiIdentifier("service", ("service", "all"), lambda raw, level: (raw, ALL)[level]),
        QuasiIdentifier(
            "issued",
            time_levels(pipeline.time_granularity),
            time_generaliser(pipeline.time_granularity, zone),
        ),
    ]
    return Extract(
        rows=rows,
        quasi_identifiers=quasi,
        columns=[
            ("office", "string", "The office (its slug), or * (see office_level)"),
            ("office_level", "string", "office or all"),
            ("service", "string", "The service asked for (its slug), or * (see service_level)"),
            ("service_level", "string", "service or all"),
            (
                "issued",
                "string",
                "When the ticket was taken, local time, rounded down to the "
                "start of the period in issued_level",
            ),
            ("issued_level", "string", "How precise issued is: hour, day, week or month"),
            ("outcome", "string", "served, no_show or transferred"),
            ("wait_minutes", "integer", "Minutes from ticket to call, rounded to 5"),
            ("service_minutes", "integer", "Minutes at the desk, rounded to 5"),
        ],
        dp_records=dp_records,
        dp_areas=list(pipeline.dp_areas) or sorted(loc.slug for loc in locations.values()),
        dp_categories=sorted(s.slug for s in services.values()),
        dropped=OFFICE_VISIT_IDENTIFIERS,
        free_text={},
        area_label="office",
        category_label="service",
    )


EXTRACTORS: dict[str, Callable[[Session, PublicationPipeline, datetime], Extract]] = {
    "service_requests": service_requests,
    "office_visits": office_visits,
}
TITLES: dict[str, tuple[str, str]] = {
    "service_requests": ("Service requests (anonymised)", "Service requests per week (DP)"),
    "office_visits": ("Office visits (anonymised)", "Office visits per week (DP)"),
}


def iter_weeks(first: date, last: date) -> Iterator[date]:
    current = first - timedelta(days=first.weekday())
    while current <= last:
        yield current
        current += timedelta(days=7)
