"""Kept status answers across nodes (`townhall.cache` over Redis), on PostgreSQL.

What is checked: one node's change drops the other node's answers; caching is off while Redis
is unreachable (lookups still answer); a listener that had to subscribe again forgets what it
kept, since events published while it was away are lost.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
import redis
from fastapi.testclient import TestClient

from townhall.actor import system_actor
from townhall.app import create_app
from townhall.db import unit_of_work
from townhall.events import EventBus
from townhall.runtime import Runtime
from townhall.service_requests import actions

from .conftest import REDIS_URL
from .test_cache import _answers
from .test_ratelimit import redis_available
from .test_service_requests import setup_city, submit

STAFF = system_actor("test")


@pytest.fixture
def backend() -> str:
    """PostgreSQL only: two nodes need a database server (one SQLite file has one server)."""
    return "postgresql"


def _node(settings, namespace: str) -> Runtime:
    node = Runtime(settings.model_copy(update={"redis_url": REDIS_URL}))
    # Events of this test only: other test workers share the Redis server.
    node.__dict__["events"] = EventBus(node.settings, namespace=namespace)
    return node


@pytest.fixture
def two_nodes(runtime) -> Iterator[tuple[Runtime, Runtime]]:
    if not redis_available():
        pytest.skip(f"Redis is not reachable at {REDIS_URL}")
    namespace = f"townhall-test-{uuid.uuid4().hex}"
    nodes = (_node(runtime.settings, namespace), _node(runtime.settings, namespace))
    yield nodes
    for node in nodes:
        node.close()


def _wait_for(condition, seconds: float = 5.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return bool(condition())


def _reader_app(node: Runtime):
    # Not limited: the limiter's Redis counters are not what these tests look at.
    return create_app(node.settings.model_copy(update={"rate_limits_enabled": False}), runtime=node)


def test_a_change_on_one_node_drops_the_answers_of_the_other(runtime, two_nodes) -> None:
    setup_city(runtime)
    code = submit(runtime, description="Overflowing bin.", now=datetime.now(UTC))
    reader, writer = two_nodes
    with TestClient(_reader_app(reader)) as client:
        cache = client.app.state.status_cache
        assert _wait_for(reader.invalidations.delivering)
        before = _answers(client, code)
        assert len(cache) == 3
        assert _answers(client, code) == before  # kept
        with unit_of_work(writer.session_factory) as session:
            actions.add_note(session, actor=STAFF, code=code, public_note="Emptied today.")
        assert _wait_for(lambda: len(cache) == 0)
        after = _answers(client, code)
        assert b"Emptied today." in after[0]


def test_caching_is_off_while_redis_is_unreachable(runtime) -> None:
    setup_city(runtime)
    code = submit(runtime, description="Leaning sign.", now=datetime.now(UTC))
    node = Runtime(runtime.settings.model_copy(update={"redis_url": "redis://127.0.0.1:9/0"}))
    try:
        with TestClient(_reader_app(node)) as client:
            assert _answers(client, code) == _answers(client, code)
            assert len(client.app.state.status_cache) == 0
    finally:
        node.close()


def test_a_listener_that_subscribed_again_forgets_what_it_kept(runtime, two_nodes) -> None:
    setup_city(runtime)
    code = submit(runtime, description="Fallen branch.", now=datetime.now(UTC))
    reader, _ = two_nodes
    with TestClient(_reader_app(reader)) as client:
        cache = client.app.state.status_cache
        assert _wait_for(reader.invalidations.delivering)
        _answers(client, code)
        assert len(cache) == 3
        subscribed = reader.events.subscription
        assert subscribed is not None
        # Redis drops the listener's connection: events published meanwhile would be lost.
        admin = redis.Redis.from_url(REDIS_URL)
        try:
            name = f"townhall-events@{reader.events.namespace}"
            killed = sum(
                admin.client_kill_filter(_id=c["id"])
                for c in admin.client_list()
                if c.get("name") == name
            )
        finally:
            admin.close()
        assert killed >= 1
        assert _wait_for(lambda: (reader.events.subscription or 0) > subscribed)
        assert _wait_for(reader.invalidations.delivering)
        assert len(cache) == 0
        _answers(client, code)
        assert len(cache) == 3
