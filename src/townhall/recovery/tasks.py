"""Scheduled backups: `recovery.scheduled_backup` writes `<backup_dir>/townhall-<UTC time>.tar`
and keeps the newest `backup_keep` of them.

Meant to run every `backup_interval_hours` (see `SCHEDULE`) on one worker. Retrying is safe:
each run writes a new file under a new name, and a failed run leaves no file behind.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import TYPE_CHECKING

from townhall.actor import system_actor
from townhall.db import utcnow
from townhall.jobs import job
from townhall.recovery.archive import BackupError
from townhall.recovery.backup import create_backup, prune_backups

if TYPE_CHECKING:
    from townhall.config import Settings
    from townhall.runtime import Runtime

log = logging.getLogger(__name__)


def backup_every(settings: Settings) -> timedelta | None:
    """How often the job should run; None when scheduled backups are off (no `backup_dir`)."""
    if settings.backup_dir is None:
        return None
    return timedelta(hours=settings.backup_interval_hours)


@job("recovery.scheduled_backup", retries=1, retry_delay=600)
def scheduled_backup(runtime: Runtime) -> str | None:
    """Write one backup and prune old ones; returns the file's path, or None when scheduled
    backups are off. Raises BackupError without `backup_passphrase`, or when the backup fails."""
    settings = runtime.settings
    if settings.backup_dir is None:
        return None
    if settings.backup_passphrase is None:
        raise BackupError("scheduled backups need TOWNHALL_BACKUP_PASSPHRASE")
    folder = settings.backup_dir.expanduser().resolve()
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"townhall-{utcnow():%Y%m%dT%H%M%S%fZ}.tar"
    result = create_backup(
        runtime,
        target,
        passphrase=settings.backup_passphrase.get_secret_value(),
        actor=system_actor("job:recovery.scheduled_backup"),
    )
    for old in prune_backups(folder, settings.backup_keep):
        log.info("scheduled backup %s deleted (keeping %d)", old.name, settings.backup_keep)
    return str(result.path)


SCHEDULE = {"recovery.scheduled_backup": backup_every}
"""Job name -> function of the settings giving its interval (None: not scheduled)."""
