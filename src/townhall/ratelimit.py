"""Request rate limits: named policies, counted per API token, logged-in user or address.

A fixed window per key: the first request of a key opens a window of the policy's length, and
every request inside it counts; over the limit, the caller gets 429 with `Retry-After` (the
seconds left in the window), in the error shape of the API it called. Two backends:

- memory (default): a dict per process. Each node counts on its own, and a restart forgets.
- Redis (when `redis_url` is set): one counter per key shared by every node. A node reserves
  counts in batches (a Lua script: `INCRBY n`, then `PEXPIRE` when it made the key) and spends
  them locally until the window's TTL runs out, so most requests make no round trip. It owns
  the counts it reserved and lets through only those at or under the limit, so two nodes never
  both let the last request through, and never more than the limit pass per window across all
  nodes. The batch is a sixteenth of the room left as last seen, 1 to 64 (`lease_size`): the
  last 31 counts of a window go one by one, so small limits stay exact, and counts a node
  reserved but did not use (a caller who went away) are few and only ever refuse, never admit.
  On the event loop, far from the limit, the next batch is asked for ahead, in the background,
  while half a batch is still held (`_Leases.ahead`), so lookups do not wait on Redis.

Anonymous status lookups on PostgreSQL run on the event loop (`service_requests.api`); they
count through `enforce_async`, which on Redis uses `redis.asyncio` connections of the running
loop (the same script and keys, so both paths share one count).

The limits are a shield against floods, not the record: the hourly submission limit that must
survive restarts stays in the database (`service_requests.actions`). When Redis is unreachable
the limiter lets requests through and logs it: an outage of the counter must not take the
portal down with it.

Enforcement happens where the caller is known (`accounts.auth.current_actor`, and the Open311
api_key check), so that staff with `rate_limit_exempt_permission` skip it and a token is
counted as itself wherever it calls from.
"""

from __future__ import annotations

import asyncio
import logging
import math
import re
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

from townhall.config import RATE_PATTERN
from townhall.errors import TownhallError

if TYPE_CHECKING:
    from fastapi import Request
    from redis import Redis

    from townhall.actor import Actor
    from townhall.config import Settings

log = logging.getLogger(__name__)

PERIODS: dict[str, int] = {"second": 1, "minute": 60, "hour": 3600, "day": 86400}

# Each policy and the setting that holds its limit (docs/configuration.md describes them).
POLICIES: dict[str, str] = {
    "sql": "rate_limit_sql",
    "reads": "rate_limit_reads",
    "login": "rate_limit_login",
    "submissions": "rate_limit_submissions",
    "messages": "rate_limit_messages",
    "writes": "rate_limit_writes",
}

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_SQL_PATHS = re.compile(
    r"^(/api/v1/sql(/download\.[a-z]+)?|/api/v1/datasets/[^/]+/sql"
    r"|/api(/3)?/action/datastore_search_sql)/?$"
)
_CKAN_ACTION = re.compile(r"^/api(/3)?/action/(?P<name>[A-Za-z0-9_]+)/?$")
_SUBMISSION_PATHS = re.compile(r"^(/api/v1/requests|/requests/new|/open311/v2/requests\.[a-z]+)/?$")
_MESSAGE_SUFFIXES = ("/messages", "/replies")
# Reads that are limited at all: the data and service APIs (pages and assets are not).
_API_PREFIXES = ("/api/", "/open311/", "/hsds/")


def parse_rate(value: str) -> tuple[int, int]:
    """`"30/minute"` -> `(30, 60)`: requests allowed and window length in seconds.

    Raises ValueError on anything else (the settings refuse such values before this runs).
    """
    if not re.match(RATE_PATTERN, value):
        raise ValueError(f"{value!r} is not N/second, N/minute, N/hour or N/day")
    count, _, period = value.partition("/")
    return int(count), PERIODS[period]


def policy_for(method: str, path: str) -> str | None:
    """The policy that counts a request, or None for requests that are not limited."""
    method = method.upper()
    if path == "/login":
        return "login" if method == "POST" else None
    if _SQL_PATHS.match(path):
        return "sql"
    ckan = _CKAN_ACTION.match(path)
    if ckan is not None:
        return "writes" if _is_ckan_write(ckan["name"]) else "reads"
    if method in SAFE_METHODS:
        return "reads" if path.startswith(_API_PREFIXES) else None
    if _SUBMISSION_PATHS.match(path):
        return "submissions"
    if path.rstrip("/").endswith(_MESSAGE_SUFFIXES):
        return "messages"
    return "writes"


def _is_ckan_write(name: str) -> bool:
    """CKAN clients POST reads too (package_search): its registry says which actions write."""
    try:
        from townhall.compat.ckan import ACTIONS
    except ImportError:  # no CKAN slice
        return False
    spec = ACTIONS.get(name)
    return spec is not None and spec.write


class Decision(NamedTuple):
    """A named tuple, not a dataclass: one is made per limited request, and it is cheaper."""

    allowed: bool
    count: int
    limit: int
    retry_after: int  # whole seconds until the window ends (at least 1)


class Backend(Protocol):
    def hit(self, key: str, limit: int, window_seconds: int) -> Decision: ...

    async def hit_async(self, key: str, limit: int, window_seconds: int) -> Decision: ...

    async def aclose(self) -> None: ...


class MemoryBackend:
    """Per-process counters. Thread-safe: sync routes run in a thread pool."""

    SWEEP_ABOVE = 10_000  # keys kept before expired ones are swept out

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._windows: dict[str, tuple[int, float]] = {}
        self._lock = threading.Lock()
        self._clock = clock

    def hit(self, key: str, limit: int, window_seconds: int) -> Decision:
        now = self._clock()
        with self._lock:
            count, ends = self._windows.get(key, (0, 0.0))
            if ends <= now:
                count, ends = 0, now + window_seconds
            count += 1
            self._windows[key] = (count, ends)
            if len(self._windows) > self.SWEEP_ABOVE:
                self._windows = {k: v for k, v in self._windows.items() if v[1] > now}
        return Decision(count <= limit, count, limit, max(1, math.ceil(ends - now)))

    async def hit_async(self, key: str, limit: int, window_seconds: int) -> Decision:
        """`hit`: no I/O, and the lock is only ever held for a dict update."""
        return self.hit(key, limit, window_seconds)

    async def aclose(self) -> None:
        """Nothing to close."""


# KEYS[1] the counter, ARGV[1] the window in ms, ARGV[2] the counts reserved. Returns {count,
# ms left}. A key that somehow lost its expiry (PTTL -1) gets one again, so it can never block a
# caller for ever.
_HIT_SCRIPT = """
local count = redis.call('INCRBY', KEYS[1], ARGV[2])
if count == tonumber(ARGV[2]) then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
local ttl = redis.call('PTTL', KEYS[1])
if ttl < 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
  ttl = tonumber(ARGV[1])
end
return {count, ttl}
"""

# Counts reserved per round trip at most. A batch of 64 leaves one Redis round trip (redis-py
# packing and parsing, and the server's own CPU) per 64 requests, under 2% of what one per
# request cost; a larger one saves little more, and bounds what a node can strand when its
# caller stops calling: one batch in flight per key at a time (`_Leases.take`), so at most 64
# counts per key per window per node.
LEASE_CAP = 64
# A node reserves at most this share of the room left (as it last saw it): with k nodes at
# once, what they hold unused is at most about k/16 of the room, and below 32 counts left every
# reservation is of one count, so a limit under 32 is counted one by one, exactly as before.
LEASE_SHARE = 16
# Reserving ahead (`_Leases.ahead`, the event loop's path): while the room left is at least
# this, a node asks for its next batch once fewer than half a batch is held, so requests do
# not wait on a round trip every batch (at 7,000 lookups/s a worker spends 64 counts in 9 ms,
# and every lookup that found none held waited for the reply). Nearer the limit it does not:
# counts held ahead are what a node could strand.
AHEAD_ROOM = LEASE_CAP * LEASE_SHARE
AHEAD_MIN_SECONDS = 0.05


def lease_size(room: int | None) -> int:
    """Counts to reserve from Redis given the room left in the window as last seen (None: not
    seen, a new window or a key this node has forgotten): 1 to `LEASE_CAP`."""
    if room is None:
        return 1
    return max(1, min(room // LEASE_SHARE, LEASE_CAP))


class _Lease:
    """What one node knows of one key's window: the room left when it last asked Redis, until
    when that holds, and the counts it reserved and has not spent yet."""

    __slots__ = ("batching", "room", "seen_until", "slots")

    def __init__(self) -> None:
        self.batching = False  # a reservation of more than one count is in flight
        self.room = 0
        self.seen_until = 0.0  # monotonic; the window had not ended in Redis before this
        # [next count, last count, monotonic end of the window they were reserved in], oldest
        # first. One range as a rule (one batch in flight per key); a list, so that a reply
        # racing the end of its window can never overwrite counts still held.
        self.slots: list[list[Any]] = []


class _Leases:
    """A node's reserved counts, by key. Thread-safe: the lock is held for dict and list
    updates only (never across a round trip), so the event loop can take it too.

    Ends of windows are taken from the node's monotonic clock as read *before* the request
    went to Redis, plus the TTL Redis answered: never later than the key's real expiry, so no
    count is spent after its window ended in Redis.
    """

    SWEEP_ABOVE = 10_000  # keys kept before ended windows are swept out

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._leases: dict[str, _Lease] = {}
        self._lock = threading.Lock()
        self.clock = clock

    def take(self, key: str, limit: int) -> Decision | int:
        """Spend one held count of `key`: its Decision, or (none held) the counts to reserve."""
        now = self.clock()
        with self._lock:
            lease = self._leases.get(key)
            if lease is None:
                return 1
            slots = lease.slots
            while slots:
                slot = slots[0]
                if slot[2] <= now:  # its window has ended: those counts are void
                    del slots[0]
                    continue
                count = slot[0]
                if count == slot[1]:
                    del slots[0]
                else:
                    slot[0] = count + 1
                return Decision(True, count, limit, max(1, math.ceil(slot[2] - now)))
            if lease.batching or lease.seen_until <= now:
                # One batch in flight per key at a time: threads that find none held meanwhile
                # reserve one count each, which they spend at once, so none are left stranded.
                return 1
            size = lease_size(lease.room)
            lease.batching = size > 1
            return size

    def ahead(self, key: str) -> int:
        """Counts to reserve now, in the background, so that the requests after the next ones
        find counts held instead of waiting for a round trip (0: none to reserve). Only far from
        the limit (room for `AHEAD_ROOM`), only while fewer than half a batch is held, and
        never while a reservation is in flight; so a node holds at most a batch and a half."""
        now = self.clock()
        with self._lock:
            lease = self._leases.get(key)
            if lease is None or lease.batching or lease.room < AHEAD_ROOM:
                return 0
            if lease.seen_until - now < AHEAD_MIN_SECONDS:
                return 0  # the window is about to end: the next request opens a new one
            held = sum(slot[1] - slot[0] + 1 for slot in lease.slots if slot[2] > now)
            size = lease_size(lease.room)
            if held * 2 >= size:
                return 0
            lease.batching = True
            return size

    def record(
        self,
        key: str,
        limit: int,
        reserved: int,
        count: int,
        ttl_ms: int,
        sent_at: float,
        *,
        answering: bool = True,
    ) -> Decision:
        """Keep what a reservation of `reserved` counts got (Redis now at `count`, `ttl_ms`
        left, asked at `sent_at`): its first count answers the request that made it (unless
        reserved ahead, `answering=False`), the others up to the limit are held for the next
        ones."""
        first, last, ends = count - reserved + 1, min(count, limit), sent_at + ttl_ms / 1000
        now = self.clock()
        with self._lock:
            lease = self._leases.get(key)
            if lease is None:
                if len(self._leases) >= self.SWEEP_ABOVE:
                    self._sweep(now)
                lease = self._leases[key] = _Lease()
            if lease.seen_until <= now or limit - count < lease.room:
                lease.room = limit - count  # a new window, or the lowest room seen in this one
            lease.seen_until = max(lease.seen_until, ends)
            held_from = first + 1 if answering else first
            if held_from <= last:
                lease.slots.append([held_from, last, ends])
            if reserved > 1:
                lease.batching = False
        return Decision(first <= limit, first, limit, max(1, math.ceil(ttl_ms / 1000)))

    def abandon(self, key: str, reserved: int) -> None:
        """A reservation `take` sized that will not be recorded (Redis down, the caller gone,
        or it waits for another): the next one may be a batch again."""
        if reserved > 1:
            with self._lock:
                lease = self._leases.get(key)
                if lease is not None:
                    lease.batching = False

    def _sweep(self, now: float) -> None:
        """Drop the keys whose window has ended; if most are still open (a flood of addresses),
        drop them all: their held counts go unused, which can only refuse, never admit."""
        self._leases = {k: v for k, v in self._leases.items() if v.seen_until > now}
        if len(self._leases) >= self.SWEEP_ABOVE // 2:
            self._leases = {}


# Short timeouts: a slow Redis must not hold every request hostage.
_REDIS_TIMEOUTS = {"socket_timeout": 0.5, "socket_connect_timeout": 0.5}


class RedisBackend:
    """Counters in Redis, shared by every node that uses the same URL and prefix, reserved in
    batches (`_Leases`, shared by both paths: one backend is one node).

    `hit` uses a blocking client (routes in the thread pool); `hit_async` connections of the
    running loop (`_LoopCounter`: new ones if the loop changes), closed by `aclose`. It needs
    the URL; a backend built around a client alone runs `hit` in a thread.
    """

    def __init__(self, client: Redis, *, prefix: str, url: str | None = None) -> None:
        self._client = client
        self._prefix = prefix
        self._script = client.register_script(_HIT_SCRIPT)
        self._url = url
        self._counter: _LoopCounter | None = None
        self._leases = _Leases()

    @classmethod
    def from_url(cls, url: str, *, prefix: str) -> RedisBackend:
        from redis import Redis

        client = Redis.from_url(url, **_REDIS_TIMEOUTS)
        return cls(client, prefix=prefix, url=url)

    def hit(self, key: str, limit: int, window_seconds: int) -> Decision:
        held = self._leases.take(key, limit)
        if isinstance(held, Decision):
            return held
        sent_at = self._leases.clock()
        try:
            count, ttl_ms = self._script(
                keys=[self._prefix + key], args=[window_seconds * 1000, held]
            )
        except BaseException:
            self._leases.abandon(key, held)
            raise
        return self._leases.record(key, limit, held, int(count), int(ttl_ms), sent_at)

    async def hit_async(self, key: str, limit: int, window_seconds: int) -> Decision:
        if self._url is None:
            return await asyncio.to_thread(self.hit, key, limit, window_seconds)
        leases = self._leases
        held = leases.take(key, limit)
        counter = self._counter
        if counter is None or counter.loop is not asyncio.get_running_loop():
            # A previous loop's connections cannot be closed from this one: they are left to
            # the collector (a test client without its lifespan runs each request on a new loop).
            counter = self._counter = _LoopCounter(self._url, self._script.sha)
        if isinstance(held, Decision):
            ahead = leases.ahead(key)
            if ahead:
                self._reserve_ahead(counter, key, limit, window_seconds, ahead)
            return held
        # One reservation per key at a time on the loop: lookups that find none held wait for
        # the one in flight (sharing its failure, so an outage costs one timeout, not one each)
        # rather than each reserving a batch of their own.
        while (pending := counter.reserving.get(key)) is not None:
            leases.abandon(key, held)
            await asyncio.shield(pending)
            held = leases.take(key, limit)
            if isinstance(held, Decision):
                return held
        reserved = counter.reserving[key] = counter.loop.create_future()
        decision = None
        try:
            sent_at = leases.clock()
            count, ttl_ms = await counter.hit(self._prefix + key, window_seconds * 1000, held)
            decision = leases.record(key, limit, held, int(count), int(ttl_ms), sent_at)
        except Exception as error:
            reserved.set_exception(error)
            reserved.exception()  # retrieved: only the waiters, if any, need to see it
            raise
        finally:
            del counter.reserving[key]
            if decision is None:
                leases.abandon(key, held)
            if not reserved.done():  # done, or cancelled: the waiters take or reserve again
                reserved.set_result(None)
        return decision

    def _reserve_ahead(
        self, counter: _LoopCounter, key: str, limit: int, window_seconds: int, size: int
    ) -> None:
        """Reserve `size` counts in a task of the loop, as `hit_async` reserves for itself:
        lookups that run out meanwhile wait for it (`counter.reserving`)."""
        leases = self._leases
        if key in counter.reserving:
            leases.abandon(key, size)
            return
        reserved = counter.reserving[key] = counter.loop.create_future()

        async def reserve() -> None:
            recorded = False
            try:
                sent_at = leases.clock()
                count, ttl_ms = await counter.hit(self._prefix + key, window_seconds * 1000, size)
                leases.record(key, limit, size, int(count), int(ttl_ms), sent_at, answering=False)
                recorded = True
            except Exception as error:  # the next lookup that runs out asks, and logs
                log.debug("rate limit counts not reserved ahead: %s", error)
            finally:
                counter.reserving.pop(key, None)
                if not recorded:
                    leases.abandon(key, size)
                if not reserved.done():
                    reserved.set_result(None)

        task = counter.loop.create_task(reserve(), name="townhall-ratelimit-ahead")
        counter.ahead.add(task)  # a reference until it ends (the loop keeps only weak ones)
        task.add_done_callback(counter.ahead.discard)

    def close(self) -> None:
        self._client.close()

    async def aclose(self) -> None:
        """Close the running loop's connections, if it made some; a later hit makes more."""
        counter, self._counter = self._counter, None
        if counter is not None and counter.loop is asyncio.get_running_loop():
            await counter.aclose()


class _LoopCounter:
    """`redis.asyncio` connections of one event loop, each running the counter script for one
    request at a time: `EVALSHA`, or `EVAL` (which caches the script) when the server does not
    know it yet.

    The client's `execute_command` and its pool (a lock, retry wrappers and metrics hooks per
    command) cost 45 us of CPU per hit here, a fifth of an async status lookup, against 27-30
    us for the connection's own `send_command` and `read_response`. A connection that
    fails mid-command disconnects itself (redis-py does so on any error or cancellation
    while sending or reading) and is dropped; a refusal from Redis leaves it usable.
    """

    def __init__(self, url: str, sha: str) -> None:
        from redis.asyncio import ConnectionPool
        from redis.exceptions import NoScriptError, ResponseError

        self.loop = asyncio.get_running_loop()
        # Only a factory of connections configured from the URL (address, database,
        # credentials, TLS, timeouts); its own checkout is not used.
        self._factory = ConnectionPool.from_url(url, **_REDIS_TIMEOUTS)
        self._sha = sha  # the script's SHA1, as the blocking client computed it
        self._idle: list[Any] = []
        # Key -> the reservation in flight for it (`RedisBackend.hit_async`).
        self.reserving: dict[str, asyncio.Future[None]] = {}
        self.ahead: set[asyncio.Task[None]] = set()  # reservations ahead in flight
        self._no_script = NoScriptError
        self._refused = ResponseError

    async def hit(self, key: str, window_ms: int, reserved: int) -> Any:
        """Reserve `reserved` counts of `key`: Redis's reply, {count, ms left}."""
        connection = self._idle.pop() if self._idle else self._factory.make_connection()
        try:
            await connection.send_command("EVALSHA", self._sha, 1, key, window_ms, reserved)
            try:
                reply = await connection.read_response()
            except self._no_script:
                await connection.send_command("EVAL", _HIT_SCRIPT, 1, key, window_ms, reserved)
                reply = await connection.read_response()
        except self._refused:
            self._idle.append(connection)  # an error reply: the connection is in step
            raise
        self._idle.append(connection)
        return reply

    async def aclose(self) -> None:
        for task in tuple(self.ahead):
            task.cancel()
        idle, self._idle = self._idle, []
        for connection in idle:
            await connection.disconnect()


class RateLimiter:
    """The policies of one installation over one backend."""

    def __init__(
        self,
        backend: Backend,
        limits: dict[str, tuple[int, int]],
        *,
        exempt_permission: str | None = None,
    ) -> None:
        self.backend = backend
        self.limits = limits
        self.exempt_permission = exempt_permission
        self._last_failure_log = 0.0

    @classmethod
    def from_settings(cls, settings: Settings) -> RateLimiter | None:
        """None when `rate_limits_enabled` is off; Redis when `redis_url` is set."""
        if not settings.rate_limits_enabled:
            return None
        limits = {name: parse_rate(getattr(settings, field)) for name, field in POLICIES.items()}
        backend: Backend
        if settings.redis_url:
            backend = RedisBackend.from_url(
                settings.redis_url, prefix=settings.rate_limit_redis_prefix
            )
        else:
            backend = MemoryBackend()
        return cls(backend, limits, exempt_permission=settings.rate_limit_exempt_permission)

    def check(self, policy: str, subject: str) -> Decision:
        """Count one request of `subject` (`token:12`, `ip:192.0.2.1`) under `policy`."""
        limit, window = self.limits[policy]
        try:
            return self.backend.hit(f"{policy}:{subject}", limit, window)
        except Exception as error:  # Redis down, timed out, or refusing: let the request in
            return self._unavailable(error, limit)

    async def check_async(self, policy: str, subject: str) -> Decision:
        """`check` on the event loop."""
        limit, window = self.limits[policy]
        try:
            return await self.backend.hit_async(f"{policy}:{subject}", limit, window)
        except Exception as error:
            return self._unavailable(error, limit)

    def _unavailable(self, error: Exception, limit: int) -> Decision:
        now = time.monotonic()
        if now - self._last_failure_log > 60:
            self._last_failure_log = now
            log.warning("rate limiter unavailable, not limiting: %s", error)
        return Decision(True, 0, limit, 1)

    def enforce(self, request: Request, actor: Actor) -> None:
        """Count the request; raise 429 with `Retry-After` when its policy's limit is passed."""
        counted = self._counted(request, actor)
        if counted is not None:
            self._refuse_over_limit(counted[0], self.check(*counted))

    async def enforce_async(self, request: Request, actor: Actor) -> None:
        """`enforce` on the event loop (the Redis counter through `redis.asyncio`)."""
        counted = self._counted(request, actor)
        if counted is not None:
            self._refuse_over_limit(counted[0], await self.check_async(*counted))

    async def aclose(self) -> None:
        """Close what `enforce_async` opened on the running loop."""
        await self.backend.aclose()

    def _counted(self, request: Request, actor: Actor) -> tuple[str, str] | None:
        """The policy and subject that count this request, or None when nothing does."""
        # The scope's path, as the middlewares read it: `request.url` would parse a whole URL.
        policy = policy_for(request.method, request.scope["path"])
        if policy is None or actor.via in ("system", "cli"):
            return None
        if self.exempt_permission and actor.can(self.exempt_permission):
            return None
        if actor.token_id is not None:
            return policy, f"token:{actor.token_id}"
        if actor.user_id is not None:  # a web session: colleagues share an office's address
            return policy, f"user:{actor.user_id}"
        return policy, f"ip:{request.client.host if request.client else 'unknown'}"

    def _refuse_over_limit(self, policy: str, decision: Decision) -> None:
        if decision.allowed:
            return
        _, window = self.limits[policy]
        period = next(name for name, seconds in PERIODS.items() if seconds == window)
        raise TownhallError(
            429,
            "too_many_requests",
            f"Too many {policy} requests: at most {decision.limit} per {period}. "
            f"Try again in {decision.retry_after} s.",
            headers={"Retry-After": str(decision.retry_after)},
        )


def enforce(request: Request, actor: Actor) -> None:
    """Apply the app's limiter (if any) to this request and its resolved caller."""
    limiter: RateLimiter | None = getattr(request.app.state, "rate_limiter", None)
    if limiter is not None:
        limiter.enforce(request, actor)


async def enforce_async(request: Request, actor: Actor) -> None:
    """`enforce` for a route on the event loop."""
    limiter: RateLimiter | None = getattr(request.app.state, "rate_limiter", None)
    if limiter is not None:
        await limiter.enforce_async(request, actor)
