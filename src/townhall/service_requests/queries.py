"""Reads for service requests: lookups, filtered lists (Open311's and the staff queue's),
nearby duplicates, history. No query commits or writes."""

from __future__ import annotations

import math
from collections import namedtuple
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import (
    Float,
    Integer,
    Select,
    String,
    bindparam,
    case,
    cast,
    func,
    literal_column,
    null,
    or_,
    select,
    true,
)
from sqlalchemy.dialects.postgresql import aggregate_order_by
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import Session, aliased, joinedload

from townhall.accounts.models import Organization
from townhall.cache import Invalidations, Tag
from townhall.db import UTCDateTime
from townhall.service_requests.lifecycle import OPEN_SUB_STATUSES
from townhall.service_requests.models import (
    RequestAttachment,
    RequestMessage,
    RequestService,
    RequestUpdate,
    ResponseTemplate,
    ServiceRequest,
)
from townhall.sqltime import local_day, local_week, median, seconds_between

EARTH_RADIUS_M = 6_371_000.0
QUEUE_SORTS = ("queue", "newest", "oldest", "updated")
# Updates anyone may see even without a public note: the status line of a request's history.
PUBLIC_UPDATE_KINDS = frozenset({"created", "status", "merge"})


def normalise_code(code: str) -> str:
    return code.strip().upper()


def _looks_like_code(tracking_code: str) -> bool:
    """False for what no tracking code holds and PostgreSQL refuses in a text parameter (a NUL
    character: psycopg raises, and the lookup answered 500 instead of 404)."""
    return "\x00" not in tracking_code


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
    if not _looks_like_code(tracking_code):
        return None
    return session.scalar(
        select(ServiceRequest).where(ServiceRequest.tracking_code == normalise_code(tracking_code))
    )


def request_by_id(session: Session, request_id: int) -> ServiceRequest | None:
    return session.get(ServiceRequest, request_id)


def request_by_submission_token(session: Session, token: str) -> ServiceRequest | None:
    return session.scalar(
        select(ServiceRequest).where(ServiceRequest.submission_token == token.strip())
    )


# Status lookups: the busiest public read (residents polling their request, Open311 clients).
# One indexed query of columns joins the request type, the office and the original of a
# duplicate (loading `ServiceRequest` and its relationships lazily took four queries), and it
# runs as SQL compiled once (see `CompiledRead`).
_Duplicate = aliased(ServiceRequest)
_STATUS_COLUMNS = (
    ServiceRequest.id,
    ServiceRequest.tracking_code,
    ServiceRequest.status,
    ServiceRequest.sub_status,
    ServiceRequest.status_notes,
    ServiceRequest.public_description,
    ServiceRequest.district_code,
    ServiceRequest.address,
    ServiceRequest.address_id,
    ServiceRequest.zipcode,
    ServiceRequest.lat,
    ServiceRequest.long,
    ServiceRequest.media_url,
    ServiceRequest.requested_at,
    ServiceRequest.updated_at,
    ServiceRequest.expected_at,
    ServiceRequest.closed_at,
    ServiceRequest.hidden,
    RequestService.code.label("service_code"),
    RequestService.name.label("service_name"),
    RequestService.service_notice,
    Organization.name.label("agency_responsible"),
    _Duplicate.tracking_code.label("duplicate_of"),
    select(func.min(RequestAttachment.id))
    .where(
        RequestAttachment.request_id == ServiceRequest.id,
        RequestAttachment.is_public.is_(True),
    )
    .correlate(ServiceRequest)
    .scalar_subquery()
    .label("media_attachment_id"),
)

# What a kept status answer (`service_requests.api`, `compat.open311`) is read from: the
# request, its updates and its attachments, one request at a time; the request types and the
# offices (names shown in every answer) as a whole.
STATUS_KIND = "request"


def status_tags(request_id: int) -> tuple[Tag, ...]:
    return ((STATUS_KIND, request_id),)


def _request_of(attribute: str) -> Callable[[Any], list[Tag]]:
    def tags(instance: Any) -> list[Tag]:
        # From the instance's loaded state: a flush hook must not load anything.
        request_id = instance.__dict__.get(attribute)
        return [(STATUS_KIND, request_id if isinstance(request_id, int) else "*")]

    return tags


def watch_status_changes(invalidations: Invalidations) -> None:
    """Declare what drops kept status answers (`townhall.cache`)."""
    invalidations.watch(ServiceRequest, _request_of("id"), kind=STATUS_KIND)
    invalidations.watch(RequestUpdate, _request_of("request_id"), kind=STATUS_KIND)
    invalidations.watch(RequestAttachment, _request_of("request_id"), kind=STATUS_KIND)
    for shown_in_every_answer in (RequestService, Organization):
        invalidations.watch(shown_in_every_answer, lambda _: [(STATUS_KIND, "*")], kind=STATUS_KIND)


def _sqlite_utc(value: str) -> datetime:
    """A `UTCDateTime` as SQLite stores it ("2026-05-04 09:30:00.000000"), parsed by
    `fromisoformat` rather than SQLAlchemy's regular expression and the type's own step (a
    third of a status lookup's row handling); the same aware UTC value either way."""
    parsed = datetime.fromisoformat(value)
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


class CompiledRead:
    """A SELECT compiled once per database dialect and run on a DBAPI connection, its values
    passed through the columns' own result processing (so datetimes come back aware, in UTC,
    on both backends, as through the ORM).

    For the busiest public reads only. SQLAlchemy's per-execution work (cache key, execution
    context, result metadata) costs about ten times the SQLite query itself: 0.45-0.6 ms
    against 0.05 ms for a status lookup and its notes, measured here.
    """

    def __init__(self, statement: Select[Any], name: str) -> None:
        self.statement = statement
        self.row_type = namedtuple(name, [c.key for c in statement.selected_columns])  # type: ignore[misc]
        self._sql: dict[str, tuple[str, tuple[str, ...] | None]] = {}
        self._processors: dict[str, list[Any]] = {}

    def _compiled(self, dialect: Dialect) -> tuple[str, tuple[str, ...] | None]:
        found = self._sql.get(dialect.name)
        if found is None:
            compiled = self.statement.compile(dialect=dialect)
            order = tuple(compiled.positiontup or ()) if compiled.positional else None
            found = self._sql[dialect.name] = (str(compiled), order)
        return found

    def _processors_for(self, dialect: Dialect, cursor: Any) -> list[Any]:
        """Each column's result processor; some drivers' depend on the type the database
        reports (psycopg's numbers), so they are built from the first cursor's description
        (read only then: psycopg builds a column object per column each time it is read, a
        quarter of an async status lookup's CPU when it was read per query)."""
        found = self._processors.get(dialect.name)
        if found is None:
            description = cursor.description
            found = self._processors[dialect.name] = [
                _sqlite_utc
                if dialect.name == "sqlite" and isinstance(c.type, UTCDateTime)
                else c.type.dialect_impl(dialect).result_processor(dialect, d[1])
                for c, d in zip(self.statement.selected_columns, description, strict=True)
            ]
        return found

    def all(self, connection: Any, dialect: Dialect, **params: Any) -> list[Any]:
        """Rows as named tuples; `connection` is a DBAPI connection (no commit happens)."""
        sql, order = self._compiled(dialect)
        cursor = connection.cursor()
        try:
            cursor.execute(sql, tuple(params[k] for k in order) if order is not None else params)
            rows = cursor.fetchall()
            processors = self._processors_for(dialect, cursor)
        finally:
            cursor.close()
        return self._rows(rows, processors)

    async def all_async(self, connection: Any, dialect: Dialect, **params: Any) -> list[Any]:
        """`all` on a psycopg `AsyncConnection` (`townhall.aiodb`), on the event loop."""
        sql, order = self._compiled(dialect)
        cursor = connection.cursor()
        try:
            await cursor.execute(
                sql, tuple(params[k] for k in order) if order is not None else params
            )
            rows = await cursor.fetchall()
            processors = self._processors_for(dialect, cursor)
        finally:
            await cursor.close()
        return self._rows(rows, processors)

    def _rows(self, rows: list[Any], processors: list[Any]) -> list[Any]:
        make = self.row_type._make
        return [
            make(
                [
                    v if p is None or v is None else p(v)
                    for p, v in zip(processors, row, strict=True)
                ]
            )
            for row in rows
        ]


_STATUS = CompiledRead(
    select(*_STATUS_COLUMNS)
    .join(RequestService, RequestService.id == ServiceRequest.service_id)
    .outerjoin(Organization, Organization.id == ServiceRequest.organization_id)
    .outerjoin(_Duplicate, _Duplicate.id == ServiceRequest.duplicate_of_id)
    .where(ServiceRequest.tracking_code == bindparam("tracking_code")),
    "RequestStatus",
)
_NOTES = CompiledRead(
    select(
        RequestUpdate.at, RequestUpdate.kind, RequestUpdate.to_sub_status,
        RequestUpdate.public_note,
    )
    .where(RequestUpdate.request_id == bindparam("request_id"))
    .order_by(RequestUpdate.at, RequestUpdate.id),
    "PublicNote",
)  # fmt: skip


# PostgreSQL only: the request and its public notes in one query, the notes as arrays in the
# order of their history (a lateral aggregate always yields one row: NULL arrays for none).
# The SQL keeps a superset of the public notes (kind, or a non-empty note); `notes_of` applies
# `public_notes`' own test, so both paths keep exactly the same notes.
_note_order = (RequestUpdate.at, RequestUpdate.id)
_NOTE_ARRAYS = (
    select(
        func.array_agg(aggregate_order_by(RequestUpdate.at, *_note_order)).label("note_at"),
        func.array_agg(aggregate_order_by(RequestUpdate.kind, *_note_order)).label("note_kind"),
        func.array_agg(aggregate_order_by(RequestUpdate.to_sub_status, *_note_order)).label(
            "note_sub_status"
        ),
        func.array_agg(aggregate_order_by(RequestUpdate.public_note, *_note_order)).label(
            "note_text"
        ),
    )
    .where(
        RequestUpdate.request_id == ServiceRequest.id,
        # Literals, not parameters: `CompiledRead` runs the SQL text compiled once.
        or_(
            RequestUpdate.kind.in_([literal_column(f"'{k}'") for k in sorted(PUBLIC_UPDATE_KINDS)]),
            RequestUpdate.public_note != literal_column("''"),
        ),
    )
    .lateral("public_notes")
)
_STATUS_WITH_NOTES = CompiledRead(
    select(
        *_STATUS_COLUMNS,
        _NOTE_ARRAYS.c.note_at,
        _NOTE_ARRAYS.c.note_kind,
        _NOTE_ARRAYS.c.note_sub_status,
        _NOTE_ARRAYS.c.note_text,
    )
    .join(RequestService, RequestService.id == ServiceRequest.service_id)
    .outerjoin(Organization, Organization.id == ServiceRequest.organization_id)
    .outerjoin(_Duplicate, _Duplicate.id == ServiceRequest.duplicate_of_id)
    .join(_NOTE_ARRAYS, true())
    .where(ServiceRequest.tracking_code == bindparam("tracking_code")),
    "RequestStatusWithNotes",
)
PublicNote = namedtuple("PublicNote", ["at", "kind", "to_sub_status", "public_note"])


def _is_public(kind: str, public_note: str | None) -> bool:
    return kind in PUBLIC_UPDATE_KINDS or bool((public_note or "").strip())


async def request_status_async(connection: Any, dialect: Dialect, tracking_code: str) -> Any:
    """`request_status` on a psycopg `AsyncConnection` (PostgreSQL, on the event loop)."""
    if not _looks_like_code(tracking_code):
        return None
    rows = await _STATUS.all_async(connection, dialect, tracking_code=normalise_code(tracking_code))
    return rows[0] if rows else None


async def request_status_with_notes(connection: Any, dialect: Dialect, tracking_code: str) -> Any:
    """`request_status` and `public_notes` in one query (PostgreSQL, a psycopg
    `AsyncConnection`): the row also has `note_at`, `note_kind`, `note_sub_status` and
    `note_text`, arrays that `notes_of` turns into what `public_notes` returns."""
    if not _looks_like_code(tracking_code):
        return None
    rows = await _STATUS_WITH_NOTES.all_async(
        connection, dialect, tracking_code=normalise_code(tracking_code)
    )
    return rows[0] if rows else None


def notes_of(row: Any) -> list[Any]:
    """The public notes of a `request_status_with_notes` row, as `public_notes` gives them."""
    if not row.note_at:
        return []
    return [
        PublicNote(at, kind, sub_status, text)
        for at, kind, sub_status, text in zip(
            row.note_at, row.note_kind, row.note_sub_status, row.note_text, strict=True
        )
        if _is_public(kind, text)
    ]


def request_status(connection: Any, dialect: Dialect, tracking_code: str) -> Any | None:
    """The public columns of one request by tracking code (a named tuple), or None.

    `connection` is a DBAPI connection (`engine.raw_connection()`). Hidden requests are
    returned too (`hidden` says so): the caller decides what "not found" means.
    `media_attachment_id` is the first public attachment (Open311's `media_url`).
    """
    if not _looks_like_code(tracking_code):
        return None
    rows = _STATUS.all(connection, dialect, tracking_code=normalise_code(tracking_code))
    return rows[0] if rows else None


def public_notes(connection: Any, dialect: Dialect, request_id: int) -> list[Any]:
    """`history(public_only=True)` as named tuples of (at, kind, to_sub_status, public_note),
    on a DBAPI connection like `request_status`."""
    rows = _NOTES.all(connection, dialect, request_id=request_id)
    return [r for r in rows if _is_public(r.kind, r.public_note)]


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
            u for u in updates if u.kind in PUBLIC_UPDATE_KINDS or (u.public_note or "").strip()
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


# --- aggregates for the insights slice (GROUP BY in SQL; small results) -------------------------

AGE_BUCKETS = ("under 1 day", "1-7 days", "7-30 days", "over 30 days")


def backlog_counts(
    session: Session, *, now: datetime, at_risk_within: timedelta
) -> list[dict[str, Any]]:
    """Open, visible requests counted by service, office, sub-status, age bucket and SLA state.

    SLA state: `breached` (past `expected_at`, or paused after it), `paused` (waiting for the
    resident, still in time), `at_risk` (due within `at_risk_within`), `on_time`, or `no_sla`.
    """
    age = case(
        (ServiceRequest.requested_at >= now - timedelta(days=1), AGE_BUCKETS[0]),
        (ServiceRequest.requested_at >= now - timedelta(days=7), AGE_BUCKETS[1]),
        (ServiceRequest.requested_at >= now - timedelta(days=30), AGE_BUCKETS[2]),
        else_=AGE_BUCKETS[3],
    ).label("age")
    sla = case(
        (ServiceRequest.expected_at.is_(None), "no_sla"),
        (
            ServiceRequest.sla_paused_at.is_not(None)
            & (ServiceRequest.sla_paused_at > ServiceRequest.expected_at),
            "breached",
        ),
        (ServiceRequest.sla_paused_at.is_not(None), "paused"),
        (ServiceRequest.expected_at < now, "breached"),
        (ServiceRequest.expected_at < now + at_risk_within, "at_risk"),
        else_="on_time",
    ).label("sla")
    query = (
        select(
            RequestService.code,
            RequestService.name,
            ServiceRequest.organization_id,
            ServiceRequest.sub_status,
            age,
            sla,
            func.count().label("n"),
        )
        .join(ServiceRequest.service)
        .where(ServiceRequest.status == "open", ServiceRequest.hidden.is_(False))
        .group_by(
            RequestService.code,
            RequestService.name,
            ServiceRequest.organization_id,
            ServiceRequest.sub_status,
            age,
            sla,
        )
    )
    keys = ("service", "service_name", "organization_id", "sub_status", "age", "sla", "count")
    return [dict(zip(keys, row, strict=True)) for row in session.execute(query)]


def daily_request_counts(
    session: Session, *, start: datetime, end: datetime, zone: str, by: str | None = None
) -> list[tuple[str, str | None, int]]:
    """(local day 'YYYY-MM-DD', key, requests) submitted in [start, end), visible ones only.
    `by` is None (key None), "service" (the service code) or "district" (the district code)."""
    day = local_day(session, ServiceRequest.requested_at, zone, start, end).label("day")
    key: Any = cast(null(), String)
    query = select(day)
    if by == "service":
        key = RequestService.code
        query = query.join_from(ServiceRequest, RequestService)
    elif by == "district":
        key = ServiceRequest.district_code
    elif by is not None:
        raise ValueError(f"unknown grouping {by!r}")
    query = (
        query.add_columns(key.label("key"), func.count())
        .select_from(ServiceRequest)
        .where(
            ServiceRequest.requested_at >= start,
            ServiceRequest.requested_at < end,
            ServiceRequest.hidden.is_(False),
        )
        .group_by(day, key)
    )
    return [(str(d), k, int(n)) for d, k, n in session.execute(query)]


def latest_request_at(session: Session) -> datetime | None:
    return session.scalar(
        select(func.max(ServiceRequest.requested_at)).where(ServiceRequest.hidden.is_(False))
    )


def closed_work(
    session: Session,
    *,
    start: datetime,
    end: datetime,
    zone: str,
    by_user: bool,
    by_week: bool,
    with_median: bool = True,
) -> list[dict[str, Any]]:
    """Requests resolved in [start, end) per office, and per assignee (`by_user`) and local
    ISO week (`by_week`, its Monday as 'YYYY-MM-DD'), with the median hours from submission
    to closing (None without `with_median`, which saves its cost). Keys not grouped by are
    None; unassigned requests have `user_id` None."""
    week: Any = (
        local_week(session, ServiceRequest.closed_at, zone, start, end)
        if by_week
        else cast(null(), String)
    )
    user: Any = ServiceRequest.assigned_user_id if by_user else cast(null(), Integer)
    hours = seconds_between(session, ServiceRequest.requested_at, ServiceRequest.closed_at) / 3600
    query = (
        select(
            user.label("user_id"),
            ServiceRequest.organization_id,
            week.label("week"),
            func.count(),
            median(session, hours) if with_median else cast(null(), Float),
        )
        .where(
            ServiceRequest.closed_at >= start,
            ServiceRequest.closed_at < end,
            ServiceRequest.hidden.is_(False),
            # Duplicates and rejections are closed in a click; they are not resolved work.
            ServiceRequest.sub_status.in_(("resolved", "closed_not_fixed")),
        )
        .group_by(user, ServiceRequest.organization_id, week)
    )
    keys = ("user_id", "organization_id", "week", "closed", "median_hours")
    return [dict(zip(keys, row, strict=True)) for row in session.execute(query)]


def resolution_summary(
    session: Session,
    *,
    start: datetime,
    end: datetime,
    now: datetime,
    by: str | None = None,
) -> list[dict[str, Any]]:
    """Per district (`by="district"`), per service (`by="service"`) or overall (None), for the
    requests submitted in [start, end): how many, the median hours to close (closed ones), how
    many had an SLA and how many of those breached it (closed late, or open and overdue at
    `now`)."""
    hours = seconds_between(session, ServiceRequest.requested_at, ServiceRequest.closed_at) / 3600
    breached = case(
        (ServiceRequest.expected_at.is_(None), 0),
        (
            ServiceRequest.closed_at.is_not(None),
            case((ServiceRequest.closed_at > ServiceRequest.expected_at, 1), else_=0),
        ),
        (
            ServiceRequest.sla_paused_at.is_not(None),
            case((ServiceRequest.sla_paused_at > ServiceRequest.expected_at, 1), else_=0),
        ),
        (ServiceRequest.expected_at < now, 1),
        else_=0,
    )
    key: Any
    if by == "district":
        key = ServiceRequest.district_code
    elif by == "service":
        key = RequestService.code
    elif by is None:
        key = cast(null(), String)
    else:
        raise ValueError(f"unknown grouping {by!r}")
    query = (
        select(
            key.label("key"),
            func.count(),
            median(session, hours),
            func.count(ServiceRequest.expected_at),
            func.sum(breached),
        )
        .select_from(ServiceRequest)
        .join(ServiceRequest.service)
        .where(
            ServiceRequest.requested_at >= start,
            ServiceRequest.requested_at < end,
            ServiceRequest.hidden.is_(False),
            ServiceRequest.sub_status.not_in(("duplicate", "rejected")),
        )
        .group_by(key)
    )
    keys = ("key", "requests", "median_hours", "with_sla", "breached")
    return [dict(zip(keys, row, strict=True)) for row in session.execute(query)]


def triage_examples(session: Session, *, limit: int) -> list[tuple[str, str, int]]:
    """(public description, service code, priority) of the most recent visible requests with
    a description: what the triage model learns from. The scrubbed public text, never the
    resident's own words, so a model cannot memorise personal data."""
    query = (
        select(ServiceRequest.public_description, RequestService.code, ServiceRequest.priority)
        .join(ServiceRequest.service)
        .where(
            ServiceRequest.hidden.is_(False),
            ServiceRequest.public_description != "",
            ServiceRequest.sub_status.not_in(("duplicate", "rejected")),
        )
        .order_by(ServiceRequest.requested_at.desc())
        .limit(limit)
    )
    return [(text_, code, int(priority)) for text_, code, priority in session.execute(query)]
