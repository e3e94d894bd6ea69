"""The async status lookups on PostgreSQL (`service_requests.api.status_lookup_is_async`):
an anonymous lookup runs on the event loop through `townhall.aiodb.AsyncReadPool` and the
rate limiter's `redis.asyncio` counter.

What is checked: the answer is byte for byte the thread path's (a caller with a token still
takes that path), the Redis count is the one the thread path uses, a connection the server
dropped is replaced without an error, the pool follows the event loop and closes with the app,
and bad input is a 4xx on every path. PostgreSQL only: SQLite keeps its own on-loop path
(tests/test_load_bench_smoke.py runs both backends).
"""

from __future__ import annotations

import asyncio

import psycopg
import pytest
import redis
from fastapi.testclient import TestClient

from townhall.aiodb import AsyncReadPool
from townhall.app import create_app

from . import test_ratelimit as ratelimit_tests
from .conftest import PG_HOST, REDIS_URL, auth
from .test_load_bench_smoke import _worked_request

PATHS = ("/api/v1/requests/{code}", "/open311/v2/requests/{code}.json")


@pytest.fixture
def backend() -> str:
    """PostgreSQL only (overrides the fixture that runs every test on both backends)."""
    return "postgresql"


redis_prefix = ratelimit_tests.redis_prefix  # a key prefix of its own, emptied afterwards


def _app(runtime, **settings: object):
    return create_app(runtime.settings.model_copy(update=settings), runtime=runtime)


def _terminate_other_sessions(runtime) -> int:
    """End every other session of the test's database, as a server restart or an idle
    timeout would (each test worker has a database of its own)."""
    name = runtime.engine.url.database
    with psycopg.connect(f"host={PG_HOST} port=5432 user=postgres dbname={name}") as connection:
        return len(
            connection.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE datname = current_database() AND pid <> pg_backend_pid()"
            ).fetchall()
        )


def test_anonymous_lookups_answer_byte_for_byte_what_the_thread_path_answers(
    runtime, admin, redis_prefix
):
    original, code = _worked_request(runtime)
    app = _app(runtime, redis_url=REDIS_URL, rate_limit_redis_prefix=redis_prefix)
    with TestClient(app) as client:
        for tracking_code in (original, code, code.lower()):
            for path in PATHS:
                url = path.format(code=tracking_code)
                anonymous = client.get(url)
                with_token = client.get(url, headers=auth(admin))  # the thread path
                assert anonymous.status_code == with_token.status_code == 200
                assert anonymous.content == with_token.content
                assert anonymous.headers["content-type"] == with_token.headers["content-type"]
        # A query string goes through FastAPI's validation, then the same async lookup.
        ours = runtime.settings.base_url.split("//")[1].split(":")[0].split("/")[0]
        url = PATHS[1].format(code=code)
        assert client.get(url, params={"jurisdiction_id": ours}).content == client.get(url).content
        xml = client.get(f"/open311/v2/requests/{code}.xml")
        assert xml.status_code == 200
        assert xml.content == client.get(xml.url.path, headers=auth(admin)).content
        pool = app.state.status_read_pool
        assert pool.idle >= 1  # the anonymous lookups went through the async pool
    assert pool.idle == 0  # ... which the lifespan closed


def test_native_history_comes_from_the_one_query(client, runtime):
    """The notes come back in history order, internal-only updates left out."""
    _, code = _worked_request(runtime)
    body = client.get(f"/api/v1/requests/{code}").json()
    kinds = [n["kind"] for n in body["history"]]
    assert kinds[0] == "created"
    assert kinds.count("note") == 1  # the update with only an internal note is not public
    assert [n["at"] for n in body["history"]] == sorted(n["at"] for n in body["history"])
    assert client.app.state.status_read_pool.idle >= 1


def test_async_lookups_count_in_the_same_redis_window_as_the_thread_path(runtime, redis_prefix):
    _, code = _worked_request(runtime)
    app = _app(
        runtime,
        redis_url=REDIS_URL,
        rate_limit_redis_prefix=redis_prefix,
        rate_limit_reads="4/minute",
    )
    with TestClient(app) as client:
        assert client.get("/api/v1/datasets").status_code == 200  # a sync route: 1
        assert client.get(f"/api/v1/requests/{code}").status_code == 200  # 2
        assert client.get(f"/open311/v2/requests/{code}.json").status_code == 200  # 3
        assert client.get("/api/v1/datasets").status_code == 200  # 4
        native = client.get(f"/api/v1/requests/{code}")
        open311 = client.get(f"/open311/v2/requests/{code}.json")
    assert native.status_code == open311.status_code == 429
    assert 1 <= int(native.headers["retry-after"]) <= 60
    assert native.json()["code"] == "too_many_requests"
    assert open311.json()[0]["code"] == 429  # in Open311's own error shape
    assert open311.headers["retry-after"]
    counter = redis.Redis.from_url(REDIS_URL)
    try:
        assert int(counter.get(f"{redis_prefix}reads:ip:testclient")) == 6
    finally:
        counter.close()


def test_a_connection_the_server_dropped_is_replaced_without_an_error(client, runtime):
    _, code = _worked_request(runtime)
    first = client.get(f"/api/v1/requests/{code}")
    assert first.status_code == 200
    assert client.get(f"/open311/v2/requests/{code}.json").status_code == 200
    assert _terminate_other_sessions(runtime) >= 1
    client.app.state.status_cache.clear()  # read the database again, not the kept answer
    again = client.get(f"/api/v1/requests/{code}")
    assert again.status_code == 200
    assert again.content == first.content
    assert _terminate_other_sessions(runtime) >= 1
    client.app.state.status_cache.clear()
    assert client.get(f"/open311/v2/requests/{code}.json").status_code == 200
    assert client.app.state.status_read_pool.idle >= 1


def test_an_unreachable_redis_lets_lookups_through(runtime):
    _, code = _worked_request(runtime)
    app = _app(runtime, redis_url="redis://127.0.0.1:9/0", rate_limit_reads="1/minute")
    with TestClient(app) as client:
        statuses = [client.get(f"/api/v1/requests/{code}").status_code for _ in range(3)]
    assert statuses == [200] * 3


def test_the_pool_follows_the_event_loop(runtime):
    """A test client outside `with` runs each request on a new event loop, without the
    lifespan: the pool drops the last loop's connections and opens one on the new loop.
    (The Redis counter's client follows the loop too: tests/test_ratelimit.py.)"""
    _, code = _worked_request(runtime)
    app = _app(runtime)
    client = TestClient(app)
    answers = [client.get(path.format(code=code)) for path in PATHS for _ in range(2)]
    assert [a.status_code for a in answers] == [200] * 4
    assert len({a.content for a in answers[:2]}) == 1
    assert app.state.status_read_pool.idle == 1  # only the last loop's connection is kept


@pytest.mark.parametrize("code", ["%00", "RVT-%00ABC", "x" * 300, "%F0%9F%8C%8A"])
def test_odd_codes_are_not_found_on_every_path(client, runtime, admin, code):
    _worked_request(runtime)
    for headers in ({}, auth(admin)):
        native = client.get(f"/api/v1/requests/{code}", headers=headers)
        assert native.status_code == 404, native.text
        open311 = client.get(f"/open311/v2/requests/{code}.json", headers=headers)
        assert open311.status_code == 404, open311.text
        extended = client.get(
            f"/open311/v2/requests/{code}.json", params={"extensions": "true"}, headers=headers
        )
        assert extended.status_code == 404, extended.text


# The pool itself -------------------------------------------------------------------------------


def test_the_pool_retries_only_a_dropped_connection_and_keeps_no_failed_one(runtime):
    pool = AsyncReadPool(runtime.read_engine, size=2)

    async def backend_pid(connection) -> int:
        return (await (await connection.execute("SELECT pg_backend_pid()")).fetchone())[0]

    async def fails(connection) -> None:
        raise ValueError("not the database's fault")

    calls = []

    async def bad_sql(connection) -> None:
        calls.append(1)
        await connection.execute("SELECT * FROM no_such_table")

    async def scenario() -> None:
        first = await backend_pid_run()
        assert pool.idle == 1
        with pytest.raises(ValueError):
            await pool.run(fails)
        assert pool.idle == 0  # closed, not given back
        second = await backend_pid_run()
        assert second != first
        assert _terminate_other_sessions(runtime) >= 1  # drops the idle connection
        third = await backend_pid_run()  # retried once on a new connection
        assert third != second
        with pytest.raises(psycopg.errors.UndefinedTable):
            await pool.run(bad_sql)
        assert calls == [1]  # an error of the query itself is not retried
        await pool.aclose()
        assert pool.idle == 0

    async def backend_pid_run() -> int:
        return await pool.run(backend_pid)

    asyncio.run(scenario())


def test_the_pool_holds_at_most_its_size_of_connections(runtime):
    pool = AsyncReadPool(runtime.read_engine, size=2)
    in_use, most = 0, 0

    async def slow(connection) -> None:
        nonlocal in_use, most
        in_use += 1
        most = max(most, in_use)
        await connection.execute("SELECT pg_sleep(0.05)")
        in_use -= 1

    async def scenario() -> None:
        await asyncio.gather(*(pool.run(slow) for _ in range(6)))
        assert pool.idle == 2
        await pool.aclose()

    asyncio.run(scenario())
    assert most == 2


def test_the_pool_refuses_sqlite(tmp_path):
    from sqlalchemy import create_engine

    with pytest.raises(ValueError, match="psycopg"):
        AsyncReadPool(create_engine(f"sqlite:///{tmp_path / 'x.db'}"))
