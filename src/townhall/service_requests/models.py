"""Service requests: what residents report or ask for, and everything the office does about it.

- `RequestService`: an Open311 service definition (a request type) with its attributes, its
  responsible office and its published service level. Kept here rather than borrowed from the
  service directory so the Open311 contract does not move when the directory changes; the two
  can be linked by `directory_slug`.
- `ServiceRequest`: one request. The public identifier everywhere (tracking page, Open311
  `service_request_id`, SSE channel) is `tracking_code`; the integer id never leaves the office.
  Open311 `status` is open/closed; `sub_status` carries the finer lifecycle (see `lifecycle.py`).
  Resident contact details and the exact free text are personal data: only staff see them;
  public output uses `public_description`, scrubbed when the request is stored.
- `RequestUpdate`: the history. Every change is one row, with an optional public note (shown on
  the tracking page and in Open311 extensions) and an optional internal note (staff only).
- `RequestMessage`: two-way messages between the resident and staff (private to both).
- `RequestAttachment`: photos (re-encoded, metadata stripped) and documents.
- `ResponseTemplate`: staff reply templates with `((placeholders))`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from townhall.accounts.models import Organization, User
from townhall.db import Base, UTCDateTime, utcnow


class RequestService(Base):
    """An Open311 service (request type). `attributes` holds the Open311 attribute definitions:
    `[{"code", "datatype", "required", "variable", "order", "description",
    "datatype_description", "values": [{"key", "name"}]}]`."""

    __tablename__ = "request_services"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    # "group" is an SQL keyword; the column is named for what it is.
    group: Mapped[str | None] = mapped_column("group_name", String(100))
    keywords: Mapped[list[str]] = mapped_column(JSON, default=list)
    attributes: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    service_type: Mapped[str] = mapped_column(String(20), default="realtime")
    service_notice: Mapped[str | None] = mapped_column(Text)
    organization_id: Mapped[int | None] = mapped_column(
        ForeignKey("organizations.id", ondelete="SET NULL"), index=True
    )
    expected_days: Mapped[float | None] = mapped_column(Float)
    default_priority: Mapped[int] = mapped_column(Integer, default=3)
    # Where a request of this type may be asked without a location (a permit question).
    location_required: Mapped[bool] = mapped_column(Boolean, default=True)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    directory_slug: Mapped[str | None] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    organization: Mapped[Organization | None] = relationship(lazy="joined")


class ServiceRequest(Base):
    __tablename__ = "service_requests"
    __table_args__ = (
        Index("ix_service_requests_requested_at", "requested_at"),
        Index("ix_service_requests_updated_at", "updated_at"),
        Index("ix_service_requests_closed_at", "closed_at"),
        Index("ix_service_requests_service_status_lat", "service_id", "status", "lat"),
        Index("ix_service_requests_queue", "status", "priority", "expected_at"),
        Index("ix_service_requests_district_requested", "district_code", "requested_at"),
        Index("ix_service_requests_client_hash_requested", "client_hash", "requested_at"),
        Index("ix_service_requests_token_requested", "api_token_id", "requested_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    tracking_code: Mapped[str] = mapped_column(String(24), unique=True)
    # Open311 POST may answer with a token instead of an id (batch services); GET tokens/{t}.
    submission_token: Mapped[str] = mapped_column(String(40), unique=True)
    service_id: Mapped[int] = mapped_column(ForeignKey("request_services.id"), index=True)
    status: Mapped[str] = mapped_column(String(10), default="open")
    sub_status: Mapped[str] = mapped_column(String(30), default="received", index=True)
    resolution: Mapped[str | None] = mapped_column(String(40))
    status_notes: Mapped[str | None] = mapped_column(Text)
    priority: Mapped[int] = mapped_column(Integer, default=3)
    channel: Mapped[str] = mapped_column(String(20), default="web")
    # Personal data: the resident's own words. Public output uses public_description.
    description: Mapped[str] = mapped_column(Text, default="")
    public_description: Mapped[str] = mapped_column(Text, default="")
    attribute_values: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    media_url: Mapped[str | None] = mapped_column(String(2000))
    lat: Mapped[float | None] = mapped_column(Float)
    long: Mapped[float | None] = mapped_column(Float)
    address: Mapped[str | None] = mapped_column(String(500))
    address_id: Mapped[str | None] = mapped_column(String(100))
    zipcode: Mapped[str | None] = mapped_column(String(20))
    district_code: Mapped[str | None] = mapped_column(String(40))
    organization_id: Mapped[int | None] = mapped_column(
        ForeignKey("organizations.id", ondelete="SET NULL"), index=True
    )
    assigned_user_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), index=True
    )
    duplicate_of_id: Mapped[int | None] = mapped_column(
        ForeignKey("service_requests.id", ondelete="SET NULL"), index=True
    )
    # Personal data: never on a public page or in public API output.
    resident_name: Mapped[str | None] = mapped_column(String(200))
    resident_email: Mapped[str | None] = mapped_column(String(320))
    resident_phone: Mapped[str | None] = mapped_column(String(40))
    resident_user_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL")
    )
    # SHA-256 of the resident's private link key (messages, attachments); the key is mailed.
    resident_key_hash: Mapped[str | None] = mapped_column(String(64))
    device_id: Mapped[str | None] = mapped_column(String(200))
    account_id: Mapped[str | None] = mapped_column(String(200))
    api_token_id: Mapped[int | None] = mapped_column(
        ForeignKey("api_tokens.id", ondelete="SET NULL")
    )
    # Keyed hash of the submitting address: rate limits without keeping the address.
    client_hash: Mapped[str | None] = mapped_column(String(32))
    hidden: Mapped[bool] = mapped_column(Boolean, default=False)
    requested_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    acknowledged_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # The SLA clock: expected_at moves later by every pause; while waiting for the resident the
    # clock is stopped at sla_paused_at.
    expected_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    sla_paused_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    sla_paused_seconds: Mapped[int] = mapped_column(Integer, default=0)

    service: Mapped[RequestService] = relationship(lazy="joined")
    organization: Mapped[Organization | None] = relationship(lazy="joined")
    # Loaded on access (the queue joins it): public lookups never need it.
    assigned_user: Mapped[User | None] = relationship(foreign_keys=[assigned_user_id])


class RequestUpdate(Base):
    """One change in a request's life. `public_note` is shown to everyone; `internal_note`
    only to staff."""

    __tablename__ = "request_updates"
    __table_args__ = (Index("ix_request_updates_request_at", "request_id", "at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    request_id: Mapped[int] = mapped_column(ForeignKey("service_requests.id", ondelete="CASCADE"))
    at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    kind: Mapped[str] = mapped_column(String(20))  # created|status|note|assign|priority|merge
    from_sub_status: Mapped[str | None] = mapped_column(String(30))
    to_sub_status: Mapped[str | None] = mapped_column(String(30))
    public_note: Mapped[str | None] = mapped_column(Text)
    internal_note: Mapped[str | None] = mapped_column(Text)
    changes: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    actor_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    actor_label: Mapped[str] = mapped_column(String(400), default="")


class RequestMessage(Base):
    """A message between the resident and the office; private to both sides."""

    __tablename__ = "request_messages"
    __table_args__ = (Index("ix_request_messages_request_at", "request_id", "at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    request_id: Mapped[int] = mapped_column(ForeignKey("service_requests.id", ondelete="CASCADE"))
    at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    direction: Mapped[str] = mapped_column(String(20))  # to_resident | from_resident
    body: Mapped[str] = mapped_column(Text)
    author_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    author_label: Mapped[str] = mapped_column(String(400), default="")


class RequestAttachment(Base):
    """A photo or document. Images are re-encoded (no EXIF, no GPS) before they are stored.
    Only `is_public` ones are served to everyone; the rest to staff and the resident."""

    __tablename__ = "request_attachments"

    id: Mapped[int] = mapped_column(primary_key=True)
    request_id: Mapped[int] = mapped_column(
        ForeignKey("service_requests.id", ondelete="CASCADE"), index=True
    )
    filename: Mapped[str] = mapped_column(String(200))
    content_type: Mapped[str] = mapped_column(String(100))
    size_bytes: Mapped[int] = mapped_column(Integer)
    sha256: Mapped[str] = mapped_column(String(64))
    data: Mapped[bytes] = mapped_column(LargeBinary)
    is_public: Mapped[bool] = mapped_column(Boolean, default=False)
    uploaded_by: Mapped[str] = mapped_column(String(20), default="resident")  # resident | staff
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class ResponseTemplate(Base):
    """A reply staff pick when updating a request; `body` may use `((placeholders))`."""

    __tablename__ = "request_response_templates"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    body: Mapped[str] = mapped_column(Text)
    sub_status: Mapped[str | None] = mapped_column(String(30))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
