"""Kept data reads, answered in front of the middleware stack.

A published version never changes, so the pages, counts and aggregates asked of it are kept
(`engine.answers`), and which table an anonymous read goes to is kept too
(`app.state.table_cache`, dropped on every node when the dataset changes). When all of it is
kept, answering takes a fraction of a millisecond; what a request then costs is the stack in
front of it (middlewares, routing, FastAPI's parameter handling), and more so on a server
that was idle, whose code has left the CPU's caches (docs/performance.md). So the app's front
(`service_requests.hot_path.StatusHotPath`, which answers the polled status lookups the same
way) asks `kept_read` first for an anonymous `GET` of `/rows` or `/aggregate`.

`kept_read` answers only what FastAPI would accept exactly as given: each known parameter
once (a list parameter at most as often as allowed), integers in plain digits within their
bounds, strings within their lengths. Anything else, and anything not kept (`NotKept`), and any
error (a 422 for an unknown column, say) returns None: the request goes through the stack as
usual and gets the answer it always got. The answer itself is made by the routes' own code
(`api.rows_response`, `api.aggregate_response`); the front adds the rate limit, the request
id, the security headers, the metrics and the usage count, as the stack would.
"""

from __future__ import annotations

import re

from fastapi import Request
from fastapi.responses import Response

from townhall.datastore import api, query
from townhall.datastore.engine import NotKept, query_engine
from townhall.errors import TownhallError
from townhall.schemas import MAX_ID

PATH = re.compile(r"^/api/v1/datasets/(?P<slug>[^/]+)/(?P<kind>rows|aggregate)$")
ROUTE_PATHS = {
    "rows": "/api/v1/datasets/{slug}/rows",
    "aggregate": "/api/v1/datasets/{slug}/aggregate",
}
# The parameters of each route and FastAPI's checks on them (`datastore.api`).
_TEXTS = {"resource": 300, "q": 500, "fields": 5000, "sort": 2000, "cursor": 4000}
_INTEGERS = {"version": (1, MAX_ID), "limit": (1, 1_000_000), "offset": (0, 10**12)}
_LISTS = {"group_by": 8, "metric": 20}
_PARAMS = {
    "rows": frozenset({"resource", "version", "q", "fields", "sort", "limit", "offset", "cursor"}),
    "aggregate": frozenset({"group_by", "metric", "resource", "version", "q", "sort", "limit"}),
}
_ANY_ROUTE = _PARAMS["rows"] | _PARAMS["aggregate"]


def kept_read(request: Request) -> tuple[str, Response] | None:
    """The route template and the answer of an anonymous data read made of kept answers
    only, or None to let the stack answer (module docstring)."""
    found = PATH.match(request.scope["path"])
    if found is None:
        return None
    slug, kind = found["slug"], found["kind"]
    values = _parameters(request, kind)
    if values is None:
        return None
    table: query.PublishedTable | None = request.app.state.table_cache.get(
        (slug, values.get("resource"), values.get("version"))
    )
    if table is None:
        return None
    try:
        engine = query_engine(request.app.state.runtime).memory_only()
        if kind == "rows":
            response = api.rows_response(
                request,
                table,
                engine,
                q=values.get("q", ""),
                fields=values.get("fields"),
                sort=values.get("sort"),
                limit=values.get("limit", query.DEFAULT_LIMIT),
                offset=values.get("offset", 0),
                cursor=values.get("cursor"),
            )
        else:
            response = api.aggregate_response(
                request,
                table,
                engine,
                group_by=values.get("group_by"),
                metric=values.get("metric"),
                q=values.get("q", ""),
                sort=values.get("sort"),
                limit=values.get("limit"),
            )
    except (NotKept, TownhallError):
        return None
    return ROUTE_PATHS[kind], response


def _parameters(request: Request, kind: str) -> dict[str, object] | None:
    """The route's parameters as FastAPI would pass them, or None for anything it might read
    otherwise (or refuse)."""
    params = request.query_params
    allowed = _PARAMS[kind]
    values: dict[str, object] = {}
    for name in params:
        if name not in _ANY_ROUTE:
            continue  # a filter (`col__op=value`): the route's own code reads those
        if name not in allowed:
            return None
        given = params.getlist(name)
        if name in _LISTS:
            if len(given) > _LISTS[name]:
                return None
            values[name] = given
            continue
        if len(given) != 1:
            return None
        value = given[0]
        if name in _INTEGERS:
            low, high = _INTEGERS[name]
            if not (value.isascii() and value.isdigit()) or not low <= int(value) <= high:
                return None
            values[name] = int(value)
        elif len(value) > _TEXTS[name]:
            return None
        else:
            values[name] = value
    return values
