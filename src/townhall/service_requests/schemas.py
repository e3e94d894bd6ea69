"""API shapes for service requests. `RequestPublic` carries nothing personal; `RequestStaff`
adds what the office needs (resident contact, exact text, internal notes)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from townhall.schemas import Page, PublicOutput, StrictInput

SubStatus = Literal[
    "received",
    "triaged",
    "assigned",
    "in_progress",
    "waiting_for_resident",
    "resolved",
    "closed_not_fixed",
    "duplicate",
    "rejected",
]


class AttributeValueDef(StrictInput):
    key: str = Field(min_length=1, max_length=100)
    name: str = Field(min_length=1, max_length=300)


class AttributeDef(StrictInput):
    code: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")
    datatype: Literal["string", "number", "datetime", "text", "singlevaluelist", "multivaluelist"]
    required: bool = False
    variable: bool = True
    order: int | None = Field(None, ge=1, le=1000)
    description: str = Field("", max_length=2000)
    datatype_description: str | None = Field(None, max_length=500)
    values: list[AttributeValueDef] = Field(default_factory=list, max_length=200)


class ServiceCreate(StrictInput):
    code: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")
    name: str = Field(min_length=1, max_length=200)
    description: str = Field("", max_length=4000)
    group: str | None = Field(None, max_length=100)
    keywords: list[str] = Field(default_factory=list, max_length=50)
    attributes: list[AttributeDef] = Field(default_factory=list, max_length=100)
    service_type: Literal["realtime", "batch", "blackbox"] = "realtime"
    service_notice: str | None = Field(None, max_length=2000)
    organization: str | None = Field(None, max_length=100, description="Responsible office slug")
    expected_days: float | None = Field(None, gt=0, le=3650)
    default_priority: int = Field(3, ge=1, le=4)
    location_required: bool = True


class ServiceUpdate(StrictInput):
    name: str | None = Field(None, min_length=1, max_length=200)
    description: str | None = Field(None, max_length=4000)
    group: str | None = Field(None, max_length=100)
    keywords: list[str] | None = Field(None, max_length=50)
    attributes: list[AttributeDef] | None = Field(None, max_length=100)
    service_type: Literal["realtime", "batch", "blackbox"] | None = None
    service_notice: str | None = Field(None, max_length=2000)
    organization: str | None = Field(None, max_length=100)
    expected_days: float | None = Field(None, gt=0, le=3650)
    default_priority: int | None = Field(None, ge=1, le=4)
    location_required: bool | None = None
    active: bool | None = None


class ServicePublic(PublicOutput):
    code: str
    name: str
    description: str
    group: str | None
    keywords: list[str]
    attributes: list[dict[str, Any]]
    service_type: str
    service_notice: str | None
    organization: str | None
    expected_days: float | None
    location_required: bool
    active: bool


class RequestCreate(StrictInput):
    service_code: str = Field(min_length=1, max_length=64)
    description: str = Field("", max_length=4000)
    lat: float | None = Field(None, ge=-90, le=90)
    long: float | None = Field(None, ge=-180, le=180)
    address: str | None = Field(None, max_length=500)
    address_id: str | None = Field(None, max_length=100)
    zipcode: str | None = Field(None, max_length=20)
    attributes: dict[str, list[str] | str] = Field(default_factory=dict, max_length=100)
    media_url: str | None = Field(None, max_length=2000)
    name: str | None = Field(None, max_length=200, description="Kept private")
    email: str | None = Field(None, max_length=320, description="Kept private")
    phone: str | None = Field(None, max_length=40, description="Kept private")
    priority: int | None = Field(None, ge=1, le=4, description="Staff only")
    channel: Literal["api", "app", "phone", "walk_in", "email"] = "api"


class RequestCreated(BaseModel):
    ok: bool = True
    tracking_code: str
    tracking_url: str
    status: str
    expected_datetime: datetime | None


class NotePublic(PublicOutput):
    at: datetime
    kind: str
    sub_status: str | None
    note: str | None


class RequestPublic(PublicOutput):
    tracking_code: str
    status: str
    sub_status: str
    sub_status_label: str
    status_notes: str | None
    service_code: str
    service_name: str
    description: str
    agency_responsible: str | None
    district: str | None
    address: str | None
    zipcode: str | None
    lat: float | None
    long: float | None
    requested_at: datetime
    updated_at: datetime
    expected_at: datetime | None
    closed_at: datetime | None
    duplicate_of: str | None = None
    history: list[NotePublic] | None = None


class UpdateStaff(PublicOutput):
    at: datetime
    kind: str
    from_sub_status: str | None
    to_sub_status: str | None
    public_note: str | None
    internal_note: str | None
    changes: dict[str, Any]
    actor: str


class MessageStaff(PublicOutput):
    at: datetime
    direction: str
    body: str
    author: str


class RequestStaff(RequestPublic):
    priority: int
    channel: str
    exact_description: str
    attributes: dict[str, Any]
    resident_name: str | None
    resident_email: str | None
    resident_phone: str | None
    assigned_user_id: int | None
    assigned_to: str | None
    sla_paused: bool
    sla_late: bool
    sla_remaining_hours: float | None
    hidden: bool
    updates: list[UpdateStaff] = Field(default_factory=list)
    messages: list[MessageStaff] = Field(default_factory=list)


class RequestPage(Page[RequestPublic]):
    pass


class QueuePage(Page[RequestStaff]):
    pass


class TransitionInput(StrictInput):
    sub_status: SubStatus
    public_note: str | None = Field(None, max_length=4000)
    internal_note: str | None = Field(None, max_length=4000)
    template_id: int | None = Field(
        None, ge=1, le=2**31 - 1, description="Fills public_note from a template"
    )


class NoteInput(StrictInput):
    public_note: str | None = Field(None, max_length=4000)
    internal_note: str | None = Field(None, max_length=4000)


class AssignInput(StrictInput):
    user_id: int | None = Field(
        None, ge=1, le=2**31 - 1, description="null gives it back to the pool"
    )
    internal_note: str | None = Field(None, max_length=4000)


class PriorityInput(StrictInput):
    priority: int = Field(ge=1, le=4)


class MergeInput(StrictInput):
    into: str = Field(min_length=3, max_length=24)


class ReplyInput(StrictInput):
    body: str = Field(min_length=1, max_length=4000)


class FollowInput(StrictInput):
    email: str = Field(min_length=3, max_length=320)


class NearbyRequest(BaseModel):
    tracking_code: str
    distance_m: float
    sub_status_label: str
    description: str
    requested_at: datetime


class TemplateCreate(StrictInput):
    name: str = Field(min_length=1, max_length=200)
    body: str = Field(min_length=1, max_length=4000)
    sub_status: SubStatus | None = None


class TemplatePublic(PublicOutput):
    id: int
    name: str
    body: str
    sub_status: str | None
