"""Open311 GeoReport v2 over the service requests slice, at `/open311/v2/`.

Discovery at `/open311/discovery.json` (and `.xml`). Every GeoReport v2 call, in JSON and XML:
`services`, `services/{code}`, `requests` (GET with every filter, POST form-encoded with
`api_key`), `requests/{id}` (also at the swagger's `request/{id}`), `tokens/{token}`. Lists are
bare arrays; IDs are strings; datetimes carry their zone (UTC). Errors keep the spec's shape,
`[{"code": 400, "description": "..."}]` (XML: `<errors><error>...`), for every failure under
`/open311/`, including routing and validation errors.

Mapping (Open311 → Townhall): `service_request_id` is the tracking code (the integer id never
leaves the office); `description` is the scrubbed public description; `status` is open/closed
and `status_notes` the latest public note; `agency_responsible` the office's name; `media_url`
the URL given on submission or the first published photo. The `api_key` is a Townhall API token
whose user has `open311:submit` (`townhall tokens create --email E --scope open311:submit`).

Extensions, as common servers offer them: `page` and `page_size` (at most 1,000); `extensions=
true` adds `extended_attributes` (sub-status, district, attribute answers, the public notes
history, duplicate_of); `updated_after`/`updated_before`; `lat`+`long`+`radius` (metres);
`district`. The default window is the last 90 days and the first 1,000 requests, newest first.
Personal data (resident name, email, phone, the exact text) is never returned.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any
from urllib.parse import urlsplit

from fastapi import APIRouter, Depends, FastAPI, Query, Request
from fastapi.responses import JSONResponse, Response
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData, UploadFile

from townhall.accounts import actions as account_actions
from townhall.accounts import queries as account_queries
from townhall.accounts.auth import PUBLIC, actor_for_user
from townhall.accounts.permissions import mark_access, permissions_for_role
from townhall.actor import Actor
from townhall.db import unit_of_work, utcnow
from townhall.deps import DbSession
from townhall.errors import TownhallError
from townhall.ratelimit import enforce as enforce_rate_limit
from townhall.service_requests import actions, queries
from townhall.service_requests.api import (
    PUBLIC_STATUS,
    StatusRoute,
    district_before_transaction,
    effects_for,
    include_first,
    json_response,
    keep_status,
    kept_status,
    request_client_hash,
    run_status_lookup,
    status_caller,
    status_caller_async,
    status_connection,
    status_lookup_is_async,
    status_read,
)
from townhall.service_requests.lifecycle import SUB_STATUSES
from townhall.service_requests.models import RequestService, ServiceRequest
from townhall.service_requests.privacy import scrub_personal_data

PREFIX = "/open311"
SPEC_URL = "http://wiki.open311.org/GeoReport_v2"
DEFAULT_WINDOW = timedelta(days=90)
MAX_WINDOW = timedelta(days=90)
MAX_PAGE_SIZE = 1000
DEFAULT_RADIUS_M = 500.0
FORMATS = {"json": "application/json", "xml": "text/xml; charset=utf-8"}
# Singular element names for XML lists (the spec's own where it has one).
_XML_ITEMS = {
    "services": "service",
    "service_requests": "request",
    "attributes": "attribute",
    "values": "value",
    "notes": "note",
    "endpoints": "endpoint",
    "formats": "format",
    "errors": "error",
    "answers": "answer",
}

router = APIRouter(prefix=PREFIX, tags=["open311"])
# The status lookups alone, so they can be matched before every other route (`include_first`).
status_router = APIRouter(prefix=PREFIX, tags=["open311"], route_class=StatusRoute)


class Open311Error(TownhallError):
    """An error in the spec's terms: status and description (code kept for the native log)."""

    def __init__(self, status: int, description: str, code: str = "invalid_request") -> None:
        super().__init__(status, code, description)


# Errors and output -----------------------------------------------------------------------------


def open311_error_shape(
    request: Request, status: int, code: str, message: str, errors: list[dict[str, Any]]
) -> Response:
    """Installed for `/open311/` in `app.state.error_shapes`. Open311 answers 400 for any bad
    input (not 422) and 403 for a missing or bad api_key (not 401)."""
    if status == 422:
        status = 400
    elif status == 401:
        status = 403
    descriptions = [message]
    if len(errors) > 1:  # one error object per problem, as the spec's array allows
        descriptions = []
        for item in errors:
            loc = [str(p) for p in item.get("loc", []) if p not in ("body", "query", "path")]
            text = item.get("message") or message
            descriptions.append(f"{'.'.join(loc)}: {text}" if loc else text)
    body = [{"code": status, "description": text} for text in descriptions]
    if request.url.path.endswith(".xml"):
        return _xml_response("errors", body, status=status)
    return JSONResponse(body, status_code=status)


def _to_xml(parent: ET.Element, name: str, value: Any) -> None:
    if isinstance(value, list):
        container = ET.SubElement(parent, name)
        item_name = _XML_ITEMS.get(name, "item")
        for item in value:
            _to_xml(container, item_name, item)
        return
    element = ET.SubElement(parent, name)
    if isinstance(value, dict):
        for key, inner in value.items():
            _to_xml(element, key, inner)
    elif isinstance(value, bool):
        element.text = "true" if value else "false"
    elif value is not None:
        element.text = str(value)


def _xml_response(
    root: str, items: list[dict[str, Any]] | dict[str, Any], status: int = 200
) -> Response:
    if isinstance(items, dict):
        element = ET.Element(root)
        for key, value in items.items():
            _to_xml(element, key, value)
    else:
        element = ET.Element(root)
        item_name = _XML_ITEMS.get(root, "item")
        for item in items:
            _to_xml(element, item_name, item)
    body = b'<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(element, encoding="utf-8")
    return Response(body, status_code=status, media_type=FORMATS["xml"])


def _respond(fmt: str, root: str, data: list[dict[str, Any]] | dict[str, Any]) -> Response:
    if fmt == "xml":
        return _xml_response(root, data)
    return json_response(data)


def _format(fmt: str) -> str:
    if fmt not in FORMATS:
        raise Open311Error(404, f"Unknown format {fmt!r}: use .json or .xml.", "not_found")
    return fmt


def _iso(value: datetime | None) -> str | None:
    return value.astimezone(UTC).isoformat(timespec="seconds") if value else None


# Jurisdiction ----------------------------------------------------------------------------------


def jurisdiction_id(request: Request) -> str:
    """The jurisdiction this server answers for: the host name of the public base URL."""
    return (urlsplit(request.app.state.settings.base_url).hostname or "localhost").lower()


def _check_jurisdiction(request: Request, given: str | None) -> None:
    ours = jurisdiction_id(request)
    if given and given.strip().lower() != ours:
        raise Open311Error(
            404,
            f"jurisdiction_id {given!r} was not found; this server is {ours!r}.",
            "jurisdiction_not_found",
        )


Jurisdiction = Annotated[
    str | None, Query(max_length=200, description="Optional; this server's host name")
]


# Discovery -------------------------------------------------------------------------------------


@router.get("/discovery.{fmt}", dependencies=[PUBLIC], summary="Open311 discovery document")
def discovery(fmt: str, request: Request, db: DbSession) -> Response:
    fmt = _format(fmt)
    settings = request.app.state.settings
    services = queries.list_services(db, include_inactive=True)
    changeset = max((s.updated_at for s in services), default=None) or datetime(
        2026, 1, 1, tzinfo=UTC
    )
    base = settings.base_url.rstrip("/")
    document = {
        "changeset": _iso(changeset),
        "contact": f"{settings.site_name}: {base}/",
        "key_service": f"Create an API token with the open311:submit scope at {base}/admin.",
        "endpoints": [
            {
                "specification": SPEC_URL,
                "url": f"{base}{PREFIX}/v2",
                "changeset": _iso(changeset),
                "type": "production",
                "formats": ["application/json", "text/xml"],
            }
        ],
    }
    return _respond(fmt, "discovery", document)


# Services --------------------------------------------------------------------------------------


def _service(service: RequestService) -> dict[str, Any]:
    return {
        "service_code": service.code,
        "service_name": service.name,
        "description": service.description or None,
        "metadata": bool(service.attributes),
        "type": service.service_type,
        "keywords": ", ".join(service.keywords or []) or None,
        "group": service.group,
    }


def _attribute(attribute: dict[str, Any]) -> dict[str, Any]:
    return {
        "variable": bool(attribute.get("variable", True)),
        "code": attribute["code"],
        "datatype": attribute.get("datatype", "string"),
        "required": bool(attribute.get("required", False)),
        "datatype_description": attribute.get("datatype_description"),
        "order": attribute.get("order"),
        "description": attribute.get("description") or None,
        "values": [
            {"key": str(v["key"]), "name": str(v["name"])} for v in attribute.get("values") or []
        ],
    }


@router.get("/v2/services.{fmt}", dependencies=[PUBLIC], summary="Service types")
def list_services(
    fmt: str, request: Request, db: DbSession, jurisdiction_id: Jurisdiction = None
) -> Response:
    fmt = _format(fmt)
    _check_jurisdiction(request, jurisdiction_id)
    return _respond(fmt, "services", [_service(s) for s in queries.list_services(db)])


@router.get(
    "/v2/services/{service_code}.{fmt}",
    dependencies=[PUBLIC],
    summary="Service definition (attributes)",
)
def service_definition(
    service_code: str,
    fmt: str,
    request: Request,
    db: DbSession,
    jurisdiction_id: Jurisdiction = None,
) -> Response:
    fmt = _format(fmt)
    _check_jurisdiction(request, jurisdiction_id)
    service = queries.service_by_code(db, service_code)
    if service is None or not service.active:
        raise Open311Error(
            404, f"service_code {service_code!r} was not found.", "service_not_found"
        )
    definition = {
        "service_code": service.code,
        "attributes": [_attribute(a) for a in service.attributes or []],
    }
    return _respond(fmt, "service_definition", definition)


# Requests: reading -----------------------------------------------------------------------------


def _public_attributes(request: ServiceRequest) -> list[dict[str, Any]]:
    """Attribute answers for extensions: free text is scrubbed like the description."""
    answers = []
    for code, value in (request.attribute_values or {}).items():
        if isinstance(value, str):
            value = scrub_personal_data(value, known_names=[request.resident_name])
        answers.append({"code": code, "value": value})
    return answers


def request_document(
    request: ServiceRequest,
    *,
    base_url: str,
    media_attachment_id: int | None = None,
    notes: list[dict[str, Any]] | None = None,
    duplicate_of: str | None = None,
) -> dict[str, Any]:
    """One request in Open311's terms; `notes` (a list) adds the extended attributes."""
    media_url = request.media_url
    if media_url is None and media_attachment_id is not None:
        media_url = (
            f"{base_url.rstrip('/')}/requests/{request.tracking_code}/attachments/"
            f"{media_attachment_id}"
        )
    document: dict[str, Any] = {
        "service_request_id": request.tracking_code,
        "status": request.status,
        "status_notes": request.status_notes,
        "service_name": request.service.name,
        "service_code": request.service.code,
        "description": request.public_description or None,
        "agency_responsible": request.organization.name if request.organization else None,
        "service_notice": request.service.service_notice,
        "requested_datetime": _iso(request.requested_at),
        "updated_datetime": _iso(request.closed_at or request.updated_at),
        "expected_datetime": _iso(request.expected_at),
        "address": request.address,
        "address_id": request.address_id,
        "zipcode": request.zipcode,
        "lat": request.lat,
        "long": request.long,
        "media_url": media_url,
    }
    if notes is not None:
        document["extended_attributes"] = {
            "sub_status": request.sub_status,
            "sub_status_label": SUB_STATUSES[request.sub_status],
            "district": request.district_code,
            "channel": request.channel,
            "duplicate_of": duplicate_of,
            "answers": _public_attributes(request),
            "notes": notes,
        }
    return document


def _documents(
    db: Session, rows: list[ServiceRequest], base_url: str, extensions: bool
) -> list[dict[str, Any]]:
    ids = [r.id for r in rows]
    media = queries.first_public_attachment_ids(db, ids)
    notes: dict[int, list[dict[str, Any]]] = {}
    originals: dict[int, str] = {}
    if extensions:
        for request_id, updates in queries.histories(db, ids, public_only=True).items():
            notes[request_id] = [
                {
                    "datetime": _iso(u.at),
                    "type": u.kind,
                    "status": None
                    if u.to_sub_status is None
                    else (
                        "open"
                        if u.to_sub_status
                        not in ("resolved", "closed_not_fixed", "duplicate", "rejected")
                        else "closed"
                    ),
                    "sub_status": u.to_sub_status,
                    "description": u.public_note,
                }
                for u in updates
            ]
        duplicate_ids = {r.duplicate_of_id for r in rows if r.duplicate_of_id}
        for request_id in duplicate_ids:
            original = queries.request_by_id(db, request_id)
            if original is not None:
                originals[request_id] = original.tracking_code
    return [
        request_document(
            r,
            base_url=base_url,
            media_attachment_id=media.get(r.id),
            notes=notes.get(r.id, []) if extensions else None,
            duplicate_of=originals.get(r.duplicate_of_id) if r.duplicate_of_id else None,
        )
        for r in rows
    ]


def _date(value: str | None, name: str) -> datetime | None:
    if value is None or value == "":
        return None
    parsed = actions.parse_datetime(value)
    if parsed is None:
        raise Open311Error(400, f"{name} {value!r} is not a W3C date-time (2010-01-01T00:00:00Z).")
    return parsed


def _csv(value: str | None) -> list[str]:
    return [part.strip() for part in (value or "").split(",") if part.strip()]


def _truthy(value: str | None) -> bool:
    return (value or "").strip().lower() in ("true", "1", "yes")


def _float(value: str | None, name: str) -> float | None:
    if value is None or value.strip() == "":
        return None
    try:
        number = float(value)
    except ValueError:
        raise Open311Error(400, f"{name} {value!r} is not a number.") from None
    if number != number or number in (float("inf"), float("-inf")):
        raise Open311Error(400, f"{name} must be a finite number.")
    return number


def _int(value: str | None, name: str, default: int, maximum: int) -> int:
    if value is None or value.strip() == "":
        return default
    try:
        number = int(value)
    except ValueError:
        raise Open311Error(400, f"{name} {value!r} is not a whole number.") from None
    if not 1 <= number <= maximum:
        raise Open311Error(400, f"{name} must be between 1 and {maximum}.")
    return number


Text = Annotated[str | None, Query(max_length=2000)]


@router.get("/v2/requests.{fmt}", dependencies=[PUBLIC], summary="Service requests")
def list_requests(
    fmt: str,
    request: Request,
    db: DbSession,
    jurisdiction_id: Jurisdiction = None,
    service_request_id: Text = None,
    service_code: Text = None,
    start_date: Text = None,
    end_date: Text = None,
    status: Text = None,
    updated_after: Text = None,
    updated_before: Text = None,
    lat: Text = None,
    long: Text = None,
    radius: Text = None,
    district: Text = None,
    page: Text = None,
    page_size: Text = None,
    extensions: Text = None,
) -> Response:
    """Requests, newest first. `service_request_id` (comma-separated) overrides every other
    filter. Without dates: the last 90 days; a range may not span more than 90 days."""
    fmt = _format(fmt)
    _check_jurisdiction(request, jurisdiction_id)
    size = _int(page_size, "page_size", MAX_PAGE_SIZE, MAX_PAGE_SIZE)
    number = _int(page, "page", 1, 1_000_000)
    ids = _csv(service_request_id)
    if ids:
        filters = queries.RequestFilter(tracking_codes=ids[:MAX_PAGE_SIZE])
    else:
        statuses = [s.lower() for s in _csv(status)]
        bad = [s for s in statuses if s not in ("open", "closed")]
        if bad:
            raise Open311Error(400, f"status {bad[0]!r} is not one of open, closed.")
        start, end = _date(start_date, "start_date"), _date(end_date, "end_date")
        if start and end and start > end:
            raise Open311Error(400, "start_date is after end_date.")
        if start and end and end - start > MAX_WINDOW:
            raise Open311Error(400, "start_date and end_date may not span more than 90 days.")
        if start is None and end is None:
            end = utcnow()
        if start is None:
            start = end - DEFAULT_WINDOW  # type: ignore[operator]
        elif end is None:
            end = start + DEFAULT_WINDOW
        near = None
        lat_value, long_value = _float(lat, "lat"), _float(long, "long")
        if (lat_value is None) != (long_value is None):
            raise Open311Error(400, "lat and long go together.")
        if lat_value is not None and long_value is not None:
            radius_value = _float(radius, "radius") or DEFAULT_RADIUS_M
            if not 0 < radius_value <= 50_000:
                raise Open311Error(400, "radius must be between 0 and 50,000 metres.")
            near = (lat_value, long_value, radius_value)
        filters = queries.RequestFilter(
            service_codes=_csv(service_code),
            statuses=statuses,
            requested_from=start,
            requested_to=end,
            updated_from=_date(updated_after, "updated_after"),
            updated_to=_date(updated_before, "updated_before"),
            district_codes=_csv(district),
            near=near,
        )
    rows, _ = queries.list_requests(
        db, filters, sort="newest", limit=size, offset=(number - 1) * size
    )
    base_url = request.app.state.settings.base_url
    return _respond(fmt, "service_requests", _documents(db, rows, base_url, _truthy(extensions)))


def status_row_document(row: Any, base_url: str) -> dict[str, Any]:
    """`request_document` (without extensions) from `queries.request_status`: the status
    lookup's columns instead of ORM objects (a test compares the two)."""
    media_url = row.media_url
    if media_url is None and row.media_attachment_id is not None:
        media_url = (
            f"{base_url.rstrip('/')}/requests/{row.tracking_code}/attachments/"
            f"{row.media_attachment_id}"
        )
    return {
        "service_request_id": row.tracking_code,
        "status": row.status,
        "status_notes": row.status_notes,
        "service_name": row.service_name,
        "service_code": row.service_code,
        "description": row.public_description or None,
        "agency_responsible": row.agency_responsible,
        "service_notice": row.service_notice,
        "requested_datetime": _iso(row.requested_at),
        "updated_datetime": _iso(row.closed_at or row.updated_at),
        "expected_datetime": _iso(row.expected_at),
        "address": row.address,
        "address_id": row.address_id,
        "zipcode": row.zipcode,
        "lat": row.lat,
        "long": row.long,
        "media_url": media_url,
    }


def _one_request(
    service_request_id: str,
    fmt: str,
    request: Request,
    jurisdiction: str | None,
    extensions: str | None,
) -> Response:
    """One request by id. Without extensions (what clients poll), one query of columns;
    with them, the ORM path that lists use too."""
    status_caller(request)
    fmt = _format(fmt)
    _check_jurisdiction(request, jurisdiction)
    base_url = request.app.state.settings.base_url
    runtime = request.app.state.runtime
    documents: list[dict[str, Any]] = []
    if _truthy(extensions):
        with unit_of_work(runtime.read_session_factory) as db:
            found = queries.request_by_code(db, service_request_id)
            if found is not None and not found.hidden:
                documents = _documents(db, [found], base_url, True)
    else:
        cache, key, kept = kept_status(request, service_request_id, "open311", fmt)
        if kept is not None:
            return kept
        started = cache.begin()
        with status_connection(request) as (connection, dialect):
            row = queries.request_status(connection, dialect, service_request_id)
        if row is not None and not row.hidden:
            response = _respond(fmt, "service_requests", [status_row_document(row, base_url)])
            return keep_status(cache, key, response, started=started, request_id=row.id)
    if not documents:
        raise _request_not_found(service_request_id)
    return _respond(fmt, "service_requests", documents)


def _request_not_found(service_request_id: str) -> Open311Error:
    return Open311Error(
        404, f"service_request_id {service_request_id!r} was not found.", "request_not_found"
    )


async def _one_request_async(
    service_request_id: str, fmt: str, request: Request, jurisdiction: str | None
) -> Response:
    """`_one_request` without extensions for an anonymous caller on PostgreSQL, on the event
    loop (`status_lookup_is_async`): the same checks in the same order, the same query."""
    await status_caller_async(request)
    fmt = _format(fmt)
    _check_jurisdiction(request, jurisdiction)
    cache, key, kept = kept_status(request, service_request_id, "open311", fmt)
    if kept is not None:
        return kept
    started = cache.begin()
    row = await status_read(request, queries.request_status_async, service_request_id)
    if row is None or row.hidden:
        raise _request_not_found(service_request_id)
    base_url = request.app.state.settings.base_url
    response = _respond(fmt, "service_requests", [status_row_document(row, base_url)])
    return keep_status(cache, key, response, started=started, request_id=row.id)


async def _read_one(
    service_request_id: str,
    fmt: str,
    request: Request,
    jurisdiction: str | None,
    extensions: str | None,
) -> Response:
    if not _truthy(extensions) and status_lookup_is_async(request):
        return await _one_request_async(service_request_id, fmt, request, jurisdiction)
    return await run_status_lookup(
        request,
        lambda: _one_request(service_request_id, fmt, request, jurisdiction, extensions),
    )


@status_router.get(
    "/v2/requests/{service_request_id}.{fmt}", dependencies=[PUBLIC_STATUS], summary="One request"
)
async def read_request(
    service_request_id: str,
    fmt: str,
    request: Request,
    jurisdiction_id: Jurisdiction = None,
    extensions: Text = None,
) -> Response:
    return await _read_one(service_request_id, fmt, request, jurisdiction_id, extensions)


@status_router.get(
    "/v2/request/{service_request_id}.{fmt}",
    dependencies=[PUBLIC_STATUS],
    summary="One request (the swagger file's spelling)",
    include_in_schema=False,
)
async def read_request_singular(
    service_request_id: str,
    fmt: str,
    request: Request,
    jurisdiction_id: Jurisdiction = None,
    extensions: Text = None,
) -> Response:
    return await _read_one(service_request_id, fmt, request, jurisdiction_id, extensions)


@router.get("/v2/tokens/{token}.{fmt}", dependencies=[PUBLIC], summary="Request id from a token")
def read_token(
    token: str, fmt: str, request: Request, db: DbSession, jurisdiction_id: Jurisdiction = None
) -> Response:
    fmt = _format(fmt)
    _check_jurisdiction(request, jurisdiction_id)
    found = queries.request_by_submission_token(db, token) if len(token) <= 40 else None
    if found is None:
        raise Open311Error(404, f"token {token!r} was not found.", "token_not_found")
    return _respond(
        fmt, "service_requests", [{"service_request_id": found.tracking_code, "token": token}]
    )


# Requests: submitting --------------------------------------------------------------------------


async def _form(request: Request) -> FormData:
    content_type = request.headers.get("content-type", "")
    if not content_type.startswith(("application/x-www-form-urlencoded", "multipart/form-data")):
        raise Open311Error(
            400,
            "POST requests.json takes application/x-www-form-urlencoded (or multipart) fields.",
            "unsupported_media_type",
        )
    try:
        return await request.form(max_files=1, max_fields=500)
    except Exception as error:  # a malformed multipart body is the client's fault
        raise Open311Error(400, f"The form could not be read: {error}") from None


def _actor_for_api_key(db: Session, raw: str) -> Actor:
    token = account_queries.token_by_raw(db, raw)
    now = utcnow()
    if (
        token is None
        or token.revoked_at is not None
        or (token.expires_at is not None and token.expires_at <= now)
        or not token.user.is_active
    ):
        raise Open311Error(403, "api_key is not valid.", "invalid_token")
    account_actions.touch_api_token(db, token, now=now)
    role_permissions = permissions_for_role(token.user.role)
    scoped = role_permissions & frozenset(token.scopes) if token.scopes else role_permissions
    actor = actor_for_user(token.user, via="token", token_id=token.id)
    return Actor(**{**actor.__dict__, "permissions": scoped})


async def _submitter(request: Request) -> Actor:
    """The api_key (query string or form field; a Bearer token also works) must belong to a
    user with `open311:submit`: 403 otherwise, as the spec says. Resolved in its own short
    transaction, so the submission's transaction is the only writer that follows."""
    form = await _form(request)
    raw = request.query_params.get("api_key") or form.get("api_key")
    if not isinstance(raw, str) or not raw.strip():
        header = request.headers.get("authorization", "")
        raw = header.partition(" ")[2].strip() if header.lower().startswith("bearer ") else ""
    if not raw:
        raise Open311Error(403, "api_key was not provided.", "not_authenticated")
    actor = await run_in_threadpool(_resolve_api_key, request, raw.strip())
    if not actor.can("open311:submit"):
        raise Open311Error(403, "api_key may not submit requests (needs open311:submit).",
                           "permission_denied")  # fmt: skip
    request.state.actor = actor
    return actor


def _resolve_api_key(request: Request, raw: str) -> Actor:
    with unit_of_work(request.app.state.session_factory) as db:
        actor = _actor_for_api_key(db, raw)
    enforce_rate_limit(request, actor)  # this route does not go through current_actor
    return actor


open311_submitter = mark_access(_submitter, "open311:submit")


def _attributes(form: FormData) -> dict[str, list[str]]:
    """`attribute[CODE]=v`, repeated or as `attribute[CODE][]=v`, for multi-value lists."""
    found: dict[str, list[str]] = {}
    for key, value in form.multi_items():
        if not key.startswith("attribute[") or not isinstance(value, str):
            continue
        inner = key[len("attribute[") :]
        code, _, rest = inner.partition("]")
        if not code or rest not in ("", "[]"):
            raise Open311Error(400, f"{key!r} is not attribute[CODE] or attribute[CODE][].")
        found.setdefault(code, []).append(value)
    return found


def _field(form: FormData, name: str, limit: int = 4000) -> str | None:
    value = form.get(name)
    if value is None or isinstance(value, UploadFile):
        return None
    if len(value) > limit:
        raise Open311Error(400, f"{name} is longer than {limit} characters.")
    return value.strip() or None


def _submission(form: FormData, client_hash: str | None) -> actions.Submission:
    service_code = _field(form, "service_code", 64)
    if not service_code:
        raise Open311Error(400, "service_code was not provided.")
    first, last = _field(form, "first_name", 100), _field(form, "last_name", 100)
    return actions.Submission(
        service_code=service_code,
        description=_field(form, "description") or "",
        lat=_float(_field(form, "lat", 40), "lat"),
        long=_float(_field(form, "long", 40), "long"),
        address=_field(form, "address_string", 500),
        address_id=_field(form, "address_id", 100),
        zipcode=_field(form, "zipcode", 20),
        attributes=_attributes(form),
        media_url=_field(form, "media_url", 2000),
        resident_name=" ".join(p for p in (first, last) if p) or None,
        resident_email=_field(form, "email", 320),
        resident_phone=_field(form, "phone", 40),
        device_id=_field(form, "device_id", 200),
        account_id=_field(form, "account_id", 200),
        channel="open311",
        client_hash=client_hash,
    )


@router.post("/v2/requests.{fmt}", summary="Submit a service request (form-encoded)")
async def submit_request(
    fmt: str,
    request: Request,
    actor: Annotated[Actor, Depends(open311_submitter)],
) -> Response:
    fmt = _format(fmt)
    form = await _form(request)
    _check_jurisdiction(request, _field(form, "jurisdiction_id", 200))
    submission = _submission(form, request_client_hash(request))
    media = form.get("media")
    media_bytes = await media.read() if isinstance(media, UploadFile) else None
    media_name = media.filename if isinstance(media, UploadFile) else None
    return await run_in_threadpool(_store, request, actor, submission, fmt, media_name, media_bytes)


def _store(
    request: Request,
    actor: Actor,
    submission: actions.Submission,
    fmt: str,
    media_name: str | None,
    media_bytes: bytes | None,
) -> Response:
    effects = effects_for(request)
    if submission.district_code is None:  # located outside the transaction (see the helper)
        submission = replace(
            submission,
            district_code=district_before_transaction(effects, submission.lat, submission.long),
        )
    with unit_of_work(request.app.state.session_factory) as db:
        submitted = actions.submit_request(db, actor=actor, submission=submission, effects=effects)
        created = submitted.request
        if media_bytes:
            actions.add_attachment(
                db,
                actor=actor,
                code=created.tracking_code,
                filename=media_name or "media",
                data=media_bytes,
                key=submitted.resident_key,
            )
        answer: dict[str, Any] = {
            "service_notice": created.service.service_notice,
            "account_id": created.account_id,
        }
        if created.service.service_type == "batch":
            answer = {"token": created.submission_token, **answer}
        else:
            answer = {"service_request_id": created.tracking_code, **answer}
    return _respond(fmt, "service_requests", [answer])


def register(app: FastAPI) -> None:
    include_first(app, status_router)  # clients poll these: matched before all else
    app.include_router(router)
    app.state.error_shapes[PREFIX + "/"] = open311_error_shape
