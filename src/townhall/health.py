"""Liveness, readiness, Prometheus metrics and the SSE event stream.

The probes (`/healthz`, `/readyz`, `/metrics`) are public and never resolve the caller: a load
balancer polling them every few seconds must not open a database session or get a cookie.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Query, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import Engine
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from townhall.accounts.auth import PublicActor
from townhall.accounts.permissions import mark_access
from townhall.cache import Invalidations
from townhall.events import EventBus, StreamClosed
from townhall.runtime import Runtime

router = APIRouter()

# Channels anyone may follow; everything else needs `events:subscribe`.
PUBLIC_CHANNEL_PREFIXES = ("public.", "request.", "office.", "dataset.")
HEARTBEAT_SECONDS = 15.0
READINESS_TIMEOUT_SECONDS = 5.0
# Tells EventSource how long to wait before reconnecting, in milliseconds.
SSE_RETRY_MS = 3000


async def _probe() -> None:
    return None


# Public, like PUBLIC, but without resolving the caller (no database, no cookie).
PUBLIC_PROBE = Depends(mark_access(_probe, "public"))


@router.get("/healthz", dependencies=[PUBLIC_PROBE], tags=["health"], summary="Alive")
def healthz() -> dict[str, str]:
    return {"status": "ok"}


def ping_database(engine: Engine) -> None:
    """`SELECT 1` on a raw DBAPI connection.

    Not through a SQLAlchemy transaction: on SQLite that begins with BEGIN IMMEDIATE, which
    queues the probe behind every writer (a long ingest, or the request that is asking), so a
    busy node would look dead.
    """
    connection = engine.raw_connection()
    try:
        cursor = connection.cursor()
        try:
            cursor.execute("SELECT 1")
            cursor.fetchall()
        finally:
            cursor.close()
    finally:
        connection.close()


@router.get(
    "/readyz",
    dependencies=[PUBLIC_PROBE],
    tags=["health"],
    summary="Ready to serve",
    responses={503: {"description": "A dependency is failing; `checks` names it."}},
)
async def readyz(request: Request) -> JSONResponse:
    """Checks the database, the lake, the job queue and the event bus; 503 names the
    failing ones."""
    runtime: Runtime = request.app.state.runtime
    checks: dict[str, str] = {}

    async def check(name: str, probe: Callable[[], Any]) -> None:
        # A probe fails by raising or by answering False (the lake's ping never raises).
        try:
            answer = await asyncio.wait_for(
                run_in_threadpool(probe), timeout=READINESS_TIMEOUT_SECONDS
            )
            checks[name] = "failed: not reachable" if answer is False else "ok"
        except Exception as exc:
            checks[name] = _failure(exc)

    async def check_events() -> None:
        try:
            await asyncio.wait_for(runtime.events.ping(), timeout=READINESS_TIMEOUT_SECONDS)
            checks["events"] = "ok"
        except Exception as exc:
            checks["events"] = _failure(exc)

    await asyncio.gather(
        check("database", lambda: ping_database(runtime.engine)),
        check("lake", lambda: runtime.lake.ping()),
        check("jobs", lambda: runtime.jobs.ping()),
        check_events(),
    )
    ready = all(value == "ok" for value in checks.values())
    return JSONResponse(
        {"status": "ready" if ready else "not_ready", "checks": dict(sorted(checks.items()))},
        status_code=200 if ready else 503,
    )


def _failure(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return f"failed: no answer within {READINESS_TIMEOUT_SECONDS:g}s"
    return f"failed: {type(exc).__name__}: {exc}"[:300]


@router.get("/metrics", dependencies=[PUBLIC_PROBE], tags=["health"], summary="Prometheus metrics")
def metrics(request: Request) -> Response:
    return Response(
        generate_latest(request.app.state.metrics.registry), media_type=CONTENT_TYPE_LATEST
    )


@router.get(
    "/events/stream",
    tags=["events"],
    summary="Server-Sent Events for one channel",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}}},
)
async def event_stream(
    request: Request,
    actor: PublicActor,
    channel: Annotated[str, Query(min_length=1, max_length=200, pattern=r"^[a-z0-9._:-]+$")],
) -> StreamingResponse:
    """Public channels (`public.*`, `request.<code>`, `office.*`, `dataset.*`) are open;
    others need `events:subscribe`.

    The stream starts with a comment once the subscription is live, sends a `: keep-alive`
    comment after each quiet interval, and one `event: <type>` / `data: <json>` block per
    event. It ends when the client goes or the server shuts down (the client reconnects).
    """
    if not channel.startswith(PUBLIC_CHANNEL_PREFIXES):
        actor.require("events:subscribe")
    bus: EventBus = request.app.state.runtime.events
    heartbeat: float = request.app.state.sse_heartbeat_seconds
    return StreamingResponse(
        _sse(bus, channel, heartbeat),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


async def _sse(bus: EventBus, channel: str, heartbeat: float) -> AsyncIterator[str]:
    # Client disconnects cancel this generator (Starlette listens for them while streaming);
    # the heartbeat also makes a dead connection fail on write.
    async with bus.subscribe(channel) as subscription:
        yield f"retry: {SSE_RETRY_MS}\n: subscribed to {channel}\n\n"
        while True:
            try:
                event = await subscription.next(timeout=heartbeat)
            except StreamClosed:
                return
            if event is None:
                yield ": keep-alive\n\n"
            else:
                yield f"event: {event.type}\ndata: {event.to_json()}\n\n"


class Metrics:
    """Per-app registry, so several apps in one test process do not collide."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "townhall_http_requests_total",
            "HTTP requests by method, route and status.",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "townhall_http_request_seconds",
            "HTTP request latency by route.",
            ["route"],
            registry=self.registry,
        )
        self.sse_subscribers = Gauge(
            "townhall_sse_subscribers",
            "Open event streams on this node.",
            registry=self.registry,
        )
        # prometheus-client's `labels()` validates and locks on every call: each label set's
        # child is looked up once and kept (the sets are as bounded as the registry's own).
        self._counters: dict[tuple[str, str, int], Any] = {}
        self._latencies: dict[str, Any] = {}

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        """Count one request and its latency (`MetricsMiddleware`, the status hot path)."""
        key = (method, route, status)
        counter = self._counters.get(key)
        if counter is None:
            counter = self._counters[key] = self.requests.labels(method, route, str(status))
        counter.inc()
        latency = self._latencies.get(route)
        if latency is None:
            latency = self._latencies[route] = self.latency.labels(route)
        latency.observe(seconds)


class CacheCollector(Collector):
    """Hits, misses and entries of the process's cached answers (`townhall.cache`), read
    at scrape time: the caches count without touching the registry."""

    def __init__(self, invalidations: Invalidations) -> None:
        self.invalidations = invalidations

    def collect(self) -> Iterator[Metric]:
        hits = CounterMetricFamily(
            "townhall_cache_hits", "Answers given from a cache.", labels=["cache"]
        )
        misses = CounterMetricFamily(
            "townhall_cache_misses", "Answers a cache did not hold.", labels=["cache"]
        )
        entries = GaugeMetricFamily(
            "townhall_cache_entries", "Answers a cache holds now.", labels=["cache"]
        )
        totals: dict[str, list[int]] = {}
        for cache in self.invalidations.caches:  # by name: apps of one runtime (tests) add up
            total = totals.setdefault(cache.name, [0, 0, 0])
            total[0] += cache.hits
            total[1] += cache.misses
            total[2] += len(cache)
        for name, (hit, missed, held) in totals.items():
            hits.add_metric([name], hit)
            misses.add_metric([name], missed)
            entries.add_metric([name], held)
        yield from (hits, misses, entries)


class MetricsMiddleware:
    def __init__(self, app: ASGIApp, *, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def recording_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, recording_send)
        finally:
            route = scope.get("route")
            # Route templates, not raw paths, keep the label set small.
            label = getattr(route, "path", "unmatched")
            self.metrics.observe(scope["method"], label, status, time.perf_counter() - started)


def register(app: FastAPI) -> None:
    app.state.metrics = Metrics()
    app.state.sse_heartbeat_seconds = HEARTBEAT_SECONDS
    bus = app.state.runtime.events
    app.state.metrics.sse_subscribers.set_function(lambda: bus.subscriber_count())
    app.state.metrics.registry.register(CacheCollector(app.state.runtime.invalidations))
    app.add_middleware(MetricsMiddleware, metrics=app.state.metrics)
    app.include_router(router)
