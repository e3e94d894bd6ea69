"""A small pool of psycopg async connections to the read database, for reads that run on the
event loop (the anonymous status lookups on PostgreSQL).

A sync route on PostgreSQL hops to the thread pool and checks a connection out of
SQLAlchemy's pool, which pings it first: two thread switches and a round trip before the
query. Here a lookup takes an idle connection on the loop and runs its one query; nothing else.

- **Lazy, per loop**: connections are made on first use on the running loop (each `townhall
  serve` worker has its own), at most `size` at a time; more lookups wait for a free one. A
  pool used from another loop (a test client without its lifespan runs each request on a new
  loop) drops what it held and starts again on that loop.
- **No pre-ping**: a connection the server dropped while idle fails its query; the pool closes
  it and runs the read once more on a new connection. Any other failure closes the connection
  (a cancelled read leaves it in an unknown state) and is raised.
- **Autocommit**: reads only; in READ COMMITTED every statement takes its own snapshot anyway,
  so a transaction would only add a BEGIN and a ROLLBACK round trip.
- **Closed** by `aclose` from the app's lifespan (`Runtime.close_with_loop`); a pool used after
  that opens again lazily.

The connections use the engine's own connection arguments and psycopg adapters (SQLAlchemy's
dialect builds both), so values load as they do through the engine.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import psycopg
from sqlalchemy.engine import Engine

T = TypeVar("T")
DEFAULT_SIZE = 10


class AsyncReadPool:
    """At most `size` psycopg async connections to `engine`'s database, for `run`."""

    def __init__(self, engine: Engine, *, size: int = DEFAULT_SIZE) -> None:
        if engine.dialect.driver != "psycopg":
            raise ValueError(f"an async read pool needs psycopg, not {engine.dialect.driver}")
        self.dialect = engine.dialect
        self.size = size
        self._args, self._params = engine.dialect.create_connect_args(engine.url)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._slots: asyncio.Semaphore | None = None
        self._idle: list[psycopg.AsyncConnection[Any]] = []

    @property
    def idle(self) -> int:
        """Connections open and waiting for a read (for tests and diagnostics)."""
        return len(self._idle)

    async def run(self, read: Callable[[psycopg.AsyncConnection[Any]], Awaitable[T]]) -> T:
        """`read(connection)` on a pooled connection, retried once on a new one when the
        connection it had turns out to be broken (dropped by the server while idle)."""
        slots = self._bind()
        async with slots:
            reused = bool(self._idle)
            connection = self._idle.pop() if reused else await self._connect()
            try:
                result = await read(connection)
            except psycopg.OperationalError:
                dropped = connection.closed  # the server or the network ended it
                _close_now(connection)
                if not (reused and dropped):
                    raise
                connection = await self._connect()
                try:
                    result = await read(connection)
                except BaseException:
                    _close_now(connection)
                    raise
            except BaseException:
                _close_now(connection)
                raise
            if self._loop is asyncio.get_running_loop():
                self._idle.append(connection)
            else:  # closed (or moved to another loop) while this read ran
                _close_now(connection)
            return result

    async def aclose(self) -> None:
        """Close the idle connections; the pool opens again on its next use."""
        self._drop()

    def _bind(self) -> asyncio.Semaphore:
        loop = asyncio.get_running_loop()
        if loop is not self._loop or self._slots is None:
            self._drop()
            self._loop = loop
            self._slots = asyncio.Semaphore(self.size)
        return self._slots

    def _drop(self) -> None:
        idle, self._idle = self._idle, []
        self._loop = None
        self._slots = None
        for connection in idle:
            _close_now(connection)

    async def _connect(self) -> psycopg.AsyncConnection[Any]:
        return await psycopg.AsyncConnection.connect(*self._args, autocommit=True, **self._params)


def _close_now(connection: psycopg.AsyncConnection[Any]) -> None:
    """Close without awaiting (also from a cancelled task): an idle psycopg connection has no
    I/O in flight, and closing its libpq handle is all `AsyncConnection.close` does."""
    connection.pgconn.finish()
