"""Organizations' datasets, resources and versions; search; metadata formats."""

from __future__ import annotations

from fastapi import FastAPI


def register(app: FastAPI) -> None:
    from townhall.catalog import api

    app.include_router(api.router)
