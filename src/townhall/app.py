"""`create_app(settings)`: builds the runtime and lets every slice register itself."""

from __future__ import annotations

import importlib
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.telemetry import TelemetryConfig

from townhall import __version__
from townhall.config import Settings
from townhall.errors import install_error_handlers
from townhall.middleware import (
    BodySizeLimitMiddleware,
    RequestIdMiddleware,
    SecurityHeadersMiddleware,
)
from townhall.ratelimit import RateLimiter
from townhall.routing import skip_unreachable_routers
from townhall.runtime import Runtime

# Order matters only for the web shell, which must come first (templates used by the others).
SLICES: list[str] = [
    "townhall.web",
    "townhall.health",
    "townhall.accounts",
    "townhall.audit",
    "townhall.announcements",
    "townhall.catalog",
    "townhall.datastore",
    "townhall.directory",
    "townhall.compat.ckan",
    "townhall.feeds",
    "townhall.service_requests",
    "townhall.notify",
    "townhall.compat.open311",
    "townhall.integrity",
    "townhall.recovery",
    "townhall.governance",
    "townhall.publishing",
    "townhall.insights",
]


# FastAPI asks on every request whether an OpenTelemetry provider is configured unless told
# that no signal is wanted (setting `opentelemetry`).
OPENTELEMETRY_OFF: TelemetryConfig = {"tracing": False, "metrics": False, "logs": False}


def _kept_reads(app: FastAPI) -> Any:
    """Kept data reads for the app's front (`datastore.front`), with the datastore slice."""
    if not hasattr(app.state, "table_cache"):
        return None
    from townhall.datastore.front import kept_read

    return kept_read


def _usage_counter(app: FastAPI) -> Callable[[str], None] | None:
    """What the front calls for each data read it answered: the dataset usage counts
    (`governance.usage`), as `UsageMiddleware` counts the reads the stack answers."""
    recorder = getattr(app.state, "dataset_usage", None)
    if recorder is None:
        return None
    from townhall.governance.usage import classify_path, count_read

    def count(path: str) -> None:
        target = classify_path("GET", path)
        if target is not None:
            count_read(recorder, target, None)

    return count


def create_app(settings: Settings, *, runtime: Runtime | None = None) -> FastAPI:
    runtime = runtime or Runtime(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await runtime.events.connect()
        runtime.invalidations.start()  # other nodes' changes drop this process's cached answers
        if settings.in_process_jobs:
            runtime.jobs.start_consumer()
        try:
            yield
        finally:
            runtime.jobs.stop_consumer()
            await runtime.invalidations.stop()
            await runtime.events.disconnect()
            await runtime.aclose()  # what requests opened on this loop (status lookups)

    app = FastAPI(
        title="Townhall",
        version=__version__,
        description="Open data portal, public service desk and insight for public offices.",
        openapi_url="/api/openapi.json",
        docs_url="/api/docs",
        redoc_url=None,
        lifespan=lifespan,
        telemetry=None if settings.opentelemetry else OPENTELEMETRY_OFF,
    )
    app.state.settings = settings
    app.state.runtime = runtime
    app.state.session_factory = runtime.session_factory
    app.state.error_shapes = {}
    app.state.rate_limiter = RateLimiter.from_settings(settings)
    install_error_handlers(app)
    for name in SLICES:
        importlib.import_module(name).register(app)
    skip_unreachable_routers(app)
    # Added last so they run first: every response carries a request id, and bodies are capped.
    app.add_middleware(
        BodySizeLimitMiddleware,
        max_body_bytes=settings.max_body_bytes,
        max_upload_bytes=settings.max_upload_bytes,
    )
    https = settings.base_url.startswith("https://")
    app.add_middleware(SecurityHeadersMiddleware, https=https)
    app.add_middleware(RequestIdMiddleware)
    # Outermost of ours: anonymous status lookups answered before the stack, same answers.
    status_routes = getattr(app.state, "status_routes", [])
    if status_routes:
        from townhall.service_requests.hot_path import StatusHotPath

        app.add_middleware(
            StatusHotPath,
            routes=tuple(status_routes),
            https=https,
            metrics=getattr(app.state, "metrics", None),
            kept_reads=_kept_reads(app),
            answered_read=_usage_counter(app),
        )
    return app
