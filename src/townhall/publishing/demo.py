"""The demo city publishes its operational data: service requests and office visits, through
the same privacy-safe pipelines a real office runs, reviewed and published, each version with
its privacy report.

Queued by the demo seed as the job `publishing.publish_demo_datasets` once the seed has
committed (or run inline by `townhall demo seed --publish-now`). The demo's history is two years, so
the pipelines look back 730 days; its time zone is the city's.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from townhall.actor import system_actor
from townhall.db import unit_of_work
from townhall.governance import actions as governance_actions
from townhall.publishing import actions, queries
from townhall.publishing.pipeline import run_pipeline

if TYPE_CHECKING:
    from townhall.runtime import Runtime

DEMO_SOURCES = ("service_requests", "office_visits")
StepCallback = Callable[[str, int, int], None]
"""`(description, steps done, steps in all)`."""


def publish_operational_datasets(
    runtime: Runtime,
    *,
    organization_slug: str = "city-hall",
    steward_email: str | None = None,
    timezone: str = "America/New_York",
    on_step: StepCallback | None = None,
) -> list[str]:
    """Set up both pipelines (once), run them, approve and publish their datasets; returns
    the slugs published. Idempotent: a second call makes new versions, nothing else.

    `on_step(description, done, total)` is called as each pipeline starts and ends (a Rich
    progress bar in the CLI, a log line in the job)."""
    actor = system_actor("demo-seed")
    total = len(DEMO_SOURCES) * 2
    done = 0

    def step(description: str) -> None:
        if on_step is not None:
            on_step(description, done, total)

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
    for source, (pipeline_id, records_slug, counts_slug) in zip(DEMO_SOURCES, ids, strict=True):
        step(f"running the {source} pipeline")
        run_pipeline(runtime, pipeline_id, actor=actor, trigger="manual", force=True)
        done += 1
        step(f"reviewing and publishing {records_slug}, {counts_slug}")
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
        done += 1
    step("done")
    return published
