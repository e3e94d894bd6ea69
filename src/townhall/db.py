"""Database engine, sessions and the unit of work.

One code path for SQLite (embedded) and PostgreSQL (production). Actions never commit: the
request's unit of work (or a job runner, or a CLI command) commits once, then runs the side
effects the actions queued with `after_commit`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import DateTime, Engine, MetaData, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker
from sqlalchemy.sql.base import Executable
from sqlalchemy.types import TypeDecorator

from townhall.config import Settings

log = logging.getLogger(__name__)

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class UTCDateTime(TypeDecorator[datetime]):
    """Stores UTC, returns aware datetimes on both backends (SQLite forgets the zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def utcnow() -> datetime:
    return datetime.now(UTC)


def make_engine(settings: Settings, *, for_reads: bool = False) -> Engine:
    """Build the engine; SQLite gets WAL, foreign keys and IMMEDIATE write transactions.

    `for_reads` gives SQLite an engine whose transactions begin DEFERRED, so GET requests
    read a WAL snapshot without queueing behind writers.
    """
    url = make_url(settings.resolved_database_url)
    if url.get_backend_name() == "sqlite":
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            url,
            connect_args={"check_same_thread": False, "timeout": 30},
            # No pre-ping: a SQLite file connection cannot go stale the way a server's can,
            # and the `SELECT 1` on every checkout was a measurable share of a status lookup.
        )
        _configure_sqlite(engine, immediate=not for_reads)
        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=20)


def _configure_sqlite(engine: Engine, *, immediate: bool) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy, not pysqlite, decide when transactions begin (see "begin" below).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        # IMMEDIATE takes the write lock up front: a transaction that reads the audit chain's
        # tail and then appends can never be overtaken by another writer (no SQLITE_BUSY_SNAPSHOT).
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(bind=engine, expire_on_commit=False, autoflush=True)


def after_commit(session: Session, callback: Callable[[], Any]) -> None:
    """Run `callback` once the session's transaction commits; dropped on rollback."""
    session.info.setdefault("after_commit", []).append(callback)


def _run_after_commit(session: Session) -> None:
    callbacks = session.info.pop("after_commit", [])
    for callback in callbacks:
        try:
            callback()
        except Exception:
            # A side effect (an event, a queued job) failing must not undo a committed write.
            log.exception("after-commit callback failed")


@contextmanager
def unit_of_work(
    factory: sessionmaker[Session], *, write_factory: sessionmaker[Session] | None = None
) -> Iterator[Session]:
    """Commit once at the end, or roll back on error; then run queued side effects.

    `write_factory` marks a read unit of work: `write_soon` defers its small writes to a
    transaction of their own on that factory, after this one ends.
    """
    session = factory()
    if write_factory is not None:
        session.info["write_factory"] = write_factory
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        session.info.pop("after_commit", None)
        raise
    finally:
        session.close()
    _run_after_commit(session)


def write_soon(session: Session, statement: Executable) -> None:
    """Run a small bookkeeping write (a last-used time): now in a write unit of work, or just
    after a read unit of work, in a short transaction of its own."""
    write_factory = session.info.get("write_factory")
    if write_factory is None:
        session.execute(statement)
        return

    def run() -> None:
        with unit_of_work(write_factory) as writer:
            writer.execute(statement)

    after_commit(session, run)


def ping(engine: Engine) -> None:
    with engine.connect() as connection:
        connection.execute(text("SELECT 1"))
