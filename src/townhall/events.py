"""The event bus: in-process or Redis fan-out through `broadcaster`, read by SSE endpoints.

Actions queue events with `publish_after_commit`, so subscribers never hear of a change that
was rolled back. Sync code (actions, jobs) publishes through the loop that owns the bus.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from broadcaster import Broadcast
from sqlalchemy.orm import Session

from townhall.config import Settings
from townhall.db import after_commit, utcnow

log = logging.getLogger(__name__)

CHANNEL_PREFIX = "townhall:"


@dataclass(frozen=True)
class Event:
    channel: str
    type: str
    data: dict[str, Any]
    at: str

    def to_json(self) -> str:
        return json.dumps(
            {"channel": self.channel, "type": self.type, "data": self.data, "at": self.at},
            default=str,
        )

    @classmethod
    def from_json(cls, raw: str) -> Event:
        doc = json.loads(raw)
        return cls(channel=doc["channel"], type=doc["type"], data=doc["data"], at=doc["at"])


class EventBus:
    """One per process. `connect()` must run on the loop that will serve subscribers."""

    def __init__(self, settings: Settings) -> None:
        self.url = settings.redis_url or "memory://"
        self._broadcast = Broadcast(self.url)
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def backend(self) -> str:
        return "redis" if self.url.startswith("redis") else "memory"

    async def connect(self) -> None:
        await self._broadcast.connect()
        self._loop = asyncio.get_running_loop()

    async def disconnect(self) -> None:
        if self._loop is not None:
            await self._broadcast.disconnect()
            self._loop = None

    async def publish(self, channel: str, type: str, data: dict[str, Any]) -> Event:
        event = Event(channel=channel, type=type, data=data, at=utcnow().isoformat())
        await self._broadcast.publish(CHANNEL_PREFIX + channel, event.to_json())
        return event

    def publish_threadsafe(self, channel: str, type: str, data: dict[str, Any]) -> None:
        """Publish from a worker thread; fire-and-forget, errors are logged."""
        loop = self._loop
        if loop is None or loop.is_closed():
            log.warning("event %s on %s dropped: the bus is not connected", type, channel)
            return
        future = asyncio.run_coroutine_threadsafe(self.publish(channel, type, data), loop)
        future.add_done_callback(_log_failure)

    @asynccontextmanager
    async def subscribe(self, channel: str) -> AsyncIterator[AsyncIterator[Event]]:
        async with self._broadcast.subscribe(CHANNEL_PREFIX + channel) as subscriber:

            async def events() -> AsyncIterator[Event]:
                async for raw in subscriber:  # type: ignore[attr-defined]
                    yield Event.from_json(raw.message)

            yield events()


def _log_failure(future: Any) -> None:
    if future.exception() is not None:
        log.error("event publish failed: %s", future.exception())


def publish_after_commit(
    session: Session,
    bus: EventBus | None,
    channel: str,
    type: str,
    data: dict[str, Any],
) -> None:
    """Queue an event to go out once the transaction commits."""
    if bus is None:
        return
    after_commit(session, lambda: bus.publish_threadsafe(channel, type, data))
