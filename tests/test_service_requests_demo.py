"""Seeding the demo city's service requests in bulk: complete, faithful, fast. Both backends."""

from __future__ import annotations

import time
from collections import Counter

import pytest
from sqlalchemy import func, select

from townhall.accounts import actions as account_actions
from townhall.actor import ANONYMOUS, system_actor
from townhall.audit.models import AuditEntry
from townhall.db import unit_of_work
from townhall.demo.city import generate_city
from townhall.service_requests import actions, queries
from townhall.service_requests.demo import seed_requests
from townhall.service_requests.models import RequestService, RequestUpdate, ServiceRequest

ACTOR = system_actor("demo-seed")


def seed(runtime, request_count: int) -> tuple[object, float, list[int]]:
    city = generate_city(request_count=request_count)
    with unit_of_work(runtime.session_factory) as session:
        for office in city.offices:
            account_actions.create_organization(
                session, actor=ACTOR, slug=office.slug, name=office.name
            )
        for member in city.staff[:40]:
            account_actions.create_user(
                session, actor=ACTOR, email=member.email, password="x" * 12,
                role=member.role, organization_slugs=[],
            )  # fmt: skip
    calls: list[int] = []
    started = time.perf_counter()
    with unit_of_work(runtime.session_factory) as session:
        assert seed_requests(session, ACTOR, city, progress=calls.append) == request_count
    return city, time.perf_counter() - started, calls


def test_seeding_keeps_the_citys_data(runtime) -> None:
    city, _, calls = seed(runtime, 6000)
    assert calls == [5000, 6000]
    by_code = {r.tracking_code: r for r in city.service_requests}
    with unit_of_work(runtime.session_factory) as session:
        services = session.scalars(select(RequestService)).all()
        assert {s.code for s in services} == {s.code for s in city.services if s.accepts_requests}
        assert all(s.organization_id is not None for s in services)
        rows = session.scalars(select(ServiceRequest)).all()
        assert len(rows) == 6000
        statuses = Counter((r.status, r.sub_status) for r in rows)
        assert set(statuses) <= {
            ("open", "received"), ("open", "triaged"), ("open", "in_progress"),
            ("closed", "resolved"), ("closed", "duplicate"), ("closed", "closed_not_fixed"),
        }  # fmt: skip
        for row in rows[:500]:
            demo = by_code[row.tracking_code]
            assert (row.lat, row.long, row.district_code) == (
                demo.lat,
                demo.lon,
                demo.district_code,
            )
            assert row.requested_at == demo.requested_at
            assert row.closed_at == demo.closed_at
            assert row.expected_at == demo.expected_at
            assert row.resident_email == demo.resident_email
            assert row.service.code == demo.service_code
            if "email" in demo.description_pii:
                assert "@" not in row.public_description
        updates = session.scalar(select(func.count()).select_from(RequestUpdate))
        expected_updates = sum(
            1 + (r.acknowledged_at is not None) + (r.started_at is not None)
            + (r.closed_at is not None)
            for r in city.service_requests
        )  # fmt: skip
        assert updates == expected_updates
        seeded = session.scalars(
            select(AuditEntry.action).where(AuditEntry.action.like("service_request.%"))
        ).all()
        assert seeded == ["service_request.seed"], "one audit entry, not one per request"
        closed = next(r for r in rows if r.status == "closed")
        history = queries.history(session, closed.id, public_only=True)
        assert history[-1].public_note == by_code[closed.tracking_code].status_notes
    # New requests continue after the seeded ids (the PostgreSQL sequence was moved on).
    with unit_of_work(runtime.session_factory) as session:
        created = actions.submit_request(
            session, actor=ANONYMOUS,
            submission=actions.Submission(service_code="POTHOLE", lat=42.2, long=-72.6),
        ).request  # fmt: skip
        assert created.id == 6001


def test_seeded_requests_are_served_by_open311(client, runtime) -> None:
    city, _, _ = seed(runtime, 300)
    newest = city.service_requests[-1]
    response = client.get(
        "/open311/v2/requests.json",
        params={"start_date": (city.end.replace(day=1)).isoformat(), "page_size": 5},
    )
    assert response.status_code == 200, response.text
    [one] = client.get(f"/open311/v2/requests/{newest.tracking_code}.json").json()
    assert one["service_request_id"] == newest.tracking_code
    assert one["lat"] == newest.lat


@pytest.mark.slow
def test_the_whole_demo_city_seeds_well_under_a_minute(runtime) -> None:
    _, seconds, _ = seed(runtime, 60_000)
    print(f"seeded 60,000 requests on {runtime.engine.dialect.name} in {seconds:.1f} s")
    assert seconds < 45  # measured about 17 s (SQLite) and 20 s (PostgreSQL) on 2 cores
