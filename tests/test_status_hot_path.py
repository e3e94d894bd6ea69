"""The status hot path (`service_requests.hot_path.StatusHotPath`): anonymous status lookups
answered in front of the middleware stack.

What is checked, on both backends: the hot path answers exactly what the full stack answers
(status, every header in order, body) for found, hidden and unknown requests, native and
Open311 JSON and XML, rate limited, and with the lockdown on; it counts the same metrics; and
every request it must not take (a query string, a token, a session cookie, another method, a
body, another path) goes through the stack. The stack's answer comes from the same app built
without the hot path (its middleware entry removed before the first request).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from fastapi.testclient import TestClient

from townhall.accounts.auth import SESSION_COOKIE
from townhall.actor import system_actor
from townhall.app import create_app
from townhall.db import unit_of_work
from townhall.recovery import lockdown as lockdown_module
from townhall.service_requests import queries
from townhall.service_requests.hot_path import StatusHotPath

from .conftest import auth
from .test_load_bench_smoke import _worked_request
from .test_service_requests import submit

REQUEST_ID = {"X-Request-ID": "hot-path-test-1"}


def _without_hot_path(app: Any) -> Any:
    app.user_middleware = [m for m in app.user_middleware if m.cls is not StatusHotPath]
    return app


@contextmanager
def _clients(runtime, **settings: object) -> Iterator[tuple[TestClient, TestClient]]:
    """A client of the app as `create_app` builds it, and one of the same app without the
    hot path, on the same runtime (database)."""
    configured = runtime.settings.model_copy(update=settings)
    hot_app = create_app(configured, runtime=runtime)
    stack_app = _without_hot_path(create_app(configured, runtime=runtime))
    with TestClient(hot_app) as hot, TestClient(stack_app) as stack:
        yield hot, stack


def _hot_path(client: TestClient) -> StatusHotPath | None:
    layer = client.app.middleware_stack
    while layer is not None:
        if isinstance(layer, StatusHotPath):
            return layer
        layer = getattr(layer, "app", None)
    return None


def _answer(response: Any) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    return response.status_code, list(response.headers.raw), response.content


def _status_paths(runtime) -> list[str]:
    """Found (a closed duplicate with notes, its original), hidden and unknown requests."""
    original, duplicate = _worked_request(runtime)
    hidden = submit(runtime, description="Hidden by staff.")
    with unit_of_work(runtime.session_factory) as session:
        queries.request_by_code(session, hidden).hidden = True
    paths = []
    for code in (original, duplicate, duplicate.lower(), hidden, "RVT-NOTHERE"):
        paths += [
            f"/api/v1/requests/{code}",
            f"/open311/v2/requests/{code}.json",
            f"/open311/v2/requests/{code}.xml",
            f"/open311/v2/request/{code}.json",
        ]
    paths.append(f"/open311/v2/requests/{original}.csv")  # unknown format: Open311's 404
    return paths


def _counts(client: TestClient, route: str) -> dict[tuple[str, str], float]:
    return {
        (s.labels["method"], s.labels["status"]): s.value
        for metric in client.app.state.metrics.registry.collect()
        for s in metric.samples
        if s.name == "townhall_http_requests_total" and s.labels["route"] == route
    }


def test_hot_path_answers_what_the_stack_answers(runtime):
    paths = _status_paths(runtime)
    with _clients(runtime) as (hot, stack):
        assert _hot_path(stack) is None
        hot_path = _hot_path(hot)
        assert hot_path is not None
        statuses = set()
        for path in paths:
            ours = hot.get(path, headers=REQUEST_ID)
            theirs = stack.get(path, headers=REQUEST_ID)
            assert _answer(ours) == _answer(theirs), path
            statuses.add(ours.status_code)
        assert statuses == {200, 404}
        assert hot_path.answered == len(paths)
        for route in (
            "/api/v1/requests/{code}",
            "/open311/v2/requests/{service_request_id}.{fmt}",
            "/open311/v2/request/{service_request_id}.{fmt}",
        ):
            assert _counts(hot, route) == _counts(stack, route)
            assert _counts(hot, route)


def test_request_ids_are_made_and_echoed_as_the_stack_does(runtime):
    with _clients(runtime) as (hot, stack):
        for given in ({}, {"X-Request-ID": "not a sane id!"}):
            for client in (hot, stack):
                response = client.get("/api/v1/requests/RVT-NOTHERE", headers=given)
                made = response.headers["x-request-id"]
                assert re.fullmatch(r"[0-9a-f]{32}", made)
                assert response.json()["request_id"] == made
        assert _hot_path(hot).answered == 2


def test_rate_limited_lookups_get_the_same_429(runtime):
    original, _ = _worked_request(runtime)
    paths = [
        f"/api/v1/requests/{original}",
        f"/open311/v2/requests/{original}.json",
        f"/api/v1/requests/{original}",  # the `reads` policy counts per address, every path
        f"/open311/v2/requests/{original}.xml",
        "/api/v1/requests/RVT-NOTHERE",
    ]
    with _clients(runtime, rate_limit_reads="2/minute") as (hot, stack):
        ours = [hot.get(path, headers=REQUEST_ID) for path in paths]
        theirs = [stack.get(path, headers=REQUEST_ID) for path in paths]
        assert [r.status_code for r in ours] == [200, 200, 429, 429, 429]
        for mine, other in zip(ours, theirs, strict=True):
            assert mine.status_code == other.status_code
            assert mine.content == other.content
            # The seconds left in the window may differ by one between the two apps.
            assert [(k, v) for k, v in mine.headers.raw if k != b"retry-after"] == [
                (k, v) for k, v in other.headers.raw if k != b"retry-after"
            ]
            if mine.status_code == 429:
                assert 0 < int(mine.headers["retry-after"]) <= 60
                assert (
                    abs(int(mine.headers["retry-after"]) - int(other.headers["retry-after"])) <= 1
                )
        assert _hot_path(hot).answered == len(paths)


def test_lockdown_changes_no_lookup(runtime):
    paths = _status_paths(runtime)
    with unit_of_work(runtime.session_factory) as session:
        lockdown_module.start_lockdown(session, actor=system_actor("test"), message="Incident")
    with _clients(runtime) as (hot, stack):
        for path in paths:
            assert _answer(hot.get(path, headers=REQUEST_ID)) == _answer(
                stack.get(path, headers=REQUEST_ID)
            ), path
        assert _hot_path(hot).answered == len(paths)
        # The lockdown is on for the stack: a write is refused there, as before.
        refused = hot.post("/api/v1/requests/RVT-NOTHERE/follow", json={"email": "a@b.example"})
        assert refused.status_code == 503


def test_hot_path_takes_only_anonymous_plain_gets(runtime, admin):
    original, _ = _worked_request(runtime)
    native = f"/api/v1/requests/{original}"
    with _clients(runtime) as (hot, stack):
        hot_path = _hot_path(hot)
        not_taken = [
            hot.get(native, params={"unused": "1"}),
            hot.get(f"/open311/v2/requests/{original}.json", params={"extensions": "true"}),
            hot.get(native, headers=auth(admin)),
            hot.get(native, headers={"Authorization": "Bearer th_not-a-real-token"}),
            hot.get(native, headers={"Cookie": f"{SESSION_COOKIE}=not-a-session"}),
            hot.head(native),
            hot.request("GET", native, content=b"x"),
            hot.get(native + "/", follow_redirects=False),
            hot.get("/api/v1/requests"),
        ]
        assert hot_path.answered == 0
        assert [r.status_code for r in not_taken] == [200, 200, 200, 401, 200, 405, 200, 307, 200]
        # A cookie other than the session's is still an anonymous caller.
        theme = {**REQUEST_ID, "Cookie": "theme=dark"}
        ours, theirs = hot.get(native, headers=theme), stack.get(native, headers=theme)
        assert _answer(ours) == _answer(theirs)
        assert hot_path.answered == 1
