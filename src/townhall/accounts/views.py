"""Login, logout and the admin page for users and tokens."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from townhall.accounts import actions, queries
from townhall.accounts.auth import SESSION_COOKIE, PublicActor, check_csrf, requires
from townhall.accounts.permissions import ROLES
from townhall.accounts.security import verify_password
from townhall.actor import Actor
from townhall.db import utcnow
from townhall.deps import AppSettings, DbSession
from townhall.errors import TownhallError
from townhall.web.pages import render

router = APIRouter(include_in_schema=False)


def _safe_next(value: str | None) -> str:
    # Only same-site paths, so the login form cannot be used as an open redirect.
    if value and value.startswith("/") and not value.startswith("//"):
        return value
    return "/"


@router.get("/login", response_class=HTMLResponse)
def login_form(request: Request, actor: PublicActor, next: str = "/") -> HTMLResponse:  # noqa: A002
    message = "Your session has expired; please log in again." if actor.session_expired else None
    return render(request, "accounts/login.html", {"next": _safe_next(next), "error": message})


@router.post("/login", response_class=HTMLResponse)
async def login(
    request: Request,
    actor: PublicActor,
    email: Annotated[str, Form(max_length=320)],
    password: Annotated[str, Form(max_length=1000)],
    next: Annotated[str, Form(max_length=500)] = "/",  # noqa: A002
) -> Response:
    await check_csrf(request, actor)
    from starlette.concurrency import run_in_threadpool

    return await run_in_threadpool(_login, request, email, password, _safe_next(next))


def _login(request: Request, email: str, password: str, next_path: str) -> Response:
    settings = request.app.state.settings
    client = request.client.host if request.client else ""
    from townhall.db import unit_of_work

    with unit_of_work(request.app.state.session_factory) as db:
        since = queries.lockout_window_start(utcnow(), settings.login_lockout_seconds)
        failures = queries.recent_login_failures(
            db, email=email, client_address=client, since=since
        )
        if failures >= settings.login_max_failures:
            raise TownhallError(
                429,
                "too_many_requests",
                "Too many failed logins; wait a few minutes and try again.",
                headers={"Retry-After": str(settings.login_lockout_seconds)},
            )
        user = queries.user_by_email(db, email)
        ok = verify_password(password, user.password_hash if user else None)
        if not ok or user is None or not user.is_active:
            actions.record_login_attempt(db, email=email, client_address=client, succeeded=False)
            failed = True
        else:
            actions.record_login_attempt(db, email=email, client_address=client, succeeded=True)
            _, raw = actions.start_web_session(
                db,
                user=user,
                max_age_seconds=settings.session_max_age_seconds,
                user_agent=request.headers.get("user-agent", ""),
            )
            failed = False
    if failed:
        return render(
            request,
            "accounts/login.html",
            {"next": next_path, "error": "That email and password do not match an account."},
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
    await check_csrf(request, actor)
    if actor.session_id is not None:
        actions.end_web_session(db, actor=actor, web_session_id=actor.session_id)
    response = RedirectResponse("/", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


AdminActor = Annotated[Actor, Depends(requires("users:read"))]


@router.get("/admin", response_class=HTMLResponse)
def admin_page(
    request: Request, db: DbSession, actor: AdminActor, created_token: str | None = None
) -> HTMLResponse:
    users, total = queries.list_users(db, limit=500)
    tokens = queries.list_tokens(
        db, user_id=None if actor.can("tokens:manage-any") else actor.user_id
    )
    return render(
        request,
        "accounts/admin.html",
        {
            "users": users,
            "total_users": total,
            "tokens": tokens,
            "roles": list(ROLES),
            "organizations": queries.list_organizations(db),
            "now": utcnow(),
        },
    )


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
    actions.create_user(
        db,
        actor=actor,
        email=email,
        password=password,
        role=role,
        display_name=display_name,
        organization_slugs=[organization] if organization else [],
    )
    return RedirectResponse("/admin?created_user=1", status_code=303)


@router.post("/admin/tokens", response_class=HTMLResponse)
def admin_create_token(
    request: Request,
    db: DbSession,
    actor: Annotated[Actor, Depends(requires("tokens:manage-own"))],
    settings: AppSettings,
    name: Annotated[str, Form(max_length=200)] = "",
    scope: Annotated[list[str] | None, Form()] = None,
    expires_in_days: Annotated[int, Form(ge=1, le=3650)] = 365,
) -> HTMLResponse:
    token, raw = actions.create_api_token(
        db,
        actor=actor,
        user_id=actor.user_id or 0,
        name=name,
        scopes=[s for s in scope or [] if s],
        expires_in_days=expires_in_days,
    )
    # Shown once, on this response only; the database keeps just its hash.
    return render(request, "accounts/token_created.html", {"token": token, "raw": raw})


@router.post("/admin/tokens/{token_id}/revoke")
def admin_revoke_token(
    token_id: int,
    db: DbSession,
    actor: Annotated[Actor, Depends(requires("tokens:manage-own"))],
) -> Response:
    actions.revoke_api_token(db, actor=actor, token_id=token_id)
    return RedirectResponse("/admin#tokens", status_code=303)
