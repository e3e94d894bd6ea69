"""Reads for notifications."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from townhall.notify.models import (
    NotifyMessage,
    NotifySubscription,
    NotifySuppression,
    NotifyTemplate,
)


def latest_template(session: Session, slug: str, language: str = "en") -> NotifyTemplate | None:
    return session.scalar(
        select(NotifyTemplate)
        .where(NotifyTemplate.slug == slug, NotifyTemplate.language == language)
        .order_by(NotifyTemplate.version.desc())
        .limit(1)
    )


def template_versions(session: Session, slug: str) -> list[NotifyTemplate]:
    return list(
        session.scalars(
            select(NotifyTemplate)
            .where(NotifyTemplate.slug == slug)
            .order_by(NotifyTemplate.language, NotifyTemplate.version)
        )
    )


def suppression_for(session: Session, address: str) -> NotifySuppression | None:
    return session.scalar(
        select(NotifySuppression).where(NotifySuppression.address == address.strip().lower())
    )


def subscription_by_token(session: Session, token: str) -> NotifySubscription | None:
    if not token or len(token) > 64:
        return None
    return session.scalar(select(NotifySubscription).where(NotifySubscription.token == token))


def subscriptions_for_topics(session: Session, topics: Sequence[str]) -> list[NotifySubscription]:
    return list(
        session.scalars(
            select(NotifySubscription)
            .where(NotifySubscription.topic.in_(list(topics)), NotifySubscription.active.is_(True))
            .order_by(NotifySubscription.id)
        )
    )


def subscriptions(
    session: Session, *, channel: str | None = None, topic: str | None = None
) -> list[NotifySubscription]:
    query = select(NotifySubscription).order_by(NotifySubscription.id)
    if channel:
        query = query.where(NotifySubscription.channel == channel)
    if topic:
        query = query.where(NotifySubscription.topic == topic)
    return list(session.scalars(query))


def message_by_id(session: Session, message_id: int) -> NotifyMessage | None:
    return session.get(NotifyMessage, message_id)


def messages(
    session: Session,
    *,
    reference: str | None = None,
    status: str | None = None,
    channel: str | None = None,
    dead_lettered: bool | None = None,
    limit: int = 100,
    offset: int = 0,
) -> tuple[list[NotifyMessage], int]:
    query = select(NotifyMessage)
    if reference:
        query = query.where(NotifyMessage.reference == reference)
    if status:
        query = query.where(NotifyMessage.status == status)
    if channel:
        query = query.where(NotifyMessage.channel == channel)
    if dead_lettered is not None:
        query = query.where(
            NotifyMessage.dead_lettered_at.is_not(None)
            if dead_lettered
            else NotifyMessage.dead_lettered_at.is_(None)
        )
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    rows = session.scalars(query.order_by(NotifyMessage.id.desc()).limit(limit).offset(offset))
    return list(rows), total


def pending_message_ids(session: Session, *, older_than: object, limit: int = 500) -> list[int]:
    """Messages still `created` (their job was never queued, say after a crash between commit
    and enqueue) or whose retry is overdue: the sweeper queues them again."""
    return list(
        session.scalars(
            select(NotifyMessage.id)
            .where(
                ((NotifyMessage.status == "created") & (NotifyMessage.created_at < older_than))
                | (
                    (NotifyMessage.status == "temporary-failure")
                    & (NotifyMessage.next_attempt_at < older_than)
                )
            )
            .order_by(NotifyMessage.id)
            .limit(limit)
        )
    )


def template_slugs(session: Session) -> list[str]:
    return list(session.scalars(select(NotifyTemplate.slug).distinct()))
