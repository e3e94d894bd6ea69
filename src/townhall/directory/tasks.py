"""Directory jobs: watch every office's live status for its followers.

`directory.watch_offices` runs every minute: it compares each office's live status (the
schedule, a closure's expected end, the estimated waits) with what its followers were last
told and announces meaningful changes (`actions.watch_office_status`). Changes staff make
are announced at once by the action itself; this catches what time alone changes.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import TYPE_CHECKING

from townhall.db import unit_of_work, utcnow
from townhall.directory import actions, queries
from townhall.jobs import job

if TYPE_CHECKING:
    from townhall.runtime import Runtime

log = logging.getLogger(__name__)


@job("directory.watch_offices", retries=0)
def watch_offices(runtime: Runtime) -> dict[str, str]:
    """Check every physical office once; returns {office slug: change announced}. Each office
    is its own transaction, so one broken office does not hold back the others' news."""
    followers = actions.StatusFollowers.from_settings(runtime.settings, runtime.jobs)
    with unit_of_work(runtime.read_session_factory) as session:
        slugs = [location.slug for location in queries.list_locations(session, physical_only=True)]
    announced: dict[str, str] = {}
    now = utcnow()
    for slug in slugs:
        try:
            with unit_of_work(runtime.session_factory) as session:
                location = queries.location_by_slug(session, slug)
                if location is None:
                    continue
                kind = actions.watch_office_status(
                    session, location=location, followers=followers, now=now
                )
        except Exception:
            log.exception("office status watch failed for %s", slug)
            continue
        if kind is not None:
            announced[slug] = kind
    return announced


def _every_minute(_settings: object) -> timedelta:
    """Huey's scheduler looks once a minute: a closure's end or a long queue is told within
    about a minute."""
    return timedelta(minutes=1)


SCHEDULE = {"directory.watch_offices": _every_minute}
"""Job name -> function of the settings giving its interval (None: not scheduled)."""
