"""The lockdown's enforcement: a banner on every page, and writes refused for non-admins.

Plain ASGI (not BaseHTTPMiddleware), so event streams and downloads pass through unbuffered.
While a lockdown is on:

- every request gets `request.state.site_notice`, which the web shell shows as a banner;
- a request with an unsafe method (POST, PUT, PATCH, DELETE) is refused with
  `503 read_only_mode` in the shape of the API it addressed (native, CKAN, Open311, or an HTML
  error page), unless the caller holds `system:admin`, or it is login or logout, or it is one
  of the POST routes that only read (SQL queries and their downloads, CKAN read actions).
"""

from __future__ import annotations

import re
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from townhall.errors import TownhallError, render_error
from townhall.recovery.lockdown import LockdownCache, LockdownState

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
ALWAYS_ALLOWED_PATHS = frozenset({"/login", "/logout"})
# POST routes that change nothing: SQL is sent in the body because it does not fit a URL.
READ_ONLY_POSTS = re.compile(r"^/api/v1/(?:sql|sql/download\.[a-z]+|datasets/[^/]+/sql)/?$")
CKAN_ACTION = re.compile(r"^/api/(?:3/)?action/([A-Za-z0-9_]+)/?$")


def cache_of(app: Any) -> LockdownCache:
    """The app's lockdown cache, made on first use (no database is touched before a request)."""
    cache = getattr(app.state, "lockdown_cache", None)
    if cache is None:
        # A read session: on SQLite it does not queue behind writers for the write lock.
        cache = LockdownCache(app.state.runtime.read_session_factory)
        app.state.lockdown_cache = cache
    return cache


def _only_reads(method: str, path: str) -> bool:
    if method in SAFE_METHODS or path in ALWAYS_ALLOWED_PATHS or READ_ONLY_POSTS.match(path):
        return True
    action = CKAN_ACTION.match(path)
    if action:
        try:
            from townhall.compat.ckan import ACTIONS
        except ImportError:  # no CKAN slice: nothing there to read
            return False
        spec = ACTIONS.get(action.group(1))
        # An unknown action changes nothing either: let CKAN's own 400 answer it.
        return spec is None or not spec.write
    return False


class LockdownMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        fastapi_app = scope["app"]
        cache = cache_of(fastapi_app)
        state = cache.fresh() or await run_in_threadpool(cache.refresh)
        if not state.active:
            await self.app(scope, receive, send)
            return
        scope.setdefault("state", {})["site_notice"] = state.notice
        if _only_reads(scope["method"], scope["path"]):
            await self.app(scope, receive, send)
            return
        request = Request(scope, receive)
        found = await run_in_threadpool(_caller_is_admin, request)
        if found is True:
            await self.app(scope, receive, send)
            return
        response = _refusal(request, state) if found is False else _error(request, found)
        await response(scope, receive, send)


def _caller_is_admin(request: Request) -> bool | TownhallError:
    """Whether the caller holds `system:admin` (a scoped token without it does not), or the
    error that resolving the caller raised (an unknown or revoked token: 401, as always).

    The actor is resolved as the routes resolve it and left on `request.state`, where the
    route's own `current_actor` finds it instead of looking it up again.
    """
    from townhall.accounts.auth import current_actor
    from townhall.db import unit_of_work

    app = request.app
    runtime = app.state.runtime
    try:
        # Read as a GET does; a token's last-used time is written after, on its own.
        with unit_of_work(
            runtime.read_session_factory, write_factory=runtime.session_factory
        ) as session:
            actor = current_actor(request, session, app.state.settings)
    except TownhallError as error:
        return error
    return actor.can("system:admin")


def _error(request: Request, error: TownhallError) -> Any:
    return render_error(
        request, error.status, error.code, error.message, error.errors, error.headers
    )


def _refusal(request: Request, state: LockdownState) -> Any:
    # render_error picks the API's own error shape (native, CKAN, Open311) or the HTML error
    # page, exactly as for any other refused request.
    notice = state.notice or {}
    return render_error(
        request,
        503,
        "read_only_mode",
        f"The portal is read-only during an incident; only administrators can change data "
        f"now. {notice.get('message', '')}".strip(),
    )
