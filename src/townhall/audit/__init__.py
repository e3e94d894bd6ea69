"""Tamper-evident audit trail: every audited action appends a hash-chained entry."""

from __future__ import annotations

from fastapi import FastAPI


def register(app: FastAPI) -> None:
    from townhall.audit import api

    app.include_router(api.router)
