"""Per-process caches of answers read from the operational database, dropped when the rows
behind them change.

The busiest reads (a resident's polled status lookup, above all) ask again and again for rows
that rarely change. An `InvalidatedCache` keeps such answers in the process, and
`Invalidations` drops them when a commit touches their rows:

- **Tags.** Every kept answer carries tags naming the rows it was read from, such as
  `("request", 42)`. A slice declares which mapped classes produce which tags
  (`Invalidations.watch`); when a session flushes an instance of one, its tags are collected
  and, once the transaction commits, delivered. A bulk `UPDATE`/`DELETE` through the ORM on a
  watched class delivers the class's wildcard tag (`("request", "*")`), which drops every
  answer of that kind. A rollback delivers nothing.
- **Across processes.** A commit drops this process's answers at once (from any thread) and is
  published on the event bus (`cache.invalidate`) for the other processes and nodes, which drop
  theirs when it arrives. With the in-memory bus there are no other serving processes
  (`townhall serve --workers` above 1 needs Redis); with Redis, caching is on only while this
  process is subscribed. Each time the listener (re)subscribes, everything kept before is
  dropped, since what was published while it was away is lost.
- **Races.** `begin()` before the read, `put(..., started)` after: an answer is not kept when its
  tags (or everything) were dropped after its read began, so a read that raced a commit never
  outlives it.
- **A bound.** Writes the hooks cannot see (SQL text, another process without a bus: the CLI on
  an embedded instance, a restore) are covered by a time limit per answer (`ttl_seconds`),
  and by `clear()` where the code knows (a restore calls `Invalidations.clear_all`).

Answers must not depend on who asks: callers keep only what any caller would be shown.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterable
from typing import TYPE_CHECKING, Any

from sqlalchemy import event
from sqlalchemy.orm import ORMExecuteState, Session, sessionmaker

if TYPE_CHECKING:
    from townhall.events import EventBus

log = logging.getLogger(__name__)

Tag = tuple[str, Hashable]  # ("request", 42); ("request", "*") is every row of the kind
CHANNEL = "cache.invalidate"
_PENDING = "cache_tags"  # session.info key: tags flushed in the current transaction
TOMBSTONE_SECONDS = 120.0  # how long a dropped tag refuses answers read before it was dropped


class InvalidatedCache:
    """Up to `max_entries` answers, least recently used out first, each at most `ttl_seconds`
    old; thread-safe. `enabled` is a callable the owner (`Invalidations`) answers: whether
    changes made elsewhere would reach this process now."""

    def __init__(
        self,
        name: str,
        *,
        kinds: Iterable[str],
        ttl_seconds: float,
        max_entries: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.name = name
        self.kinds = frozenset(kinds)  # tag kinds whose wildcard clears this cache
        self.ttl_seconds = ttl_seconds
        self.max_entries = max_entries
        self.clock = clock
        self.enabled: Callable[[], bool] = lambda: True
        self.hits = 0
        self.misses = 0
        self._lock = threading.Lock()
        self._entries: OrderedDict[Hashable, tuple[Any, float, tuple[Tag, ...]]] = OrderedDict()
        # Tuples, not sets: a tag holds a key or two, and a tuple of strings and numbers is not
        # tracked by the garbage collector, whose full passes over tens of thousands of sets
        # in a busy server are pauses every request in flight waits through.
        self._keys_by_tag: dict[Tag, tuple[Hashable, ...]] = {}
        self._dropped_at: dict[Tag, float] = {}
        self._cleared_at = float("-inf")

    def __len__(self) -> int:
        return len(self._entries)

    def begin(self) -> float:
        """The moment a read starts, for `put`."""
        return self.clock()

    def get(self, key: Hashable) -> Any | None:
        """The kept answer, or None (also when caching is off right now)."""
        if self.ttl_seconds <= 0 or not self.enabled():
            return None
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                self.misses += 1
                return None
            if entry[1] <= self.clock():
                self._remove(key)
                self.misses += 1
                return None
            self._entries.move_to_end(key)
            self.hits += 1
            return entry[0]

    def put(self, key: Hashable, value: Any, *, started: float, tags: Iterable[Tag]) -> bool:
        """Keep `value` unless something it was read from was dropped after `started`
        (`begin()` before the read); True if kept."""
        if self.ttl_seconds <= 0 or not self.enabled():
            return False
        tags = tuple(tags)
        with self._lock:
            if self._cleared_at >= started or any(
                self._dropped_at.get(tag, float("-inf")) >= started
                or self._dropped_at.get((tag[0], "*"), float("-inf")) >= started
                for tag in tags
            ):
                return False
            if key in self._entries:
                self._remove(key)
            self._entries[key] = (value, self.clock() + self.ttl_seconds, tags)
            for tag in tags:
                self._keys_by_tag[tag] = (*self._keys_by_tag.get(tag, ()), key)
            while len(self._entries) > self.max_entries:
                self._remove(next(iter(self._entries)))
            return True

    def drop(self, tags: Iterable[Tag]) -> None:
        """Forget every answer carrying one of `tags` (a wildcard of one of `kinds`: all)."""
        now = self.clock()
        with self._lock:
            for tag in tags:
                if tag[1] == "*":
                    if tag[0] in self.kinds:
                        self._clear_locked(now)
                    continue
                self._dropped_at[tag] = now
                for key in self._keys_by_tag.get(tag, ()):
                    self._remove(key)
            if len(self._dropped_at) > 4 * self.max_entries + 1024:
                horizon = now - TOMBSTONE_SECONDS
                self._dropped_at = {t: at for t, at in self._dropped_at.items() if at > horizon}

    def clear(self) -> None:
        """Forget everything, including answers being read right now."""
        with self._lock:
            self._clear_locked(self.clock())

    def _clear_locked(self, now: float) -> None:
        self._entries.clear()
        self._keys_by_tag.clear()
        self._dropped_at.clear()
        self._cleared_at = now

    def _remove(self, key: Hashable) -> None:
        _, _, tags = self._entries.pop(key)
        for tag in tags:
            left = tuple(k for k in self._keys_by_tag.get(tag, ()) if k != key)
            if left:
                self._keys_by_tag[tag] = left
            else:
                self._keys_by_tag.pop(tag, None)


class Invalidations:
    """One per runtime: the caches of this process, the classes whose changes drop their
    answers, and the bus that carries changes between processes (module docstring)."""

    def __init__(self, bus: EventBus) -> None:
        self.bus = bus
        self.caches: list[InvalidatedCache] = []
        self._watched: dict[type, list[Callable[[Any], Iterable[Tag]]]] = {}
        self._wildcards: dict[type, set[Tag]] = {}
        self._listening = False  # subscribed to `CHANNEL` (Redis only)
        self._subscription_seen: int | None = None
        self._listener: asyncio.Task[None] | None = None

    # What changes what ---------------------------------------------------------------------

    def watch(self, cls: type, tags: Callable[[Any], Iterable[Tag]], *, kind: str) -> None:
        """Changes to instances of `cls` drop the answers carrying `tags(instance)`; a bulk
        statement on `cls` drops every answer of `kind`."""
        self._watched.setdefault(cls, []).append(tags)
        self._wildcards.setdefault(cls, set()).add((kind, "*"))

    def cache(
        self, name: str, *, kinds: Iterable[str], ttl_seconds: float, max_entries: int
    ) -> InvalidatedCache:
        """A new cache whose answers these invalidations keep fresh."""
        made = InvalidatedCache(name, kinds=kinds, ttl_seconds=ttl_seconds, max_entries=max_entries)
        made.enabled = self.delivering
        self.caches.append(made)
        return made

    def install(self, factory: sessionmaker[Session]) -> None:
        """Collect the tags of what sessions of `factory` flush, deliver them on commit."""
        event.listen(factory, "after_flush", self._collect)
        event.listen(factory, "do_orm_execute", self._collect_bulk)
        event.listen(factory, "after_commit", self._committed)
        event.listen(factory, "after_rollback", self._rolled_back)

    # Delivery ------------------------------------------------------------------------------

    def delivering(self) -> bool:
        """Whether a change committed anywhere reaches this process's caches now."""
        if self.bus.backend != "redis":
            return True
        subscription = self.bus.subscription
        if not self._listening or subscription is None:
            return False
        if subscription != self._subscription_seen:
            # Subscribed again after a gap: what was published meanwhile is lost.
            self._subscription_seen = subscription
            self.clear_all()
        return True

    def deliver(self, tags: Iterable[Tag]) -> None:
        """Drop the answers carrying `tags` in this process (any thread)."""
        tags = tuple(tags)
        for cache in self.caches:
            cache.drop(tags)

    def clear_all(self) -> None:
        for cache in self.caches:
            cache.clear()

    async def listen(self) -> None:
        """Apply the invalidations other processes publish, until cancelled (Redis only: the
        app's lifespan runs it as a task beside the server)."""
        if self.bus.backend != "redis":
            return
        while True:
            try:
                async with self.bus.subscribe(CHANNEL) as subscription:
                    self._listening = True
                    async for published in subscription:
                        self.deliver(_tags_from(published.data))
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("cache invalidation listener failed; caching off until it is back")
            finally:
                self._listening = False
                self.clear_all()
            await asyncio.sleep(1.0)

    def start(self) -> None:
        """Run `listen` on the running loop (the app's lifespan)."""
        if self._listener is None or self._listener.done():
            self._listener = asyncio.get_running_loop().create_task(
                self.listen(), name="townhall-cache-invalidations"
            )

    async def stop(self) -> None:
        listener, self._listener = self._listener, None
        if listener is not None:
            listener.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await listener

    # Session hooks -------------------------------------------------------------------------

    def _collect(self, session: Session, _context: Any) -> None:
        if not self._watched:
            return
        tags: set[Tag] | None = None
        for instance in (*session.new, *session.dirty, *session.deleted):
            for describe in self._watched.get(type(instance), ()):
                if tags is None:
                    tags = session.info.setdefault(_PENDING, set())
                tags.update(describe(instance))

    def _collect_bulk(self, state: ORMExecuteState) -> None:
        if not (state.is_update or state.is_delete) or state.bind_mapper is None:
            return
        wildcards = self._wildcards.get(state.bind_mapper.class_)
        if wildcards:
            state.session.info.setdefault(_PENDING, set()).update(wildcards)

    def _committed(self, session: Session) -> None:
        tags = session.info.pop(_PENDING, None)
        if not tags:
            return
        self.deliver(tags)
        if self.bus.backend == "redis":
            published = {"tags": [list(tag) for tag in tags]}
            self.bus.publish_threadsafe(CHANNEL, "invalidate", published)

    def _rolled_back(self, session: Session) -> None:
        session.info.pop(_PENDING, None)


def _tags_from(data: dict[str, Any]) -> list[Tag]:
    """The tags of a published invalidation; anything malformed drops everything (`*`)."""
    tags: list[Tag] = []
    for item in data.get("tags", []):
        if isinstance(item, list) and len(item) == 2 and isinstance(item[0], str):
            value = item[1]
            tags.append((item[0], value if isinstance(value, int | str) else "*"))
    return tags
