"""More concurrent writes than worker threads, through a real server: every one finishes.

Before admission control, a write request's unit of work took SQLite's write lock (or a pooled
PostgreSQL connection) while resolving the caller, then waited for a second worker thread to run
the route; with more requests than threads, the threads all sat on the lock and nothing moved
until the 30 s timeouts. `deps._db_turn` now queues requests on the event loop first.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import httpx
from sqlalchemy import func, select

from townhall.accounts.models import Organization
from townhall.db import unit_of_work
from townhall.deps import _capacity

from .conftest import auth, serve_in_thread

CONCURRENT = 64  # above the 40 worker threads Starlette's thread pool has


def test_sqlite_writers_are_admitted_one_at_a_time_and_readers_by_pool_size(runtime):
    if runtime.engine.dialect.name == "sqlite":
        assert _capacity(runtime.engine, writes=True) == 1
        assert _capacity(runtime.read_engine, writes=False) >= 5
    else:
        assert _capacity(runtime.engine, writes=True) == _capacity(runtime.engine, writes=False)
        assert _capacity(runtime.engine, writes=True) >= 10


def test_more_concurrent_writes_than_threads_all_finish(app, runtime, admin):
    def create(n: int) -> int:
        with httpx.Client(base_url=base, timeout=25.0) as client:
            answer = client.post(
                "/api/v1/organizations",
                json={"slug": f"office-{n}", "name": f"Office {n}"},
                headers=auth(admin),
            )
            return answer.status_code

    with serve_in_thread(app) as base, ThreadPoolExecutor(max_workers=CONCURRENT) as pool:
        statuses = list(pool.map(create, range(CONCURRENT)))
    # A starved request would have waited out the client's 25 s before SQLite's 30 s lock
    # timeout, and raised here.
    assert statuses == [201] * CONCURRENT
    with unit_of_work(runtime.session_factory) as session:
        stored = session.scalar(
            select(func.count()).select_from(Organization).where(Organization.slug.like("office-%"))
        )
    assert stored == CONCURRENT
