"""Publishing jobs.

`publishing.run_due_pipelines` is scheduled every 15 minutes (see `SCHEDULE`) and queues
`publishing.run_pipeline` for each enabled pipeline whose interval has passed. A run claims
its pipeline in the database first, so a retry, a second worker or a manual run at the same
moment publishes once.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import TYPE_CHECKING

from townhall.actor import system_actor
from townhall.db import unit_of_work, utcnow
from townhall.jobs import job
from townhall.publishing import queries
from townhall.publishing.pipeline import run_pipeline as run_one

if TYPE_CHECKING:
    from townhall.config import Settings
    from townhall.runtime import Runtime

log = logging.getLogger(__name__)
CHECK_EVERY = timedelta(minutes=15)


@job("publishing.run_pipeline", retries=2, retry_delay=600)
def run_pipeline(runtime: Runtime, pipeline_id: int, force: int = 0) -> int | None:
    """Run one pipeline if it is due (or at once with `force` 1); returns the run id, or
    None when it was not due or another run holds it."""
    run = run_one(
        runtime,
        pipeline_id,
        actor=system_actor("job:publishing.run_pipeline"),
        trigger="manual" if force else "schedule",
        force=bool(force),
    )
    return run.id if run is not None else None


@job("publishing.run_due_pipelines", retries=1, retry_delay=60)
def run_due_pipelines(runtime: Runtime) -> list[int]:
    """Queue every enabled pipeline whose interval has passed; returns their ids."""
    now = utcnow()
    with unit_of_work(runtime.session_factory) as session:
        due = [
            p.id
            for p in queries.pipelines(session)
            if p.enabled
            and (p.last_run_at is None or p.last_run_at + timedelta(hours=p.interval_hours) <= now)
        ]
    for pipeline_id in due:
        runtime.jobs.enqueue("publishing.run_pipeline", pipeline_id)
    return due


@job("publishing.publish_demo_datasets", retries=1, retry_delay=60)
def publish_demo_datasets(runtime: Runtime) -> list[str]:
    """The demo city's operational open data, queued by the demo seed once it has committed
    (`townhall serve --demo` serves at once; the datasets follow about a minute later).
    Progress is logged step by step; a final failure is kept as the job's failure record
    (`JobQueue.failures()`). Safe to run again: it makes new versions, nothing else."""
    from townhall.demo.seed import DEMO_ADMIN_EMAIL
    from townhall.publishing.demo import publish_operational_datasets

    def on_step(description: str, done: int, total: int) -> None:
        log.info("demo open data %d/%d: %s", done, total, description)

    slugs = publish_operational_datasets(runtime, steward_email=DEMO_ADMIN_EMAIL, on_step=on_step)
    log.info("demo open data published: %s", ", ".join(slugs))
    return slugs


def check_every(_settings: Settings) -> timedelta | None:
    return CHECK_EVERY


SCHEDULE = {"publishing.run_due_pipelines": check_every}
"""Job name -> function of the settings giving its interval (None: not scheduled)."""
