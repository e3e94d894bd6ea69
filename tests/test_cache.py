"""Cached answers and their invalidation (`townhall.cache`), and the kept status answers.

What is checked: the cache's own rules (time bound, size bound, tags, wildcards, a read that
raced a change is not kept); a change made through Townhall shows in the very next status
lookup on every path (native, Open311 JSON and XML), on both backends, including changes to
the request type's name and bulk statements; a rollback drops nothing. Two nodes on
PostgreSQL and Redis: tests/test_cache_nodes.py.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import update

from townhall.actor import system_actor
from townhall.app import create_app
from townhall.cache import InvalidatedCache
from townhall.db import unit_of_work
from townhall.service_requests import actions
from townhall.service_requests.models import ServiceRequest

from .test_service_requests import setup_city, submit

STAFF = system_actor("test")


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _cache(clock: Clock, **options: float) -> InvalidatedCache:
    return InvalidatedCache(
        "test",
        kinds=["request"],
        ttl_seconds=options.get("ttl", 10.0),
        max_entries=int(options.get("max_entries", 100)),
        clock=clock,
    )


# The cache's own rules ------------------------------------------------------------------------


def test_an_answer_is_kept_for_its_time_bound_only() -> None:
    clock = Clock()
    cache = _cache(clock)
    assert cache.put("a", b"one", started=cache.begin(), tags=[("request", 1)])
    assert cache.get("a") == b"one"
    clock.now += 9.9
    assert cache.get("a") == b"one"
    clock.now += 0.2
    assert cache.get("a") is None
    assert len(cache) == 0


def test_a_dropped_tag_forgets_its_answers_and_only_those() -> None:
    clock = Clock()
    cache = _cache(clock)
    cache.put("a", 1, started=cache.begin(), tags=[("request", 1)])
    cache.put("b", 2, started=cache.begin(), tags=[("request", 2)])
    cache.put("c", 3, started=cache.begin(), tags=[("request", 1), ("request", 3)])
    cache.drop([("request", 1)])
    assert (cache.get("a"), cache.get("b"), cache.get("c")) == (None, 2, None)
    cache.drop([("request", "*")])  # a wildcard of a kind it holds: everything
    assert cache.get("b") is None


def test_a_wildcard_of_another_kind_leaves_the_cache_alone() -> None:
    cache = _cache(Clock())
    cache.put("a", 1, started=cache.begin(), tags=[("request", 1)])
    cache.drop([("dataset", "*")])
    assert cache.get("a") == 1


def test_a_read_that_raced_a_change_is_not_kept() -> None:
    clock = Clock()
    cache = _cache(clock)
    started = cache.begin()  # the read begins...
    clock.now += 0.001
    cache.drop([("request", 7)])  # ...a commit changes its row while it runs...
    clock.now += 0.001
    assert not cache.put("a", "old", started=started, tags=[("request", 7)])
    assert cache.get("a") is None
    # Reads that began after the change are kept; other rows were never affected.
    assert cache.put("a", "new", started=cache.begin(), tags=[("request", 7)])
    assert cache.put("b", "other", started=started, tags=[("request", 8)])
    started = cache.begin()
    clock.now += 0.001
    cache.drop([("request", "*")])
    assert not cache.put("b", "other", started=started, tags=[("request", 8)])
    started = cache.begin()
    clock.now += 0.001
    cache.clear()
    assert not cache.put("b", "other", started=started, tags=[("request", 8)])


def test_the_least_recently_asked_answer_goes_first() -> None:
    cache = _cache(Clock(), max_entries=2)
    cache.put("a", 1, started=cache.begin(), tags=[("request", 1)])
    cache.put("b", 2, started=cache.begin(), tags=[("request", 2)])
    assert cache.get("a") == 1  # now "b" is the least recently asked
    cache.put("c", 3, started=cache.begin(), tags=[("request", 3)])
    assert (cache.get("a"), cache.get("b"), cache.get("c")) == (1, None, 3)
    cache.drop([("request", 2)])  # its tag index went with it: nothing left to find
    assert len(cache) == 2


def test_a_zero_time_bound_keeps_nothing() -> None:
    cache = _cache(Clock(), ttl=0)
    assert not cache.put("a", 1, started=cache.begin(), tags=[("request", 1)])
    assert cache.get("a") is None


# Kept status answers on one node --------------------------------------------------------------

PATHS = (
    "/api/v1/requests/{code}",
    "/open311/v2/requests/{code}.json",
    "/open311/v2/requests/{code}.xml",
)


def _answers(client: TestClient, code: str) -> list[bytes]:
    responses = [client.get(path.format(code=code)) for path in PATHS]
    assert [r.status_code for r in responses] == [200, 200, 200]
    return [r.content for r in responses]


def test_every_change_shows_in_the_next_lookup(client, runtime) -> None:
    setup_city(runtime)
    code = submit(runtime, description="Broken bench in the park.", now=datetime.now(UTC))
    cache = client.app.state.status_cache
    first = _answers(client, code)
    assert len(cache) == 3
    hits = cache.hits
    assert _answers(client, code) == first
    assert cache.hits == hits + 3  # answered from memory

    with unit_of_work(runtime.session_factory) as session:
        actions.add_note(session, actor=STAFF, code=code, public_note="Crew booked.")
    noted = _answers(client, code)
    assert b"Crew booked." in noted[0]  # the native history shows public notes
    assert noted[1:] != first[1:] or noted[0] != first[0]

    with unit_of_work(runtime.session_factory) as session:
        actions.transition(session, actor=STAFF, code=code, to="in_progress")
    assert b'"sub_status":"in_progress"' in client.get(f"/api/v1/requests/{code}").content

    # The request type's name is in every answer: renaming it drops them all.
    with unit_of_work(runtime.session_factory) as session:
        request = session.query(ServiceRequest).filter_by(tracking_code=code).one()
        request.service.name = "Park furniture"
    assert all(b"Park furniture" in body for body in _answers(client, code))

    # A bulk statement through the ORM drops every answer of its kind.
    with unit_of_work(runtime.session_factory) as session:
        session.execute(
            update(ServiceRequest)
            .where(ServiceRequest.tracking_code == code)
            .values(status_notes="Bulk note")
        )
    assert all(b"Bulk note" in body for body in _answers(client, code))


def test_a_hidden_request_is_gone_at_once(client, runtime) -> None:
    setup_city(runtime)
    code = submit(runtime, description="Graffiti on the wall.", now=datetime.now(UTC))
    _answers(client, code)
    with unit_of_work(runtime.session_factory) as session:
        session.query(ServiceRequest).filter_by(tracking_code=code).one().hidden = True
    assert [client.get(p.format(code=code)).status_code for p in PATHS] == [404, 404, 404]


def test_a_rolled_back_change_drops_nothing(client, runtime) -> None:
    setup_city(runtime)
    code = submit(runtime, description="Streetlight out.", now=datetime.now(UTC))
    _answers(client, code)
    cache = client.app.state.status_cache
    with pytest.raises(RuntimeError), unit_of_work(runtime.session_factory) as session:
        session.query(ServiceRequest).filter_by(tracking_code=code).one().status_notes = "x"
        session.flush()
        raise RuntimeError("the work failed")
    assert len(cache) == 3
    assert b'"status_notes":"x"' not in client.get(f"/api/v1/requests/{code}").content


def test_switched_off_it_keeps_nothing(runtime) -> None:
    setup_city(runtime)
    code = submit(runtime, description="Pothole on Main.", now=datetime.now(UTC))
    app = create_app(
        runtime.settings.model_copy(update={"status_cache_seconds": 0}), runtime=runtime
    )
    with TestClient(app) as client:
        _answers(client, code)
        assert len(client.app.state.status_cache) == 0
