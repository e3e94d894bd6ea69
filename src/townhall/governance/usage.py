"""Counting who reads which dataset, for the inventory's "who uses it".

An ASGI middleware sees every successful read of a dataset (its page, its rows, aggregates,
SQL over it, downloads) and counts it per day, channel and consumer (the account's label, or
"anonymous"). Counts are buffered in memory and written in one upsert per key at most every
`FLUSH_SECONDS`, so reads never wait on a write lock; a node that dies loses at most that
much counting, never data.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections import Counter
from datetime import date

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session, sessionmaker
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from townhall.actor import Actor
from townhall.catalog.models import Dataset
from townhall.db import unit_of_work, utcnow
from townhall.governance.models import DatasetUsage

log = logging.getLogger(__name__)

FLUSH_SECONDS = 30.0
_SLUG = r"(?P<slug>[a-z0-9][a-z0-9-]{1,99})"
_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(rf"^/api/v1/datasets/{_SLUG}/download\.[a-z]+$"), "download"),
    (re.compile(rf"^/api/v1/datasets/{_SLUG}/(?:rows|aggregate|sql)$"), "api"),
    (re.compile(rf"^/datasets/{_SLUG}$"), "page"),
)
_NOT_DATASETS = frozenset({"new", "late"})

Key = tuple[str, date, str, str]  # slug, day, channel, consumer


def classify_path(method: str, path: str) -> tuple[str, str] | None:
    """(slug, channel) when `path` is a read of one dataset, else None."""
    # Every pattern has "/datasets/" in it: the substring test spares most requests three
    # regular expressions.
    if method not in ("GET", "POST") or "/datasets/" not in path:
        return None
    for pattern, channel in _PATTERNS:
        match = pattern.match(path)
        if match and match["slug"] not in _NOT_DATASETS:
            if channel == "page" and method != "GET":
                return None
            return match["slug"], channel
    return None


class UsageRecorder:
    def __init__(self, session_factory: sessionmaker[Session]) -> None:
        self._factory = session_factory
        self._lock = threading.Lock()
        self._counts: Counter[Key] = Counter()
        self._last_flush = time.monotonic()

    def count(self, slug: str, channel: str, consumer: str) -> None:
        with self._lock:
            self._counts[(slug, utcnow().date(), channel, consumer[:400])] += 1

    def pending(self) -> list[tuple[str, str, str, int]]:
        """Counts not yet written: (slug, channel, consumer, count). Readers add these to
        what the database holds, so a page shows this node's latest reads without writing
        (a write from inside a request would wait on the request's own SQLite lock)."""
        with self._lock:
            return [(slug, ch, who, n) for (slug, _day, ch, who), n in self._counts.items()]

    def due(self) -> bool:
        return bool(self._counts) and time.monotonic() - self._last_flush >= FLUSH_SECONDS

    def flush(self) -> int:
        """Write the buffered counts; returns how many keys were written. Never raises: a
        failed write is logged and its counts are kept for the next flush."""
        with self._lock:
            pending, self._counts = self._counts, Counter()
            self._last_flush = time.monotonic()
        if not pending:
            return 0
        try:
            with unit_of_work(self._factory) as session:
                _upsert(session, pending)
        except Exception:
            log.exception("could not record dataset usage; kept for the next flush")
            with self._lock:
                self._counts.update(pending)
            return 0
        return len(pending)


def _upsert(session: Session, pending: Counter[Key]) -> None:
    slugs = {slug for slug, *_ in pending}
    ids = dict(
        session.execute(select(Dataset.slug, Dataset.id).where(Dataset.slug.in_(slugs))).tuples()
    )
    dialect = session.get_bind().dialect.name
    insert = pg_insert if dialect == "postgresql" else sqlite_insert
    for (slug, day, channel, consumer), count in sorted(pending.items()):
        dataset_id = ids.get(slug)
        if dataset_id is None:
            continue
        statement = insert(DatasetUsage).values(
            dataset_id=dataset_id, day=day, channel=channel, consumer=consumer, count=count
        )
        statement = statement.on_conflict_do_update(
            index_elements=["dataset_id", "day", "channel", "consumer"],
            set_={"count": DatasetUsage.count + statement.excluded.count},
        )
        session.execute(statement)


def count_read(recorder: UsageRecorder, target: tuple[str, str], actor: Actor | None) -> None:
    """Count one answered (200) read of dataset `target` (`classify_path`) by `actor` (None:
    anonymous), flushing in a thread when due (`UsageMiddleware`, and the front of the stack
    for kept data reads, `service_requests.hot_path`)."""
    consumer = actor.label if actor is not None and actor.is_authenticated else "anonymous"
    recorder.count(target[0], target[1], consumer)
    if recorder.due():
        # A thread, so the event loop never waits on the database.
        threading.Thread(target=recorder.flush, daemon=True).start()


class UsageMiddleware:
    def __init__(self, app: ASGIApp, *, recorder: UsageRecorder) -> None:
        self.app = app
        self.recorder = recorder

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        target = classify_path(scope.get("method", ""), scope.get("path", ""))
        if target is None:
            await self.app(scope, receive, send)
            return
        status: list[int] = []

        async def capture(message: Message) -> None:
            if message["type"] == "http.response.start":
                status.append(message["status"])
            await send(message)

        await self.app(scope, receive, capture)
        if status and status[0] == 200:
            count_read(self.recorder, target, scope.get("state", {}).get("actor"))
