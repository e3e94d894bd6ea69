"""Everything a process builds once from its settings: engine, sessions, lake, jobs, events.

The web app, the worker and the CLI each build one `Runtime`; nothing else is global (the
password hashing cost it sets is per process, the same for every runtime of one process).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from functools import cached_property
from typing import TYPE_CHECKING

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from townhall.accounts.security import configure_password_hashing
from townhall.config import Settings
from townhall.db import make_engine, make_session_factory

if TYPE_CHECKING:
    from townhall.cache import Invalidations
    from townhall.datastore.lake import Lake
    from townhall.events import EventBus
    from townhall.jobs import JobQueue


class Runtime:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        configure_password_hashing(
            memory_kib=settings.password_hash_memory_kib,
            time_cost=settings.password_hash_time_cost,
        )
        # The data folder holds the lake, the job queue, keys and temp files on every backend.
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        self._loop_closers: list[Callable[[], Awaitable[None]]] = []

    @cached_property
    def engine(self) -> Engine:
        return make_engine(self.settings)

    @cached_property
    def session_factory(self) -> sessionmaker[Session]:
        factory = make_session_factory(self.engine)
        self.invalidations.install(factory)
        return factory

    @cached_property
    def read_engine(self) -> Engine:
        if self.engine.dialect.name != "sqlite":
            return self.engine
        return make_engine(self.settings, for_reads=True)

    @cached_property
    def read_session_factory(self) -> sessionmaker[Session]:
        """Sessions for safe requests; on SQLite they do not take the write lock."""
        if self.read_engine is self.engine:
            return self.session_factory
        factory = make_session_factory(self.read_engine)
        self.invalidations.install(factory)  # its small deferred writes are writes too
        return factory

    @cached_property
    def jobs(self) -> JobQueue:
        # Imported here so CLI commands that never queue do not load Huey.
        from townhall.jobs import JobQueue

        return JobQueue(self)

    @cached_property
    def events(self) -> EventBus:
        from townhall.events import EventBus

        return EventBus(self.settings)

    @cached_property
    def invalidations(self) -> Invalidations:
        """What drops this process's cached answers when rows change (`townhall.cache`)."""
        from townhall.cache import Invalidations
        from townhall.catalog.queries import watch_published_tables
        from townhall.service_requests.queries import watch_status_changes

        invalidations = Invalidations(self.events)
        watch_status_changes(invalidations)
        watch_published_tables(invalidations)
        return invalidations

    @cached_property
    def lake(self) -> Lake:
        from townhall.datastore.lake import Lake

        return Lake(self.settings)

    def close_with_loop(self, closer: Callable[[], Awaitable[None]]) -> None:
        """Have `aclose` await `closer`: for clients made lazily on the serving event loop
        (the status lookups' async database pool and Redis counter), which only that loop can
        close. They open again if used after."""
        if closer not in self._loop_closers:
            self._loop_closers.append(closer)

    async def aclose(self) -> None:
        """Close what was made on the serving loop; the app's lifespan calls it as it ends."""
        for closer in self._loop_closers:
            await closer()

    def close(self) -> None:
        if "jobs" in self.__dict__:
            self.jobs.stop_consumer()
            self.jobs.close()
        if "events" in self.__dict__:
            self.events.close()
        if "lake" in self.__dict__:
            self.lake.close()
        if "read_engine" in self.__dict__ and self.read_engine is not self.__dict__.get("engine"):
            self.read_engine.dispose()
        if "engine" in self.__dict__:
            self.engine.dispose()
