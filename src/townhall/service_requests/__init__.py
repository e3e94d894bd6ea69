"""Service requests: Open311-compatible requests, their lifecycle, the staff work queue,
two-way messages and attachments. The Open311 adapter is `townhall.compat.open311`."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI


def register(app: FastAPI) -> None:
    from townhall.service_requests import api, views
    from townhall.web import add_template_dir

    add_template_dir(app, Path(__file__).parent / "templates")
    app.include_router(api.router)
    app.include_router(views.router)
