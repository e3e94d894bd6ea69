"""No route without a declared access (as warehouse refuses a view that names no permission).

Every route of the app must have, somewhere in its dependency tree, a dependency marked by
`requires("x:y")` or `PUBLIC` (`accounts.permissions.ACCESS_MARKER`). The only exceptions are
listed below by path, so a new exception is a visible change to this file.

FastAPI 0.165 keeps included routers nested (`_IncludedRouter`) instead of copying their routes
into `app.routes`; `fastapi.routing.iter_route_contexts` walks them and yields each route with
its effective (prefixed, router-dependency-merged) context.
"""

from __future__ import annotations

import ast
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute, iter_route_contexts
from starlette.routing import Match, Mount, Route
from starlette.staticfiles import StaticFiles

from townhall.accounts.permissions import ACCESS_MARKER, PERMISSIONS
from townhall.app import create_app
from townhall.config import Settings
from townhall.routing import literal_prefixes

from .conftest import SECRET

SRC = Path(__file__).resolve().parents[1] / "src" / "townhall"

# FastAPI's own pages: the OpenAPI document and Swagger UI (public by design).
FRAMEWORK_ROUTES = {"/api/openapi.json", "/api/docs", "/docs/oauth2-redirect"}
# Mounted static files: public assets, no dependencies to declare.
# A slice that mounts its own assets adds its prefix here.
STATIC_MOUNTS = {
    "/static",
    "/catalog-assets",
    "/directory-assets",
    "/requests-assets",
    "/insights-assets",
}
PUBLIC_ACCESS = "public"


@pytest.fixture(scope="module")
def app() -> Iterator[FastAPI]:
    # Building an app opens no database and writes no file: no backend needed here.
    with tempfile.TemporaryDirectory() as folder:
        settings = Settings(data_dir=Path(folder), secret_key=SECRET, run_jobs_in_process=False)
        yield create_app(settings)


def all_routes(app: FastAPI) -> list[Any]:
    return list(iter_route_contexts(app.routes))


def declared_accesses(dependant: Dependant, seen: set[int] | None = None) -> set[str]:
    """Every access marker in the dependency tree of `dependant`, sub-dependencies included."""
    seen = set() if seen is None else seen
    found: set[str] = set()
    for call in (dependant.call, getattr(dependant, "_original_call", None)):
        marker = getattr(call, ACCESS_MARKER, None)
        if isinstance(marker, str):
            found.add(marker)
    for sub in dependant.dependencies:
        if id(sub) in seen:
            continue
        seen.add(id(sub))
        found |= declared_accesses(sub, seen)
    return found


def describe(route: Any) -> str:
    methods = ",".join(sorted(route.methods or [])) if getattr(route, "methods", None) else "*"
    return f"{methods} {route.path}"


def test_the_walker_sees_nested_routers(app):
    paths = {route.path for route in all_routes(app)}
    assert {"/healthz", "/api/v1/me", "/api/v1/audit/verify"} <= paths


def test_every_route_declares_access(app):
    missing = []
    for route in all_routes(app):
        original = route.original_route
        if isinstance(original, Mount):
            assert route.path in STATIC_MOUNTS, (
                f"unexpected mount {route.path}: if it only serves static files, add it to "
                "STATIC_MOUNTS in tests/test_routes.py"
            )
            assert isinstance(original.app, StaticFiles), f"{route.path} mounts an application"
            continue
        if route.path in FRAMEWORK_ROUTES:
            assert not isinstance(original, APIRoute), f"{route.path} is ours, not FastAPI's"
            continue
        if not isinstance(original, APIRoute):
            missing.append(f"{describe(route)} (a bare {type(original).__name__})")
            continue
        if not declared_accesses(route.dependant):
            missing.append(describe(route))
    assert not missing, (
        "Routes without requires(...) or PUBLIC among their dependencies:\n  "
        + "\n  ".join(missing)
    )


def test_exceptions_still_exist(app):
    """An exception for a route that no longer exists would hide a future one."""
    paths = {route.path for route in all_routes(app)}
    assert paths >= FRAMEWORK_ROUTES | STATIC_MOUNTS


def test_every_declared_permission_exists(app):
    unknown = []
    for route in all_routes(app):
        dependant = getattr(route, "dependant", None)
        if dependant is None:
            continue
        for access in declared_accesses(dependant):
            if access != PUBLIC_ACCESS and access not in PERMISSIONS:
                unknown.append(f"{describe(route)}: {access}")
    assert not unknown, "Routes requiring permissions that PERMISSIONS does not define:\n  " + (
        "\n  ".join(unknown)
    )


# Permissions named in code outside route markers: `requires("x")`, `actor.require("x")` and
# `actor.can("x")` calls with a literal argument, found in the syntax tree (not in docstrings).
_PERMISSION_CALLS = {"requires", "require", "can"}


def permissions_named_in_code() -> dict[str, list[str]]:
    named: dict[str, list[str]] = {}
    for path in sorted(SRC.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in ast.walk(tree):
            if not (isinstance(node, ast.Call) and node.args):
                continue
            func = node.func
            name = func.id if isinstance(func, ast.Name) else getattr(func, "attr", None)
            first = node.args[0]
            if (
                name in _PERMISSION_CALLS
                and isinstance(first, ast.Constant)
                and isinstance(first.value, str)
                and ":" in first.value
            ):
                named.setdefault(first.value, []).append(str(path.relative_to(SRC)))
    return named


def test_every_permission_named_in_code_exists():
    named = permissions_named_in_code()
    assert "users:manage" in named  # the pattern still matches how the code names permissions
    unknown = {name: files for name, files in named.items() if name not in PERMISSIONS}
    assert not unknown, f"Permissions used in code but not defined in PERMISSIONS: {unknown}"


def test_route_kinds_are_known(app):
    """Anything but APIRoute, FastAPI's Route and a Mount needs a decision in this file."""
    for route in all_routes(app):
        assert isinstance(route.original_route, (APIRoute, Route, Mount)), describe(route)


# Routers a path cannot reach (townhall.routing) ------------------------------------------------


def _sample_paths(app: FastAPI) -> list[str]:
    """A concrete path for every route (each parameter filled), the same with and without a
    trailing slash, and paths no route has."""
    paths = {"/", "/nowhere", "/api/v1/nowhere", "/api", "/open311", "/hsds", "/static"}
    for route in all_routes(app):
        path = re.sub(r"\{[^}:]+:path\}", "a/b.css", route.path)
        path = re.sub(r"\{[^}]+\}", "1", path)
        paths.update({path, path.rstrip("/") or "/", path + "/"})
    return sorted(paths)


def test_guarded_routers_answer_as_unguarded(app):
    guarded = [r for r in app.router.routes if hasattr(r.matches, "unguarded")]
    assert len(guarded) >= 20  # nearly every slice's routers
    for path in _sample_paths(app):
        for method in ("GET", "POST", "DELETE"):
            scope = {"type": "http", "method": method, "path": path, "root_path": ""}
            for route in guarded:
                fast = route.matches(dict(scope))
                full = route.matches.unguarded(dict(scope))
                assert fast[0] == full[0], (method, path, route)


def test_a_router_skips_paths_it_cannot_hold(app):
    datastore = next(
        r
        for r in app.router.routes
        if hasattr(r.matches, "unguarded") and "/api/v1/datasets/" in literal_prefixes(r)
    )
    scope = {"type": "http", "method": "GET", "path": "/healthz", "root_path": ""}
    assert datastore.matches(scope)[0] == Match.NONE
    # Under a root path (behind a proxy), prefixes are compared with the route path.
    proxied = {**scope, "path": "/city/api/v1/datasets/x/rows", "root_path": "/city"}
    assert (
        datastore.matches(proxied)[0] != Match.NONE
        or datastore.matches.unguarded(proxied)[0] == Match.NONE
    )


def test_every_request_kind_still_reaches_its_route(app):
    """Through the whole app: a route at the front, one at the back, a 405, a redirect."""
    from fastapi.testclient import TestClient

    with TestClient(app) as client:
        assert client.get("/healthz").status_code == 200
        assert client.get("/insights", follow_redirects=False).status_code in (200, 303, 401)
        assert client.put("/healthz").status_code == 405
        assert client.get("/api/v1/nowhere").status_code == 404
