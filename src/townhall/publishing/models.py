"""Privacy-safe publication of operational data: pipelines, their runs, the privacy report of
every version they publish, and the differentially private counts already released.

A pipeline turns one kind of operational record ("service_requests", "office_visits") into
two open datasets: the anonymised records (k-anonymous, free text scrubbed) and weekly counts
by area and category with differential privacy. Its settings (k, epsilon, how location and
time are generalised) are rows here, changed through the API and audited, so each version's
privacy report can say exactly what was applied.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Date,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from townhall.db import Base, UTCDateTime, utcnow

SOURCES = ("service_requests", "office_visits")
LOCATION_MODES = ("h3", "district")
TIME_GRANULARITIES = ("hour", "day")
RUN_STATUSES = ("running", "succeeded", "failed", "skipped")


class PublicationPipeline(Base):
    __tablename__ = "publishing_pipelines"

    id: Mapped[int] = mapped_column(primary_key=True)
    source: Mapped[str] = mapped_column(String(40), unique=True)
    organization_id: Mapped[int] = mapped_column(ForeignKey("organizations.id"))
    # Who answers for the datasets it makes (their steward); required before publication.
    steward_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    records_slug: Mapped[str] = mapped_column(String(100))
    counts_slug: Mapped[str] = mapped_column(String(100))
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    k: Mapped[int] = mapped_column(Integer, default=5)
    # Largest share of rows that may be suppressed before generalising further.
    max_suppression: Mapped[float] = mapped_column(Float, default=0.05)
    location_mode: Mapped[str] = mapped_column(String(20), default="h3")
    h3_resolution: Mapped[int] = mapped_column(Integer, default=8)
    time_granularity: Mapped[str] = mapped_column(String(10), default="hour")
    timezone: Mapped[str] = mapped_column(String(60), default="UTC")
    epsilon: Mapped[float] = mapped_column(Float, default=1.0)
    # The public list of areas the DP counts cover (district codes, office slugs): fixed in
    # advance, never read off the data, so which areas appear leaks nothing.
    dp_areas: Mapped[list[str]] = mapped_column(JSON, default=list)
    window_days: Mapped[int] = mapped_column(Integer, default=365)
    interval_hours: Mapped[int] = mapped_column(Integer, default=24)
    last_run_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_success_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class PublicationRun(Base):
    __tablename__ = "publishing_runs"
    __table_args__ = (Index("ix_publishing_runs_pipeline_started", "pipeline_id", "started_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    pipeline_id: Mapped[int] = mapped_column(
        ForeignKey("publishing_pipelines.id", ondelete="CASCADE")
    )
    started_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    status: Mapped[str] = mapped_column(String(20), default="running")
    trigger: Mapped[str] = mapped_column(String(20), default="schedule")
    actor: Mapped[str] = mapped_column(String(400), default="")
    rows_in: Mapped[int] = mapped_column(BigInteger, default=0)
    rows_out: Mapped[int] = mapped_column(BigInteger, default=0)
    error: Mapped[str | None] = mapped_column(Text)
    report: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class PrivacyReport(Base):
    """What was done to protect people in one published dataset version."""

    __tablename__ = "publishing_privacy_reports"

    id: Mapped[int] = mapped_column(primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("publishing_runs.id", ondelete="CASCADE"))
    dataset_id: Mapped[int] = mapped_column(
        ForeignKey("datasets.id", ondelete="CASCADE"), index=True
    )
    resource_id: Mapped[int] = mapped_column(Integer)
    dataset_version_id: Mapped[int] = mapped_column(Integer, unique=True)
    version_number: Mapped[int] = mapped_column(Integer)
    report: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class DpCount(Base):
    """One noisy count already released. Kept so a week is noised once, ever: re-drawing the
    noise on every run would let anyone average it away."""

    __tablename__ = "publishing_dp_counts"
    __table_args__ = (UniqueConstraint("pipeline_id", "week_start", "area", "category"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    pipeline_id: Mapped[int] = mapped_column(
        ForeignKey("publishing_pipelines.id", ondelete="CASCADE")
    )
    week_start: Mapped[date] = mapped_column(Date)
    area: Mapped[str] = mapped_column(String(100))
    category: Mapped[str] = mapped_column(String(100))
    count: Mapped[int] = mapped_column(BigInteger)
    epsilon: Mapped[float] = mapped_column(Float)
    released_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
