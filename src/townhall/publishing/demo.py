"""The demo city publishes its operational data: service requests and office visits, through
the same privacy-safe pipelines a real office runs, reviewed and published, each version with
its privacy report.

Called by the demo seed after the requests are loaded. The demo's history is two years, so
the pipelines look back 730 days; its time zone is the city's.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from townhall.actor import system_actor
from townhall.db import unit_of_work
from townhall.governance import actions as governance_actions
from townhall.publishing import actions, queries
from townhall.publishing.pipeline import run_pipeline

if TYPE_CHECKING:
    from townhall.runtime import Runtime

DEMO_SOURCES = ("service_requests", "office_visits")


def publish_operational_datasets(
    runtime: Runtime,
    *,
    organization_slug: str = "city-hall",
    steward_email: str | None = None,
    timezone: str = "America/New_York",
) -> list[str]:
    """Set up both pipelines (once), run them, approve and publish their datasets; returns
    the slugs published. Idempotent: a second call makes new versions, nothing else."""
    actor = system_actor("demo-seed")
    ids = []
    with unit_of_work(runtime.session_factory) as session:
        for source in DEMO_SOURCES:
            pipeline = queries.pipeline_by_source(session, source)
            if pipeline is None:
                pipeline = actions.create_pipeline(
                    session,
                    actor=actor,
                    source=source,
                    organization_slug=organization_slug,
                    steward_email=steward_email,
                    window_days=730,
                    timezone=timezone,
                )
            ids.append((pipeline.id, pipeline.records_slug, pipeline.counts_slug))
    published = []
    for pipeline_id, records_slug, counts_slug in ids:
        run_pipeline(runtime, pipeline_id, actor=actor, trigger="manual", force=True)
        for slug in (records_slug, counts_slug):
            with unit_of_work(runtime.session_factory) as session:
                from townhall.catalog import queries as catalog_queries

                dataset = catalog_queries.dataset_by_slug(session, slug)
                if dataset is not None and dataset.state == "in_review":
                    governance_actions.approve(
                        session,
                        actor=actor,
                        slug=slug,
                        note="demo city: reviewed with its privacy report",
                        publish=True,
                    )
            published.append(slug)
    return published
