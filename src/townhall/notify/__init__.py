"""Notifications: email over SMTP, signed webhooks with retries, subscriptions with one-click
unsubscribe, versioned templates and GOV.UK Notify's message lifecycle. Live browser updates
are the event bus's SSE stream (`townhall.health`)."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI


def register(app: FastAPI) -> None:
    from townhall.notify import api, views
    from townhall.web import add_template_dir

    add_template_dir(app, Path(__file__).parent / "templates")
    app.include_router(api.router)
    app.include_router(views.router)
