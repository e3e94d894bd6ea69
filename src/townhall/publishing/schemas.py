"""API shapes for privacy-safe publishing."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import Field

from townhall.schemas import PublicOutput, StrictInput


class PipelineSettings(StrictInput):
    enabled: bool | None = None
    k: int | None = Field(None, ge=2, le=1000, description="Smallest group size (k-anonymity).")
    max_suppression: float | None = Field(
        None, ge=0, le=0.5, description="Largest share of rows left out before generalising more."
    )
    location_mode: Literal["h3", "district"] | None = None
    h3_resolution: int | None = Field(None, ge=5, le=10)
    time_granularity: Literal["hour", "day"] | None = None
    timezone: str | None = Field(None, max_length=60)
    epsilon: float | None = Field(None, ge=0.01, le=10, description="Privacy budget per week.")
    dp_areas: list[str] | None = Field(None, max_length=5000)
    window_days: int | None = Field(None, ge=7, le=3650)
    interval_hours: int | None = Field(None, ge=1, le=744)


class PipelineCreate(PipelineSettings):
    source: Literal["service_requests", "office_visits"]
    organization: str = Field(min_length=1, max_length=100)
    steward_email: str | None = Field(None, max_length=320)
    records_slug: str | None = Field(None, pattern=r"^[a-z0-9][a-z0-9-]{1,99}$")
    counts_slug: str | None = Field(None, pattern=r"^[a-z0-9][a-z0-9-]{1,99}$")


class PipelinePublic(PublicOutput):
    id: int
    source: str
    records_slug: str
    counts_slug: str
    enabled: bool
    k: int
    max_suppression: float
    location_mode: str
    h3_resolution: int
    time_granularity: str
    timezone: str
    epsilon: float
    dp_areas: list[str]
    window_days: int
    interval_hours: int
    last_run_at: datetime | None
    last_success_at: datetime | None


class RunPublic(PublicOutput):
    id: int
    started_at: datetime
    finished_at: datetime | None
    status: str
    trigger: str
    actor: str
    rows_in: int
    rows_out: int
    error: str | None
    report: dict[str, Any]


class PrivacyReportPublic(PublicOutput):
    dataset: str
    version: int
    created_at: datetime
    report: dict[str, Any]
