"""Service requests: Open311-compatible requests, their lifecycle, the staff work queue,
two-way messages and attachments. The Open311 adapter is `townhall.compat.open311`."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

SERVICE_REQUESTS_DIR = Path(__file__).parent
# Not under /static: the web shell's mount there would shadow a nested one.
STATIC_PREFIX = "/requests-assets"


def register(app: FastAPI) -> None:
    from townhall.service_requests import api, queries, views
    from townhall.web import add_template_dir

    settings = app.state.settings
    # Kept status answers (`api.kept_status`): what residents and Open311 clients poll.
    app.state.status_cache = app.state.runtime.invalidations.cache(
        "status",
        kinds=[queries.STATUS_KIND],
        ttl_seconds=settings.cache_seconds(settings.status_cache_seconds),
        max_entries=settings.status_cache_entries,
    )

    add_template_dir(app, SERVICE_REQUESTS_DIR / "templates")
    app.mount(
        STATIC_PREFIX,
        StaticFiles(directory=SERVICE_REQUESTS_DIR / "static"),
        name="requests-static",
    )
    api.include_first(app, api.status_router)  # the busiest read: matched before all else
    app.include_router(api.router)
    app.include_router(views.router)
