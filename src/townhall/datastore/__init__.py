"""Dataset tables: the DuckLake lake, ingest, queries (filters and the SQL sandbox) and exports."""

from __future__ import annotations

from fastapi import FastAPI


def register(app: FastAPI) -> None:
    from townhall.datastore import api

    app.include_router(api.router)
