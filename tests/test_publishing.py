"""Privacy-safe publication of operational data: records k-anonymous (checked with pycanon),
free text scrubbed, nothing personal in the open datasets, DP counts noised once per week, a
privacy report on every version. Every database test runs on SQLite and PostgreSQL."""

from __future__ import annotations

import csv
import io
import random
import secrets
from datetime import UTC, date, datetime, timedelta

import pandas as pd
import pytest
from pycanon import anonymity
from sqlalchemy import select

from townhall.accounts import actions as account_actions
from townhall.actor import system_actor
from townhall.catalog import queries as catalog_queries
from townhall.db import unit_of_work
from townhall.directory.models import Location, Ticket
from townhall.directory.models import Service as DirectoryService
from townhall.publishing import actions, dp
from townhall.publishing.anonymity import QuasiIdentifier, k_anonymise
from townhall.publishing.models import DpCount, PublicationPipeline
from townhall.publishing.pipeline import run_pipeline
from townhall.service_requests.models import RequestService, ServiceRequest
from townhall.service_requests.privacy import scrub_personal_data

from .conftest import auth, make_account

SYSTEM = system_actor("test")
NOW = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
CENTRE = (42.2187, -72.6153)
GROUPS = {"POTHOLE": "Streets", "STREETLIGHT": "Streets", "GRAFFITI": "Cleanliness",
          "MISSED_PICKUP": "Waste", "NOISE": "Nuisance", "TREE": "Parks"}  # fmt: skip
FIRST = ["Amara", "Bogdan", "Chidi", "Dolores", "Eamon", "Farida", "Giulia", "Hamid"]
LAST = ["Adeyemi", "Bergstrom", "Castellanos", "Dubrovski", "Eze", "Ferreira", "Gallagher"]
# Planted in descriptions: every one must be gone from the open data.
PLANTED = [
    ("Call me on 413-555-0147.", "413-555-0147"),
    ("Refund to IBAN DE89 3704 0044 0532 0130 00 please.", "DE89 3704 0044 0532 0130 00"),
    ("It is in front of 1835 Meadowlark Lane.", "1835 Meadowlark Lane"),
    ("My SSN is 078-05-1120.", "078-05-1120"),
    ("Email me at leak.test@example.org.", "leak.test@example.org"),
    ("My neighbor Wanjiru Okonkwo saw it.", "Wanjiru Okonkwo"),
]


def make_requests(runtime, n: int = 400, *, seed: int = 7, now: datetime = NOW) -> list[dict]:
    """An office, six request types and `n` requests over the last 20 weeks, a fifth of them
    with personal data planted in the text. Returns what was planted, per request."""
    rng = random.Random(seed)
    planted = []
    with unit_of_work(runtime.session_factory) as session:
        account_actions.create_organization(
            session, actor=SYSTEM, slug="public-works", name="Public Works"
        )
        services = {}
        for code, group in GROUPS.items():
            service = RequestService(code=code, name=code.title(), group=group)
            session.add(service)
            services[code] = service
        session.flush()
        for i in range(n):
            code = rng.choice(list(GROUPS))
            # Busy centre, quieter edges: some cells are rare and must be generalised away.
            lat = CENTRE[0] + rng.gauss(0, 0.01)
            lon = CENTRE[1] + rng.gauss(0, 0.01)
            requested = now - timedelta(days=rng.uniform(1, 140), hours=rng.uniform(0, 23))
            name = f"{rng.choice(FIRST)} {rng.choice(LAST)}"
            text = f"Problem with {code.lower().replace('_', ' ')} near the corner."
            snippet, value = rng.choice(PLANTED) if rng.random() < 0.2 else ("", None)
            if snippet:
                text += " " + snippet
            if rng.random() < 0.1:
                text += f" Thanks, {name}"
            closed = rng.random() < 0.7
            session.add(
                ServiceRequest(
                    tracking_code=f"RQ-{i:05d}-{secrets.token_hex(2)}",
                    submission_token=secrets.token_hex(16),
                    service_id=services[code].id,
                    status="closed" if closed else "open",
                    sub_status="resolved" if closed else "received",
                    resolution="resolved" if closed else None,
                    description=text,
                    public_description=scrub_personal_data(text, known_names=[name]),
                    lat=round(lat, 6),
                    long=round(lon, 6),
                    address=f"{rng.randint(1, 999)} Elm Street",
                    district_code=f"D{1 + int((lat - CENTRE[0] + 0.05) * 40) % 6:02d}",
                    resident_name=name,
                    resident_email=f"{name.replace(' ', '.').lower()}@example.org",
                    resident_phone=f"413-555-{rng.randint(100, 199):04d}",
                    requested_at=requested,
                    updated_at=requested,
                    closed_at=requested + timedelta(days=rng.uniform(0, 10)) if closed else None,
                )
            )
            planted.append({"name": name, "value": value})
    return planted


def make_pipeline(runtime, source: str = "service_requests", **settings) -> int:
    with unit_of_work(runtime.session_factory) as session:
        steward = account_actions.create_user(
            session,
            actor=SYSTEM,
            email=f"steward-{secrets.token_hex(3)}@city.example",
            password="correct-horse-battery",
            role="publisher",
            organization_slugs=["public-works"],
        )
        pipeline = actions.create_pipeline(
            session,
            actor=SYSTEM,
            source=source,
            organization_slug="public-works",
            steward_email=steward.email,
            **settings,
        )
        return pipeline.id


def run(runtime, pipeline_id: int, now: datetime = NOW):
    return run_pipeline(runtime, pipeline_id, actor=SYSTEM, trigger="manual", force=True, now=now)


def published_csv(client, slug: str, headers=None) -> pd.DataFrame:
    response = client.get(f"/api/v1/datasets/{slug}/download.csv", headers=headers or {})
    assert response.status_code == 200, response.text
    return pd.read_csv(io.StringIO(response.text), dtype=str, keep_default_na=False)


# k-anonymity on its own ------------------------------------------------------------------


def test_k_anonymise_generalises_and_suppresses_until_k_holds():
    rng = random.Random(1)
    rows = [
        {"zip": f"010{rng.randint(0, 99):02d}", "age": rng.randint(18, 90), "x": i}
        for i in range(500)
    ]
    quasi = [
        QuasiIdentifier("zip", ("5", "3", "*"), lambda z, lv: (z, z[:3], "*")[lv]),
        QuasiIdentifier(
            "age", ("year", "decade", "*"), lambda a, lv: (str(a), f"{a // 10}0s", "*")[lv]
        ),
    ]
    result = k_anonymise(rows, quasi, k=5, max_suppression=0.05)
    frame = pd.DataFrame(result.rows)
    assert anonymity.k_anonymity(frame, ["zip", "age"]) >= 5
    assert result.suppressed <= 0.05 * len(rows)
    assert result.levels != {"zip": "*", "age": "*"}  # it did not just erase everything
    assert len(result.rows) + result.suppressed == len(rows)


def test_k_anonymise_never_returns_an_unsafe_table():
    rows = [{"q": str(i)} for i in range(7)]  # every value unique, no hierarchy to climb
    quasi = [QuasiIdentifier("q", ("exact",), lambda v, lv: v)]
    result = k_anonymise(rows, quasi, k=5, max_suppression=0.0)
    assert result.rows == []
    assert result.suppressed == 7


def test_dp_counts_cover_the_public_cells_and_cost_epsilon():
    counts = dp.noisy_counts(
        [("D01", "Streets")] * 40 + [("D99", "Mystery")] * 3,
        areas=["D01", "D02"],
        categories=["Streets"],
        epsilon=1.0,
    )
    assert set(counts) == {(a, c) for a in ("D01", "D02", "other") for c in ("Streets", "other")}
    assert all(v >= 0 for v in counts.values())
    assert abs(counts[("D01", "Streets")] - 40) < 25  # noise scale 1: 25 is ~17 sigmas
    assert dp.measurement(dp.cells(["D01"], ["S"]), 0.5).map(1) <= 0.5


# The pipeline, end to end ----------------------------------------------------------------


def test_service_requests_are_published_k_anonymous_with_a_privacy_report(runtime, client):
    make_requests(runtime)
    pipeline_id = make_pipeline(runtime)
    first = run(runtime, pipeline_id)
    assert first is not None
    assert first.status == "succeeded"
    # Made from operational data: the first release waits for review.
    with unit_of_work(runtime.session_factory) as session:
        records = catalog_queries.dataset_by_slug(session, "service-requests")
        assert records.state == "in_review"
    assert client.get("/api/v1/datasets/service-requests").status_code == 404

    reviewer = make_account(runtime, "publisher", orgs=["public-works"])
    for slug in ("service-requests", "service-requests-weekly"):
        response = client.post(
            f"/api/v1/datasets/{slug}/approve", headers=auth(reviewer), json={"publish": True}
        )
        assert response.status_code == 200, response.text
        assert response.json()["state"] == "published"

    frame = published_csv(client, "service-requests")
    report = first.report["records"]
    assert len(frame) == report["rows_out"] > 0.9 * 400
    qis = ["area", "requested", "category"]
    assert anonymity.k_anonymity(frame, qis) >= 5
    # Generalisation is recorded in the table itself, one level per version.
    for qi in qis:
        assert frame[f"{qi}_level"].nunique() == 1
    assert set(frame.columns) >= {"status", "days_to_close", "description"}
    assert not {"tracking_code", "resident_name", "lat", "address"} & set(frame.columns)

    public = client.get("/api/v1/datasets/service-requests/privacy-report")
    assert public.status_code == 200
    body = public.json()["report"]
    assert body["k_anonymity"]["k"] == 5
    assert body["k_anonymity"]["smallest_class"] >= 5
    assert body["k_anonymity"]["suppressed_fraction"] <= 0.05
    assert "resident_email" in body["direct_identifiers_dropped"]
    assert body["free_text"]["found"]  # the planted data was found
    assert body["free_text"]["scrubber_measured"]["token_recall"] > 0.9
    counts = client.get("/api/v1/datasets/service-requests-weekly/privacy-report").json()
    assert counts["report"]["differential_privacy"]["epsilon_per_week"] == 1.0


def test_no_personal_data_reaches_the_open_datasets(runtime, client, admin):
    planted = make_requests(runtime, n=300, seed=11)
    pipeline_id = make_pipeline(runtime, location_mode="district", time_granularity="day")
    run(runtime, pipeline_id)
    with unit_of_work(runtime.session_factory) as session:
        residents = session.execute(
            select(
                ServiceRequest.resident_name,
                ServiceRequest.resident_email,
                ServiceRequest.resident_phone,
                ServiceRequest.tracking_code,
                ServiceRequest.address,
            )
        ).all()
    text = ""
    for slug in ("service-requests", "service-requests-weekly"):
        text += published_csv(client, slug, auth(admin)).to_csv(index=False)
    lowered = text.lower()
    for row in residents:
        for value in row:
            assert value.lower() not in lowered, value
    for item in planted:
        if item["value"]:
            assert item["value"].lower() not in lowered, item["value"]
    assert "@" not in text


def test_dp_weeks_are_noised_once_and_later_runs_add_new_weeks(runtime):
    make_requests(runtime, n=200, seed=3)
    pipeline_id = make_pipeline(runtime, epsilon=0.5)
    run(runtime, pipeline_id, now=NOW - timedelta(days=14))
    with unit_of_work(runtime.session_factory) as session:
        before = {
            (c.week_start, c.area, c.category): c.count
            for c in session.scalars(select(DpCount).where(DpCount.pipeline_id == pipeline_id))
        }
    second = run(runtime, pipeline_id, now=NOW)
    with unit_of_work(runtime.session_factory) as session:
        after = {
            (c.week_start, c.area, c.category): (c.count, c.epsilon)
            for c in session.scalars(select(DpCount).where(DpCount.pipeline_id == pipeline_id))
        }
    assert before
    assert all(after[key][0] == value for key, value in before.items())
    new_weeks = {key[0] for key in after} - {key[0] for key in before}
    assert len(new_weeks) == 2
    assert {eps for _, eps in after.values()} == {0.5}
    released = second.report["counts"]["differential_privacy"]["weeks_released_this_run"]
    assert sorted(released) == sorted(w.isoformat() for w in new_weeks)


def test_a_run_is_not_repeated_before_its_interval(runtime):
    make_requests(runtime, n=60, seed=5)
    pipeline_id = make_pipeline(runtime)
    assert run_pipeline(runtime, pipeline_id, actor=SYSTEM, now=NOW) is not None
    assert run_pipeline(runtime, pipeline_id, actor=SYSTEM, now=NOW) is None


def test_pipeline_settings_are_checked_and_audited(client, runtime, admin):
    client.post("/api/v1/organizations", headers=auth(admin), json={"slug": "ops", "name": "Ops"})
    body = {"source": "service_requests", "organization": "ops", "k": 10, "epsilon": 0.25}
    created = client.post("/api/v1/publishing/pipelines", headers=auth(admin), json=body)
    assert created.status_code == 201, created.text
    assert created.json()["k"] == 10
    bad = client.patch(
        "/api/v1/publishing/pipelines/service_requests", headers=auth(admin), json={"k": 1}
    )
    assert bad.status_code == 422
    zone = client.patch(
        "/api/v1/publishing/pipelines/service_requests",
        headers=auth(admin),
        json={"timezone": "Mars/Olympus"},
    )
    assert zone.status_code == 422
    assert "timezone" in zone.json()["message"]
    publisher = make_account(runtime, "publisher", orgs=["ops"])
    denied = client.post("/api/v1/publishing/pipelines", headers=auth(publisher), json=body)
    assert denied.status_code == 403
    audit = client.get(
        "/api/v1/audit", headers=auth(admin), params={"object_type": "publishing_pipeline"}
    ).json()
    assert [e["action"] for e in audit] == ["publishing.pipeline.create"]


def make_visits(runtime, n: int = 300, *, seed: int = 9) -> None:
    rng = random.Random(seed)
    with unit_of_work(runtime.session_factory) as session:
        account_actions.create_organization(
            session, actor=SYSTEM, slug="public-works", name="Public Works"
        )
        offices = [Location(slug=f"office-{i}", name=f"Office {i}") for i in range(3)]
        services = [DirectoryService(slug=f"svc-{i}", name=f"Service {i}") for i in range(4)]
        session.add_all([*offices, *services])
        session.flush()
        for i in range(n):
            issued = NOW - timedelta(days=rng.randint(1, 60), hours=rng.uniform(0, 8))
            called = issued + timedelta(minutes=rng.uniform(1, 45))
            served = called + timedelta(minutes=rng.uniform(2, 20))
            outcome = "served" if rng.random() < 0.9 else "no_show"
            session.add(
                Ticket(
                    location_id=rng.choice(offices).id,
                    business_date=issued.date(),
                    code=f"A{i:03d}",
                    service_id=rng.choice(services).id,
                    state=outcome,
                    desk=f"desk {rng.randint(1, 4)}",
                    issued_at=issued,
                    called_at=called,
                    served_at=served if outcome == "served" else None,
                    no_show_at=called if outcome == "no_show" else None,
                )
            )


def test_office_visits_are_published_k_anonymous(runtime, client, admin):
    make_visits(runtime)
    pipeline_id = make_pipeline(runtime, "office_visits", k=5)
    result = run(runtime, pipeline_id)
    frame = published_csv(client, "office-visits", auth(admin))
    assert anonymity.k_anonymity(frame, ["office", "service", "issued"]) >= 5
    assert not {"desk", "code", "ticket_code"} & set(frame.columns)
    assert result.report["records"]["k_anonymity"]["rows_in"] == 300
    counts = published_csv(client, "office-visits-weekly", auth(admin))
    assert set(counts["office"]) <= {"office-0", "office-1", "office-2", "other"}


def test_privacy_report_of_an_unreported_dataset_is_not_found(client):
    response = client.get("/api/v1/datasets/nothing-here/privacy-report")
    assert response.status_code == 404


def test_pipeline_rows_stay_consistent_with_the_csv_written(runtime):
    """The CSV the pipeline writes parses back to exactly the rows it reports."""
    make_requests(runtime, n=120, seed=21)
    pipeline_id = make_pipeline(runtime)
    result = run(runtime, pipeline_id)
    with unit_of_work(runtime.session_factory) as session:
        pipeline = session.get(PublicationPipeline, pipeline_id)
        dataset = catalog_queries.dataset_by_slug(session, pipeline.records_slug)
        version = catalog_queries.version_of(session, dataset.resources[0], None)
        assert version.row_count == result.rows_out
    assert date.fromisoformat(result.report["records"]["generated_at"][:10]) == NOW.date()
    assert csv  # the module is used by the pipeline; kept imported for readers


def test_an_empty_source_publishes_an_empty_table(runtime, client, admin):
    with unit_of_work(runtime.session_factory) as session:
        account_actions.create_organization(
            session, actor=SYSTEM, slug="public-works", name="Public Works"
        )
    pipeline_id = make_pipeline(runtime, "office_visits")
    result = run(runtime, pipeline_id)
    assert result.status == "succeeded"
    assert result.rows_out == 0
    frame = published_csv(client, "office-visits", auth(admin))
    assert len(frame) == 0
    assert "office" in frame.columns


# About 40 s on an idle machine (300 s seen under a load of 40): SQLite in the default suite,
# PostgreSQL with the slow ones.
@pytest.mark.timeout(900)
@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgresql", marks=pytest.mark.slow)])
def test_the_demo_city_publishes_its_operational_data(runtime, client):
    from townhall.demo.seed import PUBLISH_DEMO_JOB, seed_demo_city

    summary = seed_demo_city(runtime, request_count=1500)
    assert PUBLISH_DEMO_JOB in summary
    # The seed queued the job once it had committed; run it as the consumer would.
    queued = [task for task in runtime.jobs.huey.pending() if task.name == PUBLISH_DEMO_JOB]
    assert len(queued) == 1
    assert client.get("/api/v1/datasets/service-requests").status_code == 404  # not yet
    slugs = runtime.jobs.huey.execute(queued[0])
    assert slugs == [
        "service-requests", "service-requests-weekly", "office-visits", "office-visits-weekly"
    ]  # fmt: skip
    for slug in slugs:
        dataset = client.get(f"/api/v1/datasets/{slug}")
        assert dataset.status_code == 200
        assert dataset.json()["state"] == "published"
        report = client.get(f"/api/v1/datasets/{slug}/privacy-report")
        assert report.status_code == 200
    frame = published_csv(client, "service-requests")
    assert anonymity.k_anonymity(frame, ["area", "requested", "category"]) >= 5
    assert len(frame) > 0.9 * 1500 * 365 / 730 * 0.9  # most of the window's requests
