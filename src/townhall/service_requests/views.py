"""Pages for residents (report, track, message) and staff (work queue, one request).

Server-rendered and usable without JavaScript; the tracking page adds a small script that
follows the request's SSE channel and updates itself live. Residents need no account: what
only they may see (messages, their own photos) opens with the private key from their email
or from the cookie set when they submitted on this browser.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy.orm import Session
from starlette.datastructures import FormData, QueryParams, UploadFile

from townhall.accounts import queries as account_queries
from townhall.accounts.auth import PublicActor, check_csrf, requires
from townhall.actor import Actor
from townhall.db import utcnow
from townhall.deps import DbSession
from townhall.errors import NotFoundError, TownhallError
from townhall.service_requests import actions, queries
from townhall.service_requests.api import (
    effects_for,
    queue_filter,
    request_client_hash,
    request_staff,
)
from townhall.service_requests.lifecycle import (
    PRIORITIES,
    SUB_STATUSES,
    allowed_transitions,
    sla_state,
)
from townhall.service_requests.models import ServiceRequest
from townhall.web.pages import render

router = APIRouter(include_in_schema=False)
Worker = Annotated[Actor, Depends(requires("requests:work"))]
KEY_COOKIE_PREFIX = "th_rk_"
KEY_COOKIE_MAX_AGE = 180 * 86400
DUPLICATE_RADIUS_M = 150.0
QUEUE_PAGE_SIZE = 50
# Form problems shown on the form itself rather than on an error page.
_FORM_ERRORS = frozenset({404, 409, 413, 415, 422, 429})


# Helpers ---------------------------------------------------------------------------------------


async def _read_form(request: Request) -> FormData:
    try:
        return await request.form(max_files=2, max_fields=600)
    except Exception as error:  # a malformed multipart body is the client's fault
        raise actions._invalid(["body"], f"the form could not be read: {error}", 400) from None


async def _public_form(request: Request, actor: PublicActor) -> FormData:
    """The form of an anonymous-friendly POST, after its CSRF check."""
    await check_csrf(request, actor)
    return await _read_form(request)


# POST routes are sync and share the request's unit of work with `current_actor` (on SQLite a
# second transaction would wait for the first one's write lock).
Form = Annotated[FormData, Depends(_read_form)]
PublicForm = Annotated[FormData, Depends(_public_form)]


def _attempt(db: Session, work: Any) -> Any:
    """Run `work()` in a savepoint: on a TownhallError its writes and the side effects it
    queued are dropped, and the caller can show the form again in the same transaction."""
    queued = len(db.info.get("after_commit", []))
    savepoint = db.begin_nested()
    try:
        result = work()
        savepoint.commit()
        return result
    except TownhallError:
        savepoint.rollback()
        del db.info.setdefault("after_commit", [])[queued:]
        raise


def _upload(form: FormData, name: str) -> tuple[str | None, bytes | None]:
    upload = form.get(name)
    if isinstance(upload, UploadFile) and upload.filename:
        upload.file.seek(0)
        return upload.filename, upload.file.read(actions.ATTACHMENT_MAX_BYTES + 1)
    return None, None


def _key_cookie(code: str) -> str:
    return KEY_COOKIE_PREFIX + code.replace("-", "_")


def _resident_key(request: Request, code: str) -> str | None:
    value = request.cookies.get(_key_cookie(code))
    return value if value and len(value) <= 64 else None


def _set_key_cookie(response: Response, request: Request, code: str, key: str) -> None:
    response.set_cookie(
        _key_cookie(code),
        key,
        max_age=KEY_COOKIE_MAX_AGE,
        httponly=True,
        samesite="lax",
        secure=request.app.state.settings.base_url.startswith("https://"),
        path=f"/requests/{code}",
    )


def _row_id(value: str | None) -> int | None:
    """A form's id field: digits that fit a database integer, else None."""
    if value and value.isdigit() and int(value) < 2**31:
        return int(value)
    return None


def _text(form: FormData, name: str, limit: int = 4000) -> str | None:
    value = form.get(name)
    if value is None or isinstance(value, UploadFile):
        return None
    return value.strip()[:limit] or None


def _number(form: FormData, name: str) -> float | None:
    value = _text(form, name, 40)
    if value is None:
        return None
    try:
        number = float(value)
    except ValueError:
        raise actions._invalid([name], "is not a number") from None
    if number != number or number in (float("inf"), float("-inf")):
        raise actions._invalid([name], "is not a number")
    return number


def _attributes(form: FormData) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for key, value in form.multi_items():
        if key.startswith("attribute[") and isinstance(value, str):
            code = key[len("attribute[") :].split("]", 1)[0]
            if code:
                found.setdefault(code, []).append(value)
    return found


def _form_values(form: FormData) -> dict[str, Any]:
    values: dict[str, Any] = {
        key: value for key, value in form.multi_items() if isinstance(value, str)
    }
    values["attributes"] = _attributes(form)
    return values


def _sla(request: ServiceRequest, now: datetime) -> dict[str, Any]:
    state = sla_state(
        requested_at=request.requested_at,
        expected_at=request.expected_at,
        sla_paused_at=request.sla_paused_at,
        closed_at=request.closed_at,
        now=now,
    )
    if state.remaining is None:
        label = "No target"
    elif request.status == "closed":
        label = "Closed late" if state.late else "Closed on time"
    elif state.paused:
        label = "Paused (waiting for resident)"
    elif state.late:
        label = f"Late by {_duration(-state.remaining.total_seconds())}"
    else:
        label = f"{_duration(state.remaining.total_seconds())} left"
    return {"late": state.late and request.status == "open", "paused": state.paused,
            "label": label, "risk": state.risk}  # fmt: skip


def _duration(seconds: float) -> str:
    hours = seconds / 3600
    if hours < 48:
        return f"{max(hours, 0):.0f} h"
    return f"{hours / 24:.0f} days"


def _staff_users(session: Session) -> list[Any]:
    users, _ = account_queries.list_users(session, limit=500)
    return [u for u in users if u.is_active and u.role in ("staff", "manager", "admin")]


# Residents: report -----------------------------------------------------------------------------


@router.get("/requests", response_class=HTMLResponse)
def requests_index(request: Request, db: DbSession, actor: PublicActor) -> HTMLResponse:
    """Report a problem, track a request, and what was reported recently."""
    services = queries.list_services(db)
    recent, _ = queries.list_requests(db, queries.RequestFilter(), sort="newest", limit=15)
    return render(
        request,
        "requests/index.html",
        {
            "services": services,
            "recent": recent,
            "labels": SUB_STATUSES,
            "groups": sorted({s.group or "Other" for s in services}),
        },
        actor=actor,
    )


@router.get("/requests/track")
def track(actor: PublicActor, code: Annotated[str, Query(max_length=40)] = "") -> Response:
    code = code.strip().upper()
    if not actions.TRACKING_CODE.match(code):
        return RedirectResponse("/requests?bad_code=1#track", status_code=303)
    return RedirectResponse(f"/requests/{code}", status_code=303)


@router.get("/requests/new", response_class=HTMLResponse)
def new_request_form(
    request: Request,
    db: DbSession,
    actor: PublicActor,
    service: Annotated[str, Query(max_length=64)] = "",
) -> HTMLResponse:
    return _render_form(request, db, actor, {"service_code": service}, error=None)


def _render_form(
    request: Request,
    db: Session,
    actor: Actor,
    values: dict[str, Any],
    *,
    error: TownhallError | None,
    duplicates: list[tuple[ServiceRequest, float]] | None = None,
) -> HTMLResponse:
    services = queries.list_services(db)
    chosen = next((s for s in services if s.code == values.get("service_code")), None)
    status = 200
    if error is not None:
        status = 400 if error.status == 422 else error.status
    return render(
        request,
        "requests/new.html",
        {
            "services": services,
            "service": chosen,
            "values": values,
            "error": error,
            "error_fields": {".".join(e.get("loc", [])) for e in error.errors} if error else set(),
            "duplicates": duplicates or [],
            "labels": SUB_STATUSES,
        },
        status_code=status,
        actor=actor,
    )


@router.post("/requests/new", response_class=HTMLResponse)
def submit_request_form(
    request: Request, actor: PublicActor, db: DbSession, form: PublicForm
) -> Response:
    values = _form_values(form)
    if _text(form, "website"):
        # The honeypot: a field people never see and bots fill in. Answer as if it worked.
        return RedirectResponse("/requests?received=1", status_code=303)
    photo_name, photo_bytes = _upload(form, "photo")

    def work() -> Response | actions.Submitted:
        submission = actions.Submission(
            service_code=_text(form, "service_code", 64) or "",
            description=_text(form, "description", 5000) or "",
            lat=_number(form, "lat"),
            long=_number(form, "long"),
            address=_text(form, "address", 500),
            resident_name=_text(form, "name", 200),
            resident_email=_text(form, "email", 320),
            resident_phone=_text(form, "phone", 40),
            attributes=_attributes(form),
            channel="web",
            client_hash=request_client_hash(request),
        )
        if not submission.service_code:
            raise actions._invalid(["service_code"], "choose what you are reporting")
        if (
            not _text(form, "confirm_new")
            and submission.lat is not None
            and submission.long is not None
        ):
            service = queries.service_by_code(db, submission.service_code)
            if service is not None:
                duplicates = queries.nearby_open_requests(
                    db,
                    service_id=service.id,
                    lat=submission.lat,
                    long=submission.long,
                    radius_m=DUPLICATE_RADIUS_M,
                )
                if duplicates:
                    return _render_form(
                        request, db, actor, values, error=None, duplicates=duplicates
                    )
        submitted = actions.submit_request(
            db, actor=actor, submission=submission, effects=effects_for(request)
        )
        if photo_bytes:
            actions.add_attachment(
                db,
                actor=actor,
                code=submitted.request.tracking_code,
                filename=photo_name or "photo",
                data=photo_bytes,
                key=submitted.resident_key,
            )
        return submitted

    try:
        outcome = _attempt(db, work)
    except TownhallError as error:
        if error.status not in _FORM_ERRORS:
            raise
        return _render_form(request, db, actor, values, error=error)
    if isinstance(outcome, Response):
        return outcome
    code = outcome.request.tracking_code
    response = RedirectResponse(f"/requests/{code}?created=1", status_code=303)
    _set_key_cookie(response, request, code, outcome.resident_key)
    return response


# Residents: track ------------------------------------------------------------------------------


@dataclass
class _TrackingView:
    request: ServiceRequest
    history: list[Any]
    photos: list[Any]
    resident: bool
    messages: list[Any]
    own_photos: list[Any]
    duplicate_of: str | None


def _tracking(db: Session, code: str, key: str | None) -> _TrackingView:
    found = queries.request_by_code(db, code)
    if found is None or found.hidden:
        raise NotFoundError("request", code)
    resident = actions.resident_can_access(found, key)
    original = queries.request_by_id(db, found.duplicate_of_id) if found.duplicate_of_id else None
    return _TrackingView(
        request=found,
        history=queries.history(db, found.id, public_only=True),
        photos=queries.attachments(db, found.id, public_only=True),
        resident=resident,
        messages=queries.messages(db, found.id) if resident else [],
        own_photos=queries.attachments(db, found.id, public_only=False) if resident else [],
        duplicate_of=original.tracking_code if original else None,
    )


@router.get("/requests/{code}", response_class=HTMLResponse)
def tracking_page(
    code: str,
    request: Request,
    db: DbSession,
    actor: PublicActor,
    created: bool = False,
    followed: bool = False,
    sent: bool = False,
) -> HTMLResponse:
    """The public tracking page; the resident also sees their messages. Live via SSE."""
    view = _tracking(db, code, _resident_key(request, code.upper()))
    return render(
        request,
        "requests/track.html",
        {
            "view": view,
            "r": view.request,
            "labels": SUB_STATUSES,
            "created": created,
            "followed": followed,
            "sent": sent,
            "channel": f"request.{view.request.tracking_code.lower()}",
            "can_work": actions.can_work(actor, view.request),
        },
        actor=actor,
    )


@router.get("/requests/{code}/private")
def private_link(
    code: str,
    request: Request,
    db: DbSession,
    actor: PublicActor,
    key: Annotated[str, Query(max_length=64)] = "",
) -> Response:
    """The link in the resident's emails: keep the key in a cookie, drop it from the URL."""
    found = queries.request_by_code(db, code)
    if found is None or not actions.resident_can_access(found, key):
        raise NotFoundError("request", code)
    response = RedirectResponse(f"/requests/{found.tracking_code}", status_code=303)
    _set_key_cookie(response, request, found.tracking_code, key)
    return response


@router.post("/requests/{code}/messages", response_class=HTMLResponse)
def resident_message(
    code: str, request: Request, actor: PublicActor, db: DbSession, form: PublicForm
) -> Response:
    code = code.upper()
    key = _resident_key(request, code)
    body = _text(form, "body")
    photo_name, photo_bytes = _upload(form, "photo")
    if not body and not photo_bytes:
        raise actions._invalid(["body"], "write a message or attach a photo")
    if body:
        actions.message_from_resident(
            db, actor=actor, code=code, key=key or "", body=body, effects=effects_for(request)
        )
    if photo_bytes:
        actions.add_attachment(
            db, actor=actor, code=code, filename=photo_name or "photo", data=photo_bytes, key=key
        )
    return RedirectResponse(f"/requests/{code}?sent=1#messages", status_code=303)


@router.post("/requests/{code}/follow", response_class=HTMLResponse)
def follow(
    code: str, request: Request, actor: PublicActor, db: DbSession, form: PublicForm
) -> Response:
    found = queries.request_by_code(db, code)
    if found is None:
        raise NotFoundError("request", code)
    email = _text(form, "email", 320) or ""
    actions.follow_request(db, actor=actor, code=code, email=email, effects=effects_for(request))
    return RedirectResponse(f"/requests/{found.tracking_code}?followed=1", status_code=303)


@router.get("/requests/{code}/attachments/{attachment_id}")
def attachment(
    code: str,
    attachment_id: Annotated[int, Path(ge=1, le=2**31 - 1)],
    request: Request,
    db: DbSession,
    actor: PublicActor,
) -> Response:
    """Public photos for everyone; the rest for staff and the resident only (404 otherwise,
    so their existence is not given away)."""
    found = queries.request_by_code(db, code)
    item = queries.attachment_by_id(db, attachment_id)
    if found is None or item is None or item.request_id != found.id:
        raise NotFoundError("attachment", attachment_id)
    allowed = (
        (item.is_public and not found.hidden)
        or actions.can_work(actor, found)
        or (actions.resident_can_access(found, _resident_key(request, found.tracking_code)))
    )
    if not allowed:
        raise NotFoundError("attachment", attachment_id)
    disposition = "inline" if item.content_type.startswith("image/") else "attachment"
    return Response(
        item.data,
        media_type=item.content_type,
        headers={
            "Content-Disposition": f'{disposition}; filename="{item.filename}"',
            "X-Content-Type-Options": "nosniff",
            "Content-Security-Policy": "sandbox; default-src 'none'",
            "Cache-Control": "public, max-age=3600" if item.is_public else "private, no-store",
        },
    )


# Staff: the queue ------------------------------------------------------------------------------


# The queue page's filters and their defaults: what its form sends, plus `page` and `done`
# (the message after a bulk change). The JSON API (`GET /api/v1/queue`) takes the same filters
# under its own names and lists.
QUEUE_DEFAULTS: dict[str, str] = {
    "q": "", "status": "open", "sub_status": "", "service": "", "district": "", "priority": "",
    "assigned": "any", "late": "", "page": "1", "done": "",
}  # fmt: skip
_QUEUE_CHOICES: dict[str, tuple[str, ...]] = {
    "status": ("open", "closed", "any"),
    "sub_status": ("", *SUB_STATUSES),
    "priority": ("", *map(str, PRIORITIES)),
    "assigned": ("any", "me", "none"),
    "late": ("", "1", "0", "true", "false", "on", "off", "yes", "no"),
}
_QUEUE_LIMITS = {"q": 200, "service": 64, "district": 40, "done": 200}


@dataclass
class QueueQuery:
    """The queue page's query string, read: `params` holds the form's values with every bad
    one back at its default (so the form can be sent again as it stands), `problems` says
    what was wrong, parameter by parameter, in the order given."""

    params: dict[str, str]
    problems: dict[str, str]

    @property
    def late(self) -> bool:
        return self.params["late"] in ("1", "true", "on", "yes")

    @property
    def page(self) -> int:
        return int(self.params["page"])


def read_queue_query(
    query: QueryParams, *, services: Iterable[str], districts: Iterable[str]
) -> QueueQuery:
    """Check the queue page's query string (`request.query_params`) as the API checks its own:
    an unknown parameter or a value no request can have is named, never dropped, because a
    dropped filter answers a different question than the one asked (the whole queue)."""
    params = dict(QUEUE_DEFAULTS)
    problems: dict[str, str] = {}
    known_services, known_districts = set(services), set(districts)
    for name in dict.fromkeys(query.keys()):
        values = query.getlist(name)
        if name not in QUEUE_DEFAULTS:
            problems[name] = (
                f"{name!r} is not a filter of the queue; it filters by "
                + ", ".join(n for n in QUEUE_DEFAULTS if n != "done")
                + "."
            )
            continue
        if len(values) > 1:
            problems[name] = f"{name}: give one value, not {len(values)}."
            continue
        value = values[0].strip()
        choices = _QUEUE_CHOICES.get(name)
        if choices is not None and value not in choices:
            allowed = ", ".join(c for c in choices if c) or "nothing"
            problems[name] = f"{name}: unknown value {value!r}; one of {allowed}."
        elif len(value) > _QUEUE_LIMITS.get(name, 200):
            problems[name] = f"{name}: at most {_QUEUE_LIMITS.get(name, 200)} characters."
        elif name == "page" and not (value.isdigit() and 1 <= int(value) <= 100_000):
            problems[name] = f"page: {value!r} is not a page number (1 to 100000)."
        elif name == "service" and value and value not in known_services:
            problems[name] = f"service: no request type has the code {value!r}."
        elif name == "district" and value and value not in known_districts:
            problems[name] = f"district: no request is in district {value!r}."
        else:
            params[name] = value
    return QueueQuery(params, problems)


@router.get("/staff/queue", response_class=HTMLResponse)
def queue_page(request: Request, db: DbSession, actor: Worker) -> HTMLResponse:
    """Open requests by priority, then by how close they are to their deadline.

    A filter it does not know, or a value no request can have, gets the page back with status
    422, the problem named above the form (which keeps every good value) and no list: the
    same rule as the API's 422, said in a page.
    """
    services = queries.list_services(db, include_inactive=True)
    districts = queries.district_codes(db)
    read = read_queue_query(
        request.query_params, services=[s.code for s in services], districts=districts
    )
    params = read.params
    rows: list[ServiceRequest] = []
    total = 0
    if not read.problems:
        priority = params["priority"]
        filters = queue_filter(
            actor,
            sub_status=[params["sub_status"]] if params["sub_status"] else None,
            service_code=[params["service"]] if params["service"] else None,
            district=[params["district"]] if params["district"] else None,
            priority=[int(priority)] if priority else None,
            assigned=params["assigned"],
            late=read.late,
            status=params["status"],
            q=params["q"],
        )
        rows, found = queries.list_requests(
            db,
            filters,
            sort="queue",
            limit=QUEUE_PAGE_SIZE,
            offset=(read.page - 1) * QUEUE_PAGE_SIZE,
            with_total=True,
        )
        total = found or 0
    now = utcnow()
    shown = {k: v for k, v in params.items() if k not in ("page", "done")}
    shown["late"] = "1" if read.late else ""
    query_string = urlencode({k: v for k, v in shown.items() if v})
    return render(
        request,
        "requests/queue.html",
        {
            "rows": [(r, _sla(r, now)) for r in rows],
            "total": total,
            "page": read.page,
            "pages": max(1, -(-total // QUEUE_PAGE_SIZE)),
            "params": shown,
            "problems": read.problems,
            "query_string": query_string,
            "services": services,
            "districts": districts,
            "labels": SUB_STATUSES,
            "priorities": PRIORITIES,
            "counts": queries.queue_counts(
                db,
                organization_ids=[]
                if actor.can("system:admin")
                else sorted(actor.organization_ids),
            ),
            "done": params["done"],
        },
        status_code=422 if read.problems else 200,
        actor=actor,
    )


@router.post("/staff/queue/bulk")
def queue_bulk(request: Request, actor: Worker, db: DbSession, form: Form) -> Response:
    """One action on the ticked requests: assign to me, set a priority, or change status.
    Each request goes through the same audited action as one by one; the first refusal
    stops the batch and undoes it (one transaction)."""
    codes = [v for k, v in form.multi_items() if k == "code" and isinstance(v, str)][:500]
    operation = _text(form, "operation", 60) or ""
    back = _text(form, "back", 1000) or ""
    if not codes:
        raise actions._invalid(["code"], "tick at least one request")
    effects = effects_for(request)
    for code in codes:
        if operation == "assign_me":
            actions.assign(db, actor=actor, code=code, user_id=actor.user_id, effects=effects)
        elif operation.startswith("priority:") and operation[9:].isdigit():
            actions.set_priority(
                db, actor=actor, code=code, priority=int(operation[9:]), effects=effects
            )
        elif operation.startswith("status:") and operation[7:] in SUB_STATUSES:
            actions.transition(db, actor=actor, code=code, to=operation[7:], effects=effects)
        else:
            raise actions._invalid(["operation"], "choose what to do")
    target = back if back.startswith("/staff/queue") else "/staff/queue"
    separator = "&" if "?" in target else "?"
    done = urlencode({"done": f"{len(codes)} updated"})
    return RedirectResponse(f"{target}{separator}{done}", status_code=303)


# Staff: one request ----------------------------------------------------------------------------


@router.get("/requests/{code}/manage", response_class=HTMLResponse)
def manage_page(
    code: str, request: Request, db: DbSession, actor: Worker, done: str = ""
) -> HTMLResponse:
    return _render_manage(request, db, actor, code, done=done, error=None)


def _render_manage(
    request: Request,
    db: Session,
    actor: Actor,
    code: str,
    *,
    done: str,
    error: TownhallError | None,
) -> HTMLResponse:
    found = queries.request_by_code(db, code)
    if found is None or not actions.can_work(actor, found):
        raise NotFoundError("request", code)
    staff_view = request_staff(db, found, full=True)
    return render(
        request,
        "requests/manage.html",
        {
            "r": found,
            "s": staff_view,
            "sla": _sla(found, utcnow()),
            "labels": SUB_STATUSES,
            "next_states": sorted(
                allowed_transitions(found.sub_status), key=list(SUB_STATUSES).index
            ),
            "priorities": PRIORITIES,
            "templates": queries.response_templates(db),
            "staff_users": _staff_users(db),
            "attachments": queries.attachments(db, found.id, public_only=False),
            "nearby": queries.nearby_open_requests(
                db,
                service_id=found.service_id,
                lat=found.lat,
                long=found.long,
                radius_m=DUPLICATE_RADIUS_M,
                exclude_id=found.id,
            )
            if found.lat is not None and found.long is not None
            else [],
            "done": done,
            "error": error,
            # Set by the insights slice when it is installed; None: no model on this node.
            "triage": (
                request.app.state.triage_suggestion(db, found.public_description or "")
                if getattr(request.app.state, "triage_suggestion", None)
                else None
            ),
        },
        status_code=200 if error is None else (400 if error.status == 422 else error.status),
        actor=actor,
    )


@router.post("/requests/{code}/manage", response_class=HTMLResponse)
def manage(code: str, request: Request, actor: Worker, db: DbSession, form: Form) -> Response:
    code = code.upper()
    operation = _text(form, "operation", 40) or ""
    effects = effects_for(request)
    file_name, file_data = _upload(form, "file")
    try:
        done = _attempt(
            db,
            lambda: _apply_operation(
                db, actor, code, operation, form, effects, file_name, file_data
            ),
        )
    except TownhallError as error:
        if error.status not in _FORM_ERRORS or error.code == "request_not_found":
            raise
        return _render_manage(request, db, actor, code, done="", error=error)
    return RedirectResponse(f"/requests/{code}/manage?{urlencode({'done': done})}", status_code=303)


def _apply_operation(
    db: Session,
    actor: Actor,
    code: str,
    operation: str,
    form: FormData,
    effects: actions.Effects,
    file_name: str | None,
    file_data: bytes | None,
) -> str:
    public_note = _text(form, "public_note")
    internal_note = _text(form, "internal_note")
    if operation == "transition":
        to = _text(form, "sub_status", 40) or ""
        template_id = _row_id(_text(form, "template_id", 12))
        if template_id is not None and not public_note:
            found = queries.request_by_code(db, code)
            if found is not None:
                public_note = actions.apply_template(
                    db, template_id=template_id, request=found, effects=effects
                )
        actions.transition(
            db, actor=actor, code=code, to=to, public_note=public_note,
            internal_note=internal_note, effects=effects,
        )  # fmt: skip
        return f"Status changed to {SUB_STATUSES.get(to, to).lower()}."
    if operation == "note":
        actions.add_note(
            db, actor=actor, code=code, public_note=public_note, internal_note=internal_note,
            effects=effects,
        )  # fmt: skip
        return "Note added."
    if operation == "assign":
        actions.assign(
            db, actor=actor, code=code, user_id=_row_id(_text(form, "user_id", 12)),
            internal_note=internal_note, effects=effects,
        )  # fmt: skip
        return "Assignment changed."
    if operation == "priority":
        value = _text(form, "priority", 2) or ""
        if not value.isdigit():
            raise actions._invalid(["priority"], "choose a priority")
        actions.set_priority(db, actor=actor, code=code, priority=int(value), effects=effects)
        return "Priority changed."
    if operation == "reply":
        actions.reply_to_resident(
            db, actor=actor, code=code, body=_text(form, "body") or "", effects=effects
        )
        return "Message sent to the resident."
    if operation == "merge":
        actions.merge_duplicate(
            db, actor=actor, code=code, into_code=_text(form, "into", 40) or "", effects=effects
        )
        return "Closed as a duplicate."
    if operation in ("hide", "unhide"):
        actions.set_hidden(
            db, actor=actor, code=code, hidden=operation == "hide", reason=internal_note
        )
        return "Hidden from public lists." if operation == "hide" else "Shown publicly again."
    if operation in ("publish_attachment", "unpublish_attachment"):
        attachment_id = _row_id(_text(form, "attachment_id", 12))
        if attachment_id is None:
            raise actions._invalid(["attachment_id"], "missing")
        actions.set_attachment_public(
            db, actor=actor, attachment_id=attachment_id,
            is_public=operation == "publish_attachment",
        )  # fmt: skip
        return "Attachment visibility changed."
    if operation == "attach":
        if not file_data:
            raise actions._invalid(["file"], "choose a file")
        actions.add_attachment(
            db, actor=actor, code=code, filename=file_name or "file", data=file_data,
            is_public=bool(_text(form, "public", 5)),
        )  # fmt: skip
        return "File attached."
    raise actions._invalid(["operation"], "unknown operation")
