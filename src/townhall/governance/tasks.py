"""Governance jobs: apply the retention policies.

`governance.apply_retention` is scheduled once a day (see `SCHEDULE`); it is idempotent, so a
retry, or two workers running it, change nothing twice.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import TYPE_CHECKING

from townhall.actor import system_actor
from townhall.db import unit_of_work
from townhall.governance.retention import apply_retention as apply_policies
from townhall.jobs import job

if TYPE_CHECKING:
    from townhall.config import Settings
    from townhall.runtime import Runtime

log = logging.getLogger(__name__)
RETENTION_EVERY = timedelta(days=1)


@job("governance.apply_retention", retries=3, retry_delay=300)
def apply_retention(runtime: Runtime) -> int:
    """Apply every enabled retention policy; returns the id of the run (its report)."""
    with unit_of_work(runtime.session_factory) as session:
        run = apply_policies(session, actor=system_actor("job:governance.apply_retention"))
        run_id, changed = run.id, run.changed
    log.info("retention run %d changed %d rows", run_id, changed)
    return run_id


def retention_every(_settings: Settings) -> timedelta | None:
    return RETENTION_EVERY


SCHEDULE = {"governance.apply_retention": retention_every}
"""Job name -> function of the settings giving its interval (None: not scheduled)."""
