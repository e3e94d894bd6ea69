"""The event bus: in-process or Redis fan-out through `broadcaster`, read by SSE endpoints.

Actions queue events with `publish_after_commit`, so subscribers never hear of a change that
was rolled back. Events are notifications, not records: one published while nobody listens, or
while Redis is away, is gone; pages re-read the state they show when their stream reconnects.

Across nodes (Redis), each process keeps one pattern subscription to the whole namespace and
`broadcaster` fans events out to the local subscribers. broadcaster's own Redis backend is not
used: when the last subscriber leaves as another arrives, its listener can stop for good
(encode/broadcaster#121, #133), and it does not survive a Redis restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import redis
import redis.asyncio as aioredis
from broadcaster import Broadcast, BroadcastBackend
from broadcaster import Event as RawEvent
from sqlalchemy.orm import Session

from townhall.config import Settings
from townhall.db import after_commit, utcnow

log = logging.getLogger(__name__)

REDIS_RECONNECT_MAX_SECONDS = 10.0


@dataclass(frozen=True)
class Event:
    channel: str
    type: str
    data: dict[str, Any]
    at: str

    def to_json(self) -> str:
        # One line, always: SSE ends a field at a newline.
        return json.dumps(
            {"channel": self.channel, "type": self.type, "data": self.data, "at": self.at},
            default=str,
        )

    @classmethod
    def from_json(cls, raw: str) -> Event:
        doc = json.loads(raw)
        return cls(channel=doc["channel"], type=doc["type"], data=doc["data"], at=doc["at"])


class StreamClosed(Exception):
    """The bus is shutting down (or disconnected): subscribers should end their streams."""


class EventBusNotConnected(RuntimeError):
    """`publish` was awaited before `connect()`."""


class RedisEventBackend(BroadcastBackend):
    """Redis PUB/SUB for broadcaster: one pattern subscription per process, self-healing.

    `subscribe`/`unsubscribe` are no-ops: broadcaster drops events no local subscriber wants.
    The listener reconnects with backoff after any error; `live` says whether it is
    subscribed right now.
    """

    def __init__(self, url: str, *, pattern: str, client_name: str) -> None:
        self._url = url
        self._pattern = pattern
        self._client_name = client_name
        self._client: aioredis.Redis | None = None
        self._queue: asyncio.Queue[RawEvent] | None = None
        self._listener: asyncio.Task[None] | None = None
        self.live = asyncio.Event()
        # Times the listener has subscribed: a change means a gap in which events were lost.
        self.subscriptions = 0

    def _new_client(self) -> aioredis.Redis:
        return aioredis.Redis.from_url(
            self._url,
            socket_connect_timeout=5,
            socket_keepalive=True,
            health_check_interval=30,
            client_name=self._client_name,
        )

    async def connect(self) -> None:
        # Never fails for want of Redis: the listener keeps trying, readiness reports it.
        self._client = self._new_client()
        self._queue = asyncio.Queue()
        self.live = asyncio.Event()
        self._listener = asyncio.create_task(self._listen(), name="townhall-events-redis")

    async def disconnect(self) -> None:
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._listener
            self._listener = None
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def subscribe(self, channel: str) -> None:
        return None

    async def unsubscribe(self, channel: str) -> None:
        return None

    async def publish(self, channel: str, message: Any) -> None:
        if self._client is None:
            raise EventBusNotConnected("the event bus is not connected")
        await self._client.publish(channel, message)

    async def next_published(self) -> RawEvent:
        if self._queue is None:
            raise EventBusNotConnected("the event bus is not connected")
        return await self._queue.get()

    async def ping(self) -> None:
        if self._client is None:
            raise EventBusNotConnected("the event bus is not connected")
        await self._client.ping()
        if not self.live.is_set():
            raise ConnectionError("not subscribed to Redis yet (reconnecting)")

    async def _listen(self) -> None:
        delay = 0.2
        while True:
            client = self._new_client()
            pubsub = client.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.psubscribe(self._pattern)
                self.subscriptions += 1
                self.live.set()
                delay = 0.2
                while True:
                    # A bounded wait (not `listen()`), so the health-check PING goes out on an
                    # idle connection and a dead one is noticed.
                    message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
                    if message is not None and message["type"] == "pmessage":
                        assert self._queue is not None
                        await self._queue.put(
                            RawEvent(
                                channel=message["channel"].decode(),
                                message=message["data"].decode(),
                            )
                        )
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning(
                    "event bus lost Redis (%s: %s); reconnecting in %.1fs",
                    type(exc).__name__,
                    exc,
                    delay,
                )
            finally:
                self.live.clear()
                with contextlib.suppress(Exception):
                    await pubsub.aclose()
                with contextlib.suppress(Exception):
                    await client.aclose()
            await asyncio.sleep(delay)
            delay = min(delay * 2, REDIS_RECONNECT_MAX_SECONDS)


class Subscription:
    """One subscriber's view of a channel. `next()` waits for the next event."""

    def __init__(self, subscriber: Any, closing: asyncio.Event) -> None:
        self._subscriber = subscriber
        self._closing = closing

    async def next(self, timeout: float | None = None) -> Event | None:
        """The next event, or None after `timeout` seconds without one.

        Raises StreamClosed when the bus shuts down. Waiting is cancellation-safe: an event
        that arrives as the wait times out is kept for the next call.
        """
        if self._closing.is_set():
            raise StreamClosed
        getter = asyncio.ensure_future(self._subscriber.get())
        closer = asyncio.ensure_future(self._closing.wait())
        try:
            done, _ = await asyncio.wait(
                {getter, closer}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            for waiter in (getter, closer):
                if not waiter.done():
                    waiter.cancel()
        if getter in done:
            try:
                raw = getter.result()
            except Exception as exc:  # broadcaster's Unsubscribed
                raise StreamClosed from exc
            return Event.from_json(raw.message)
        if closer in done:
            raise StreamClosed
        return None

    def __aiter__(self) -> AsyncIterator[Event]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[Event]:
        while True:
            try:
                event = await self.next()
            except StreamClosed:
                return
            if event is not None:
                yield event


class EventBus:
    """One per process. `connect()` must run on the loop that will serve subscribers.

    `namespace` prefixes every channel in Redis. By default it carries the Redis database
    number, because PUB/SUB ignores databases: without it, two deployments sharing one Redis
    server on different databases would hear each other's events.
    """

    def __init__(self, settings: Settings, *, namespace: str | None = None) -> None:
        self.url = settings.redis_url or "memory://"
        if self.backend == "redis":
            database = redis.connection.parse_url(self.url).get("db", 0)
            self.namespace = namespace or f"townhall:{database}"
        else:
            self.namespace = namespace or "townhall"
        self.prefix = self.namespace + ":"
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closing: asyncio.Event | None = None
        self._redis_backend: RedisEventBackend | None = None
        self._broadcast = self._new_broadcast()
        self._sync_redis: redis.Redis | None = None
        self._sync_lock = threading.Lock()
        self._subscribers: Counter[str] = Counter()

    @property
    def backend(self) -> str:
        return "redis" if self.url.startswith(("redis://", "rediss://", "unix://")) else "memory"

    @property
    def connected(self) -> bool:
        return self._loop is not None

    @property
    def subscription(self) -> int | None:
        """Which subscription of this process to the other processes' events is live: a
        number that changes each time the Redis listener subscribes again (events published
        in between are lost), or None while it is not subscribed. In memory there are no
        other processes: always 0."""
        backend = self._redis_backend
        if backend is None:
            return 0
        return backend.subscriptions if backend.live.is_set() else None

    def _new_broadcast(self) -> Broadcast:
        if self.backend == "redis":
            self._redis_backend = RedisEventBackend(
                self.url,
                pattern=self.prefix + "*",
                client_name=f"townhall-events@{self.namespace}",
            )
            return Broadcast(backend=self._redis_backend)
        return Broadcast("memory://")

    async def connect(self) -> None:
        """Start listening on the running loop. Idempotent on one loop."""
        loop = asyncio.get_running_loop()
        if self._loop is loop:
            return
        if self._loop is not None:
            # A previous loop went away without disconnecting (a test client, say).
            self._broadcast = self._new_broadcast()
        await self._broadcast.connect()
        self._closing = asyncio.Event()
        self._loop = loop

    async def disconnect(self) -> None:
        """End every open stream and stop listening."""
        if self._loop is None:
            return
        if self._closing is not None:
            self._closing.set()
        await asyncio.sleep(0)  # let streams see the close before their queues go
        try:
            await self._broadcast.disconnect()
        except Exception:
            log.exception("event bus listener had failed")
        self._loop = None
        self._broadcast = self._new_broadcast()

    def close_streams(self) -> None:
        """Make every open subscription end (the server is shutting down). Thread-safe.

        Without it, an SSE stream holds its connection open and uvicorn waits for it forever.
        """
        loop, closing = self._loop, self._closing
        if loop is None or closing is None or loop.is_closed():
            return
        loop.call_soon_threadsafe(closing.set)

    async def publish(self, channel: str, type: str, data: dict[str, Any]) -> Event:
        """Publish on the bus's loop. Raises EventBusNotConnected before `connect()`, and
        Redis errors as they come."""
        if self._loop is None:
            raise EventBusNotConnected("the event bus is not connected")
        event = Event(channel=channel, type=type, data=data, at=utcnow().isoformat())
        await self._broadcast.publish(self.prefix + channel, event.to_json())
        return event

    def publish_threadsafe(self, channel: str, type: str, data: dict[str, Any]) -> None:
        """Publish from sync code (a request thread, a job, the CLI). Never raises: a lost
        notification must not fail the work that caused it; failures are logged.

        With Redis the event goes out at once on a plain client, so it works in processes with
        no running bus (the CLI, a worker). In memory, only subscribers of this process can
        exist, and they all live on the bus's loop.
        """
        event = Event(channel=channel, type=type, data=data, at=utcnow().isoformat())
        if self.backend == "redis":
            try:
                self._sync_client().publish(self.prefix + channel, event.to_json())
            except Exception:
                log.exception("event %s on %s not published", type, channel)
            return
        loop = self._loop
        if loop is None or loop.is_closed():
            log.debug("event %s on %s dropped: no subscriber can exist yet", type, channel)
            return
        future = asyncio.run_coroutine_threadsafe(
            self._broadcast.publish(self.prefix + channel, event.to_json()), loop
        )
        future.add_done_callback(_log_failure)

    def _sync_client(self) -> redis.Redis:
        with self._sync_lock:
            if self._sync_redis is None:
                self._sync_redis = redis.Redis.from_url(
                    self.url, socket_connect_timeout=5, socket_timeout=5
                )
            return self._sync_redis

    @asynccontextmanager
    async def subscribe(self, channel: str) -> AsyncIterator[Subscription]:
        """Listen to `channel` for the duration of the block."""
        if self._loop is None or self._closing is None:
            raise EventBusNotConnected("the event bus is not connected")
        closing = self._closing
        async with self._broadcast.subscribe(self.prefix + channel) as subscriber:
            self._subscribers[channel] += 1
            try:
                yield Subscription(subscriber, closing)
            finally:
                self._subscribers[channel] -= 1
                if self._subscribers[channel] <= 0:
                    del self._subscribers[channel]

    def subscriber_count(self, channel: str | None = None) -> int:
        """Open subscriptions in this process (on one channel, or all)."""
        if channel is not None:
            return self._subscribers.get(channel, 0)
        return sum(self._subscribers.values())

    async def ping(self) -> None:
        """Raise unless events published now would reach this process's subscribers."""
        if self._loop is None:
            raise EventBusNotConnected("the event bus is not connected")
        if self._redis_backend is not None:
            await self._redis_backend.ping()

    def close(self) -> None:
        """Release the sync Redis client (the async side ends with `disconnect`)."""
        with self._sync_lock:
            if self._sync_redis is not None:
                self._sync_redis.close()
                self._sync_redis = None


def _log_failure(future: Any) -> None:
    if not future.cancelled() and future.exception() is not None:
        log.error("event publish failed: %s", future.exception())


def publish_after_commit(
    session: Session,
    bus: EventBus | None,
    channel: str,
    type: str,
    data: dict[str, Any],
) -> None:
    """Queue an event to go out once the transaction commits; dropped on rollback."""
    if bus is None:
        return
    after_commit(session, lambda: bus.publish_threadsafe(channel, type, data))
