"""API shapes for notifications."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import Field

from townhall.schemas import Page, PublicOutput, StrictInput


class WebhookCreate(StrictInput):
    url: str = Field(min_length=8, max_length=2000, pattern=r"^https?://")
    topic: str = Field(
        "*",
        max_length=200,
        description="`*` (every event), `area:<district>:<service code or *>`, "
        "`office:<organization slug>` (its requests), `office-status:<office slug>` (its live "
        "status) or `request:<tracking code>`",
    )
    secret: str | None = Field(
        None, min_length=16, max_length=200, description="HMAC key; generated when left out"
    )


class SubscriptionPublic(PublicOutput):
    id: int
    channel: str
    topic: str
    target: str
    active: bool
    created_at: datetime
    unsubscribed_at: datetime | None


class WebhookCreated(SubscriptionPublic):
    secret: str = Field(description="Shown once: verify X-Townhall-Signature with it")


class MessagePublic(PublicOutput):
    id: int
    channel: str
    recipient: str
    template_slug: str | None
    template_version: int | None
    event_type: str | None
    reference: str | None
    subject: str
    status: str
    attempts: int
    last_error: str | None
    response_status: int | None
    created_at: datetime
    updated_at: datetime
    delivered_at: datetime | None
    next_attempt_at: datetime | None
    dead_lettered_at: datetime | None


class MessagePage(Page[MessagePublic]):
    pass


class TemplateSave(StrictInput):
    subject: str = Field("", max_length=300)
    body: str = Field(min_length=1, max_length=20_000)
    language: str = Field("en", min_length=2, max_length=10, pattern=r"^[a-z]{2}(-[A-Z]{2})?$")
    channel: Literal["email", "webhook"] = "email"


class TemplatePublic(PublicOutput):
    id: int | None = Field(description="None for a default not stored yet")
    slug: str
    language: str
    version: int
    channel: str
    subject: str
    body: str
    created_at: datetime | None
    created_by: str
