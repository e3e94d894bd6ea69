"""Integrity jobs: sign the audit trail's head.

`integrity.checkpoint_audit` is meant to run every `checkpoint_interval_minutes` (the schedule
is wired where jobs are scheduled; see `SCHEDULE`). It is idempotent: with no new audit entry
since the last checkpoint it does nothing, so a retry or a run on two nodes makes one
checkpoint.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import TYPE_CHECKING

from townhall.db import unit_of_work
from townhall.integrity.checkpoints import create_checkpoint
from townhall.jobs import job

if TYPE_CHECKING:
    from townhall.config import Settings
    from townhall.runtime import Runtime

log = logging.getLogger(__name__)


def checkpoint_every(settings: Settings) -> timedelta | None:
    """How often the job should run; None when scheduled checkpoints are off."""
    minutes = settings.checkpoint_interval_minutes
    return timedelta(minutes=minutes) if minutes else None


@job("integrity.checkpoint_audit", retries=2, retry_delay=60)
def checkpoint_audit(runtime: Runtime) -> int | None:
    """Sign the head of the audit trail if it moved; returns the new checkpoint's seq, or None.

    Raises CheckpointRefused when the entries since the last checkpoint do not chain (the job
    then ends in its failure state and the log says to run `townhall verify`).
    """
    with unit_of_work(runtime.session_factory) as session:
        checkpoint = create_checkpoint(session, settings=runtime.settings)
        seq = checkpoint.seq if checkpoint else None
    if seq is not None:
        log.info("audit checkpoint signed at seq %d", seq)
    return seq


SCHEDULE = {"integrity.checkpoint_audit": checkpoint_every}
"""Job name -> function of the settings giving its interval (None: not scheduled)."""
