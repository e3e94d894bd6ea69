"""Privacy-safe publication of operational data (service requests, office visits) as open
datasets: scrubbed, generalised, k-anonymous records and differentially private counts, each
version with a privacy report."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI

PUBLISHING_DIR = Path(__file__).parent


def register(app: FastAPI) -> None:
    from townhall.publishing import api, views
    from townhall.web import add_template_dir

    add_template_dir(app, PUBLISHING_DIR / "templates")
    app.include_router(api.router)
    app.include_router(views.router)
