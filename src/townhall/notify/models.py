"""Notifications: templates, messages (one per delivery), subscriptions and suppressions.

The message lifecycle follows GOV.UK Notify: `created` -> `sending` -> `delivered`, or one of
`temporary-failure` (the recipient could not take it now: retried, with backoff),
`permanent-failure` (the recipient refused it for good: never retried, and the address is
suppressed so nothing is sent to it again) and `technical-failure` (our side or the provider
broke and the retries ran out). A webhook whose retries run out is also dead-lettered
(`dead_lettered_at`), where an operator can replay it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from townhall.db import Base, UTCDateTime, utcnow

MESSAGE_STATUSES = (
    "created",
    "sending",
    "delivered",
    "temporary-failure",
    "permanent-failure",
    "technical-failure",
)
FINAL_STATUSES = frozenset({"delivered", "permanent-failure", "technical-failure"})
CHANNELS = ("email", "webhook")


class NotifyTemplate(Base):
    """One version of a template in one language. Editing adds a version; messages record
    the version they were made from."""

    __tablename__ = "notify_templates"
    __table_args__ = (UniqueConstraint("slug", "language", "version"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    slug: Mapped[str] = mapped_column(String(100))
    language: Mapped[str] = mapped_column(String(10), default="en")
    version: Mapped[int] = mapped_column(Integer, default=1)
    channel: Mapped[str] = mapped_column(String(20), default="email")
    subject: Mapped[str] = mapped_column(String(300), default="")
    body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    created_by: Mapped[str] = mapped_column(String(400), default="")


class NotifySubscription(Base):
    """Who wants to hear about what. `topic` is `request:<CODE>`, `area:<district>:<service
    code or *>`, `office:<organization slug>` (its requests), `office-status:<location slug>`
    (its live status) or `*` (webhooks only). `token` is the secret of the one-click
    unsubscribe link."""

    __tablename__ = "notify_subscriptions"
    __table_args__ = (Index("ix_notify_subscriptions_topic_active", "topic", "active"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    channel: Mapped[str] = mapped_column(String(20))  # email | webhook
    topic: Mapped[str] = mapped_column(String(200))
    # An email address or a webhook URL: personal data for email, never shown publicly.
    target: Mapped[str] = mapped_column(String(2000))
    # The webhook's HMAC key (needed in clear to sign); empty for email.
    secret: Mapped[str] = mapped_column(String(200), default="")
    language: Mapped[str] = mapped_column(String(10), default="en")
    token: Mapped[str] = mapped_column(String(64), unique=True)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    unsubscribed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_by: Mapped[str] = mapped_column(String(400), default="")


class NotifyMessage(Base):
    __tablename__ = "notify_messages"
    __table_args__ = (
        Index("ix_notify_messages_status_next", "status", "next_attempt_at"),
        Index("ix_notify_messages_reference", "reference"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    channel: Mapped[str] = mapped_column(String(20))
    recipient: Mapped[str] = mapped_column(String(2000))
    subscription_id: Mapped[int | None] = mapped_column(
        ForeignKey("notify_subscriptions.id", ondelete="SET NULL"), index=True
    )
    template_id: Mapped[int | None] = mapped_column(
        ForeignKey("notify_templates.id", ondelete="SET NULL")
    )
    template_slug: Mapped[str | None] = mapped_column(String(100))
    template_version: Mapped[int | None] = mapped_column(Integer)
    event_type: Mapped[str | None] = mapped_column(String(100))
    reference: Mapped[str | None] = mapped_column(String(200))
    subject: Mapped[str] = mapped_column(String(300), default="")
    body: Mapped[str] = mapped_column(Text, default="")
    payload: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    status: Mapped[str] = mapped_column(String(30), default="created")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    response_status: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    dead_lettered_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class NotifySuppression(Base):
    """An address that failed permanently: nothing is ever sent to it again."""

    __tablename__ = "notify_suppressions"

    id: Mapped[int] = mapped_column(primary_key=True)
    channel: Mapped[str] = mapped_column(String(20), default="email")
    address: Mapped[str] = mapped_column(String(2000), unique=True)
    reason: Mapped[str] = mapped_column(Text, default="")
    message_id: Mapped[int | None] = mapped_column(
        ForeignKey("notify_messages.id", ondelete="SET NULL")
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
