"""Dependencies shared by every slice: the unit of work and the settings."""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from townhall.config import Settings
from townhall.db import unit_of_work

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


_turns: weakref.WeakKeyDictionary[
    asyncio.AbstractEventLoop, dict[tuple[int, bool], asyncio.Semaphore]
] = weakref.WeakKeyDictionary()


def _capacity(engine: Engine, *, writes: bool) -> int:
    """How many requests can hold a unit of work at once without waiting inside a thread."""
    if writes and engine.dialect.name == "sqlite":
        return 1  # SQLite has one writer; the others would sit in worker threads on its lock
    pool = engine.pool
    size = getattr(pool, "size", None)
    if not callable(size):
        return 64
    return max(1, size() + max(0, getattr(pool, "_max_overflow", 0)))


async def _db_turn(request: Request) -> AsyncIterator[None]:
    """Wait for a free connection on the event loop, before any worker thread is taken.

    A unit of work holds its connection (on SQLite writes, the write lock) across several
    thread hops: the caller's lookup, the route, the commit. Admitted beyond the pool's size,
    requests filled the thread pool waiting on connections that their holders could not
    release for want of a thread, and nothing moved until the 30 s timeouts (measured with 64
    concurrent submissions). Admission here keeps holders few enough to always get a thread.
    """
    runtime = request.app.state.runtime
    writes = request.method not in SAFE_METHODS
    engine = runtime.engine if writes else runtime.read_engine
    loop = asyncio.get_running_loop()
    key = (id(engine), writes)
    semaphores = _turns.setdefault(loop, {})
    if key not in semaphores:
        semaphores[key] = asyncio.Semaphore(_capacity(engine, writes=writes))
    async with semaphores[key]:
        yield


@contextmanager
def request_unit_of_work(request: Request) -> Iterator[Session]:
    """The unit of work of a request: for a safe method, on the read database when there is
    one (its small writes deferred to the primary); otherwise on the primary."""
    runtime = request.app.state.runtime
    if (
        request.method in SAFE_METHODS
        and runtime.read_session_factory is not runtime.session_factory
    ):
        with unit_of_work(
            runtime.read_session_factory, write_factory=runtime.session_factory
        ) as session:
            yield session
        return
    with unit_of_work(runtime.session_factory) as session:
        yield session


def _db_session(
    request: Request, _turn: Annotated[None, Depends(_db_turn, scope="function")]
) -> Iterator[Session]:
    with request_unit_of_work(request) as session:
        yield session


def _settings(request: Request) -> Settings:
    return request.app.state.settings


# scope="function": commit before the response is sent, so a client that gets 201 can read it back.
DbSession = Annotated[Session, Depends(_db_session, scope="function")]
AppSettings = Annotated[Settings, Depends(_settings)]
