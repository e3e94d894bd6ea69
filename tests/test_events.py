"""The event bus (memory and Redis), publish-after-commit, and the SSE endpoint.

SSE is tested against a real uvicorn server on a loopback port (a thread of this process, or a
`townhall serve` subprocess for shutdown): the test client cannot stream an endless response.
"""

from __future__ import annotations

import asyncio
import json
import queue as thread_queue
import signal
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Coroutine, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from townhall.actor import system_actor
from townhall.audit.actions import record
from townhall.config import Settings
from townhall.db import unit_of_work
from townhall.events import Event, EventBus, StreamClosed, publish_after_commit

from .conftest import REDIS_URL, SECRET, auth, free_port, make_account, serve_in_thread
from .test_jobs import TOWNHALL, redis_available

# Helpers -----------------------------------------------------------------------------------


def bus_settings(kind: str, tmp_path: Path) -> Settings:
    return Settings(
        data_dir=tmp_path / "bus",
        redis_url=REDIS_URL if kind == "redis" else None,
        secret_key=SECRET,
    )


@pytest.fixture(params=["memory", "redis"])
def bus_kind(request: pytest.FixtureRequest) -> str:
    if request.param == "redis" and not redis_available():
        pytest.skip(f"Redis is not reachable at {REDIS_URL}")
    return request.param


def namespace() -> str:
    return f"townhall-test-{uuid.uuid4().hex[:12]}"


async def until_live(bus: EventBus, timeout: float = 10) -> None:
    """Wait until the bus would deliver (the Redis listener subscribes in the background)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            await bus.ping()
            return
        except Exception:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.05)


class LoopThread:
    """An event loop in a thread: what a server process gives the bus, for sync tests."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coroutine: Coroutine[Any, Any, Any], timeout: float = 15) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


class Collector:
    """Subscribes on the loop thread and hands events to the test thread."""

    def __init__(self, loops: LoopThread, bus: EventBus, channel: str) -> None:
        self.events: thread_queue.Queue[Event] = thread_queue.Queue()
        self._ready = threading.Event()
        self._task = asyncio.run_coroutine_threadsafe(self._collect(bus, channel), loops.loop)
        assert self._ready.wait(10)

    async def _collect(self, bus: EventBus, channel: str) -> None:
        async with bus.subscribe(channel) as subscription:
            self._ready.set()
            async for event in subscription:
                self.events.put(event)

    def next(self, timeout: float = 5) -> Event:
        return self.events.get(timeout=timeout)

    def stop(self) -> None:
        self._task.cancel()


# The bus -----------------------------------------------------------------------------------


def test_bus_delivers_to_subscribers_of_that_channel_only(bus_kind, tmp_path):
    async def scenario() -> None:
        bus = EventBus(bus_settings(bus_kind, tmp_path), namespace=namespace())
        await bus.connect()
        try:
            await until_live(bus)
            async with bus.subscribe("public.a") as a, bus.subscribe("public.b") as b:
                assert bus.subscriber_count("public.a") == 1
                assert bus.subscriber_count() == 2
                published = await bus.publish("public.a", "thing.happened", {"id": 7})
                received = await a.next(timeout=5)
                assert received == published
                assert received.data == {"id": 7}
                assert await b.next(timeout=0.3) is None
            assert bus.subscriber_count() == 0
        finally:
            await bus.disconnect()

    asyncio.run(scenario())


def test_every_subscriber_of_a_channel_gets_each_event(bus_kind, tmp_path):
    async def scenario() -> None:
        bus = EventBus(bus_settings(bus_kind, tmp_path), namespace=namespace())
        await bus.connect()
        try:
            await until_live(bus)
            async with bus.subscribe("public.x") as first, bus.subscribe("public.x") as second:
                for n in range(3):
                    await bus.publish("public.x", "tick", {"n": n})
                for subscription in (first, second):
                    got = [(await subscription.next(timeout=5)).data["n"] for _ in range(3)]
                    assert got == [0, 1, 2]
        finally:
            await bus.disconnect()

    asyncio.run(scenario())


def test_two_redis_buses_are_two_nodes(tmp_path):
    if not redis_available():
        pytest.skip(f"Redis is not reachable at {REDIS_URL}")
    shared = namespace()

    async def scenario() -> None:
        node_a = EventBus(bus_settings("redis", tmp_path), namespace=shared)
        node_b = EventBus(bus_settings("redis", tmp_path), namespace=shared)
        elsewhere = EventBus(bus_settings("redis", tmp_path), namespace=namespace())
        for bus in (node_a, node_b, elsewhere):
            await bus.connect()
            await until_live(bus)
        try:
            async with (
                node_b.subscribe("public.x") as on_b,
                elsewhere.subscribe("public.x") as other,
            ):
                await node_a.publish("public.x", "from.a", {"n": 1})
                assert (await on_b.next(timeout=5)).type == "from.a"
                # Sync code on node A (a request thread, a job) publishes without A's loop.
                await asyncio.to_thread(node_a.publish_threadsafe, "public.x", "from.thread", {})
                assert (await on_b.next(timeout=5)).type == "from.thread"
                # Another namespace (another deployment on the same Redis) hears nothing.
                assert await other.next(timeout=0.3) is None
        finally:
            for bus in (node_a, node_b, elsewhere):
                await bus.disconnect()
                bus.close()

    asyncio.run(scenario())


def test_redis_namespace_carries_the_database_number():
    # Redis PUB/SUB ignores databases; the namespace must not.
    three = EventBus(Settings(redis_url="redis://127.0.0.1:6379/3"))
    five = EventBus(Settings(redis_url="redis://127.0.0.1:6379/5"))
    assert three.namespace != five.namespace
    assert EventBus(Settings()).backend == "memory"


def test_subscribers_coming_and_going_never_stop_delivery(tmp_path):
    # broadcaster's own Redis backend stops listening for good when the last subscriber
    # leaves while another arrives (encode/broadcaster#121); ours must not.
    if not redis_available():
        pytest.skip(f"Redis is not reachable at {REDIS_URL}")

    async def scenario() -> None:
        bus = EventBus(bus_settings("redis", tmp_path), namespace=namespace())
        await bus.connect()
        await until_live(bus)
        try:
            for n in range(20):
                async with bus.subscribe(f"public.churn{n % 3}") as subscription:
                    await bus.publish(f"public.churn{n % 3}", "n", {"n": n})
                    assert (await subscription.next(timeout=5)).data == {"n": n}
        finally:
            await bus.disconnect()

    asyncio.run(scenario())


def test_redis_listener_reconnects_after_losing_its_connection(tmp_path):
    if not redis_available():
        pytest.skip(f"Redis is not reachable at {REDIS_URL}")
    name = namespace()
    admin = redis.Redis.from_url(REDIS_URL)

    async def scenario() -> None:
        bus = EventBus(bus_settings("redis", tmp_path), namespace=name)
        await bus.connect()
        await until_live(bus)
        try:
            async with bus.subscribe("public.x") as subscription:
                killed = 0
                for client in admin.client_list():
                    if client["name"] == f"townhall-events@{name}" and int(client["psub"]):
                        admin.client_kill_filter(_id=client["id"])
                        killed += 1
                assert killed == 1
                deadline = time.monotonic() + 10
                while True:  # publish until the re-subscribed listener hears it
                    await bus.publish("public.x", "after.reconnect", {})
                    event = await subscription.next(timeout=0.5)
                    if event is not None:
                        assert event.type == "after.reconnect"
                        break
                    assert time.monotonic() < deadline, "the listener never came back"
        finally:
            await bus.disconnect()

    asyncio.run(scenario())


def test_close_streams_ends_every_subscription(bus_kind, tmp_path):
    async def scenario() -> None:
        bus = EventBus(bus_settings(bus_kind, tmp_path), namespace=namespace())
        await bus.connect()
        try:
            async with bus.subscribe("public.x") as subscription:
                # Called from another thread, as uvicorn's signal handling may.
                threading.Thread(target=bus.close_streams).start()
                with pytest.raises(StreamClosed):
                    await subscription.next(timeout=5)
        finally:
            await bus.disconnect()

    asyncio.run(scenario())


def test_publishing_needs_a_connected_bus(tmp_path):
    bus = EventBus(bus_settings("memory", tmp_path))

    async def publish() -> None:
        await bus.publish("public.x", "t", {})

    with pytest.raises(RuntimeError, match="not connected"):
        asyncio.run(publish())
    # From sync code it never raises: in memory, nobody can be listening yet.
    bus.publish_threadsafe("public.x", "t", {})


# publish_after_commit (a database test: SQLite and PostgreSQL) -----------------------------


def test_events_go_out_after_commit_and_never_after_rollback(runtime, bus_kind, tmp_path):
    loops = LoopThread()
    bus = EventBus(bus_settings(bus_kind, tmp_path), namespace=namespace())
    loops.run(bus.connect())
    loops.run(until_live(bus))
    collector = Collector(loops, bus, "public.records")
    try:
        with unit_of_work(runtime.session_factory) as session:
            record(session, actor=system_actor("t"), action="t.one", object_type="t", object_id=1)
            publish_after_commit(session, bus, "public.records", "record.added", {"n": 1})
            time.sleep(0.3)
            assert collector.events.empty(), "published before the commit"
        assert collector.next().data == {"n": 1}

        with pytest.raises(RuntimeError), unit_of_work(runtime.session_factory) as session:
            record(session, actor=system_actor("t"), action="t.two", object_type="t", object_id=2)
            publish_after_commit(session, bus, "public.records", "record.added", {"n": 2})
            raise RuntimeError("the change fails")

        with unit_of_work(runtime.session_factory) as session:
            publish_after_commit(session, bus, "public.records", "record.added", {"n": 3})
        # Ordered delivery: the next event is the third, so the rolled-back one never left.
        assert collector.next().data == {"n": 3}
    finally:
        collector.stop()
        loops.run(bus.disconnect())
        bus.close()
        loops.stop()


# The SSE endpoint --------------------------------------------------------------------------


class Stream:
    """Reads an SSE response line by line, with a deadline per read."""

    def __init__(self, response: httpx.Response) -> None:
        self.response = response
        self.lines = response.iter_lines()

    def until(self, predicate: Callable[[str], bool]) -> list[str]:
        seen: list[str] = []
        for line in self.lines:
            seen.append(line)
            if predicate(line):
                return seen
        raise AssertionError(f"stream ended first: {seen}")

    def next_event(self) -> tuple[str, dict[str, Any]]:
        lines = self.until(lambda line: line.startswith("data: "))
        event_type = next(line[7:] for line in lines if line.startswith("event: "))
        return event_type, json.loads(lines[-1][6:])


@contextmanager
def open_stream(base: str, channel: str, headers: dict[str, str] | None = None) -> Iterator[Stream]:
    timeout = httpx.Timeout(10.0, read=5.0)
    with (
        httpx.Client(base_url=base, timeout=timeout) as client,
        client.stream("GET", "/events/stream", params={"channel": channel}, headers=headers) as r,
    ):
        assert r.status_code == 200, r.read()
        assert r.headers["content-type"].startswith("text/event-stream")
        stream = Stream(r)
        stream.until(lambda line: line.startswith(": subscribed"))
        yield stream


def test_sse_streams_an_event_published_after_subscribing(app, runtime):
    with serve_in_thread(app) as base, open_stream(base, "public.notices") as stream:
        assert runtime.events.subscriber_count("public.notices") == 1
        # From sync code, as an action's after-commit callback does.
        runtime.events.publish_threadsafe("public.notices", "notice.posted", {"id": 42})
        event_type, payload = stream.next_event()
        assert event_type == "notice.posted"
        assert payload["channel"] == "public.notices"
        assert payload["data"] == {"id": 42}
        assert payload["at"].endswith("+00:00")


def test_sse_private_channels_need_events_subscribe(app, runtime):
    staff = make_account(runtime, "staff")  # has events:subscribe
    partner = make_account(runtime, "partner")  # has not
    with serve_in_thread(app) as base:
        anonymous = httpx.get(f"{base}/events/stream", params={"channel": "staff.queue"})
        assert anonymous.status_code == 401
        assert anonymous.json()["code"] == "not_authenticated"
        refused = httpx.get(
            f"{base}/events/stream", params={"channel": "staff.queue"}, headers=auth(partner)
        )
        assert refused.status_code == 403
        assert refused.json()["code"] == "permission_denied"
        bad = httpx.get(f"{base}/events/stream", params={"channel": "Not A Channel"})
        assert bad.status_code == 422
        with open_stream(base, "staff.queue", headers=auth(staff)) as stream:
            runtime.events.publish_threadsafe("staff.queue", "ticket.called", {"ticket": "A12"})
            assert stream.next_event()[1]["data"] == {"ticket": "A12"}


def test_sse_sends_heartbeats_when_quiet(app):
    app.state.sse_heartbeat_seconds = 0.2
    with serve_in_thread(app) as base, open_stream(base, "public.quiet") as stream:
        stream.until(lambda line: line == ": keep-alive")
        stream.until(lambda line: line == ": keep-alive")


def test_sse_client_disconnect_ends_the_stream(app, runtime):
    # The heartbeat is far away: the end must come from noticing the disconnect itself.
    with serve_in_thread(app) as base:
        with open_stream(base, "public.leaving"):
            assert runtime.events.subscriber_count("public.leaving") == 1
        deadline = time.monotonic() + 5
        while runtime.events.subscriber_count("public.leaving"):
            assert time.monotonic() < deadline, "the stream outlived its client"
            time.sleep(0.05)


def test_announcements_reach_live_pages(app, runtime, admin):
    staff = make_account(runtime, "staff")
    with (
        serve_in_thread(app) as base,
        open_stream(base, "public.announcements") as stream,
        httpx.Client(base_url=base) as http,
    ):
        refused = http.post(
            "/api/v1/events/announce", json={"message": "Closed"}, headers=auth(staff)
        )
        assert refused.status_code == 403
        empty = http.post("/api/v1/events/announce", json={"message": ""}, headers=auth(admin))
        assert empty.status_code == 422
        sent = http.post(
            "/api/v1/events/announce",
            json={"message": "The north office closes at noon today."},
            headers=auth(admin),
        )
        assert sent.status_code == 202, sent.text
        assert sent.json()["channel"] == "public.announcements"
        event_type, payload = stream.next_event()
        assert event_type == "announcement"
        assert payload["data"] == {"message": "The north office closes at noon today."}
        audit = http.get("/api/v1/audit", headers=auth(admin)).json()
    entry = next(e for e in audit if e["action"] == "announcement.publish")
    assert entry["actor"] == f"user:{admin.email}"
    assert entry["changes"] == {"message": "The north office closes at noon today."}


def test_serve_stops_on_sigterm_with_a_stream_open(tmp_path):
    # uvicorn waits for open connections before shutting down; an SSE stream never closes by
    # itself, so `townhall serve` must end the streams when the signal comes.
    port = free_port()
    log_path = tmp_path / "serve.log"
    env = {"PATH": "/usr/bin:/bin", "TOWNHALL_DATA_DIR": str(tmp_path / "data")}
    env["TOWNHALL_SECRET_KEY"] = SECRET
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [TOWNHALL, "serve", "--port", str(port)],
            env=env,
            cwd=tmp_path,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, log_path.read_text()
            try:
                if httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, log_path.read_text()
            time.sleep(0.1)
        with open_stream(base, "public.anything") as stream:
            started = time.monotonic()
            process.send_signal(signal.SIGTERM)
            with pytest.raises(AssertionError, match="stream ended first"):
                stream.until(lambda line: False)
            assert process.wait(timeout=15) in (0, -signal.SIGTERM)
            assert time.monotonic() - started < 10, log_path.read_text()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
