"""Seeding the demo city's request types and its ~60,000 service requests, fast.

Rows are built as plain tuples of values and written with one multi-row INSERT per chunk
(SQLAlchemy's executemany / insertmanyvalues): no ORM object per request, no audit entry per
request (one entry records the whole seeding). Each request gets the history the demo city
implies (received, triaged, in progress, closed, with the closing note public), its public
description scrubbed of the personal data the generator planted, and its office and assignee
resolved by slug and email. Measured in `tests/test_service_requests_demo.py`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from typing import Any, Final

from sqlalchemy import JSON, Table, func, insert, select, text
from sqlalchemy.orm import Session

from townhall.accounts.models import Organization, User
from townhall.actor import Actor
from townhall.audit.actions import record
from townhall.db import utcnow
from townhall.demo.city import DemoCity
from townhall.demo.city import ServiceRequest as DemoRequest
from townhall.service_requests.lifecycle import RESOLUTION_SUB_STATUS, SUB_STATUSES
from townhall.service_requests.models import RequestService, RequestUpdate, ServiceRequest
from townhall.service_requests.privacy import scrub_personal_data

CHUNK: Final = 5000
_EMPTY: Final[dict[str, Any]] = {}  # one object, serialised once per chunk
Progress = Callable[[int], None]

# Open311 questions for some demo request types, so the service definitions show every
# datatype. Optional: the demo's historical requests were filed before they existed.
DEMO_ATTRIBUTES: Final[dict[str, list[dict[str, Any]]]] = {
    "POTHOLE": [
        {"code": "SIZE", "datatype": "singlevaluelist", "required": False, "order": 1,
         "description": "How big is the pothole?",
         "values": [{"key": "small", "name": "Smaller than a dinner plate"},
                    {"key": "medium", "name": "Up to a car tyre"},
                    {"key": "large", "name": "Larger than a car tyre"}]},
        {"code": "DEPTH_CM", "datatype": "number", "required": False, "order": 2,
         "description": "About how deep, in centimetres?"},
    ],
    "STREETLIGHT": [
        {"code": "POLE", "datatype": "string", "required": False, "order": 1,
         "description": "The number on the pole", "datatype_description": "For example RV-10234"},
    ],
    "MISSED_COLLECTION": [
        {"code": "STREAMS", "datatype": "multivaluelist", "required": False, "order": 1,
         "description": "What was not collected?",
         "values": [{"key": "trash", "name": "Trash"}, {"key": "recycling", "name": "Recycling"},
                    {"key": "yard", "name": "Yard waste"}]},
    ],
    "ABANDONED_VEHICLE": [
        {"code": "SINCE", "datatype": "datetime", "required": False, "order": 1,
         "description": "Since when has it been there?"},
        {"code": "NOTE", "datatype": "text", "required": False, "variable": False, "order": 2,
         "description": "Vehicles are tagged first and towed after 72 hours."},
    ],
    "TREE": [
        {"code": "BLOCKING", "datatype": "singlevaluelist", "required": False, "order": 1,
         "description": "Is it blocking a road or sidewalk?",
         "values": [{"key": "road", "name": "A road"}, {"key": "sidewalk", "name": "A sidewalk"},
                    {"key": "no", "name": "No"}]},
        {"code": "DETAILS", "datatype": "text", "required": False, "order": 2,
         "description": "Anything the crew should know"},
    ],
}  # fmt: skip

_DEMO_SUB_STATUS: Final = {
    "received": "received",
    "acknowledged": "triaged",
    "in_progress": "in_progress",
}


def seed_request_services(session: Session, actor: Actor, city: DemoCity) -> dict[str, int]:
    """Create the request types of the demo city's services that accept requests (those
    missing only). Returns code -> id for all of them."""
    existing = dict(session.execute(select(RequestService.code, RequestService.id)).all())
    offices = dict(session.execute(select(Organization.slug, Organization.id)).all())
    now = utcnow()
    rows = [
        {
            "code": service.code,
            "name": service.name,
            "description": service.description,
            "group": service.category,
            "keywords": list(service.keywords),
            "attributes": DEMO_ATTRIBUTES.get(service.code, []),
            "service_type": "realtime",
            "service_notice": None,
            "organization_id": offices.get(service.office_slug),
            "expected_days": float(service.target_days) if service.target_days else None,
            "default_priority": 3,
            "location_required": True,
            "active": True,
            "directory_slug": service.slug,
            "created_at": now,
            "updated_at": now,
        }
        for service in city.services
        if service.accepts_requests and service.code not in existing
    ]
    if rows:
        session.execute(insert(RequestService), rows)
        record(
            session,
            actor=actor,
            action="request_service.seed",
            object_type="request_service",
            object_id="demo",
            changes={"created": [row["code"] for row in rows]},
        )
    return dict(session.execute(select(RequestService.code, RequestService.id)).all())


def _token(seed: int, code: str) -> str:
    # Deterministic, so the same city seeds the same rows; unguessable without the code.
    return hashlib.sha256(f"riverton:{seed}:token:{code}".encode()).hexdigest()[:24]


def _sub_status(request: DemoRequest) -> str:
    if request.status == "closed":
        return RESOLUTION_SUB_STATUS.get(request.resolution or "resolved", "resolved")
    return _DEMO_SUB_STATUS[request.status]


def _history(
    request_id: int, request: DemoRequest, sub_status: str, actor_label: str
) -> Iterable[dict[str, Any]]:
    def row(
        at: datetime, kind: str, before: str | None, after: str, note: str | None
    ) -> dict[str, Any]:
        return {
            "request_id": request_id,
            "at": at,
            "kind": kind,
            "from_sub_status": before,
            "to_sub_status": after,
            "public_note": note,
            "internal_note": None,
            "changes": _EMPTY,
            "actor_user_id": None,
            "actor_label": actor_label,
        }

    yield row(request.requested_at, "created", None, "received", None)
    current = "received"
    note = request.status_notes or None
    if request.acknowledged_at is not None:
        last = sub_status == "triaged"
        yield row(request.acknowledged_at, "status", current, "triaged", note if last else None)
        current = "triaged"
    if request.started_at is not None:
        last = sub_status == "in_progress"
        yield row(request.started_at, "status", current, "in_progress", note if last else None)
        current = "in_progress"
    if request.closed_at is not None:
        yield row(request.closed_at, "status", current, sub_status, note)


def _bulk_insert(session: Session, table: Table, rows: list[dict[str, Any]]) -> None:
    """One driver-level executemany of `rows` (all with the same keys).

    SQLAlchemy's own executemany spends most of its time building parameters generically;
    here each column's bind processor (UTC datetimes, JSON) is applied column by column, and
    the compiled INSERT goes to the driver as it is.
    """
    if not rows:
        return
    connection = session.connection()
    dialect = connection.dialect
    keys = list(rows[0])
    if dialect.name == "postgresql":
        _copy_rows(connection, table, keys, rows)
        return
    compiled = insert(table).compile(dialect=dialect, column_keys=keys)
    columns: dict[str, list[Any]] = {}
    for key in keys:
        values = [row[key] for row in rows]
        process = table.c[key].type._cached_bind_processor(dialect)
        if process is not None:
            memo: dict[int, Any] = {}  # the same {} in every row is serialised once
            processed = []
            for value in values:
                if value is None:
                    processed.append(None)
                elif isinstance(value, dict | list):
                    if id(value) not in memo:
                        memo[id(value)] = process(value)
                    processed.append(memo[id(value)])
                else:
                    processed.append(process(value))
            values = processed
        columns[key] = values
    if compiled.positional:
        order = list(compiled.positiontup or [])
        params: list[Any] = list(zip(*(columns[key] for key in order), strict=True))
    else:
        params = [
            dict(zip(keys, values, strict=True)) for values in zip(*columns.values(), strict=True)
        ]
    connection.exec_driver_sql(compiled.string, params)


def _copy_rows(connection: Any, table: Table, keys: list[str], rows: list[dict[str, Any]]) -> None:
    """PostgreSQL: COPY is several times faster than any INSERT (psycopg adapts aware
    datetimes, floats and booleans itself; JSON goes as its text)."""
    json_keys = {key for key in keys if isinstance(table.c[key].type, JSON)}
    memo: dict[int, str] = {}

    def value(key: str, item: Any) -> Any:
        if key in json_keys and item is not None:
            if id(item) not in memo:
                memo[id(item)] = json.dumps(item)
            return memo[id(item)]
        return item

    driver = connection.connection.driver_connection
    columns = ", ".join(f'"{key}"' for key in keys)
    with (
        driver.cursor() as cursor,
        cursor.copy(f"COPY {table.name} ({columns}) FROM STDIN") as copy,
    ):
        for row in rows:
            copy.write_row([value(key, row[key]) for key in keys])


def seed_requests(
    session: Session,
    actor: Actor,
    city: DemoCity,
    progress: Progress | None = None,
) -> int:
    """Bulk-insert the city's service requests and their history; returns how many.

    Creates the request types first when they are missing. `progress(done)` is called after
    each chunk with the number of requests written so far. Not idempotent: seeding the same
    city twice fails on the unique tracking codes (and rolls back with the caller's
    transaction).
    """
    services = seed_request_services(session, actor, city)
    offices = dict(session.execute(select(Organization.slug, Organization.id)).all())
    users = dict(session.execute(select(User.email, User.id)).all())
    staff_users = {member.id: users.get(member.email) for member in city.staff}
    first_id = (session.scalar(select(func.max(ServiceRequest.id))) or 0) + 1
    requests: Sequence[DemoRequest] = city.service_requests
    label = actor.label
    done = 0
    request_table = ServiceRequest.__table__
    update_table = RequestUpdate.__table__
    for start in range(0, len(requests), CHUNK):
        chunk = requests[start : start + CHUNK]
        request_rows = []
        update_rows: list[dict[str, Any]] = []
        for offset, demo in enumerate(chunk):
            request_id = first_id + start + offset
            sub_status = _sub_status(demo)
            description = demo.description
            request_rows.append(
                {
                    "id": request_id,
                    "tracking_code": demo.tracking_code,
                    "submission_token": _token(city.seed, demo.tracking_code),
                    "service_id": services[demo.service_code],
                    "status": "closed" if demo.status == "closed" else "open",
                    "sub_status": sub_status,
                    "resolution": demo.resolution,
                    "status_notes": demo.status_notes or SUB_STATUSES[sub_status],
                    "priority": 2 if description.upper().startswith("URGENT") else 3,
                    "channel": demo.channel,
                    "description": description,
                    "public_description": scrub_personal_data(
                        description, known_names=(demo.resident_name,)
                    ),
                    "attribute_values": _EMPTY,
                    "media_url": None,
                    "lat": demo.lat,
                    "long": demo.lon,
                    "address": demo.address,
                    "address_id": None,
                    "zipcode": demo.postal_code,
                    "district_code": demo.district_code,
                    "organization_id": offices.get(demo.office_slug),
                    "assigned_user_id": staff_users.get(demo.assigned_staff_id)
                    if demo.assigned_staff_id
                    else None,
                    "duplicate_of_id": None,
                    "resident_name": demo.resident_name,
                    "resident_email": demo.resident_email,
                    "resident_phone": None,
                    "resident_user_id": None,
                    "resident_key_hash": None,
                    "device_id": None,
                    "account_id": None,
                    "api_token_id": None,
                    "client_hash": None,
                    "hidden": False,
                    "requested_at": demo.requested_at,
                    "updated_at": demo.updated_at,
                    "acknowledged_at": demo.acknowledged_at,
                    "started_at": demo.started_at,
                    "closed_at": demo.closed_at,
                    "expected_at": demo.expected_at,
                    "sla_paused_at": None,
                    "sla_paused_seconds": 0,
                }
            )
            update_rows.extend(_history(request_id, demo, sub_status, label))
        _bulk_insert(session, request_table, request_rows)
        _bulk_insert(session, update_table, update_rows)
        done += len(chunk)
        if progress is not None:
            progress(done)
    if session.get_bind().dialect.name == "postgresql" and requests:
        # Explicit ids leave the sequence behind; move it past them.
        session.execute(
            text(
                "SELECT setval(pg_get_serial_sequence('service_requests', 'id'), "
                "(SELECT max(id) FROM service_requests))"
            )
        )
    record(
        session,
        actor=actor,
        action="service_request.seed",
        object_type="service_request",
        object_id="demo",
        changes={"count": len(requests), "seed": city.seed, "first_id": first_id},
    )
    return len(requests)
