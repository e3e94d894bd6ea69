"""Insights: what the office learns from its own work. Backlog, productivity, demand and its
forecast, spikes, staffing needs (Erlang C), area indicators for policy makers, and the triage
model that suggests a service and a priority for a resident's words."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

INSIGHTS_DIR = Path(__file__).parent
# Not under /static: the web shell's mount there would shadow a nested one.
STATIC_PREFIX = "/insights-assets"


def register(app: FastAPI) -> None:
    from townhall.insights import api, views
    from townhall.web import add_template_dir

    add_template_dir(app, INSIGHTS_DIR / "templates")
    app.mount(STATIC_PREFIX, StaticFiles(directory=INSIGHTS_DIR / "static"), name="insights-static")
    app.include_router(api.router)
    app.include_router(views.router)
    # The request slice's staff page shows a suggestion when this hook exists (not residents).
    settings = app.state.settings
    app.state.triage_suggestion = lambda session, text: api.staff_suggestion(
        settings, session, text
    )
