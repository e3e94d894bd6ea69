"""Dataset tables: the DuckLake lake, ingest, queries (filters and the SQL sandbox) and exports."""

from __future__ import annotations

from fastapi import FastAPI


def register(app: FastAPI) -> None:
    from townhall.catalog.queries import TABLE_KIND
    from townhall.datastore import api

    settings = app.state.settings
    # Kept table lookups of anonymous reads (`api._published`).
    app.state.table_cache = app.state.runtime.invalidations.cache(
        "published_table",
        kinds=[TABLE_KIND],
        ttl_seconds=settings.cache_seconds(settings.table_cache_seconds),
        max_entries=4096,
    )
    app.include_router(api.router)
