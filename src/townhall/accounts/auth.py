"""Who is calling: API tokens (`Authorization: Bearer <t>` or raw, as CKAN clients send),
session cookies, or nobody. And the access markers every route must carry."""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable
from functools import cache
from typing import Annotated

from fastapi import Depends, Request

from townhall.accounts import actions, queries
from townhall.accounts.models import User
from townhall.accounts.permissions import mark_access, permissions_for_role
from townhall.accounts.security import TOKEN_PREFIX, csrf_matches, csrf_token
from townhall.actor import ANONYMOUS, Actor
from townhall.db import utcnow
from townhall.deps import AppSettings, DbSession
from townhall.errors import TownhallError
from townhall.ratelimit import enforce as enforce_rate_limit

SESSION_COOKIE = "th_session"
ANON_COOKIE = "th_anon"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def actor_for_user(user: User, **extra: object) -> Actor:
    return Actor(
        label=f"user:{user.email}",
        user_id=user.id,
        role=user.role,
        permissions=permissions_for_role(user.role),
        organization_ids=frozenset(m.organization_id for m in user.memberships),
        **extra,  # type: ignore[arg-type]
    )


def _bearer_token(request: Request) -> str | None:
    header = request.headers.get("authorization")
    if not header:
        return None
    scheme, _, value = header.strip().partition(" ")
    if scheme.lower() == "bearer" and value:
        return value.strip()
    if header.strip().startswith(TOKEN_PREFIX):  # CKAN sends the bare token
        return header.strip()
    raise TownhallError(
        401, "invalid_token", "Authorization must be 'Bearer <token>' or the bare token."
    )


def is_anonymous(request: Request) -> bool:
    """No token and no session cookie: the usual resident, Open311 client or data reader,
    whose public reads need no database lookup to know who asks. A walk over the
    scope's few headers (lower case, as ASGI servers give them); the cookies are parsed only
    when there are any."""
    cookies = False
    for name, _ in request.scope["headers"]:
        if name == b"authorization":
            return False
        cookies = cookies or name == b"cookie"
    return not cookies or SESSION_COOKIE not in request.cookies


def current_actor(request: Request, db: DbSession, settings: AppSettings) -> Actor:
    """Resolve the caller once per request. Raises 401 for a bad token; an expired session
    cookie yields an anonymous actor marked `session_expired` (public pages still work)."""
    cached = getattr(request.state, "actor", None)
    if cached is not None:
        return cached
    now = utcnow()
    actor = ANONYMOUS
    raw_token = _bearer_token(request)
    if raw_token is not None:
        token = queries.token_by_raw(db, raw_token)
        if token is None or token.revoked_at is not None:
            raise TownhallError(401, "invalid_token", "The API token is unknown or revoked.")
        if token.expires_at is not None and token.expires_at <= now:
            raise TownhallError(401, "invalid_token", "The API token has expired.")
        if not token.user.is_active:
            raise TownhallError(401, "invalid_token", "The token's user is deactivated.")
        actions.touch_api_token(db, token, now=now)
        role_permissions = permissions_for_role(token.user.role)
        scoped = role_permissions & frozenset(token.scopes) if token.scopes else role_permissions
        actor = actor_for_user(token.user, via="token", token_id=token.id)
        actor = Actor(**{**actor.__dict__, "permissions": scoped})
    elif raw_session := request.cookies.get(SESSION_COOKIE):
        web_session = queries.web_session_by_raw(db, raw_session)
        alive = (
            web_session is not None
            and web_session.ended_at is None
            and web_session.expires_at > now
            and web_session.user.is_active
        )
        if alive and web_session is not None:
            actions.touch_web_session(
                db, web_session, max_age_seconds=settings.session_max_age_seconds, now=now
            )
            actor = actor_for_user(
                web_session.user,
                via="session",
                session_id=web_session.id,
                csrf_binding=f"s:{web_session.id}",
            )
        else:
            request.state.clear_session_cookie = True
            actor = Actor(label="anonymous", via="anonymous", session_expired=True)
    if actor.via == "anonymous":
        nonce = request.cookies.get(ANON_COOKIE)
        if not nonce or len(nonce) > 64:
            nonce = secrets.token_urlsafe(16)
            request.state.new_anon_nonce = nonce
        actor = Actor(**{**actor.__dict__, "csrf_binding": f"a:{nonce}"})
    request.state.actor = actor
    # Counted once the caller is known: a token counts as itself, staff may be exempt.
    enforce_rate_limit(request, actor)
    return actor


CurrentActor = Annotated[Actor, Depends(current_actor)]


def csrf_token_for(request: Request, actor: Actor) -> str:
    return csrf_token(
        request.app.state.settings.secret_key.get_secret_value(), actor.csrf_binding or ""
    )


async def check_csrf(request: Request, actor: Actor) -> None:
    """Cookie-authenticated writes must echo the CSRF token (form field or X-CSRF-Token)."""
    if request.method in SAFE_METHODS or actor.via in ("token", "system"):
        return
    given = request.headers.get("x-csrf-token")
    content_type = request.headers.get("content-type", "")
    if not given and content_type.startswith(
        ("application/x-www-form-urlencoded", "multipart/form-data")
    ):
        form = await request.form()
        value = form.get("csrf_token")
        given = value if isinstance(value, str) else None
    secret = request.app.state.settings.secret_key.get_secret_value()
    if not csrf_matches(secret, actor.csrf_binding or "", given):
        raise TownhallError(
            403, "csrf_failed", "The form's CSRF token is missing or stale; reload the page."
        )


@cache
def requires(permission: str) -> Callable[..., Awaitable[Actor]]:
    """A dependency that resolves the caller and insists on `permission` (401/403 otherwise)."""

    async def _dependency(request: Request, actor: CurrentActor) -> Actor:
        actor.require(permission)
        if actor.via == "session":
            await check_csrf(request, actor)
        return actor

    _dependency.__name__ = f"requires_{permission.replace(':', '_').replace('-', '_')}"
    return mark_access(_dependency, permission)


async def _public(actor: CurrentActor) -> Actor:
    return actor


public_actor = mark_access(_public, "public")
PUBLIC = Depends(public_actor)
PublicActor = Annotated[Actor, Depends(public_actor)]
