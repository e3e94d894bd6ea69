"""Writes for the privacy-safe publication pipelines: create and configure them (audited).
None commits."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from townhall.accounts import queries as account_queries
from townhall.accounts.models import User
from townhall.actor import Actor
from townhall.audit.actions import record
from townhall.db import utcnow
from townhall.errors import ConflictError, NotFoundError, TownhallError
from townhall.publishing.models import (
    LOCATION_MODES,
    SOURCES,
    TIME_GRANULARITIES,
    PublicationPipeline,
)

CONFIGURABLE = (
    "enabled", "k", "max_suppression", "location_mode", "h3_resolution", "time_granularity",
    "timezone", "epsilon", "dp_areas", "window_days", "interval_hours",
)  # fmt: skip
DEFAULT_SLUGS = {
    "service_requests": ("service-requests", "service-requests-weekly"),
    "office_visits": ("office-visits", "office-visits-weekly"),
}


def _invalid(field: str, message: str) -> TownhallError:
    return TownhallError(
        422,
        "invalid_request",
        f"{field}: {message}",
        errors=[{"loc": ["body", field], "message": message, "type": "value_error"}],
    )


def _check(values: dict[str, Any]) -> None:
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    if "k" in values and not 2 <= values["k"] <= 1000:
        raise _invalid("k", "must be between 2 and 1000")
    if "max_suppression" in values and not 0 <= values["max_suppression"] <= 0.5:
        raise _invalid("max_suppression", "must be between 0 and 0.5")
    if "location_mode" in values and values["location_mode"] not in LOCATION_MODES:
        raise _invalid("location_mode", f"one of {', '.join(LOCATION_MODES)}")
    if "h3_resolution" in values and not 5 <= values["h3_resolution"] <= 10:
        raise _invalid("h3_resolution", "must be between 5 and 10")
    if "time_granularity" in values and values["time_granularity"] not in TIME_GRANULARITIES:
        raise _invalid("time_granularity", f"one of {', '.join(TIME_GRANULARITIES)}")
    if "epsilon" in values and not 0.01 <= values["epsilon"] <= 10:
        raise _invalid("epsilon", "must be between 0.01 and 10")
    if "window_days" in values and not 7 <= values["window_days"] <= 3650:
        raise _invalid("window_days", "must be between 7 and 3650")
    if "interval_hours" in values and not 1 <= values["interval_hours"] <= 24 * 31:
        raise _invalid("interval_hours", "must be between 1 and 744")
    if "timezone" in values:
        try:
            ZoneInfo(values["timezone"])
        except (ZoneInfoNotFoundError, ValueError):
            raise _invalid("timezone", "not an IANA time zone such as Europe/Paris") from None


def default_areas(session: Session, source: str) -> list[str]:
    """The public list the DP counts cover, fixed when the pipeline is made: the district
    codes the request records use, or every office in the directory."""
    if source == "service_requests":
        from townhall.service_requests import queries as request_queries

        return request_queries.district_codes(session)
    return []


def create_pipeline(
    session: Session,
    *,
    actor: Actor,
    source: str,
    organization_slug: str,
    steward_email: str | None = None,
    records_slug: str | None = None,
    counts_slug: str | None = None,
    **settings: Any,
) -> PublicationPipeline:
    """Set up the pipeline for `source`; its datasets are made on its first run. Raises
    ConflictError when the source already has one."""
    actor.require("governance:manage")
    if source not in SOURCES:
        raise _invalid("source", f"one of {', '.join(SOURCES)}")
    if session.scalar(select(PublicationPipeline).where(PublicationPipeline.source == source)):
        raise ConflictError(f"A pipeline for {source} already exists.")
    organization = account_queries.organization_by_slug(session, organization_slug)
    if organization is None:
        raise NotFoundError("organization", organization_slug)
    unknown = set(settings) - set(CONFIGURABLE)
    if unknown:
        raise AssertionError(f"unknown pipeline settings {unknown}")
    _check(settings)
    steward_id = actor.user_id
    if steward_email:
        steward = session.scalar(select(User).where(User.email == steward_email.lower()))
        if steward is None:
            raise _invalid("steward_email", f"no account {steward_email!r}")
        steward_id = steward.id
    default_records, default_counts = DEFAULT_SLUGS[source]
    pipeline = PublicationPipeline(
        source=source,
        organization_id=organization.id,
        steward_id=steward_id,
        records_slug=records_slug or default_records,
        counts_slug=counts_slug or default_counts,
        enabled=True,
        k=5,
        max_suppression=0.05,
        location_mode="h3",
        h3_resolution=8,
        time_granularity="hour",
        timezone="UTC",
        epsilon=1.0,
        dp_areas=default_areas(session, source),
        window_days=365,
        interval_hours=24,
    )
    for name, value in settings.items():
        if value is not None:
            setattr(pipeline, name, value)
    session.add(pipeline)
    session.flush()
    record(
        session,
        actor=actor,
        action="publishing.pipeline.create",
        object_type="publishing_pipeline",
        object_id=pipeline.id,
        changes={
            "source": source,
            "organization": organization_slug,
            **{name: getattr(pipeline, name) for name in CONFIGURABLE},
        },
    )
    return pipeline


def update_pipeline(
    session: Session, *, actor: Actor, source: str, **settings: Any
) -> PublicationPipeline:
    actor.require("governance:manage")
    pipeline = session.scalar(
        select(PublicationPipeline).where(PublicationPipeline.source == source)
    )
    if pipeline is None:
        raise NotFoundError("pipeline", source)
    values = {k: v for k, v in settings.items() if v is not None}
    unknown = set(values) - set(CONFIGURABLE)
    if unknown:
        raise AssertionError(f"unknown pipeline settings {unknown}")
    _check(values)
    changes = {
        name: [getattr(pipeline, name), value]
        for name, value in values.items()
        if getattr(pipeline, name) != value
    }
    if not changes:
        return pipeline
    for name, value in values.items():
        setattr(pipeline, name, value)
    pipeline.updated_at = utcnow()
    record(
        session,
        actor=actor,
        action="publishing.pipeline.update",
        object_type="publishing_pipeline",
        object_id=pipeline.id,
        changes=changes,
    )
    return pipeline
