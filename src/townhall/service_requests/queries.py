"""Reads for service requests: lookups, filtered lists (Open311's and the staff queue's),
nearby duplicates, history. No query commits or writes."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import Select, func, or_, select
from sqlalchemy.orm import Session, joinedload

from townhall.service_requests.lifecycle import OPEN_SUB_STATUSES
from townhall.service_requests.models import (
    RequestAttachment,
    RequestMessage,
    RequestService,
    RequestUpdate,
    ResponseTemplate,
    ServiceRequest,
)

EARTH_RADIUS_M = 6_371_000.0
QUEUE_SORTS = ("queue", "newest", "oldest", "updated")


def normalise_code(code: str) -> str:
    return code.strip().upper()


def service_by_code(session: Session, code: str) -> RequestService | None:
    return session.scalar(select(RequestService).where(RequestService.code == code))


def service_by_id(session: Session, service_id: int) -> RequestService | None:
    return session.get(RequestService, service_id)


def list_services(session: Session, *, include_inactive: bool = False) -> list[RequestService]:
    query = select(RequestService).order_by(RequestService.group, RequestService.name)
    if not include_inactive:
        query = query.where(RequestService.active.is_(True))
    return list(session.scalars(query))


def request_by_code(session: Session, tracking_code: str) -> ServiceRequest | None:
    return session.scalar(
        select(ServiceRequest).where(ServiceRequest.tracking_code == normalise_code(tracking_code))
    )


def request_by_id(session: Session, request_id: int) -> ServiceRequest | None:
    return session.get(ServiceRequest, request_id)


def request_by_submission_token(session: Session, token: str) -> ServiceRequest | None:
    return session.scalar(
        select(ServiceRequest).where(ServiceRequest.submission_token == token.strip())
    )


@dataclass
class RequestFilter:
    """What a list of requests may be narrowed by. Empty lists mean "any"."""

    tracking_codes: list[str] = field(default_factory=list)
    service_codes: list[str] = field(default_factory=list)
    statuses: list[str] = field(default_factory=list)  # open | closed
    sub_statuses: list[str] = field(default_factory=list)
    requested_from: datetime | None = None
    requested_to: datetime | None = None
    updated_from: datetime | None = None
    updated_to: datetime | None = None
    district_codes: list[str] = field(default_factory=list)
    organization_ids: list[int] = field(default_factory=list)
    priorities: list[int] = field(default_factory=list)
    assigned_user_id: int | None = None
    unassigned: bool = False
    near: tuple[float, float, float] | None = None  # lat, long, radius in metres
    text: str = ""
    include_hidden: bool = False
    late_only: bool = False
    now: datetime | None = None


def _bounding_box(lat: float, long: float, radius_m: float) -> tuple[float, float, float, float]:
    dlat = math.degrees(radius_m / EARTH_RADIUS_M)
    dlong = math.degrees(radius_m / (EARTH_RADIUS_M * max(math.cos(math.radians(lat)), 0.01)))
    return lat - dlat, lat + dlat, long - dlong, long + dlong


def distance_m(lat1: float, long1: float, lat2: float, long2: float) -> float:
    """Great-circle distance (haversine), in metres."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(long2 - long1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(a)))


def _apply(query: Select, filters: RequestFilter) -> Select:  # type: ignore[type-arg]
    if filters.tracking_codes:
        query = query.where(
            ServiceRequest.tracking_code.in_([normalise_code(c) for c in filters.tracking_codes])
        )
    if filters.service_codes:
        query = query.where(RequestService.code.in_(filters.service_codes))
    if filters.statuses:
        query = query.where(ServiceRequest.status.in_(filters.statuses))
    if filters.sub_statuses:
        query = query.where(ServiceRequest.sub_status.in_(filters.sub_statuses))
    if filters.requested_from is not None:
        query = query.where(ServiceRequest.requested_at >= filters.requested_from)
    if filters.requested_to is not None:
        query = query.where(ServiceRequest.requested_at <= filters.requested_to)
    if filters.updated_from is not None:
        query = query.where(ServiceRequest.updated_at >= filters.updated_from)
    if filters.updated_to is not None:
        query = query.where(ServiceRequest.updated_at <= filters.updated_to)
    if filters.district_codes:
        query = query.where(ServiceRequest.district_code.in_(filters.district_codes))
    if filters.organization_ids:
        query = query.where(ServiceRequest.organization_id.in_(filters.organization_ids))
    if filters.priorities:
        query = query.where(ServiceRequest.priority.in_(filters.priorities))
    if filters.assigned_user_id is not None:
        query = query.where(ServiceRequest.assigned_user_id == filters.assigned_user_id)
    if filters.unassigned:
        query = query.where(ServiceRequest.assigned_user_id.is_(None))
    if filters.near is not None:
        lat, long, radius = filters.near
        south, north, west, east = _bounding_box(lat, long, radius)
        query = query.where(
            ServiceRequest.lat.between(south, north), ServiceRequest.long.between(west, east)
        )
    if filters.text:
        pattern = f"%{filters.text.strip().lower()}%"
        query = query.where(
            or_(
                func.lower(ServiceRequest.public_description).like(pattern),
                func.lower(ServiceRequest.address).like(pattern),
                ServiceRequest.tracking_code == normalise_code(filters.text),
            )
        )
    if not filters.include_hidden:
        query = query.where(ServiceRequest.hidden.is_(False))
    if filters.late_only and filters.now is not None:
        query = query.where(
            ServiceRequest.status == "open",
            ServiceRequest.sla_paused_at.is_(None),
            ServiceRequest.expected_at < filters.now,
        )
    return query


def list_requests(
    session: Session,
    filters: RequestFilter,
    *,
    sort: str = "newest",
    limit: int = 1000,
    offset: int = 0,
    with_total: bool = False,
) -> tuple[list[ServiceRequest], int | None]:
    """Requests matching `filters`, sorted, one page; the total only when asked (a count
    costs a second query). `near` is refined from the bounding box to the true radius."""
    query = _apply(select(ServiceRequest).join(ServiceRequest.service), filters)
    if sort == "queue":
        query = query.options(joinedload(ServiceRequest.assigned_user))
        # Priority first; then the clock: waiting-for-resident requests (clock stopped) after
        # running ones, earliest deadline first, requests without a deadline last.
        query = query.order_by(
            ServiceRequest.priority,
            ServiceRequest.sla_paused_at.is_not(None),
            ServiceRequest.expected_at.is_(None),
            ServiceRequest.expected_at,
            ServiceRequest.id,
        )
    elif sort == "oldest":
        query = query.order_by(ServiceRequest.requested_at, ServiceRequest.id)
    elif sort == "updated":
        query = query.order_by(ServiceRequest.updated_at.desc(), ServiceRequest.id.desc())
    else:
        query = query.order_by(ServiceRequest.requested_at.desc(), ServiceRequest.id.desc())
    total = None
    if with_total:
        counted = _apply(
            select(func.count()).select_from(ServiceRequest).join(ServiceRequest.service),
            filters,
        )
        total = session.scalar(counted) or 0
    if filters.near is not None:
        lat, long, radius = filters.near
        rows = [
            r
            for r in session.scalars(query)
            if r.lat is not None
            and r.long is not None
            and distance_m(lat, long, r.lat, r.long) <= radius
        ]
        if with_total:
            total = len(rows)
        return rows[offset : offset + limit], total
    return list(session.scalars(query.limit(limit).offset(offset))), total


def nearby_open_requests(
    session: Session,
    *,
    service_id: int,
    lat: float,
    long: float,
    radius_m: float,
    limit: int = 5,
    exclude_id: int | None = None,
) -> list[tuple[ServiceRequest, float]]:
    """Open, visible requests of the same service within `radius_m`, nearest first, with
    their distance in metres: the duplicates to suggest to a resident."""
    south, north, west, east = _bounding_box(lat, long, radius_m)
    query = select(ServiceRequest).where(
        ServiceRequest.service_id == service_id,
        ServiceRequest.status == "open",
        ServiceRequest.hidden.is_(False),
        ServiceRequest.lat.between(south, north),
        ServiceRequest.long.between(west, east),
    )
    if exclude_id is not None:
        query = query.where(ServiceRequest.id != exclude_id)
    found = []
    for candidate in session.scalars(query.limit(500)):
        if candidate.lat is None or candidate.long is None:
            continue
        meters = distance_m(lat, long, candidate.lat, candidate.long)
        if meters <= radius_m:
            found.append((candidate, meters))
    found.sort(key=lambda pair: (pair[1], pair[0].id))
    return found[:limit]


def history(session: Session, request_id: int, *, public_only: bool) -> list[RequestUpdate]:
    """The request's updates, oldest first. Public views get only the updates that carry a
    public note or a status change (never internal notes, assignments or priorities)."""
    query = (
        select(RequestUpdate)
        .where(RequestUpdate.request_id == request_id)
        .order_by(RequestUpdate.at, RequestUpdate.id)
    )
    updates = list(session.scalars(query))
    if public_only:
        return [
            u
            for u in updates
            if u.kind in ("created", "status", "merge") or (u.public_note or "").strip()
        ]
    return updates


def histories(
    session: Session, request_ids: Sequence[int], *, public_only: bool
) -> dict[int, list[RequestUpdate]]:
    """`history` for many requests in one query (Open311 lists with extensions)."""
    result: dict[int, list[RequestUpdate]] = {request_id: [] for request_id in request_ids}
    if not request_ids:
        return result
    query = (
        select(RequestUpdate)
        .where(RequestUpdate.request_id.in_(list(request_ids)))
        .order_by(RequestUpdate.request_id, RequestUpdate.at, RequestUpdate.id)
    )
    for update in session.scalars(query):
        if public_only and not (
            update.kind in ("created", "status", "merge") or (update.public_note or "").strip()
        ):
            continue
        result[update.request_id].append(update)
    return result


def messages(session: Session, request_id: int) -> list[RequestMessage]:
    return list(
        session.scalars(
            select(RequestMessage)
            .where(RequestMessage.request_id == request_id)
            .order_by(RequestMessage.at, RequestMessage.id)
        )
    )


def attachments(session: Session, request_id: int, *, public_only: bool) -> list[RequestAttachment]:
    """Attachment rows without loading their bytes twice; public ones only when asked."""
    query = (
        select(RequestAttachment)
        .where(RequestAttachment.request_id == request_id)
        .order_by(RequestAttachment.id)
    )
    if public_only:
        query = query.where(RequestAttachment.is_public.is_(True))
    return list(session.scalars(query))


def attachment_by_id(session: Session, attachment_id: int) -> RequestAttachment | None:
    return session.get(RequestAttachment, attachment_id)


def first_public_attachment_ids(session: Session, request_ids: Sequence[int]) -> dict[int, int]:
    """request id -> the id of its first public attachment (Open311 `media_url`)."""
    if not request_ids:
        return {}
    rows = session.execute(
        select(RequestAttachment.request_id, func.min(RequestAttachment.id))
        .where(
            RequestAttachment.request_id.in_(list(request_ids)),
            RequestAttachment.is_public.is_(True),
        )
        .group_by(RequestAttachment.request_id)
    )
    return dict(rows.all())


def response_templates(session: Session, *, active_only: bool = True) -> list[ResponseTemplate]:
    query = select(ResponseTemplate).order_by(ResponseTemplate.name)
    if active_only:
        query = query.where(ResponseTemplate.active.is_(True))
    return list(session.scalars(query))


def response_template_by_id(session: Session, template_id: int) -> ResponseTemplate | None:
    return session.get(ResponseTemplate, template_id)


def recent_submission_count(
    session: Session,
    *,
    since: datetime,
    client_hash: str | None = None,
    api_token_id: int | None = None,
) -> int:
    """Requests submitted since `since` from one address (hashed) or with one API token."""
    query = (
        select(func.count()).select_from(ServiceRequest).where(ServiceRequest.requested_at >= since)
    )
    if client_hash is not None:
        query = query.where(ServiceRequest.client_hash == client_hash)
    elif api_token_id is not None:
        query = query.where(ServiceRequest.api_token_id == api_token_id)
    else:
        return 0
    return session.scalar(query) or 0


def queue_counts(session: Session, *, organization_ids: Sequence[int] = ()) -> dict[str, int]:
    """Open requests per sub-status (for the queue's filter counts)."""
    query = (
        select(ServiceRequest.sub_status, func.count())
        .where(
            ServiceRequest.sub_status.in_(sorted(OPEN_SUB_STATUSES)),
            ServiceRequest.hidden.is_(False),
        )
        .group_by(ServiceRequest.sub_status)
    )
    if organization_ids:
        query = query.where(ServiceRequest.organization_id.in_(list(organization_ids)))
    return dict(session.execute(query).all())


def district_codes(session: Session) -> list[str]:
    return [
        code
        for code in session.scalars(
            select(ServiceRequest.district_code)
            .where(ServiceRequest.district_code.is_not(None))
            .distinct()
            .order_by(ServiceRequest.district_code)
        )
        if code
    ]
