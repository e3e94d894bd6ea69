"""Rendering pages with what every page needs: the actor, its CSRF token, navigation."""

from __future__ import annotations

from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse

from townhall.accounts.auth import csrf_token_for
from townhall.actor import ANONYMOUS, Actor

NAVIGATION: list[tuple[str, str, str | None]] = [
    # (label, path, permission needed to see the link or None)
    ("Data", "/datasets", None),
    ("Services", "/services", None),
    ("Requests", "/requests", None),
    ("Insights", "/insights", "insights:read"),
    ("Governance", "/governance", "governance:read"),
    ("Admin", "/admin", "users:read"),
]


def render(
    request: Request,
    template: str,
    context: dict[str, Any] | None = None,
    *,
    status_code: int = 200,
    actor: Actor | None = None,
) -> HTMLResponse:
    actor = actor or getattr(request.state, "actor", None) or ANONYMOUS
    nav = [
        (label, path)
        for label, path, permission in NAVIGATION
        if permission is None or actor.can(permission)
    ]
    full_context = {
        "actor": actor,
        "csrf_token": csrf_token_for(request, actor),
        "nav": nav,
        "current_path": request.url.path,
        **(context or {}),
    }
    return request.app.state.templates.TemplateResponse(
        request, template, full_context, status_code=status_code
    )
