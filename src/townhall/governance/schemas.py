"""API shapes for governance."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import Field

from townhall.schemas import PublicOutput, StrictInput

Level = Literal["public", "internal", "personal", "sensitive"]


class ClassificationUpdate(StrictInput):
    classification: Level | None = Field(None, description="The dataset's own level.")
    columns: dict[str, Level] = Field(
        default_factory=dict, max_length=1000, description="Column name -> level."
    )
    note: str = Field("", max_length=2000)


class StewardUpdate(StrictInput):
    email: str = Field(min_length=3, max_length=320, pattern=r"^[^@\s]+@[^@\s]+$")


class ReviewNote(StrictInput):
    note: str = Field("", max_length=10_000)


class Approval(ReviewNote):
    publish: bool = Field(False, description="Publish at once after approving.")


class SendBack(StrictInput):
    note: str = Field(min_length=1, max_length=10_000, description="What must change.")


class ReviewRule(StrictInput):
    requires_review: bool


class ReviewRulePublic(PublicOutput):
    organization: str
    requires_review: bool


class ColumnPublic(PublicOutput):
    name: str
    classification: str
    source: str  # declared | detected | default


class DatasetGovernancePublic(PublicOutput):
    slug: str
    state: str
    visibility: str
    classification: str
    dataset_classification: str
    columns: list[ColumnPublic]
    origin: str
    source: str | None
    steward: str | None
    license_id: str | None
    review_required: bool
    review_reason: str | None
    submitted_by: str | None
    submitted_at: datetime | None
    reviewed_by: str | None
    reviewed_at: datetime | None
    review_note: str
    first_published_at: datetime | None
    blockers: list[dict[str, Any]]


class InventoryItem(PublicOutput):
    slug: str
    title: str
    organization: str
    state: str
    visibility: str
    classification: str
    dataset_classification: str
    personal_columns: list[str]
    unconfirmed_columns: list[str]
    origin: str
    source: str | None
    steward: str | None
    steward_name: str | None
    license_id: str | None
    frequency: str | None
    last_published_at: datetime | None
    next_update_due: datetime | None
    late: bool
    requires_review: bool
    reviewed_by: str | None
    reviewed_at: datetime | None
    usage_30d: int
    usage_by_channel: dict[str, int]
    consumers_30d: int
    anonymous_30d: int
    top_consumers: list[dict[str, Any]]


class InventoryPublic(PublicOutput):
    ok: bool = True
    total: int
    items: list[InventoryItem]


class RetentionPolicyPublic(PublicOutput):
    record_type: str
    description: str
    action: str
    fields: list[str]
    after_days: int
    enabled: bool
    default_days: int
    minimum_days: int


class RetentionPolicyUpdate(StrictInput):
    after_days: int | None = Field(None, ge=1, le=36_500)
    enabled: bool | None = None


class RetentionRunRequest(StrictInput):
    dry_run: bool = False


class RetentionRunPublic(PublicOutput):
    id: int
    started_at: datetime
    finished_at: datetime | None
    dry_run: bool
    actor: str
    changed: int
    report: dict[str, Any]
