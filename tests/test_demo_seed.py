"""Seeding the demo city into both backends through the slices' actions."""

from __future__ import annotations

from sqlalchemy import func, select

from townhall.accounts.models import Organization, User
from townhall.audit.queries import verify_chain
from townhall.catalog.models import Dataset, DatasetVersion
from townhall.db import unit_of_work
from townhall.demo.seed import DEMO_ADMIN_EMAIL, DEMO_PASSWORD, seed_demo_city
from townhall.service_requests.models import ServiceRequest

from .conftest import login


def test_seed_fills_every_slice_and_keeps_the_audit_chain(runtime, client):
    summary = seed_demo_city(runtime, request_count=1500)
    assert "1500 service requests" in summary
    with unit_of_work(runtime.session_factory) as session:
        assert session.scalar(select(func.count()).select_from(Organization)) >= 7
        assert session.scalar(select(func.count()).select_from(User)) >= 30
        assert session.scalar(select(func.count()).select_from(ServiceRequest)) == 1500
        published = session.scalars(select(Dataset).where(Dataset.state == "published")).all()
        assert len(published) >= 4
        versions = session.scalars(select(DatasetVersion)).all()
        assert all(v.row_count > 0 for v in versions)
        assert verify_chain(session).ok
    # The demo admin can log in, and the open datasets answer queries.
    login(client, DEMO_ADMIN_EMAIL, DEMO_PASSWORD)
    assert client.get("/admin").status_code == 200
    found = client.get("/api/v1/datasets", params={"q": "trees"}).json()
    assert any(d["slug"] == "street-trees" for d in found["items"])
    rows = client.get("/api/v1/datasets/street-trees/rows", params={"limit": 5}).json()
    assert len(rows["rows"]) == 5


def test_seed_again_only_if_empty_is_a_no_op(runtime):
    seed_demo_city(runtime, request_count=200)
    assert "already seeded" in seed_demo_city(runtime, request_count=200, only_if_empty=True)
