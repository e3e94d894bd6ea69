"""Recovery and incidents: backups and restore, and the lockdown switch (docs/operations.md)."""

from __future__ import annotations

from fastapi import FastAPI


def register(app: FastAPI) -> None:
    from townhall.recovery import api
    from townhall.recovery.middleware import LockdownMiddleware

    app.include_router(api.router)
    # Inside the request-id and body-size middlewares (added after the slices), so a refusal
    # carries the request id; outside the routes, so it runs before any handler.
    app.add_middleware(LockdownMiddleware)
