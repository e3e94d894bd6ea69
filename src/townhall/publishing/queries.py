"""Reads for publishing: pipelines, runs and privacy reports. No writes."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from townhall.catalog.models import DatasetVersion
from townhall.publishing.models import PrivacyReport, PublicationPipeline, PublicationRun


def pipelines(session: Session) -> list[PublicationPipeline]:
    return list(session.scalars(select(PublicationPipeline).order_by(PublicationPipeline.source)))


def pipeline_by_source(session: Session, source: str) -> PublicationPipeline | None:
    return session.scalar(select(PublicationPipeline).where(PublicationPipeline.source == source))


def runs(session: Session, pipeline_id: int, limit: int = 20) -> list[PublicationRun]:
    return list(
        session.scalars(
            select(PublicationRun)
            .where(PublicationRun.pipeline_id == pipeline_id)
            .order_by(PublicationRun.started_at.desc(), PublicationRun.id.desc())
            .limit(limit)
        )
    )


def privacy_report(
    session: Session, dataset_id: int, number: int | None = None
) -> PrivacyReport | None:
    """The report of a dataset's numbered version, or of its latest reported version."""
    query = select(PrivacyReport).where(PrivacyReport.dataset_id == dataset_id)
    if number is not None:
        query = query.where(PrivacyReport.version_number == number)
    return session.scalar(query.order_by(PrivacyReport.version_number.desc()).limit(1))


def privacy_report_for_version(session: Session, version: DatasetVersion) -> PrivacyReport | None:
    return session.scalar(
        select(PrivacyReport).where(PrivacyReport.dataset_version_id == version.id)
    )
