"""Kept data reads answered in front of the stack (`datastore.front`, through the app's front
`service_requests.hot_path.StatusHotPath`).

What is checked, on both backends: a kept anonymous `/rows` or `/aggregate` read gets from the
front what the whole stack answers (status, every header but the length, the body but its
`elapsed_ms`), counted in the metrics and the dataset's usage; the rate limit still refuses
it, in the same 429; anything not kept, anything FastAPI might read otherwise (a repeated or
malformed parameter), any error and any caller with a token goes through the stack.
"""

from __future__ import annotations

import json
from typing import Any

from . import test_datastore_serving as serving_tests
from .conftest import auth
from .test_status_hot_path import REQUEST_ID, _clients, _hot_path

settings = serving_tests.settings  # every table gets a serving copy
publisher = serving_tests.publisher
trees = serving_tests.trees

ROWS = "/api/v1/datasets/street-trees/rows"
AGGREGATE = "/api/v1/datasets/street-trees/aggregate"
KEPT = [
    (ROWS, {"species": "Oak", "limit": "3"}),
    (ROWS, {"limit": "5", "offset": "20", "sort": "-height"}),
    (ROWS, {"fields": "id,species", "q": "Oak", "limit": "2"}),
    (ROWS, {"version": "1", "limit": "1"}),
    (AGGREGATE, {"group_by": "species", "metric": "count"}),
    (AGGREGATE, {"metric": ["count", "max:height"], "height__gte": "2"}),
]


def _comparable(response: Any) -> tuple[int, list[tuple[bytes, bytes]], Any]:
    """Status, headers (the length aside: `elapsed_ms` may have another number of digits) and
    the body without `elapsed_ms`, the only value that is this request's own."""
    body = response.json()
    if isinstance(body, dict):
        body.pop("elapsed_ms", None)
    headers = [(k, v) for k, v in response.headers.raw if k.lower() != b"content-length"]
    return response.status_code, headers, json.dumps(body, sort_keys=True)


def test_kept_reads_are_answered_in_front_as_the_stack_answers(runtime, trees):
    with _clients(runtime) as (hot, stack):
        front = _hot_path(hot)
        assert front is not None
        for path, params in KEPT:  # asked once: the answers and the table lookup are kept
            assert hot.get(path, params=params).status_code == 200
            assert stack.get(path, params=params).status_code == 200
        answered = front.answered
        for path, params in KEPT:
            ours = hot.get(path, params=params, headers=REQUEST_ID)
            theirs = stack.get(path, params=params, headers=REQUEST_ID)
            assert _comparable(ours) == _comparable(theirs), (path, params)
        assert front.answered == answered + len(KEPT)
        counted = {
            s.labels["route"]: s.value
            for metric in hot.app.state.metrics.registry.collect()
            for s in metric.samples
            if s.name == "townhall_http_requests_total" and s.labels["status"] == "200"
        }
        assert counted["/api/v1/datasets/{slug}/rows"] == 8
        assert counted["/api/v1/datasets/{slug}/aggregate"] == 4
        usage = {
            (slug, channel): n for slug, channel, _, n in hot.app.state.dataset_usage.pending()
        }
        assert sum(n for (slug, _), n in usage.items() if slug == "street-trees") >= 12


def test_what_is_not_kept_or_not_plain_goes_through_the_stack(runtime, trees, publisher):
    with _clients(runtime) as (hot, stack):
        front = _hot_path(hot)
        assert hot.get(ROWS, params={"species": "Oak", "limit": "3"}).status_code == 200
        answered = front.answered
        asked = [
            {"species": "Elm", "limit": "4"},  # never asked: not kept
            {"limit": "0"},  # out of bounds: FastAPI's 422
            {"limit": "abc"},
            {"limit": ["3", "4"]},  # a repeated value
            {"limit": " 3"},  # not plain digits
            {"nosuch": "1"},  # an unknown column: the route's 422
            {"group_by": "species"},  # another route's parameter
        ]
        for params in asked:
            ours = hot.get(ROWS, params=params, headers=REQUEST_ID)
            theirs = stack.get(ROWS, params=params, headers=REQUEST_ID)
            assert ours.status_code == theirs.status_code, params
            assert ours.json().get("code") == theirs.json().get("code"), params
        statuses = {hot.get(ROWS, params=p).status_code for p in asked}
        assert statuses == {200, 422}
        # A caller with a token is resolved by the stack, whatever is kept.
        own = hot.get(ROWS, params={"species": "Oak", "limit": "3"}, headers=auth(publisher))
        assert own.status_code == 200
        assert front.answered == answered + 1  # the Elm page, kept by its first ask


def test_the_rate_limit_still_refuses_kept_reads(runtime, trees):
    with _clients(runtime, rate_limit_reads="3/minute") as (hot, stack):
        front = _hot_path(hot)
        params = {"species": "Oak", "limit": "3"}
        assert stack.get(ROWS, params=params).status_code == 200  # kept, on the stack's count
        statuses = [hot.get(ROWS, params=params).status_code for _ in range(4)]
        assert statuses == [200, 200, 200, 429]
        refused = hot.get(ROWS, params=params, headers=REQUEST_ID)
        assert refused.status_code == 429
        assert refused.json()["code"] == "too_many_requests"
        assert 1 <= int(refused.headers["retry-after"]) <= 60
        assert front.answered >= 4
