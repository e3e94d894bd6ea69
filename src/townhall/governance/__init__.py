"""Governance: classification of datasets and columns, the publication workflow (review rules),
retention policies applied by a scheduled job, and the data inventory with usage counts."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI

GOVERNANCE_DIR = Path(__file__).parent


def register(app: FastAPI) -> None:
    from townhall.governance import api, views
    from townhall.governance.usage import UsageMiddleware, UsageRecorder
    from townhall.web import add_template_dir

    add_template_dir(app, GOVERNANCE_DIR / "templates")
    app.include_router(api.router)
    app.include_router(views.router)
    recorder = UsageRecorder(app.state.session_factory)
    app.state.dataset_usage = recorder
    app.add_middleware(UsageMiddleware, recorder=recorder)
