"""Writes for service requests. Each checks permission, changes, records the audit entry and
the request's history in the same transaction, and queues events, notifications and jobs for
after commit. None commits.

Personal data (resident name, email, phone, exact text) never enters the audit trail: the
trail is append-only and tamper-evident, so it must hold nothing that may have to be erased.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Final

from sqlalchemy import select
from sqlalchemy.orm import Session

from townhall.accounts import queries as account_queries
from townhall.actor import Actor
from townhall.audit.actions import record
from townhall.db import utcnow
from townhall.errors import ConflictError, NotFoundError, PermissionDenied, TownhallError
from townhall.events import publish_after_commit
from townhall.notify import actions as notify
from townhall.service_requests import queries
from townhall.service_requests.lifecycle import (
    PRIORITIES,
    SUB_STATUSES,
    can_transition,
    open311_status,
)
from townhall.service_requests.models import (
    RequestAttachment,
    RequestMessage,
    RequestService,
    RequestUpdate,
    ResponseTemplate,
    ServiceRequest,
)
from townhall.service_requests.privacy import scrub_personal_data
from townhall.service_requests.uploads import prepare_upload

if TYPE_CHECKING:
    from townhall.events import EventBus
    from townhall.jobs import JobQueue

TRACKING_ALPHABET: Final = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no 0/O, 1/I look-alikes
TRACKING_PREFIX: Final = "TH"
TRACKING_CODE = re.compile(r"^[A-Z0-9]{1,8}-[A-Z0-9]{4,16}$")
DESCRIPTION_MAX: Final = 4000  # Open311's maxLength
NOTE_MAX: Final = 4000
MESSAGE_MAX: Final = 4000
ATTRIBUTE_TEXT_MAX: Final = 4000
DATATYPES: Final = ("string", "number", "datetime", "text", "singlevaluelist", "multivaluelist")
SERVICE_TYPES: Final = ("realtime", "batch", "blackbox")
CHANNELS: Final = ("web", "open311", "api", "app", "phone", "walk_in", "email")
# Abuse limits on submissions; staff entering phone reports (requests:work) are exempt.
SUBMISSIONS_PER_HOUR_PER_ADDRESS: int = 20
SUBMISSIONS_PER_HOUR_PER_TOKEN: int = 600
# Under the default 10 MiB body limit, so a photo plus the form fields gets through.
ATTACHMENT_MAX_BYTES: int = 8 * 1024 * 1024
ATTACHMENTS_PER_REQUEST: int = 10
STAFF_CHANNEL: Final = "requests.queue"


@dataclass
class Effects:
    """Where side effects go once the transaction commits, and what links in them say.

    `locate(lat, long)` gives the district code of a point (wired to the directory's district
    boundaries by the app; None leaves the district empty)."""

    bus: EventBus | None = None
    jobs: JobQueue | None = None
    base_url: str = "http://127.0.0.1:8000"
    site_name: str = "Townhall"
    locate: Callable[[float, float], str | None] | None = None

    def tracking_url(self, code: str) -> str:
        return f"{self.base_url.rstrip('/')}/requests/{code}"

    def private_url(self, code: str, key: str) -> str:
        return f"{self.base_url.rstrip('/')}/requests/{code}/private?key={key}"

    def unsubscribe_url(self, token: str) -> str:
        return f"{self.base_url.rstrip('/')}/notify/unsubscribe/{token}"


def _invalid(loc: list[str], message: str, status: int = 422) -> TownhallError:
    return TownhallError(
        status,
        "invalid_request",
        f"{'.'.join(loc)}: {message}",
        errors=[{"loc": loc, "message": message, "type": "value_error"}],
    )


def key_hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


# Permissions -----------------------------------------------------------------------------------


def can_work(actor: Actor, request: ServiceRequest) -> bool:
    """Staff work the requests of their own offices; staff who belong to no office (a small
    town's single desk) and administrators work all of them."""
    if not actor.can("requests:work"):
        return False
    if actor.can("system:admin") or not actor.organization_ids:
        return True
    return request.organization_id is None or request.organization_id in actor.organization_ids


def _require_work(actor: Actor, request: ServiceRequest) -> None:
    actor.require("requests:work")
    if not can_work(actor, request):
        raise PermissionDenied("requests:work for this request's office")


def _get(session: Session, code: str) -> ServiceRequest:
    request = queries.request_by_code(session, code)
    if request is None:
        raise NotFoundError("request", code)
    return request


# Service definitions ---------------------------------------------------------------------------


def _check_attribute_definitions(attributes: list[dict[str, Any]]) -> list[dict[str, Any]]:
    clean = []
    seen: set[str] = set()
    for n, attribute in enumerate(attributes):
        code = str(attribute.get("code", "")).strip()
        if not code or not re.fullmatch(r"[A-Za-z0-9_.-]{1,64}", code):
            raise _invalid(["body", "attributes", str(n), "code"], "1-64 letters, digits, _.-")
        if code in seen:
            raise _invalid(["body", "attributes", str(n), "code"], f"{code!r} appears twice")
        seen.add(code)
        datatype = attribute.get("datatype", "string")
        if datatype not in DATATYPES:
            raise _invalid(
                ["body", "attributes", str(n), "datatype"], f"must be one of {', '.join(DATATYPES)}"
            )
        values = [
            {"key": str(v["key"]), "name": str(v.get("name", v["key"]))}
            for v in attribute.get("values") or []
        ]
        if datatype.endswith("valuelist") and not values:
            raise _invalid(["body", "attributes", str(n), "values"], "a list needs values")
        clean.append(
            {
                "code": code,
                "datatype": datatype,
                "required": bool(attribute.get("required", False)),
                "variable": bool(attribute.get("variable", True)),
                "order": int(attribute.get("order") or n + 1),
                "description": str(attribute.get("description") or ""),
                "datatype_description": attribute.get("datatype_description"),
                "values": values,
            }
        )
    return sorted(clean, key=lambda a: a["order"])


SERVICE_FIELDS: Final = (
    "name",
    "description",
    "group",
    "keywords",
    "attributes",
    "service_type",
    "service_notice",
    "expected_days",
    "default_priority",
    "location_required",
    "active",
    "directory_slug",
)


def create_service(
    session: Session,
    *,
    actor: Actor,
    code: str,
    name: str,
    organization_slug: str | None = None,
    **fields: Any,
) -> RequestService:
    """Define a request type. Raises 409 for a taken code, 404 for an unknown office."""
    actor.require("directory:edit")
    if queries.service_by_code(session, code) is not None:
        raise ConflictError(f"A request type with code {code!r} already exists.")
    unknown = set(fields) - set(SERVICE_FIELDS)
    if unknown:
        raise AssertionError(f"unknown service fields {unknown}")
    service = RequestService(code=code, name=name)
    _apply_service_fields(session, service, organization_slug, fields)
    session.add(service)
    session.flush()
    record(
        session,
        actor=actor,
        action="request_service.create",
        object_type="request_service",
        object_id=service.id,
        changes={"code": code, "name": name, "organization": organization_slug},
    )
    return service


def _apply_service_fields(
    session: Session,
    service: RequestService,
    organization_slug: str | None,
    fields: Mapping[str, Any],
) -> dict[str, Any]:
    changes: dict[str, Any] = {}
    if organization_slug is not None:
        organization = account_queries.organization_by_slug(session, organization_slug)
        if organization is None:
            raise NotFoundError("organization", organization_slug)
        if service.organization_id != organization.id:
            changes["organization"] = organization_slug
            service.organization_id = organization.id
            service.organization = organization
    for name, value in fields.items():
        if value is None:
            continue
        if name == "attributes":
            value = _check_attribute_definitions(list(value))
        elif name == "keywords":
            value = [str(k) for k in value]
        elif name == "service_type" and value not in SERVICE_TYPES:
            raise _invalid(["body", "service_type"], f"must be one of {', '.join(SERVICE_TYPES)}")
        elif name == "default_priority" and value not in PRIORITIES:
            raise _invalid(["body", "default_priority"], "must be 1 (urgent) to 4 (low)")
        if getattr(service, name) != value:
            changes[name] = value if name != "attributes" else f"{len(value)} attributes"
            setattr(service, name, value)
    service.updated_at = utcnow()
    return changes


def update_service(
    session: Session,
    *,
    actor: Actor,
    code: str,
    organization_slug: str | None = None,
    **fields: Any,
) -> RequestService:
    actor.require("directory:edit")
    service = queries.service_by_code(session, code)
    if service is None:
        raise NotFoundError("service", code)
    unknown = set(fields) - set(SERVICE_FIELDS)
    if unknown:
        raise AssertionError(f"unknown service fields {unknown}")
    changes = _apply_service_fields(session, service, organization_slug, fields)
    if changes:
        record(
            session,
            actor=actor,
            action="request_service.update",
            object_type="request_service",
            object_id=service.id,
            changes=changes,
        )
    return service


# Submission ------------------------------------------------------------------------------------


@dataclass
class Submission:
    """What a resident (or staff on their behalf) submits, from any channel.

    `attributes` maps an attribute code to the list of values given (Open311's
    `attribute[CODE]`, repeated for multi-value lists)."""

    service_code: str
    description: str = ""
    lat: float | None = None
    long: float | None = None
    address: str | None = None
    address_id: str | None = None
    zipcode: str | None = None
    district_code: str | None = None
    attributes: dict[str, list[str]] = field(default_factory=dict)
    media_url: str | None = None
    resident_name: str | None = None
    resident_email: str | None = None
    resident_phone: str | None = None
    device_id: str | None = None
    account_id: str | None = None
    channel: str = "web"
    priority: int | None = None
    client_hash: str | None = None
    language: str = "en"


@dataclass(frozen=True)
class Submitted:
    request: ServiceRequest
    resident_key: str


_EMAIL_SHAPE = re.compile(r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]{2,}$")


def client_hash(secret: str, address: str | None) -> str | None:
    """A keyed hash of the client's address: enough to count submissions from one place,
    useless for finding out who it was."""
    if not address:
        return None
    return hashlib.blake2b(address.encode(), key=secret.encode()[:64], digest_size=16).hexdigest()


def validate_attribute_values(
    service: RequestService, given: Mapping[str, list[str]]
) -> dict[str, Any]:
    """Check Open311 attribute answers against the service definition and convert them:
    numbers to float, datetimes to ISO 8601 in UTC, lists to their keys. Raises 422 naming
    the attribute for a missing required answer, an unknown code or a bad value."""
    definitions = {a["code"]: a for a in service.attributes or []}
    clean: dict[str, Any] = {}
    for code in given:
        if code not in definitions:
            raise _invalid(["attribute", code], f"is not an attribute of {service.code}")
    for code, definition in definitions.items():
        values = [v.strip() for v in given.get(code, []) if v is not None and v.strip() != ""]
        loc = ["attribute", code]
        if not values:
            if definition.get("required") and definition.get("variable", True):
                raise _invalid(loc, "is required")
            continue
        datatype = definition.get("datatype", "string")
        keys = {str(v["key"]) for v in definition.get("values") or []}
        if datatype == "multivaluelist":
            bad = [v for v in values if v not in keys]
            if bad:
                raise _invalid(loc, f"{bad[0]!r} is not one of the listed keys")
            clean[code] = list(dict.fromkeys(values))
            continue
        if len(values) > 1:
            raise _invalid(loc, "takes one value")
        value = values[0]
        if len(value) > ATTRIBUTE_TEXT_MAX:
            raise _invalid(loc, f"is longer than {ATTRIBUTE_TEXT_MAX} characters")
        if datatype == "singlevaluelist":
            if value not in keys:
                raise _invalid(loc, f"{value!r} is not one of the listed keys")
            clean[code] = value
        elif datatype == "number":
            try:
                number = float(value)
            except ValueError:
                raise _invalid(loc, f"{value!r} is not a number") from None
            if number != number or number in (float("inf"), float("-inf")):
                raise _invalid(loc, "must be a finite number")
            clean[code] = number
        elif datatype == "datetime":
            parsed = parse_datetime(value)
            if parsed is None:
                raise _invalid(loc, f"{value!r} is not an ISO 8601 date-time")
            clean[code] = parsed.isoformat()
        else:  # string, text
            if datatype == "string" and len(value) > 500:
                raise _invalid(loc, "is longer than 500 characters; this is a short answer")
            clean[code] = value
    return clean


def parse_datetime(value: str) -> datetime | None:
    """ISO 8601 date or date-time; a naive one is taken as UTC. A '+' turned into a space by
    an unencoded query string is put back. None when it does not parse."""
    text = value.strip().replace(" ", "+") if "T" in value else value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def _new_tracking_code(session: Session) -> str:
    while True:
        code = f"{TRACKING_PREFIX}-" + "".join(secrets.choice(TRACKING_ALPHABET) for _ in range(8))
        if queries.request_by_code(session, code) is None:
            return code


def _check_rate(session: Session, actor: Actor, submission: Submission, now: datetime) -> None:
    if actor.can("requests:work"):
        return
    since = now - timedelta(hours=1)
    if actor.token_id is not None:
        count = queries.recent_submission_count(session, since=since, api_token_id=actor.token_id)
        if count >= SUBMISSIONS_PER_HOUR_PER_TOKEN:
            raise TownhallError(
                429,
                "too_many_requests",
                f"This API key has submitted {count} requests in the last hour; wait a while.",
                headers={"Retry-After": "600"},
            )
    elif submission.client_hash is not None:
        count = queries.recent_submission_count(
            session, since=since, client_hash=submission.client_hash
        )
        if count >= SUBMISSIONS_PER_HOUR_PER_ADDRESS:
            raise TownhallError(
                429,
                "too_many_requests",
                "Too many requests from this address in the last hour; wait a while.",
                headers={"Retry-After": "600"},
            )


def _clean(value: str | None, limit: int) -> str | None:
    if value is None:
        return None
    value = " ".join(value.split()) if limit <= 500 else value.strip()
    return value[:limit] or None


def submit_request(
    session: Session,
    *,
    actor: Actor,
    submission: Submission,
    effects: Effects | None = None,
    now: datetime | None = None,
) -> Submitted:
    """Store a new request: validate, route to the service's office, set the expected time,
    record history and audit, acknowledge by email, announce it.

    Anyone may submit (the route decides whether an API key is needed). Raises 404 for an
    unknown or inactive service, 422 for bad input, 429 past the rate limits.
    """
    effects = effects or Effects()
    now = now or utcnow()
    service = queries.service_by_code(session, submission.service_code.strip())
    if service is None or not service.active:
        raise NotFoundError("service", submission.service_code)
    description = (submission.description or "").strip()
    if len(description) > DESCRIPTION_MAX:
        raise _invalid(["description"], f"is longer than {DESCRIPTION_MAX} characters")
    lat, long = submission.lat, submission.long
    if (lat is None) != (long is None):
        raise _invalid(["lat" if lat is None else "long"], "give both lat and long, or neither")
    if lat is not None and long is not None:
        if not (-90 <= lat <= 90) or lat != lat:
            raise _invalid(["lat"], "must be between -90 and 90")
        if not (-180 <= long <= 180) or long != long:
            raise _invalid(["long"], "must be between -180 and 180")
    address = _clean(submission.address, 500)
    address_id = _clean(submission.address_id, 100)
    if service.location_required and lat is None and not address and not address_id:
        raise _invalid(["location"], "give lat and long, address_string or address_id")
    email = _clean(submission.resident_email, 320)
    if email is not None and not _EMAIL_SHAPE.match(email):
        raise _invalid(["email"], "is not an email address")
    priority = submission.priority if submission.priority is not None else service.default_priority
    if priority not in PRIORITIES:
        raise _invalid(["priority"], "must be 1 (urgent) to 4 (low)")
    if submission.channel not in CHANNELS:
        raise AssertionError(f"unknown channel {submission.channel!r}")
    attribute_values = validate_attribute_values(service, submission.attributes)
    _check_rate(session, actor, submission, now)

    name = _clean(submission.resident_name, 200)
    district = _clean(submission.district_code, 40)
    if district is None and lat is not None and long is not None and effects.locate:
        district = effects.locate(lat, long)
    resident_key = secrets.token_urlsafe(18)
    request = ServiceRequest(
        tracking_code=_new_tracking_code(session),
        submission_token=secrets.token_urlsafe(18),
        service_id=service.id,
        status="open",
        sub_status="received",
        priority=priority,
        channel=submission.channel,
        description=description,
        public_description=scrub_personal_data(description, known_names=[name]),
        attribute_values=attribute_values,
        media_url=_clean(submission.media_url, 2000),
        lat=lat,
        long=long,
        address=address,
        address_id=address_id,
        zipcode=_clean(submission.zipcode, 20),
        district_code=district,
        organization_id=service.organization_id,
        resident_name=name,
        resident_email=email,
        resident_phone=_clean(submission.resident_phone, 40),
        resident_user_id=actor.user_id if actor.via == "session" else None,
        resident_key_hash=key_hash(resident_key),
        device_id=_clean(submission.device_id, 200),
        account_id=_clean(submission.account_id, 200),
        api_token_id=actor.token_id,
        client_hash=submission.client_hash,
        requested_at=now,
        updated_at=now,
        expected_at=(now + timedelta(days=service.expected_days))
        if service.expected_days
        else None,
    )
    request.service = service
    session.add(request)
    session.flush()
    session.add(
        RequestUpdate(
            request_id=request.id,
            at=now,
            kind="created",
            to_sub_status="received",
            public_note=None,
            actor_user_id=actor.user_id,
            actor_label=actor.label,
            changes={"channel": submission.channel},
        )
    )
    record(
        session,
        actor=actor,
        action="service_request.submit",
        object_type="service_request",
        object_id=request.tracking_code,
        changes={
            "service": service.code,
            "channel": submission.channel,
            "priority": priority,
            "district": district,
        },
    )
    if email:
        subscription = notify.subscribe(
            session,
            actor=actor,
            channel="email",
            topic=f"request:{request.tracking_code}",
            target=email,
            language=submission.language,
        )
        notify.queue_email(
            session,
            to=email,
            template_slug="request.acknowledgement",
            personalisation={
                **_personalisation(request, effects),
                "private_url": effects.private_url(request.tracking_code, resident_key),
            },
            reference=f"request:{request.tracking_code}",
            language=submission.language,
            subscription=subscription,
            event_type="request.created",
            unsubscribe_url=effects.unsubscribe_url(subscription.token),
            jobs=effects.jobs,
        )
    _announce(session, request, effects, "request.created", note=None, public=True)
    return Submitted(request=request, resident_key=resident_key)


# Public representation and announcements -------------------------------------------------------


def public_event_data(request: ServiceRequest, note: str | None = None) -> dict[str, Any]:
    """What anyone may know about a request: no resident data, no internal notes, the
    scrubbed description. Used by SSE events and webhooks."""
    return {
        "service_request_id": request.tracking_code,
        "tracking_code": request.tracking_code,
        "status": request.status,
        "sub_status": request.sub_status,
        "sub_status_label": SUB_STATUSES[request.sub_status],
        "status_notes": request.status_notes,
        "note": note,
        "service_code": request.service.code,
        "service_name": request.service.name,
        "description": request.public_description,
        "agency_responsible": request.organization.name if request.organization else None,
        "district": request.district_code,
        "address": request.address,
        "lat": request.lat,
        "long": request.long,
        "requested_datetime": request.requested_at.isoformat(),
        "updated_datetime": request.updated_at.isoformat(),
        "expected_datetime": request.expected_at.isoformat() if request.expected_at else None,
    }


def _personalisation(request: ServiceRequest, effects: Effects) -> dict[str, Any]:
    return {
        "site_name": effects.site_name,
        "tracking_code": request.tracking_code,
        "tracking_url": effects.tracking_url(request.tracking_code),
        "service_name": request.service.name,
        "status_label": SUB_STATUSES[request.sub_status],
        "address": request.address or "(no address given)",
        "expected_date": request.expected_at.date().isoformat() if request.expected_at else "-",
        "district": request.district_code or "-",
        "description": request.public_description or "",
        "resident_name": request.resident_name or "resident",
    }


def _topics(request: ServiceRequest) -> list[str]:
    topics = [f"request:{request.tracking_code}"]
    if request.district_code:
        topics += [
            f"area:{request.district_code}:{request.service.code}",
            f"area:{request.district_code}:*",
        ]
    if request.organization is not None:
        topics.append(f"office:{request.organization.slug}")
    return topics


def _announce(
    session: Session,
    request: ServiceRequest,
    effects: Effects,
    event_type: str,
    *,
    note: str | None,
    public: bool,
    exclude_emails: Iterable[str] = (),
) -> None:
    """SSE to the tracking page and the staff queue; email and webhooks to subscribers.
    Internal-only changes (assignment, priority, internal notes) reach staff only."""
    publish_after_commit(
        session,
        effects.bus,
        STAFF_CHANNEL,
        event_type,
        {
            "tracking_code": request.tracking_code,
            "sub_status": request.sub_status,
            "priority": request.priority,
            "assigned_user_id": request.assigned_user_id,
        },
    )
    if not public or request.hidden:
        return
    data = public_event_data(request, note)
    publish_after_commit(
        session, effects.bus, f"request.{request.tracking_code.lower()}", event_type, data
    )
    topics = _topics(request)
    if event_type == "request.created":
        topics = topics[1:]  # nobody follows it yet but the resident, who gets the receipt
    notify.notify_topics(
        session,
        topics=topics,
        event_type=event_type,
        email_template="request.new_in_area"
        if event_type == "request.created"
        else "request.status_changed",
        personalisation={**_personalisation(request, effects), "note": note or ""},
        payload=data,
        reference=f"request:{request.tracking_code}",
        unsubscribe_url_for=lambda subscription: effects.unsubscribe_url(subscription.token),
        exclude_emails=exclude_emails,
        jobs=effects.jobs,
    )


# Staff work ------------------------------------------------------------------------------------


def _history(
    session: Session,
    request: ServiceRequest,
    actor: Actor,
    kind: str,
    *,
    now: datetime,
    from_sub_status: str | None = None,
    to_sub_status: str | None = None,
    public_note: str | None = None,
    internal_note: str | None = None,
    changes: dict[str, Any] | None = None,
) -> RequestUpdate:
    update = RequestUpdate(
        request_id=request.id,
        at=now,
        kind=kind,
        from_sub_status=from_sub_status,
        to_sub_status=to_sub_status,
        public_note=public_note,
        internal_note=internal_note,
        changes=changes or {},
        actor_user_id=actor.user_id,
        actor_label=actor.label,
    )
    session.add(update)
    return update


def _note(value: str | None, loc: str) -> str | None:
    if value is None or not value.strip():
        return None
    if len(value) > NOTE_MAX:
        raise _invalid([loc], f"is longer than {NOTE_MAX} characters")
    return value.strip()


def _apply_sub_status(request: ServiceRequest, to: str, now: datetime) -> None:
    """Move the request and its clocks. Waiting for the resident stops the SLA clock; leaving
    that state pushes `expected_at` later by the time spent waiting."""
    before = request.sub_status
    if before == "waiting_for_resident" and request.sla_paused_at is not None:
        paused = now - request.sla_paused_at
        if request.expected_at is not None:
            request.expected_at = request.expected_at + paused
        request.sla_paused_seconds = (request.sla_paused_seconds or 0) + int(paused.total_seconds())
        request.sla_paused_at = None
    if to == "waiting_for_resident":
        request.sla_paused_at = now
    request.sub_status = to
    request.status = open311_status(to)
    if before == "received" and request.acknowledged_at is None:
        request.acknowledged_at = now
    if to == "in_progress" and request.started_at is None:
        request.started_at = now
    if request.status == "closed":
        request.closed_at = now
        request.resolution = to
    else:
        request.closed_at = None
        request.resolution = None
    request.updated_at = now


def transition(
    session: Session,
    *,
    actor: Actor,
    code: str,
    to: str,
    public_note: str | None = None,
    internal_note: str | None = None,
    effects: Effects | None = None,
    now: datetime | None = None,
) -> ServiceRequest:
    """Change the sub-status along an allowed transition, with optional notes. Raises 409
    `invalid_transition` for a move the lifecycle does not allow (or to the same state)."""
    effects = effects or Effects()
    now = now or utcnow()
    request = _get(session, code)
    _require_work(actor, request)
    if to not in SUB_STATUSES:
        raise _invalid(["body", "sub_status"], f"must be one of {', '.join(SUB_STATUSES)}")
    if not can_transition(request.sub_status, to):
        raise TownhallError(
            409,
            "invalid_transition",
            f"A request that is {request.sub_status.replace('_', ' ')} cannot become "
            f"{to.replace('_', ' ')}.",
        )
    public_note = _note(public_note, "public_note")
    internal_note = _note(internal_note, "internal_note")
    before = request.sub_status
    _apply_sub_status(request, to, now)
    request.status_notes = public_note or SUB_STATUSES[to]
    _history(
        session,
        request,
        actor,
        "status",
        now=now,
        from_sub_status=before,
        to_sub_status=to,
        public_note=public_note,
        internal_note=internal_note,
    )
    record(
        session,
        actor=actor,
        action="service_request.transition",
        object_type="service_request",
        object_id=request.tracking_code,
        changes={"sub_status": [before, to], "status": request.status},
    )
    _announce(session, request, effects, "request.updated", note=public_note, public=True)
    return request


def add_note(
    session: Session,
    *,
    actor: Actor,
    code: str,
    public_note: str | None = None,
    internal_note: str | None = None,
    effects: Effects | None = None,
    now: datetime | None = None,
) -> ServiceRequest:
    """A note without a status change. A public note is announced to followers."""
    effects = effects or Effects()
    now = now or utcnow()
    request = _get(session, code)
    _require_work(actor, request)
    public_note = _note(public_note, "public_note")
    internal_note = _note(internal_note, "internal_note")
    if public_note is None and internal_note is None:
        raise _invalid(["body", "public_note"], "give a public or an internal note")
    _history(
        session,
        request,
        actor,
        "note",
        now=now,
        public_note=public_note,
        internal_note=internal_note,
    )
    if public_note:
        request.status_notes = public_note
    request.updated_at = now
    record(
        session,
        actor=actor,
        action="service_request.note",
        object_type="service_request",
        object_id=request.tracking_code,
        changes={"public": public_note is not None, "internal": internal_note is not None},
    )
    _announce(
        session, request, effects, "request.updated", note=public_note, public=bool(public_note)
    )
    return request


def assign(
    session: Session,
    *,
    actor: Actor,
    code: str,
    user_id: int | None,
    internal_note: str | None = None,
    effects: Effects | None = None,
    now: datetime | None = None,
) -> ServiceRequest:
    """Give the request to a staff member (None: back to the pool). A request still received
    or triaged moves to `assigned`."""
    effects = effects or Effects()
    now = now or utcnow()
    request = _get(session, code)
    _require_work(actor, request)
    if user_id is not None:
        user = account_queries.user_by_id(session, user_id)
        if user is None or not user.is_active:
            raise NotFoundError("user", user_id)
    before_user = request.assigned_user_id
    request.assigned_user_id = user_id
    request.assigned_user = (
        None if user_id is None else account_queries.user_by_id(session, user_id)
    )
    before = request.sub_status
    if user_id is not None and before in ("received", "triaged"):
        _apply_sub_status(request, "assigned", now)
        request.status_notes = SUB_STATUSES["assigned"]
    request.updated_at = now
    _history(
        session,
        request,
        actor,
        "assign",
        now=now,
        from_sub_status=before,
        to_sub_status=request.sub_status,
        internal_note=_note(internal_note, "internal_note"),
        changes={"assigned_user_id": [before_user, user_id]},
    )
    record(
        session,
        actor=actor,
        action="service_request.assign",
        object_type="service_request",
        object_id=request.tracking_code,
        changes={
            "assigned_user_id": [before_user, user_id],
            "sub_status": [before, request.sub_status],
        },
    )
    _announce(
        session,
        request,
        effects,
        "request.updated",
        note=None,
        public=request.sub_status != before,
    )
    return request


def set_priority(
    session: Session,
    *,
    actor: Actor,
    code: str,
    priority: int,
    effects: Effects | None = None,
    now: datetime | None = None,
) -> ServiceRequest:
    effects = effects or Effects()
    now = now or utcnow()
    request = _get(session, code)
    _require_work(actor, request)
    if priority not in PRIORITIES:
        raise _invalid(["body", "priority"], "must be 1 (urgent) to 4 (low)")
    if priority == request.priority:
        return request
    before = request.priority
    request.priority = priority
    request.updated_at = now
    _history(session, request, actor, "priority", now=now, changes={"priority": [before, priority]})
    record(
        session,
        actor=actor,
        action="service_request.priority",
        object_type="service_request",
        object_id=request.tracking_code,
        changes={"priority": [before, priority]},
    )
    _announce(session, request, effects, "request.updated", note=None, public=False)
    return request


def set_hidden(
    session: Session, *, actor: Actor, code: str, hidden: bool, reason: str | None = None
) -> ServiceRequest:
    """Take an abusive or sensitive request off public lists (Open311 and the pages)."""
    request = _get(session, code)
    _require_work(actor, request)
    if request.hidden != hidden:
        request.hidden = hidden
        now = utcnow()
        request.updated_at = now
        _history(
            session,
            request,
            actor,
            "visibility",
            now=now,
            internal_note=_note(reason, "reason"),
            changes={"hidden": hidden},
        )
        record(
            session,
            actor=actor,
            action="service_request.hide" if hidden else "service_request.unhide",
            object_type="service_request",
            object_id=request.tracking_code,
            changes={"hidden": hidden},
        )
    return request


def merge_duplicate(
    session: Session,
    *,
    actor: Actor,
    code: str,
    into_code: str,
    effects: Effects | None = None,
    now: datetime | None = None,
) -> ServiceRequest:
    """Close `code` as a duplicate of `into_code`; its resident now follows the original."""
    effects = effects or Effects()
    now = now or utcnow()
    duplicate = _get(session, code)
    original = _get(session, into_code)
    if duplicate.id == original.id:
        raise _invalid(["body", "into"], "a request cannot duplicate itself")
    if original.duplicate_of_id is not None:
        raise ConflictError(
            f"{original.tracking_code} is itself a duplicate; merge into its original."
        )
    _require_work(actor, duplicate)
    note = f"Duplicate of {original.tracking_code}; follow that request for progress."
    transition(
        session,
        actor=actor,
        code=duplicate.tracking_code,
        to="duplicate",
        public_note=note,
        effects=effects,
        now=now,
    )
    duplicate.duplicate_of_id = original.id
    _history(
        session,
        original,
        actor,
        "merge",
        now=now,
        public_note=f"Another report of this problem ({duplicate.tracking_code}) was merged here.",
        changes={"merged": duplicate.tracking_code},
    )
    original.updated_at = now
    if duplicate.resident_email:
        notify.subscribe(
            session,
            actor=actor,
            channel="email",
            topic=f"request:{original.tracking_code}",
            target=duplicate.resident_email,
        )
    record(
        session,
        actor=actor,
        action="service_request.merge",
        object_type="service_request",
        object_id=duplicate.tracking_code,
        changes={"into": original.tracking_code},
    )
    return duplicate


def apply_template(
    session: Session, *, template_id: int, request: ServiceRequest, effects: Effects
) -> str:
    """A response template's body with the request's placeholders filled."""
    from townhall.notify.templating import render

    template = queries.response_template_by_id(session, template_id)
    if template is None or not template.active:
        raise NotFoundError("template", template_id)
    return render(template.body, _personalisation(request, effects))


def create_response_template(
    session: Session, *, actor: Actor, name: str, body: str, sub_status: str | None = None
) -> ResponseTemplate:
    actor.require("directory:edit")
    if sub_status is not None and sub_status not in SUB_STATUSES:
        raise _invalid(["body", "sub_status"], f"must be one of {', '.join(SUB_STATUSES)}")
    if session.scalar(select(ResponseTemplate).where(ResponseTemplate.name == name)):
        raise ConflictError(f"A template named {name!r} already exists.")
    template = ResponseTemplate(name=name.strip(), body=body.strip(), sub_status=sub_status)
    session.add(template)
    session.flush()
    record(
        session,
        actor=actor,
        action="request_template.create",
        object_type="request_template",
        object_id=template.id,
        changes={"name": name, "sub_status": sub_status},
    )
    return template


# Messages --------------------------------------------------------------------------------------


def reply_to_resident(
    session: Session,
    *,
    actor: Actor,
    code: str,
    body: str,
    effects: Effects | None = None,
    now: datetime | None = None,
) -> RequestMessage:
    """A private message from the office to the resident, emailed when they gave an address.
    The email carries a fresh private link (the old key is replaced)."""
    effects = effects or Effects()
    now = now or utcnow()
    request = _get(session, code)
    _require_work(actor, request)
    text = (body or "").strip()
    if not text or len(text) > MESSAGE_MAX:
        raise _invalid(["body", "body"], f"give 1 to {MESSAGE_MAX} characters")
    message = RequestMessage(
        request_id=request.id,
        at=now,
        direction="to_resident",
        body=text,
        author_user_id=actor.user_id,
        author_label=actor.label,
    )
    session.add(message)
    request.updated_at = now
    _history(session, request, actor, "message", now=now, changes={"direction": "to_resident"})
    record(
        session,
        actor=actor,
        action="service_request.reply",
        object_type="service_request",
        object_id=request.tracking_code,
        changes={"length": len(text)},
    )
    if request.resident_email:
        key = secrets.token_urlsafe(18)
        request.resident_key_hash = key_hash(key)
        notify.queue_email(
            session,
            to=request.resident_email,
            template_slug="request.reply",
            personalisation={
                **_personalisation(request, effects),
                "message": text,
                "private_url": effects.private_url(request.tracking_code, key),
            },
            reference=f"request:{request.tracking_code}",
            event_type="request.reply",
            jobs=effects.jobs,
        )
    session.flush()
    return message


def resident_can_access(request: ServiceRequest, key: str | None) -> bool:
    return bool(
        key
        and request.resident_key_hash
        and secrets.compare_digest(key_hash(key), request.resident_key_hash)
    )


def message_from_resident(
    session: Session,
    *,
    actor: Actor,
    code: str,
    key: str,
    body: str,
    effects: Effects | None = None,
    now: datetime | None = None,
) -> RequestMessage:
    """The resident answers through their private link. A request waiting for the resident
    resumes where it was, and its SLA clock runs again."""
    effects = effects or Effects()
    now = now or utcnow()
    request = _get(session, code)
    if not resident_can_access(request, key):
        raise TownhallError(403, "permission_denied", "This link is not valid for the request.")
    text = (body or "").strip()
    if not text or len(text) > MESSAGE_MAX:
        raise _invalid(["body", "body"], f"give 1 to {MESSAGE_MAX} characters")
    message = RequestMessage(
        request_id=request.id,
        at=now,
        direction="from_resident",
        body=text,
        author_label="resident",
    )
    session.add(message)
    request.updated_at = now
    _history(session, request, actor, "message", now=now, changes={"direction": "from_resident"})
    if request.sub_status == "waiting_for_resident":
        resume = _state_before_waiting(session, request) or "triaged"
        _apply_sub_status(request, resume, now)
        request.status_notes = SUB_STATUSES[resume]
        _history(
            session,
            request,
            actor,
            "status",
            now=now,
            from_sub_status="waiting_for_resident",
            to_sub_status=resume,
            public_note="The resident answered; work resumes.",
        )
    record(
        session,
        actor=actor,
        action="service_request.resident_message",
        object_type="service_request",
        object_id=request.tracking_code,
        changes={"length": len(text), "sub_status": request.sub_status},
    )
    _announce(session, request, effects, "request.message", note=None, public=False)
    session.flush()
    return message


def _state_before_waiting(session: Session, request: ServiceRequest) -> str | None:
    last = session.scalar(
        select(RequestUpdate.from_sub_status)
        .where(
            RequestUpdate.request_id == request.id,
            RequestUpdate.to_sub_status == "waiting_for_resident",
        )
        .order_by(RequestUpdate.at.desc(), RequestUpdate.id.desc())
        .limit(1)
    )
    return last if last and can_transition("waiting_for_resident", last) else None


def follow_request(
    session: Session,
    *,
    actor: Actor,
    code: str,
    email: str,
    effects: Effects | None = None,
) -> str:
    """A resident follows an existing request (instead of filing a duplicate). Returns the
    subscription's unsubscribe URL. A new follower gets a confirmation email carrying the
    one-click unsubscribe link, so an address typed in by someone else can leave at once.
    Idempotent for an address already following."""
    effects = effects or Effects()
    request = _get(session, code)
    if request.hidden:
        raise NotFoundError("request", code)
    if not _EMAIL_SHAPE.match(email.strip()):
        raise _invalid(["email"], "is not an email address")
    topic = f"request:{request.tracking_code}"
    return notify.follow_by_email(
        session,
        actor=actor,
        topic=topic,
        email=email,
        personalisation={
            **_personalisation(request, effects),
            "topic_label": f"request {request.tracking_code} ({request.service.name})",
        },
        unsubscribe_url_for=effects.unsubscribe_url,
        jobs=effects.jobs,
    )


# Attachments -----------------------------------------------------------------------------------


def add_attachment(
    session: Session,
    *,
    actor: Actor,
    code: str,
    filename: str,
    data: bytes,
    key: str | None = None,
    is_public: bool = False,
) -> RequestAttachment:
    """Attach a file, by staff (requests:work) or by the resident (with the private key, or
    right after submitting). Photos from residents start private until staff publish them."""
    request = _get(session, code)
    by_staff = can_work(actor, request)
    if not by_staff and not resident_can_access(request, key):
        raise PermissionDenied("requests:work")
    count = len(queries.attachments(session, request.id, public_only=False))
    if count >= ATTACHMENTS_PER_REQUEST:
        raise ConflictError(f"A request may have at most {ATTACHMENTS_PER_REQUEST} attachments.")
    name, content_type, clean = prepare_upload(filename, data, max_bytes=ATTACHMENT_MAX_BYTES)
    attachment = RequestAttachment(
        request_id=request.id,
        filename=name,
        content_type=content_type,
        size_bytes=len(clean),
        sha256=hashlib.sha256(clean).hexdigest(),
        data=clean,
        is_public=is_public and by_staff,
        uploaded_by="staff" if by_staff else "resident",
    )
    session.add(attachment)
    session.flush()
    record(
        session,
        actor=actor,
        action="service_request.attach",
        object_type="service_request",
        object_id=request.tracking_code,
        changes={"attachment_id": attachment.id, "type": content_type, "bytes": len(clean)},
    )
    return attachment


def set_attachment_public(
    session: Session, *, actor: Actor, attachment_id: int, is_public: bool
) -> RequestAttachment:
    attachment = queries.attachment_by_id(session, attachment_id)
    if attachment is None:
        raise NotFoundError("attachment", attachment_id)
    request = queries.request_by_id(session, attachment.request_id)
    assert request is not None
    _require_work(actor, request)
    if attachment.is_public != is_public:
        attachment.is_public = is_public
        record(
            session,
            actor=actor,
            action="service_request.attachment_visibility",
            object_type="service_request",
            object_id=request.tracking_code,
            changes={"attachment_id": attachment.id, "public": is_public},
        )
    return attachment
