"""Route matching that skips the routers a path cannot reach.

FastAPI (0.165) keeps each included router as a nested object and tries them in order: every
request asks each router before the one that holds its route whether any of its routes
matches, at about 2-4 us a route (FastAPI's scope bookkeeping around each regex). Measured in
process, a request for the datastore's `/rows` paid about 0.45 ms of CPU in routing alone,
two thirds of a request that reads nothing; `/healthz`, near the front, far less.

`skip_unreachable_routers` gives each of the app's top-level included routers a cheap guard:
the literal beginnings of all its paths (what comes before the first `{`; a mount's path).
A path that starts with none of them cannot match any of its routes (each route's pattern
begins with that literal text), so the router answers "no match" without asking them. Order,
partial matches (a 405 for a known path with another method), trailing-slash redirects and
everything else are FastAPI's own: the guard only answers, faster, what `matches` would have
answered. A router holding anything the guard cannot read (a host route, a low-priority or
frontend route) keeps no guard. tests/test_routes.py checks, for every route of the app, that
the guarded and unguarded answers agree.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import FastAPI
from starlette._utils import get_route_path
from starlette.routing import BaseRoute, Match, Mount, Route, WebSocketRoute
from starlette.types import Scope

Matcher = Callable[[Scope], tuple[Match, Scope]]


def literal_prefixes(route: BaseRoute) -> set[str] | None:
    """What every path `route` matches starts with, or None when that cannot be read."""
    if isinstance(route, Route | WebSocketRoute | Mount):
        return {route.path.split("{", 1)[0]}
    original_router = getattr(route, "original_router", None)
    context = getattr(route, "include_context", None)
    if original_router is None or context is None:
        return None
    if getattr(original_router, "_low_priority_routes", None):
        return None
    prefixes: set[str] = set()
    for child in original_router.routes:
        found = literal_prefixes(child)
        if found is None:
            return None
        prefixes.update(context.prefix + prefix for prefix in found)
    return prefixes


def _guarded(matches: Matcher, prefixes: tuple[str, ...]) -> Matcher:
    nothing: tuple[Match, Scope] = (Match.NONE, {})

    def guarded_matches(scope: Scope) -> tuple[Match, Scope]:
        if get_route_path(scope).startswith(prefixes):
            return matches(scope)
        return nothing

    guarded_matches.unguarded = matches  # type: ignore[attr-defined]
    return guarded_matches


def skip_unreachable_routers(app: FastAPI) -> int:
    """Guard the app's included routers (module docstring); returns how many got a guard.
    Call once, after every router is included."""
    guarded = 0
    for route in app.router.routes:
        if not hasattr(route, "original_router") or hasattr(route.matches, "unguarded"):
            continue
        prefixes = literal_prefixes(route)
        if not prefixes or "" in prefixes:
            continue
        instance: Any = route
        # On the instance: the router stays the object FastAPI made (OpenAPI, url_path_for).
        instance.matches = _guarded(route.matches, tuple(sorted(prefixes)))
        guarded += 1
    return guarded
