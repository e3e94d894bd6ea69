"""Rate limits: both backends count and expire, and every API answers 429 with Retry-After.

The Redis tests use a real Redis with a key prefix of their own, so parallel runs never share
counters.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
import redis
from fastapi.testclient import TestClient

from townhall.app import create_app
from townhall.config import Settings
from townhall.ratelimit import (
    LEASE_CAP,
    MemoryBackend,
    RateLimiter,
    RedisBackend,
    _Leases,
    lease_size,
    parse_rate,
    policy_for,
)

from .conftest import REDIS_URL, auth, csrf_from, make_account
from .test_jobs import redis_available


class FakeClock:
    """Time that moves only when told to: the window's expiry is tested without sleeping."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def redis_prefix() -> Iterator[str]:
    if not redis_available():
        pytest.skip(f"Redis is not reachable at {REDIS_URL}")
    prefix = f"townhall-test:{uuid.uuid4().hex}:"
    yield prefix
    client = redis.Redis.from_url(REDIS_URL)
    for key in client.scan_iter(f"{prefix}*"):
        client.delete(key)
    client.close()


def test_parse_rate() -> None:
    assert parse_rate("30/minute") == (30, 60)
    assert parse_rate("1/second") == (1, 1)
    assert parse_rate("5/day") == (5, 86400)
    for bad in ("0/minute", "ten/minute", "5/week", "5"):
        with pytest.raises(ValueError, match="is not N/"):
            parse_rate(bad)


def test_settings_refuse_a_malformed_limit() -> None:
    with pytest.raises(ValueError, match="rate_limit_sql"):
        Settings(rate_limit_sql="lots")


@pytest.mark.parametrize(
    ("method", "path", "policy"),
    [
        ("GET", "/api/v1/datasets/trees/sql", "sql"),
        ("POST", "/api/v1/sql", "sql"),
        ("GET", "/api/v1/sql/download.csv", "sql"),
        ("POST", "/api/3/action/datastore_search_sql", "sql"),
        ("GET", "/api/action/datastore_search_sql", "sql"),
        ("POST", "/api/3/action/package_search", "reads"),
        ("POST", "/api/3/action/package_update", "writes"),
        ("POST", "/api/3/action/resource_create", "writes"),
        ("GET", "/api/v1/datasets", "reads"),
        ("GET", "/open311/v2/requests.json", "reads"),
        ("POST", "/login", "login"),
        ("GET", "/login", None),
        ("GET", "/datasets", None),
        ("POST", "/api/v1/requests", "submissions"),
        ("POST", "/requests/new", "submissions"),
        ("POST", "/open311/v2/requests.xml", "submissions"),
        ("POST", "/requests/SR-ABCD1234/messages", "messages"),
        ("POST", "/api/v1/requests/SR-ABCD1234/replies", "messages"),
        ("PATCH", "/api/v1/datasets/trees", "writes"),
        ("POST", "/api/v1/requests/SR-ABCD1234/transitions", "writes"),
    ],
)
def test_policy_for(method: str, path: str, policy: str | None) -> None:
    assert policy_for(method, path) == policy


def test_memory_backend_counts_then_resets_when_the_window_ends() -> None:
    clock = FakeClock()
    backend = MemoryBackend(clock)
    decisions = [backend.hit("sql:ip:1", 3, 60) for _ in range(4)]
    assert [d.allowed for d in decisions] == [True, True, True, False]
    assert decisions[-1].retry_after == 60
    clock.now += 45
    assert backend.hit("sql:ip:1", 3, 60).retry_after == 15
    assert backend.hit("sql:ip:2", 3, 60).allowed  # another caller has its own count
    clock.now += 16
    assert backend.hit("sql:ip:1", 3, 60).allowed


def test_memory_backend_sweeps_expired_keys() -> None:
    clock = FakeClock()
    backend = MemoryBackend(clock)
    backend.SWEEP_ABOVE = 5
    for number in range(5):
        backend.hit(f"reads:ip:{number}", 10, 1)
    clock.now += 2
    backend.hit("reads:ip:new", 10, 1)
    assert list(backend._windows) == ["reads:ip:new"]


def test_redis_backend_is_shared_and_expires(redis_prefix: str) -> None:
    one = RedisBackend.from_url(REDIS_URL, prefix=redis_prefix)
    two = RedisBackend.from_url(REDIS_URL, prefix=redis_prefix)  # a second node
    try:
        assert [one.hit("sql:token:7", 2, 60).allowed for _ in range(2)] == [True, True]
        refused = two.hit("sql:token:7", 2, 60)
        assert not refused.allowed
        assert refused.count == 3
        assert 1 <= refused.retry_after <= 60
        assert two.hit("sql:token:8", 2, 60).allowed
        ttl = redis.Redis.from_url(REDIS_URL).pttl(f"{redis_prefix}sql:token:7")
        assert 0 < ttl <= 60_000
    finally:
        one.close()
        two.close()


def test_redis_backend_window_ends(redis_prefix: str) -> None:
    backend = RedisBackend.from_url(REDIS_URL, prefix=redis_prefix)
    try:
        assert backend.hit("login:ip:1", 1, 1).allowed
        assert not backend.hit("login:ip:1", 1, 1).allowed
        redis.Redis.from_url(REDIS_URL).pexpire(f"{redis_prefix}login:ip:1", 1)
        time.sleep(0.05)
        assert backend.hit("login:ip:1", 1, 1).allowed
    finally:
        backend.close()


def test_unreachable_redis_lets_requests_through() -> None:
    limiter = RateLimiter(
        RedisBackend.from_url("redis://127.0.0.1:9/0", prefix="x:"), {"sql": (1, 60)}
    )
    assert limiter.check("sql", "ip:1").allowed
    assert limiter.check("sql", "ip:1").allowed

    async def twice() -> list[bool]:
        try:
            return [(await limiter.check_async("sql", "ip:1")).allowed for _ in range(2)]
        finally:
            await limiter.aclose()

    assert asyncio.run(twice()) == [True, True]

    async def at_once() -> list[bool]:
        """Lookups waiting on one reservation share its failure: all let through."""
        try:
            hits = [limiter.check_async("sql", "ip:2") for _ in range(5)]
            return [decision.allowed for decision in await asyncio.gather(*hits)]
        finally:
            await limiter.aclose()

    assert asyncio.run(at_once()) == [True] * 5


# On the event loop (the async status lookups) ------------------------------------------------


def test_memory_backend_counts_the_same_on_the_loop() -> None:
    clock = FakeClock()
    backend = MemoryBackend(clock)

    async def hits() -> list[bool]:
        return [(await backend.hit_async("reads:ip:1", 2, 60)).allowed for _ in range(2)]

    assert asyncio.run(hits()) == [True, True]
    assert not backend.hit("reads:ip:1", 2, 60).allowed  # one window for both paths


def test_redis_async_hits_share_the_sync_count_and_follow_the_loop(redis_prefix: str) -> None:
    """`hit_async` runs the same script on the same key as `hit`; each event loop gets
    connections of its own (a connection is bound to the loop that made it), closed by
    `aclose`."""
    backend = RedisBackend.from_url(REDIS_URL, prefix=redis_prefix)
    counters = []

    async def hit_on_a_new_loop() -> int:
        try:
            decision = await backend.hit_async("reads:ip:9", 3, 60)
            counters.append(backend._counter)
            return decision.count
        finally:
            await backend.aclose()

    try:
        assert backend.hit("reads:ip:9", 3, 60).count == 1
        assert asyncio.run(hit_on_a_new_loop()) == 2
        assert asyncio.run(hit_on_a_new_loop()) == 3
        refused = backend.hit("reads:ip:9", 3, 60)
        assert not refused.allowed
        assert refused.count == 4
    finally:
        backend.close()
    assert len(counters) == 2
    assert counters[0] is not counters[1]
    assert backend._counter is None  # closed and forgotten


def test_redis_async_hit_loads_a_script_the_server_does_not_know(redis_prefix: str) -> None:
    """After a Redis restart (or SCRIPT FLUSH) EVALSHA is refused: the script runs by EVAL,
    which caches it again. Here the counter asks for a SHA no server knows."""
    from townhall.ratelimit import _LoopCounter

    async def hits() -> list[int]:
        counter = _LoopCounter(REDIS_URL, "0" * 40)
        try:
            return [
                int((await counter.hit(f"{redis_prefix}reads:ip:5", 60_000, n))[0]) for n in (1, 3)
            ]
        finally:
            await counter.aclose()

    assert asyncio.run(hits()) == [1, 4]  # the second reserved 3 counts at once


def test_enforce_async_refuses_in_the_same_terms(redis_prefix: str) -> None:
    from starlette.requests import Request

    from townhall.actor import ANONYMOUS
    from townhall.errors import TownhallError

    limiter = RateLimiter(RedisBackend.from_url(REDIS_URL, prefix=redis_prefix), {"reads": (1, 60)})
    scope = {
        "type": "http",
        "method": "GET",
        "path": "/api/v1/requests/RVT-1",
        "headers": [],
        "client": ("192.0.2.7", 5000),
    }

    async def twice() -> TownhallError:
        try:
            await limiter.enforce_async(Request(scope), ANONYMOUS)
            with pytest.raises(TownhallError) as refused:
                await limiter.enforce_async(Request(scope), ANONYMOUS)
            return refused.value
        finally:
            await limiter.aclose()

    try:
        error = asyncio.run(twice())
        assert error.status == 429
        assert "at most 1 per minute" in error.message
        assert 1 <= int(error.headers["Retry-After"]) <= 60
        counter = redis.Redis.from_url(REDIS_URL)
        assert int(counter.get(f"{redis_prefix}reads:ip:192.0.2.7")) == 2
        counter.close()
    finally:
        limiter.backend.close()


# Counts reserved in batches -------------------------------------------------------------------


def _redis_count(key: str) -> int:
    client = redis.Redis.from_url(REDIS_URL)
    try:
        return int(client.get(key) or 0)
    finally:
        client.close()


def test_lease_size_grows_with_the_room_left() -> None:
    assert [lease_size(room) for room in (None, 0, -3, 31, 32, 160, 1023, 1024, 10**8)] == [
        1, 1, 1, 1, 2, 10, 63, 64, 64
    ]  # fmt: skip


def test_small_limit_is_exact_across_two_nodes(redis_prefix: str) -> None:
    one = RedisBackend.from_url(REDIS_URL, prefix=redis_prefix)
    two = RedisBackend.from_url(REDIS_URL, prefix=redis_prefix)
    try:
        decisions = [(one, two)[i % 2].hit("reads:ip:1", 10, 60) for i in range(30)]
    finally:
        one.close()
        two.close()
    assert [d.allowed for d in decisions] == [True] * 10 + [False] * 20
    assert [d.count for d in decisions] == list(range(1, 31))  # one by one below 32 left
    assert _redis_count(f"{redis_prefix}reads:ip:1") == 30


def test_large_limit_reserves_batches_and_two_nodes_never_pass_it(redis_prefix: str) -> None:
    limit, key = 2000, "reads:ip:2"
    one = RedisBackend.from_url(REDIS_URL, prefix=redis_prefix)
    two = RedisBackend.from_url(REDIS_URL, prefix=redis_prefix)
    try:
        assert one.hit(key, limit, 60).count == 1  # a window not seen yet: one count
        assert one.hit(key, limit, 60).count == 2  # 1999 left: a batch of 64, counts 2-65
        assert _redis_count(redis_prefix + key) == 65
        assert one.hit(key, limit, 60).count == 3  # spent locally
        assert _redis_count(redis_prefix + key) == 65
        allowed = [3]
        for i in range(2 * limit):  # both nodes drain the window, interleaved
            decision = (two, one)[i % 2].hit(key, limit, 60)
            if decision.allowed:
                allowed.append(decision.count)
            else:
                assert decision.count > limit
                assert 1 <= decision.retry_after <= 60
    finally:
        one.close()
        two.close()
    # Every count owned by one node only, and all of them spent: exactly the limit, no more.
    assert sorted([1, 2, *allowed]) == list(range(1, limit + 1))


def test_counts_a_node_stops_spending_are_never_let_through(redis_prefix: str) -> None:
    limit, key = 500, "reads:ip:3"
    gone = RedisBackend.from_url(REDIS_URL, prefix=redis_prefix)
    stays = RedisBackend.from_url(REDIS_URL, prefix=redis_prefix)
    try:
        assert gone.hit(key, limit, 60).allowed
        assert gone.hit(key, limit, 60).allowed  # holds counts 3-32 now (499 // 16 = 31)
        passed = sum(stays.hit(key, limit, 60).allowed for _ in range(limit))
    finally:
        gone.close()
        stays.close()
    assert passed == limit - 32


def test_threads_of_one_node_hold_one_batch_at_a_time(redis_prefix: str) -> None:
    """Threads that find no count held while a batch is on its way reserve one count each,
    which they spend at once: whatever the timing, at most one batch is left unspent."""
    key = "reads:token:9"
    backend = RedisBackend.from_url(REDIS_URL, prefix=redis_prefix)

    def drain() -> list[int]:
        return [backend.hit(key, 100_000, 60).count for _ in range(200)]

    try:
        with ThreadPoolExecutor(16) as pool:
            counts = [c for batch in pool.map(lambda _: drain(), range(16)) for c in batch]
    finally:
        backend.close()
    assert len(set(counts)) == len(counts) == 3200  # no count spent twice
    assert 3200 < _redis_count(redis_prefix + key) <= 3200 + LEASE_CAP - 1


def test_a_lease_ends_with_its_window(redis_prefix: str) -> None:
    key = "reads:ip:4"
    backend = RedisBackend.from_url(REDIS_URL, prefix=redis_prefix)
    try:
        backend.hit(key, 1000, 1)
        assert backend.hit(key, 1000, 1).count == 2  # reserves 62
        assert _redis_count(redis_prefix + key) == 63
        time.sleep(1.05)
        fresh = backend.hit(key, 1000, 1)
        assert (fresh.allowed, fresh.count) == (True, 1)  # the held counts died with the window
        assert _redis_count(redis_prefix + key) == 1
        assert backend.hit(key, 1000, 1).count == 2  # and the new window batches again
        assert _redis_count(redis_prefix + key) == 63
    finally:
        backend.close()


def test_refusal_gives_the_seconds_left_in_the_window(redis_prefix: str) -> None:
    key = "sql:token:5"
    backend = RedisBackend.from_url(REDIS_URL, prefix=redis_prefix)
    try:
        assert all(backend.hit(key, 3, 60).allowed for _ in range(3))
        refused = backend.hit(key, 3, 60)
        assert (refused.allowed, refused.count) == (False, 4)
        assert 59 <= refused.retry_after <= 60
        redis.Redis.from_url(REDIS_URL).pexpire(redis_prefix + key, 2500)
        assert backend.hit(key, 3, 60).retry_after == 3  # 2.5 s left, rounded up
    finally:
        backend.close()


def test_async_hits_batch_and_stay_exact(redis_prefix: str) -> None:
    """On the loop, lookups that find no count held wait for the one reservation in flight:
    200 at once make 5 round trips (1, then 64 at a time), not 200."""
    one = RedisBackend.from_url(REDIS_URL, prefix=redis_prefix)
    two = RedisBackend.from_url(REDIS_URL, prefix=redis_prefix)

    async def hits() -> tuple[list[int], list[bool], list[int]]:
        try:
            burst = await asyncio.gather(
                *(one.hit_async("reads:ip:6", 2000, 60) for _ in range(200))
            )
            small = await asyncio.gather(
                *((one, two)[i % 2].hit_async("reads:ip:7", 10, 60) for i in range(30))
            )
            over = [await two.hit_async("reads:ip:8", 1, 60) for _ in range(2)]
            return (
                [d.count for d in burst if d.allowed],
                [d.allowed for d in small],
                [d.retry_after for d in over if not d.allowed],
            )
        finally:
            await one.aclose()
            await two.aclose()

    try:
        burst, small, retry_after = asyncio.run(hits())
    finally:
        one.close()
        two.close()
    assert sorted(burst) == list(range(1, 201))
    assert _redis_count(f"{redis_prefix}reads:ip:6") == 1 + 4 * 64
    assert small.count(True) == 10
    assert len(retry_after) == 1
    assert 59 <= retry_after[0] <= 60


def test_leases_of_ended_windows_are_swept() -> None:
    clock = FakeClock()
    leases = _Leases(clock)
    for i in range(_Leases.SWEEP_ABOVE):
        leases.record(f"reads:ip:{i}", 10_000, 64, 64, 1000, clock.now)
    clock.now += 2  # every window has ended
    leases.record("reads:ip:new", 10_000, 1, 1, 1000, clock.now)
    assert list(leases._leases) == ["reads:ip:new"]
    for i in range(_Leases.SWEEP_ABOVE - 1):  # a flood of addresses, all in their window
        leases.record(f"reads:ip:{i}", 10_000, 1, 1, 60_000, clock.now)
    leases.record("reads:ip:last", 10_000, 1, 1, 60_000, clock.now)
    assert list(leases._leases) == ["reads:ip:last"]  # forgotten: held counts go unused
    assert leases.take("reads:ip:0", 10_000) == 1  # a forgotten key starts again at one


# Over HTTP ------------------------------------------------------------------------------------


def _client(runtime, **limits: object) -> TestClient:
    """An app over the test's runtime with some limits set low."""
    return TestClient(create_app(runtime.settings.model_copy(update=limits), runtime=runtime))


def test_native_api_answers_429_with_retry_after(runtime) -> None:
    with _client(runtime, rate_limit_reads="3/minute") as client:
        for _ in range(3):
            assert client.get("/api/v1/datasets").status_code == 200
        refused = client.get("/api/v1/datasets")
    assert refused.status_code == 429
    assert 1 <= int(refused.headers["retry-after"]) <= 60
    body = refused.json()
    assert body["ok"] is False
    assert body["code"] == "too_many_requests"
    assert "at most 3 per minute" in body["message"]


def test_sql_limit_counts_per_token_and_staff_are_exempt(runtime) -> None:
    partner = make_account(runtime, "partner")
    other = make_account(runtime, "partner")
    staff = make_account(runtime, "staff")
    with _client(runtime, rate_limit_sql="2/minute") as client:
        sql = {"sql": "select 1"}
        statuses = [
            client.get("/api/v1/sql", params=sql, headers=auth(partner)).status_code
            for _ in range(3)
        ]
        assert statuses[:2] != [429, 429]
        assert statuses[2] == 429
        # Another token from the same address has its own count.
        assert client.get("/api/v1/sql", params=sql, headers=auth(other)).status_code != 429
        for _ in range(5):
            assert client.get("/api/v1/sql", params=sql, headers=auth(staff)).status_code != 429


def test_ckan_answers_429_in_its_own_shape(runtime) -> None:
    with _client(runtime, rate_limit_reads="1/minute") as client:
        assert client.get("/api/3/action/package_list").status_code == 200
        refused = client.post("/api/3/action/package_search", json={})
    assert refused.status_code == 429
    assert refused.headers["retry-after"]
    assert refused.json()["success"] is False
    assert refused.json()["error"]["__type"] == "Too Many Requests"


def test_open311_post_answers_429_in_its_own_shape(runtime) -> None:
    partner = make_account(runtime, "partner")
    form = {"api_key": partner.token, "service_code": "nope", "description": "x"}
    with _client(runtime, rate_limit_submissions="2/minute") as client:
        first = [client.post("/open311/v2/requests.json", data=form) for _ in range(2)]
        refused = client.post("/open311/v2/requests.json", data=form)
    assert [r.status_code for r in first] == [404, 404]  # unknown service, yet counted
    assert refused.status_code == 429
    assert refused.headers["retry-after"]
    assert refused.json()[0]["code"] == 429
    assert "submissions" in refused.json()[0]["description"]


def test_staff_token_submits_without_limit(runtime) -> None:
    staff = make_account(runtime, "staff")
    with _client(runtime, rate_limit_submissions="1/minute", rate_limit_writes="1/minute") as c:
        statuses = [
            c.post("/api/v1/requests", json={}, headers=auth(staff)).status_code for _ in range(4)
        ]
    assert 429 not in statuses
    assert statuses == [422] * 4


def test_login_form_gets_an_html_429(runtime) -> None:
    with _client(runtime, rate_limit_login="2/minute") as client:
        page = client.get("/login")
        form = {"email": "nobody@city.example", "password": "x" * 12}
        form["csrf_token"] = csrf_from(page.text)
        for _ in range(2):
            assert client.post("/login", data=form).status_code != 429
        refused = client.post("/login", data=form, headers={"Accept": "text/html"})
    assert refused.status_code == 429
    assert refused.headers["retry-after"]
    assert refused.headers["content-type"].startswith("text/html")


def test_limits_can_be_switched_off(runtime) -> None:
    with _client(runtime, rate_limits_enabled=False, rate_limit_reads="1/minute") as client:
        assert [client.get("/api/v1/datasets").status_code for _ in range(3)] == [200] * 3


def test_two_nodes_share_redis_counters(runtime, redis_prefix: str) -> None:
    limits = {
        "redis_url": REDIS_URL,
        "rate_limit_redis_prefix": redis_prefix,
        "rate_limit_reads": "3/minute",
    }
    # Both apps share the test's runtime (its jobs and events stay in process); only the
    # limiter reads redis_url from the app's settings.
    with _client(runtime, **limits) as one, _client(runtime, **limits) as two:
        statuses = [node.get("/api/v1/datasets").status_code for node in (one, two, one, two)]
    assert statuses == [200, 200, 200, 429]


def test_counts_are_reserved_ahead_far_from_the_limit(redis_prefix) -> None:
    """On the event loop, far from the limit, the next batch is asked for while half a batch
    is still held, so lookups find counts held instead of waiting on Redis; each count is
    still spent once, in order."""
    backend = RedisBackend.from_url(REDIS_URL, prefix=redis_prefix)

    async def hits(times: int) -> list[int]:
        counts = [(await backend.hit_async("reads:ip:a", 100_000, 60)).count for _ in range(times)]
        await asyncio.sleep(0.2)  # the reservation ahead lands
        return counts

    try:
        counts = asyncio.run(hits(40))
        assert counts == list(range(1, 41))
        # 1 (the first, room unknown), a batch of 64, then 64 more ahead once under 32 held.
        assert _redis_count(f"{redis_prefix}reads:ip:a") == 1 + 64 + 64
    finally:
        backend.close()


def test_nothing_is_reserved_ahead_near_the_limit(redis_prefix) -> None:
    backend = RedisBackend.from_url(REDIS_URL, prefix=redis_prefix)

    async def hits(times: int) -> list[int]:
        counts = [(await backend.hit_async("reads:ip:b", 1_000, 60)).count for _ in range(times)]
        await asyncio.sleep(0.2)
        return counts

    try:
        assert asyncio.run(hits(40)) == list(range(1, 41))
        # 1, then one batch of 999 // 16 = 62: no second batch before the first is spent.
        assert _redis_count(f"{redis_prefix}reads:ip:b") == 1 + 62
    finally:
        backend.close()
