"""Reads for accounts. No commits, no writes."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from townhall.accounts.models import ApiToken, LoginAttempt, Organization, User, WebSession
from townhall.accounts.security import digest


def normalise_email(email: str) -> str:
    return email.strip().lower()


def user_by_email(session: Session, email: str) -> User | None:
    return session.scalar(select(User).where(User.email == normalise_email(email)))


def user_by_id(session: Session, user_id: int) -> User | None:
    return session.get(User, user_id)


def organization_by_slug(session: Session, slug: str) -> Organization | None:
    return session.scalar(select(Organization).where(Organization.slug == slug))


def list_users(session: Session, *, limit: int = 100, offset: int = 0) -> tuple[list[User], int]:
    total = session.scalar(select(func.count()).select_from(User)) or 0
    users = session.scalars(select(User).order_by(User.email).limit(limit).offset(offset)).all()
    return list(users), total


def list_organizations(session: Session) -> list[Organization]:
    return list(session.scalars(select(Organization).order_by(Organization.name)))


def list_tokens(session: Session, *, user_id: int | None = None) -> list[ApiToken]:
    query = select(ApiToken).order_by(ApiToken.created_at.desc(), ApiToken.id.desc())
    if user_id is not None:
        query = query.where(ApiToken.user_id == user_id)
    return list(session.scalars(query))


def token_by_raw(session: Session, raw_token: str) -> ApiToken | None:
    return session.scalar(select(ApiToken).where(ApiToken.token_hash == digest(raw_token)))


def web_session_by_raw(session: Session, raw_token: str) -> WebSession | None:
    return session.scalar(select(WebSession).where(WebSession.token_hash == digest(raw_token)))


def recent_login_failures(
    session: Session, *, email: str, client_address: str, since: datetime
) -> int:
    """Failures for this email, and separately from this address; the larger one counts."""
    by_email = session.scalar(
        select(func.count())
        .select_from(LoginAttempt)
        .where(
            LoginAttempt.email == normalise_email(email),
            LoginAttempt.at >= since,
            LoginAttempt.succeeded.is_(False),
        )
    )
    by_address = session.scalar(
        select(func.count())
        .select_from(LoginAttempt)
        .where(
            LoginAttempt.client_address == client_address,
            LoginAttempt.at >= since,
            LoginAttempt.succeeded.is_(False),
        )
    )
    # An address gets more room than an email: offices share one public IP behind NAT.
    return max(by_email or 0, (by_address or 0) // 4)


def lockout_window_start(now: datetime, lockout_seconds: int) -> datetime:
    return now - timedelta(seconds=lockout_seconds)


def display_names(session: Session, user_ids: list[int]) -> dict[int, str]:
    """user id -> display name (the email when the user has none), in one query, loading
    nothing else (dashboards name many users at once)."""
    if not user_ids:
        return {}
    rows = session.execute(
        select(User.id, User.display_name, User.email).where(User.id.in_(user_ids))
    )
    return {user_id: name or email for user_id, name, email in rows}
