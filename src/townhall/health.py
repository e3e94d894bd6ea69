"""Liveness, readiness, Prometheus metrics and the SSE event stream."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, FastAPI, Query, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from townhall.accounts.auth import PUBLIC, PublicActor
from townhall.db import ping as ping_database
from townhall.events import EventBus
from townhall.runtime import Runtime

router = APIRouter()

# Channels anyone may follow; everything else needs `events:subscribe`.
PUBLIC_CHANNEL_PREFIXES = ("public.", "request.", "office.", "dataset.")
HEARTBEAT_SECONDS = 15.0


@router.get("/healthz", dependencies=[PUBLIC], tags=["health"], summary="Alive")
def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz", dependencies=[PUBLIC], tags=["health"], summary="Ready to serve")
async def readyz(request: Request) -> JSONResponse:
    runtime: Runtime = request.app.state.runtime
    checks: dict[str, str] = {}

    async def check(name: str, probe: object) -> None:
        try:
            await asyncio.wait_for(run_in_threadpool(probe), timeout=5)  # type: ignore[arg-type]
            checks[name] = "ok"
        except Exception as exc:
            checks[name] = f"failed: {type(exc).__name__}: {exc}"[:300]

    await check("database", lambda: ping_database(runtime.engine))
    await check("lake", runtime.lake.ping)
    await check("jobs", runtime.jobs.ping)
    ready = all(value == "ok" for value in checks.values())
    return JSONResponse(
        {"status": "ready" if ready else "not_ready", "checks": checks},
        status_code=200 if ready else 503,
    )


@router.get("/metrics", dependencies=[PUBLIC], tags=["health"], summary="Prometheus metrics")
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
    others need `events:subscribe`."""
    if not channel.startswith(PUBLIC_CHANNEL_PREFIXES):
        actor.require("events:subscribe")
    bus = request.app.state.runtime.events
    return StreamingResponse(
        _sse(request, bus, channel),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


async def _sse(request: Request, bus: EventBus, channel: str) -> AsyncIterator[str]:
    async with bus.subscribe(channel) as events:
        # The first comment tells the client the subscription is live.
        yield f"retry: 3000\n: subscribed to {channel}\n\n"
        iterator = events.__aiter__()
        while True:
            try:
                event = await asyncio.wait_for(iterator.__anext__(), timeout=HEARTBEAT_SECONDS)
            except TimeoutError:
                if await request.is_disconnected():
                    return
                yield ": keep-alive\n\n"
                continue
            except StopAsyncIteration:
                return
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
            self.metrics.requests.labels(scope["method"], label, str(status)).inc()
            self.metrics.latency.labels(label).observe(time.perf_counter() - started)


def register(app: FastAPI) -> None:
    app.state.metrics = Metrics()
    app.add_middleware(MetricsMiddleware, metrics=app.state.metrics)
    app.include_router(router)
