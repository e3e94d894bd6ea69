"""Governance records: review rules per organization, the governance state of each dataset,
column classifications, retention policies and runs, and dataset usage counts.

Kept beside the catalog's tables rather than in them: the catalog stays a catalog, and the
rules of who may publish what live in one slice that a data protection officer can read.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Date,
    ForeignKey,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from townhall.db import Base, UTCDateTime, utcnow

# From least to most protected; the order matters (see classification.py).
CLASSIFICATIONS = ("public", "internal", "personal", "sensitive")
ORIGINS = ("upload", "operational")


class OrganizationPolicy(Base):
    """An organization's publication rules. No row: publishers publish directly."""

    __tablename__ = "governance_org_policies"

    id: Mapped[int] = mapped_column(primary_key=True)
    organization_id: Mapped[int] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE"), unique=True
    )
    requires_review: Mapped[bool] = mapped_column(Boolean, default=False)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_by: Mapped[str] = mapped_column(String(400), default="")


class DatasetGovernance(Base):
    """A dataset's classification, origin and review trail. Made on first need (a dataset
    created before governance existed simply has none yet: public, uploaded, never reviewed)."""

    __tablename__ = "governance_datasets"

    id: Mapped[int] = mapped_column(primary_key=True)
    dataset_id: Mapped[int] = mapped_column(
        ForeignKey("datasets.id", ondelete="CASCADE"), unique=True
    )
    classification: Mapped[str] = mapped_column(String(20), default="public")
    origin: Mapped[str] = mapped_column(String(20), default="upload")
    # What operational records it is made from ("service_requests", "office_visits").
    source: Mapped[str | None] = mapped_column(String(100))
    submitted_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    submitted_by: Mapped[str] = mapped_column(String(400), default="")
    submitted_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    reviewed_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    reviewed_by: Mapped[str] = mapped_column(String(400), default="")
    reviewed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    review_note: Mapped[str] = mapped_column(Text, default="")
    # When the dataset's record was first made public: "review the first time" keys on it.
    first_published_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class ColumnClassification(Base):
    """A classification declared for one column name of a dataset (all its resources)."""

    __tablename__ = "governance_columns"
    __table_args__ = (UniqueConstraint("dataset_id", "column_name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    dataset_id: Mapped[int] = mapped_column(
        ForeignKey("datasets.id", ondelete="CASCADE"), index=True
    )
    column_name: Mapped[str] = mapped_column(String(300))
    classification: Mapped[str] = mapped_column(String(20))
    note: Mapped[str] = mapped_column(Text, default="")
    set_by: Mapped[str] = mapped_column(String(400), default="")
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class RetentionPolicy(Base):
    """An override of one built-in retention rule (see retention.RULES)."""

    __tablename__ = "governance_retention_policies"

    id: Mapped[int] = mapped_column(primary_key=True)
    record_type: Mapped[str] = mapped_column(String(60), unique=True)
    after_days: Mapped[int] = mapped_column(Integer)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_by: Mapped[str] = mapped_column(String(400), default="")


class RetentionRun(Base):
    """One application of the retention policies and what it changed (or would have)."""

    __tablename__ = "governance_retention_runs"

    id: Mapped[int] = mapped_column(primary_key=True)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, index=True)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    dry_run: Mapped[bool] = mapped_column(Boolean, default=False)
    actor: Mapped[str] = mapped_column(String(400), default="")
    changed: Mapped[int] = mapped_column(BigInteger, default=0)
    report: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class DatasetUsage(Base):
    """How often a dataset was read, per day, channel and consumer (an account, or
    "anonymous"): the inventory's "who uses it"."""

    __tablename__ = "governance_dataset_usage"
    __table_args__ = (UniqueConstraint("dataset_id", "day", "channel", "consumer"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    dataset_id: Mapped[int] = mapped_column(
        ForeignKey("datasets.id", ondelete="CASCADE"), index=True
    )
    day: Mapped[date] = mapped_column(Date, index=True)
    channel: Mapped[str] = mapped_column(String(20))  # api | download | page
    consumer: Mapped[str] = mapped_column(String(400))
    count: Mapped[int] = mapped_column(BigInteger, default=0)
