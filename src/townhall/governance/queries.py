"""Reads for governance: review rules, dataset governance records, classifications, usage,
retention runs and the data inventory. No commits, no writes (except none)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from townhall.accounts.models import User
from townhall.catalog import queries as catalog_queries
from townhall.catalog.models import Dataset
from townhall.db import utcnow
from townhall.governance.classification import OPEN_DATA_BLOCKERS, effective_columns, most_protected
from townhall.governance.models import (
    ColumnClassification,
    DatasetGovernance,
    DatasetUsage,
    OrganizationPolicy,
    RetentionRun,
)

USAGE_WINDOW_DAYS = 30


def requires_review(session: Session, organization_id: int) -> bool:
    policy = session.scalar(
        select(OrganizationPolicy).where(OrganizationPolicy.organization_id == organization_id)
    )
    return bool(policy and policy.requires_review)


def governance_of(session: Session, dataset_id: int) -> DatasetGovernance | None:
    return session.scalar(
        select(DatasetGovernance).where(DatasetGovernance.dataset_id == dataset_id)
    )


def declared_columns(session: Session, dataset_id: int) -> dict[str, str]:
    rows = session.scalars(
        select(ColumnClassification).where(ColumnClassification.dataset_id == dataset_id)
    )
    return {row.column_name: row.classification for row in rows}


def review_required(session: Session, dataset: Dataset) -> tuple[bool, str | None]:
    """Whether moving `dataset` to published must go through review, and why."""
    gov = governance_of(session, dataset.id)
    if gov is not None and gov.origin == "operational" and gov.first_published_at is None:
        return True, "datasets made from operational data are reviewed before their first release"
    if requires_review(session, dataset.organization_id):
        return True, f"organization {dataset.organization.slug} requires review"
    return False, None


@dataclass
class Classification:
    dataset_level: str
    effective: str
    columns: dict[str, tuple[str, str]]  # name -> (classification, declared|detected|default)

    @property
    def blocking_columns(self) -> list[str]:
        """Declared personal or sensitive columns: these keep a dataset from open data."""
        return sorted(
            name
            for name, (level, source) in self.columns.items()
            if level in OPEN_DATA_BLOCKERS and source == "declared"
        )

    @property
    def unconfirmed_columns(self) -> list[str]:
        """Columns whose names look personal and that nobody has classified yet."""
        return sorted(
            name for name, (level, source) in self.columns.items() if source == "detected"
        )


def classification_of(session: Session, dataset: Dataset) -> Classification:
    gov = governance_of(session, dataset.id)
    level = gov.classification if gov else "public"
    names = list(dict.fromkeys(catalog_queries.column_names(session, dataset)))
    declared = declared_columns(session, dataset.id)
    # Declared columns count even when no published version carries them (yet).
    names.extend(name for name in declared if name not in names)
    columns = effective_columns(names, declared)
    effective = most_protected([level, *(c for c, _ in columns.values())])
    return Classification(level, effective, columns)


def readable_columns(session: Session, dataset: Dataset) -> set[str]:
    """The columns of every version of `dataset` a reader may still ask for: the published
    ones and the superseded ones (`?version=N`), not versions withdrawn one by one."""
    return {
        column["name"]
        for version in catalog_queries.versions(session, dataset.id)
        if version.status != "withdrawn"
        for column in version.columns or ()
    }


def retention_runs(session: Session, limit: int = 50) -> list[RetentionRun]:
    return list(
        session.scalars(select(RetentionRun).order_by(RetentionRun.started_at.desc()).limit(limit))
    )


@dataclass
class Usage:
    total: int = 0
    by_channel: dict[str, int] = field(default_factory=dict)
    consumers: int = 0
    anonymous: int = 0
    top_consumers: list[tuple[str, int]] = field(default_factory=list)


def usage_by_dataset(
    session: Session,
    *,
    days: int = USAGE_WINDOW_DAYS,
    now: datetime | None = None,
    pending: Iterable[tuple[int, str, str, int]] = (),
) -> dict[int, Usage]:
    """Reads per dataset over the last `days`, plus `pending` (dataset id, channel, consumer,
    count) not yet written by this node's recorder."""
    since = ((now or utcnow()) - timedelta(days=days)).date()
    rows = session.execute(
        select(
            DatasetUsage.dataset_id,
            DatasetUsage.channel,
            DatasetUsage.consumer,
            func.sum(DatasetUsage.count),
        )
        .where(DatasetUsage.day >= since)
        .group_by(DatasetUsage.dataset_id, DatasetUsage.channel, DatasetUsage.consumer)
    )
    per_consumer: dict[int, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    result: dict[int, Usage] = defaultdict(Usage)
    for dataset_id, channel, consumer, count in [*rows, *pending]:
        usage = result[dataset_id]
        usage.total += int(count)
        usage.by_channel[channel] = usage.by_channel.get(channel, 0) + int(count)
        per_consumer[dataset_id][consumer] += int(count)
    for dataset_id, consumers in per_consumer.items():
        usage = result[dataset_id]
        usage.anonymous = consumers.get("anonymous", 0)
        named = {k: v for k, v in consumers.items() if k != "anonymous"}
        usage.consumers = len(named)
        usage.top_consumers = sorted(named.items(), key=lambda kv: (-kv[1], kv[0]))[:5]
    return dict(result)


@dataclass
class InventoryRow:
    dataset: Dataset
    classification: Classification
    governance: DatasetGovernance | None
    steward: User | None
    requires_review: bool
    late: bool
    usage: Usage

    def as_dict(self) -> dict[str, Any]:
        d = self.dataset
        gov = self.governance
        return {
            "slug": d.slug,
            "title": d.title,
            "organization": d.organization.slug,
            "state": d.state,
            "visibility": d.visibility,
            "classification": self.classification.effective,
            "dataset_classification": self.classification.dataset_level,
            "personal_columns": self.classification.blocking_columns,
            "unconfirmed_columns": self.classification.unconfirmed_columns,
            "origin": gov.origin if gov else "upload",
            "source": gov.source if gov else None,
            "steward": self.steward.email if self.steward else None,
            "steward_name": self.steward.display_name if self.steward else None,
            "license_id": d.license_id,
            "frequency": d.frequency,
            "last_published_at": d.last_published_at,
            "next_update_due": d.next_update_due,
            "late": self.late,
            "requires_review": self.requires_review,
            "reviewed_by": gov.reviewed_by if gov and gov.reviewed_by else None,
            "reviewed_at": gov.reviewed_at if gov else None,
            "usage_30d": self.usage.total,
            "usage_by_channel": self.usage.by_channel,
            "consumers_30d": self.usage.consumers,
            "anonymous_30d": self.usage.anonymous,
            "top_consumers": [{"consumer": c, "count": n} for c, n in self.usage.top_consumers],
        }


def inventory(
    session: Session, *, pending_usage: Iterable[tuple[str, str, str, int]] = ()
) -> list[InventoryRow]:
    """Every dataset but deleted ones, with what a data steward needs to see about it.
    `pending_usage` are (slug, channel, consumer, count) reads not yet written."""
    datasets = list(
        session.scalars(select(Dataset).where(Dataset.state != "deleted").order_by(Dataset.slug))
    )
    ids = {d.slug: d.id for d in datasets}
    usage = usage_by_dataset(
        session,
        pending=[(ids[s], ch, who, n) for s, ch, who, n in pending_usage if s in ids],
    )
    stewards = {
        user.id: user
        for user in session.scalars(
            select(User).where(User.id.in_({d.steward_id for d in datasets if d.steward_id}))
        )
    }
    reviewing = {
        policy.organization_id
        for policy in session.scalars(
            select(OrganizationPolicy).where(OrganizationPolicy.requires_review.is_(True))
        )
    }
    now = utcnow()
    rows = []
    for dataset in datasets:
        rows.append(
            InventoryRow(
                dataset=dataset,
                classification=classification_of(session, dataset),
                governance=governance_of(session, dataset.id),
                steward=stewards.get(dataset.steward_id) if dataset.steward_id else None,
                requires_review=dataset.organization_id in reviewing,
                late=catalog_queries.is_late(dataset, now),
                usage=usage.get(dataset.id, Usage()),
            )
        )
    return rows


def review_queue(session: Session) -> list[Dataset]:
    return list(
        session.scalars(
            select(Dataset).where(Dataset.state == "in_review").order_by(Dataset.updated_at)
        )
    )
