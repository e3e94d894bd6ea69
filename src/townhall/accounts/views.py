"""Login, logout and the admin page for users and tokens (server-rendered, no JavaScript)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from townhall.accounts import actions, queries
from townhall.accounts.auth import SESSION_COOKIE, PublicActor, check_csrf, requires
from townhall.accounts.models import ApiToken
from townhall.accounts.permissions import PERMISSIONS, ROLES
from townhall.accounts.security import verify_password
from townhall.actor import Actor
from townhall.db import utcnow
from townhall.deps import DbSession
from townhall.errors import TownhallError
from townhall.web.pages import render

router = APIRouter(include_in_schema=False)

BAD_LOGIN = "That email and password do not match an account."
# Statuses of form mistakes that are shown on the form itself rather than on an error page.
_FORM_ERROR_STATUSES = frozenset({404, 409, 422})


def _safe_next(value: str | None) -> str:
    """The same-site path to go to after login, or "/".

    Refuses what a browser could read as another site: `//host`, `/\\host` (browsers treat a
    backslash like a slash), absolute URLs, and control characters (browsers drop tabs and
    newlines, so `/\\t/host` would become `//host`).
    """
    if not value or not value.startswith("/") or value.startswith("//") or len(value) > 500:
        return "/"
    if "\\" in value or any(ord(char) < 0x20 or ord(char) == 0x7F for char in value):
        return "/"
    return value


@router.get("/login", response_class=HTMLResponse)
def login_form(request: Request, actor: PublicActor, next: str = "/") -> HTMLResponse:
    message = "Your session has expired; please log in again." if actor.session_expired else None
    return render(
        request, "accounts/login.html", {"next": _safe_next(next), "error": message, "email": ""}
    )


@router.post("/login", response_class=HTMLResponse)
async def login(
    request: Request,
    actor: PublicActor,
    db: DbSession,
    email: Annotated[str, Form(max_length=320)],
    password: Annotated[str, Form(max_length=1000)],
    next: Annotated[str, Form(max_length=500)] = "/",
) -> Response:
    await check_csrf(request, actor)
    # Password hashing is slow on purpose; keep it off the event loop.
    return await run_in_threadpool(_login, request, db, email, password, _safe_next(next))


def _login(request: Request, db: Session, email: str, password: str, next_path: str) -> Response:
    """Check the password and start a session. Attempts are counted in the database (so the
    limit holds across nodes) and committed even when the login fails: a refused login is an
    answer, not an error, so the request's unit of work commits it. (The request's own unit of
    work, not a second one: a logged-in caller's session lookup already holds SQLite's write
    lock, and a second transaction waited on it until "database is locked".)"""
    settings = request.app.state.settings
    client = request.client.host if request.client else ""
    since = queries.lockout_window_start(utcnow(), settings.login_lockout_seconds)
    failures = queries.recent_login_failures(db, email=email, client_address=client, since=since)
    if failures >= settings.login_max_failures:
        # Checked before the password, so a right password does not get through either.
        minutes = max(1, round(settings.login_lockout_seconds / 60))
        response = render(
            request,
            "accounts/login.html",
            {
                "next": next_path,
                "email": email,
                "error": f"Too many failed logins; wait {minutes} minutes and try again.",
            },
            status_code=429,
        )
        response.headers["Retry-After"] = str(settings.login_lockout_seconds)
        return response
    user = queries.user_by_email(db, email)
    ok = verify_password(password, user.password_hash if user else None)
    succeeded = ok and user is not None and user.is_active
    actions.record_login_attempt(db, email=email, client_address=client, succeeded=succeeded)
    raw: str | None = None
    if succeeded and user is not None:
        _, raw = actions.start_web_session(
            db,
            user=user,
            max_age_seconds=settings.session_max_age_seconds,
            user_agent=request.headers.get("user-agent", ""),
        )
    if raw is None:
        return render(
            request,
            "accounts/login.html",
            {"next": next_path, "email": email, "error": BAD_LOGIN},
            status_code=401,
        )
    response = RedirectResponse(next_path, status_code=303)
    response.set_cookie(
        SESSION_COOKIE,
        raw,
        max_age=settings.session_max_age_seconds,
        httponly=True,
        samesite="lax",
        secure=settings.base_url.startswith("https://"),
        path="/",
    )
    return response


@router.post("/logout")
async def logout(request: Request, actor: PublicActor, db: DbSession) -> Response:
    """End the session in the database (the cookie alone no longer works), then forget it."""
    await check_csrf(request, actor)
    if actor.session_id is not None:
        actions.end_web_session(db, actor=actor, web_session_id=actor.session_id)
    response = RedirectResponse("/?logged_out=1", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


AdminActor = Annotated[Actor, Depends(requires("users:read"))]


def _admin_context(db: Session, actor: Actor, **extra: Any) -> dict[str, Any]:
    users, total = queries.list_users(db, limit=500)
    tokens = queries.list_tokens(
        db, user_id=None if actor.can("tokens:manage-any") else actor.user_id
    )
    return {
        "users": users,
        "total_users": total,
        "tokens": tokens,
        "roles": ROLES,
        "organizations": queries.list_organizations(db),
        # A token can only be limited to permissions its maker has.
        "scopes": [(name, text) for name, text in PERMISSIONS.items() if actor.can(name)],
        "now": utcnow(),
        "notice": None,
        "user_error": None,
        "user_form": {"email": "", "display_name": "", "role": "staff", "organization": ""},
        "token_error": None,
        "token_form": {"name": "", "scopes": [], "expires_in_days": 365},
        **extra,
    }


def _form_error_status(exc: TownhallError) -> int:
    # A missing organization named in the form is a mistake in the form, not a missing page.
    return 422 if exc.status == 404 else exc.status


@router.get("/admin", response_class=HTMLResponse)
def admin_page(
    request: Request,
    db: DbSession,
    actor: AdminActor,
    created_user: int | None = None,
    revoked_token: int | None = None,
) -> HTMLResponse:
    """Users and tokens. `created_user` and `revoked_token` (set by the redirects after the
    forms) name an id to confirm; ids, not text, so the link cannot be made to say anything."""
    context = _admin_context(db, actor)
    if created_user is not None and (user := queries.user_by_id(db, created_user)):
        context["notice"] = f"User {user.email} created."
    if revoked_token is not None:
        token = next((t for t in context["tokens"] if t.id == revoked_token), None)
        if token is not None and token.revoked_at is not None:
            context["notice"] = f"Token {token.name or token.prefix} revoked."
    return render(request, "accounts/admin.html", context, actor=actor)


@router.post("/admin/users", response_class=HTMLResponse)
def admin_create_user(
    request: Request,
    db: DbSession,
    actor: Annotated[Actor, Depends(requires("users:manage"))],
    email: Annotated[str, Form(max_length=320)],
    role: Annotated[str, Form(max_length=20)],
    password: Annotated[str, Form(max_length=1000)],
    display_name: Annotated[str, Form(max_length=200)] = "",
    organization: Annotated[str, Form(max_length=100)] = "",
) -> Response:
    try:
        user = actions.create_user(
            db,
            actor=actor,
            email=email,
            password=password,
            role=role,
            display_name=display_name,
            organization_slugs=[organization] if organization else [],
        )
    except TownhallError as exc:
        if exc.status not in _FORM_ERROR_STATUSES:
            raise
        # The action may have flushed a half-made user; nothing of it may be committed.
        db.rollback()
        form = {
            "email": email,
            "display_name": display_name,
            "role": role,
            "organization": organization,
        }
        context = _admin_context(db, actor, user_error=exc.message, user_form=form)
        return render(
            request,
            "accounts/admin.html",
            context,
            status_code=_form_error_status(exc),
            actor=actor,
        )
    return RedirectResponse(f"/admin?created_user={user.id}#users", status_code=303)


@router.post("/admin/tokens", response_class=HTMLResponse)
def admin_create_token(
    request: Request,
    db: DbSession,
    actor: Annotated[Actor, Depends(requires("tokens:manage-own"))],
    name: Annotated[str, Form(max_length=200)] = "",
    scope: Annotated[list[str] | None, Form()] = None,
    expires_in_days: Annotated[int, Form(ge=1, le=3650)] = 365,
) -> HTMLResponse:
    scopes = [s for s in scope or [] if s]
    try:
        token, raw = actions.create_api_token(
            db,
            actor=actor,
            user_id=actor.user_id or 0,
            name=name,
            scopes=scopes,
            expires_in_days=expires_in_days,
        )
    except TownhallError as exc:
        if exc.status not in _FORM_ERROR_STATUSES or not actor.can("users:read"):
            raise
        db.rollback()
        form = {"name": name, "scopes": scopes, "expires_in_days": expires_in_days}
        context = _admin_context(db, actor, token_error=exc.message, token_form=form)
        return render(
            request,
            "accounts/admin.html",
            context,
            status_code=_form_error_status(exc),
            actor=actor,
        )
    # Shown once, on this response only; the database keeps just its hash. `no-store` keeps
    # it out of the browser's cache and history.
    response = render(request, "accounts/token_created.html", {"token": token, "raw": raw})
    response.headers["Cache-Control"] = "no-store"
    return response


@router.post("/admin/tokens/{token_id}/revoke")
def admin_revoke_token(
    token_id: int,
    db: DbSession,
    actor: Annotated[Actor, Depends(requires("tokens:manage-own"))],
) -> Response:
    token: ApiToken = actions.revoke_api_token(db, actor=actor, token_id=token_id)
    return RedirectResponse(f"/admin?revoked_token={token.id}#tokens", status_code=303)
