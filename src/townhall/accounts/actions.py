"""Writes for accounts. Each checks permission, changes, and records an audit entry in the same
transaction; none commits."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import delete, update
from sqlalchemy.orm import Session

from townhall.accounts import queries
from townhall.accounts.models import (
    ApiToken,
    LoginAttempt,
    Membership,
    Organization,
    User,
    WebSession,
)
from townhall.accounts.permissions import PERMISSIONS, ROLES
from townhall.accounts.security import (
    MIN_PASSWORD_LENGTH,
    digest,
    hash_password,
    new_api_token,
    new_session_token,
)
from townhall.actor import Actor
from townhall.audit.actions import record
from townhall.db import utcnow, write_soon
from townhall.errors import ConflictError, NotFoundError, TownhallError


def _invalid(field: str, message: str) -> TownhallError:
    return TownhallError(
        422,
        "invalid_request",
        f"{field}: {message}",
        errors=[{"loc": ["body", field], "message": message, "type": "value_error"}],
    )


def create_organization(
    session: Session,
    *,
    actor: Actor,
    slug: str,
    name: str,
    kind: str = "office",
    description: str = "",
) -> Organization:
    actor.require("organizations:manage")
    if queries.organization_by_slug(session, slug):
        raise ConflictError(f"An organization with slug {slug!r} already exists.")
    organization = Organization(slug=slug, name=name, kind=kind, description=description)
    session.add(organization)
    session.flush()
    record(
        session,
        actor=actor,
        action="organization.create",
        object_type="organization",
        object_id=organization.id,
        changes={"slug": slug, "name": name, "kind": kind},
    )
    return organization


def create_user(
    session: Session,
    *,
    actor: Actor,
    email: str,
    password: str | None,
    role: str,
    display_name: str = "",
    organization_slugs: list[str] | None = None,
) -> User:
    """Create a user; raises 409 if the email is taken, 422 for a weak password or bad role."""
    actor.require("users:manage")
    email = queries.normalise_email(email)
    if "@" not in email or len(email) > 320:
        raise _invalid("email", "must be an email address")
    if role not in ROLES:
        raise _invalid("role", f"must be one of {', '.join(ROLES)}")
    if password is not None and len(password) < MIN_PASSWORD_LENGTH:
        raise _invalid("password", f"must be at least {MIN_PASSWORD_LENGTH} characters")
    if queries.user_by_email(session, email):
        raise ConflictError(f"A user with email {email} already exists.")
    user = User(
        email=email,
        display_name=display_name or email.split("@")[0],
        password_hash=hash_password(password) if password else None,
        role=role,
    )
    session.add(user)
    session.flush()
    for slug in organization_slugs or []:
        organization = queries.organization_by_slug(session, slug)
        if organization is None:
            raise NotFoundError("organization", slug)
        session.add(Membership(user_id=user.id, organization_id=organization.id))
    session.flush()
    record(
        session,
        actor=actor,
        action="user.create",
        object_type="user",
        object_id=user.id,
        changes={"email": email, "role": role, "organizations": organization_slugs or []},
    )
    return user


def update_user(
    session: Session,
    *,
    actor: Actor,
    user_id: int,
    role: str | None = None,
    is_active: bool | None = None,
    display_name: str | None = None,
) -> User:
    actor.require("users:manage")
    user = queries.user_by_id(session, user_id)
    if user is None:
        raise NotFoundError("user", user_id)
    changes: dict[str, object] = {}
    if role is not None and role != user.role:
        if role not in ROLES:
            raise _invalid("role", f"must be one of {', '.join(ROLES)}")
        changes["role"] = [user.role, role]
        user.role = role
    if is_active is not None and is_active != user.is_active:
        if user.id == actor.user_id and not is_active:
            raise ConflictError("You cannot deactivate your own account.")
        changes["is_active"] = [user.is_active, is_active]
        user.is_active = is_active
        if not is_active:
            _end_all_sessions(session, user.id)
    if display_name is not None and display_name != user.display_name:
        changes["display_name"] = [user.display_name, display_name]
        user.display_name = display_name
    if changes:
        session.flush()
        record(
            session,
            actor=actor,
            action="user.update",
            object_type="user",
            object_id=user.id,
            changes=changes,
        )
    return user


def set_password(session: Session, *, actor: Actor, user_id: int, password: str) -> None:
    if actor.user_id != user_id:
        actor.require("users:manage")
    if len(password) < MIN_PASSWORD_LENGTH:
        raise _invalid("password", f"must be at least {MIN_PASSWORD_LENGTH} characters")
    user = queries.user_by_id(session, user_id)
    if user is None:
        raise NotFoundError("user", user_id)
    user.password_hash = hash_password(password)
    _end_all_sessions(session, user.id)
    record(session, actor=actor, action="user.set_password", object_type="user", object_id=user.id)


def _end_all_sessions(session: Session, user_id: int) -> None:
    session.execute(
        update(WebSession)
        .where(WebSession.user_id == user_id, WebSession.ended_at.is_(None))
        .values(ended_at=utcnow())
    )


def create_api_token(
    session: Session,
    *,
    actor: Actor,
    user_id: int,
    name: str = "",
    scopes: list[str] | None = None,
    expires_in_days: int | None = 365,
) -> tuple[ApiToken, str]:
    """Return the stored token and the raw token, which is never stored and shown only once."""
    if actor.user_id != user_id:
        actor.require("tokens:manage-any")
    else:
        actor.require("tokens:manage-own")
    user = queries.user_by_id(session, user_id)
    if user is None:
        raise NotFoundError("user", user_id)
    unknown = sorted(set(scopes or []) - set(PERMISSIONS))
    if unknown:
        raise _invalid("scopes", f"unknown scope(s): {', '.join(unknown)}")
    if expires_in_days is not None and not 1 <= expires_in_days <= 3650:
        raise _invalid("expires_in_days", "must be between 1 and 3650")
    raw = new_api_token()
    token = ApiToken(
        user_id=user.id,
        name=name,
        prefix=raw[:10],
        token_hash=digest(raw),
        scopes=sorted(set(scopes or [])),
        expires_at=utcnow() + timedelta(days=expires_in_days) if expires_in_days else None,
    )
    session.add(token)
    session.flush()
    record(
        session,
        actor=actor,
        action="token.create",
        object_type="api_token",
        object_id=token.id,
        changes={
            "user_id": user.id,
            "name": name,
            "scopes": token.scopes,
            "expires_at": token.expires_at.isoformat() if token.expires_at else None,
        },
    )
    return token, raw


def revoke_api_token(session: Session, *, actor: Actor, token_id: int) -> ApiToken:
    """Idempotent: revoking a revoked token changes nothing and records nothing."""
    token = session.get(ApiToken, token_id)
    if token is None:
        raise NotFoundError("api_token", token_id)
    if token.user_id != actor.user_id:
        actor.require("tokens:manage-any")
    else:
        actor.require("tokens:manage-own")
    if token.revoked_at is None:
        token.revoked_at = utcnow()
        record(
            session,
            actor=actor,
            action="token.revoke",
            object_type="api_token",
            object_id=token.id,
            changes={"user_id": token.user_id},
        )
    return token


def record_login_attempt(
    session: Session, *, email: str, client_address: str, succeeded: bool
) -> None:
    """Not audited: failed logins are noise in the trail, and are kept here for throttling."""
    session.add(
        LoginAttempt(
            email=queries.normalise_email(email)[:320],
            client_address=client_address[:64],
            succeeded=succeeded,
        )
    )


def start_web_session(
    session: Session, *, user: User, max_age_seconds: int, user_agent: str = ""
) -> tuple[WebSession, str]:
    raw = new_session_token()
    now = utcnow()
    web_session = WebSession(
        token_hash=digest(raw),
        user_id=user.id,
        created_at=now,
        last_seen_at=now,
        expires_at=now + timedelta(seconds=max_age_seconds),
        user_agent=user_agent[:300],
    )
    session.add(web_session)
    session.flush()
    actor = Actor(label=f"user:{user.email}", via="session", user_id=user.id, role=user.role)
    record(session, actor=actor, action="session.login", object_type="user", object_id=user.id)
    return web_session, raw


def end_web_session(session: Session, *, actor: Actor, web_session_id: int) -> None:
    web_session = session.get(WebSession, web_session_id)
    if web_session is None or web_session.ended_at is not None:
        return
    web_session.ended_at = utcnow()
    record(
        session,
        actor=actor,
        action="session.logout",
        object_type="user",
        object_id=web_session.user_id,
    )


def end_all_sessions(session: Session, *, actor: Actor, reason: str) -> int:
    """End every open web session (an incident's first move); returns how many ended.

    One UPDATE rather than one `end_web_session` per session: there may be thousands, and the
    single audit entry records the count and the reason. Needs `system:admin` (401/403
    otherwise). Idempotent: a second call ends nothing and records a count of 0.
    """
    actor.require("system:admin")
    result = session.execute(
        update(WebSession).where(WebSession.ended_at.is_(None)).values(ended_at=utcnow())
    )
    ended = int(result.rowcount or 0)  # type: ignore[attr-defined]
    record(
        session,
        actor=actor,
        action="session.end_all",
        object_type="web_session",
        object_id="all",
        changes={"ended": ended, "reason": reason[:500]},
    )
    return ended


def touch_web_session(
    session: Session, web_session: WebSession, *, max_age_seconds: int, now: datetime
) -> None:
    """Sliding expiry; only written once a minute so reads do not all become writes."""
    if (now - web_session.last_seen_at).total_seconds() > 60:
        write_soon(
            session,
            update(WebSession)
            .where(WebSession.id == web_session.id)
            .values(last_seen_at=now, expires_at=now + timedelta(seconds=max_age_seconds)),
        )


def touch_api_token(session: Session, token: ApiToken, *, now: datetime) -> None:
    if token.last_used_at is None or (now - token.last_used_at).total_seconds() > 300:
        write_soon(
            session, update(ApiToken).where(ApiToken.id == token.id).values(last_used_at=now)
        )


def prune_login_attempts(session: Session, *, older_than: datetime) -> int:
    result = session.execute(delete(LoginAttempt).where(LoginAttempt.at < older_than))
    return int(result.rowcount or 0)  # type: ignore[attr-defined]
