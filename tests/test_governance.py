"""Governance: the publication workflow and its review rules, classification, stewards,
retention, usage and the data inventory. Every database test runs on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from townhall.actor import system_actor
from townhall.db import unit_of_work, utcnow
from townhall.governance.classification import detect_column
from townhall.jobs import JobQueue, schedule_matcher, scheduled_jobs
from townhall.service_requests.models import RequestMessage, ServiceRequest

from .conftest import auth, csrf_from, login, make_account
from .test_publishing import make_requests

SYSTEM = system_actor("test")


@pytest.fixture
def org(client, admin):
    response = client.post(
        "/api/v1/organizations", headers=auth(admin), json={"slug": "parks", "name": "Parks"}
    )
    assert response.status_code == 201
    return "parks"


@pytest.fixture
def alice(runtime, org):
    return make_account(runtime, "publisher", orgs=[org])


@pytest.fixture
def bob(runtime, org):
    return make_account(runtime, "publisher", orgs=[org])


def create(client, account, slug, **fields):
    body = {"slug": slug, "title": slug.title(), "organization": "parks", "license_id": "CC0-1.0"}
    response = client.post("/api/v1/datasets", headers=auth(account), json={**body, **fields})
    assert response.status_code == 201, response.text


def upload(client, account, slug, content: bytes) -> None:
    resource = client.post(
        f"/api/v1/datasets/{slug}/resources", headers=auth(account), json={"name": "Table"}
    ).json()
    response = client.post(
        f"/api/v1/datasets/{slug}/resources/{resource['id']}/upload",
        headers=auth(account),
        files={"file": ("table.csv", content, "text/csv")},
    )
    assert response.status_code == 201, response.text


def state(client, account, slug) -> str:
    return client.get(f"/api/v1/datasets/{slug}", headers=auth(account)).json()["state"]


def test_column_names_that_look_personal_are_detected():
    assert detect_column("resident_email") == "personal"
    assert detect_column("contactPhone") == "personal"
    assert detect_column("first_name") == "personal"
    assert detect_column("ssn") == "sensitive"
    assert detect_column("religion") == "sensitive"
    for harmless in ("name", "park_name", "service_code", "h3_cell", "office_address", "count"):
        assert detect_column(harmless) is None, harmless


def test_without_review_publishers_publish_directly(client, alice):
    create(client, alice, "benches")
    response = client.post("/api/v1/datasets/benches/publish", headers=auth(alice))
    assert response.status_code == 200
    assert response.json()["state"] == "published"


def test_required_review_needs_a_second_person(client, admin, alice, bob):
    rule = client.put(
        "/api/v1/organizations/parks/review-rule",
        headers=auth(admin),
        json={"requires_review": True},
    )
    assert rule.status_code == 200
    assert rule.json()["requires_review"] is True
    create(client, alice, "playgrounds")
    direct = client.post("/api/v1/datasets/playgrounds/publish", headers=auth(alice))
    assert direct.status_code == 409
    assert "review" in direct.json()["message"]

    submitted = client.post(
        "/api/v1/datasets/playgrounds/submit", headers=auth(alice), json={"note": "ready"}
    )
    assert submitted.status_code == 200
    assert submitted.json()["state"] == "in_review"
    queue = client.get("/api/v1/review-queue", headers=auth(bob)).json()
    assert [item["slug"] for item in queue] == ["playgrounds"]

    own = client.post("/api/v1/datasets/playgrounds/approve", headers=auth(alice))
    assert own.status_code == 403
    early = client.post("/api/v1/datasets/playgrounds/publish", headers=auth(alice))
    assert early.status_code == 409

    approved = client.post("/api/v1/datasets/playgrounds/approve", headers=auth(bob))
    assert approved.status_code == 200, approved.text
    body = approved.json()
    assert body["state"] == "approved"
    assert body["reviewed_by"].endswith(bob.email)
    published = client.post("/api/v1/datasets/playgrounds/publish", headers=auth(alice))
    assert published.status_code == 200
    assert published.json()["state"] == "published"

    activity = client.get("/api/v1/datasets/playgrounds/activity", headers=auth(alice)).json()
    states = [e["changes"] for e in activity if e["action"] == "dataset.state"]
    assert {"review": "approved", "review_note": "", "review_required": states[1][
        "review_required"]}.items() <= states[1].items()  # fmt: skip
    assert states[0]["approved_by"].endswith(bob.email)
    audit = client.get(
        "/api/v1/audit", headers=auth(admin), params={"object_type": "organization"}
    ).json()
    assert any(e["action"] == "organization.review_rule" for e in audit)


def test_a_reviewer_sends_back_with_a_note(client, admin, alice, bob):
    create(client, alice, "fountains")
    client.post("/api/v1/datasets/fountains/submit", headers=auth(alice))
    empty = client.post("/api/v1/datasets/fountains/send-back", headers=auth(bob), json={})
    assert empty.status_code == 422
    back = client.post(
        "/api/v1/datasets/fountains/send-back",
        headers=auth(bob),
        json={"note": "describe the columns"},
    )
    assert back.status_code == 200
    assert back.json()["state"] == "draft"
    assert back.json()["review_note"] == "describe the columns"


def test_licence_and_steward_are_required(client, runtime, alice):
    create(client, alice, "no-steward")
    with unit_of_work(runtime.session_factory) as session:
        from townhall.catalog.queries import dataset_by_slug

        dataset_by_slug(session, "no-steward").steward_id = None
    refused = client.post("/api/v1/datasets/no-steward/publish", headers=auth(alice))
    assert refused.status_code == 409
    assert "steward" in refused.json()["message"]
    named = client.put(
        "/api/v1/datasets/no-steward/steward", headers=auth(alice), json={"email": alice.email}
    )
    assert named.status_code == 200
    assert named.json()["steward"] == alice.email
    assert (
        client.post("/api/v1/datasets/no-steward/publish", headers=auth(alice)).status_code == 200
    )
    create(client, alice, "no-licence", license_id=None)
    response = client.post("/api/v1/datasets/no-licence/publish", headers=auth(alice))
    assert response.status_code == 409
    assert "licence" in response.json()["message"]


def test_personal_columns_keep_a_dataset_from_open_data(client, admin, alice):
    create(client, alice, "permits")
    upload(client, alice, "permits", b"permit_id,street,contact_email\n1,Elm,a@example.org\n")
    governance = client.get("/api/v1/datasets/permits/governance", headers=auth(alice)).json()
    columns = {c["name"]: (c["classification"], c["source"]) for c in governance["columns"]}
    assert columns["contact_email"] == ("personal", "detected")
    assert any("look personal" in b["message"] for b in governance["blockers"])
    refused = client.post("/api/v1/datasets/permits/publish", headers=auth(alice))
    assert refused.status_code == 409
    assert "contact_email" in refused.json()["message"]

    # A publisher may not declare the column public; only a governance manager may.
    lowered = client.put(
        "/api/v1/datasets/permits/classification",
        headers=auth(alice),
        json={"columns": {"contact_email": "public"}},
    )
    assert lowered.status_code == 403
    declared = client.put(
        "/api/v1/datasets/permits/classification",
        headers=auth(alice),
        json={"columns": {"contact_email": "personal", "permit_id": "internal"}},
    )
    assert declared.status_code == 200
    assert declared.json()["classification"] == "personal"
    refused = client.post("/api/v1/datasets/permits/publish", headers=auth(alice))
    assert refused.status_code == 409
    assert "personal or sensitive" in refused.json()["message"]

    # Not open data: restricted to partners is allowed.
    client.patch("/api/v1/datasets/permits", headers=auth(alice), json={"visibility": "restricted"})
    assert client.post("/api/v1/datasets/permits/publish", headers=auth(alice)).status_code == 200


def test_a_governance_manager_publishing_confirms_detected_columns(client, admin, alice):
    create(client, alice, "office-phones")
    upload(client, alice, "office-phones", b"office,phone\nCity Hall,413-555-0100\n")
    response = client.post("/api/v1/datasets/office-phones/publish", headers=auth(admin))
    assert response.status_code == 200
    activity = client.get("/api/v1/datasets/office-phones/activity", headers=auth(admin)).json()
    entry = next(e for e in activity if e["action"] == "dataset.state")
    assert entry["changes"]["confirmed_public_columns"] == ["phone"]
    columns = client.get("/api/v1/datasets/office-phones/governance", headers=auth(admin)).json()
    assert {"name": "phone", "classification": "public", "source": "declared"} in columns["columns"]


def test_operational_datasets_are_reviewed_the_first_time_only(client, runtime, alice, bob):
    create(client, alice, "requests-open")
    with unit_of_work(runtime.session_factory) as session:
        from townhall.governance import actions

        actions.mark_operational(
            session, actor=SYSTEM, slug="requests-open", source="service_requests"
        )
    refused = client.post("/api/v1/datasets/requests-open/publish", headers=auth(alice))
    assert refused.status_code == 409
    assert "operational" in refused.json()["message"]
    client.post("/api/v1/datasets/requests-open/submit", headers=auth(alice))
    client.post("/api/v1/datasets/requests-open/approve", headers=auth(bob), json={"publish": True})
    assert state(client, alice, "requests-open") == "published"
    client.post("/api/v1/datasets/requests-open/withdraw", headers=auth(alice))
    again = client.post("/api/v1/datasets/requests-open/publish", headers=auth(alice))
    assert again.status_code == 200  # reviewed once; the organization needs no review


def test_bad_transitions_and_levels_are_refused(client, alice, bob):
    create(client, alice, "toilets")
    approve = client.post("/api/v1/datasets/toilets/approve", headers=auth(bob))
    assert approve.status_code == 409  # not in review
    bad = client.put(
        "/api/v1/datasets/toilets/classification",
        headers=auth(alice),
        json={"classification": "secret"},
    )
    assert bad.status_code == 422


def test_retention_anonymises_closed_requests_and_reports_it(client, runtime, admin):
    make_requests(runtime, n=40, seed=2)
    old = utcnow() - timedelta(days=400)
    with unit_of_work(runtime.session_factory) as session:
        rows = list(session.scalars(select(ServiceRequest).order_by(ServiceRequest.id)))
        for row in rows[:10]:
            row.status, row.closed_at, row.requested_at = "closed", old, old - timedelta(days=3)
            session.add(RequestMessage(request_id=row.id, direction="from_resident", body="hi"))
        for row in rows[10:]:
            row.closed_at = None if row.status == "open" else utcnow() - timedelta(days=5)
        old_ids = [row.id for row in rows[:10]]

    dry = client.post("/api/v1/retention/runs", headers=auth(admin), json={"dry_run": True})
    assert dry.status_code == 201
    by_type = {p["record_type"]: p for p in dry.json()["report"]["policies"]}
    assert by_type["service_request.personal_fields"]["matched"] == 10
    assert dry.json()["changed"] == 0

    applied = client.post("/api/v1/retention/runs", headers=auth(admin)).json()
    by_type = {p["record_type"]: p for p in applied["report"]["policies"]}
    assert by_type["service_request.personal_fields"]["changed"]["service_requests"] == 10
    assert by_type["service_request.messages"]["changed"]["request_messages"] == 10
    with unit_of_work(runtime.session_factory) as session:
        for row in session.scalars(select(ServiceRequest)):
            if row.id in old_ids:
                assert row.resident_name is None
                assert row.resident_email is None
                assert row.address is None
                assert row.description == row.public_description
                assert round(row.lat, 3) == row.lat
            else:
                assert row.resident_email is not None
    again = client.post("/api/v1/retention/runs", headers=auth(admin)).json()
    assert again["changed"] == 0  # idempotent
    runs = client.get("/api/v1/retention/runs", headers=auth(admin)).json()
    assert len(runs) == 3
    audit = client.get(
        "/api/v1/audit", headers=auth(admin), params={"object_type": "retention_run"}
    ).json()
    assert len(audit) == 2  # dry runs change nothing and are not audited


def test_retention_policies_can_be_changed_within_limits(client, runtime, admin):
    response = client.put(
        "/api/v1/retention/policies/accounts.login_attempts",
        headers=auth(admin),
        json={"after_days": 30},
    )
    assert response.status_code == 200
    assert response.json()["after_days"] == 30
    too_short = client.put(
        "/api/v1/retention/policies/service_request.personal_fields",
        headers=auth(admin),
        json={"after_days": 3},
    )
    assert too_short.status_code == 422
    unknown = client.put(
        "/api/v1/retention/policies/nothing", headers=auth(admin), json={"enabled": False}
    )
    assert unknown.status_code == 404
    manager = make_account(runtime, "manager")
    assert client.get("/api/v1/retention/policies", headers=auth(manager)).status_code == 200
    denied = client.put(
        "/api/v1/retention/policies/accounts.login_attempts",
        headers=auth(manager),
        json={"after_days": 60},
    )
    assert denied.status_code == 403


def test_inventory_lists_every_dataset_with_usage(client, runtime, admin, alice):
    create(client, alice, "trees")
    upload(client, alice, "trees", b"species,height\noak,12\nelm,9\n")
    client.post("/api/v1/datasets/trees/publish", headers=auth(alice))
    create(client, alice, "draft-one")
    for _ in range(3):
        assert client.get("/api/v1/datasets/trees/rows").status_code == 200
    assert client.get("/api/v1/datasets/trees/rows", headers=auth(alice)).status_code == 200
    assert client.get("/api/v1/datasets/trees/download.csv").status_code == 200
    inventory = client.get("/api/v1/inventory", headers=auth(alice))
    assert inventory.status_code == 200
    items = {item["slug"]: item for item in inventory.json()["items"]}
    assert set(items) == {"trees", "draft-one"}
    trees = items["trees"]
    assert trees["classification"] == "public"
    assert trees["license_id"] == "CC0-1.0"
    assert trees["steward"] == alice.email
    assert trees["state"] == "published"
    assert trees["usage_30d"] == 5
    assert trees["usage_by_channel"] == {"api": 4, "download": 1}
    assert trees["anonymous_30d"] == 4
    assert trees["consumers_30d"] == 1
    assert trees["top_consumers"][0]["consumer"].endswith(alice.email)
    staff = make_account(runtime, "staff")
    assert client.get("/api/v1/inventory", headers=auth(staff)).status_code == 403


def test_governance_pages_render_for_staff_with_the_permission(client, runtime, admin, alice):
    create(client, alice, "lamps")
    client.post("/api/v1/datasets/lamps/submit", headers=auth(alice))
    login(client, admin.email)
    for path in (
        "/governance",
        "/governance/review",
        "/governance/retention",
        "/governance/publishing",
        "/governance/datasets/lamps",
    ):
        page = client.get(path)
        assert page.status_code == 200, path
    review = client.get("/governance/review")
    assert "lamps" in review.text
    sent = client.post(
        "/governance/review/lamps/approve",
        data={"csrf_token": csrf_from(review.text), "publish": "true"},
        follow_redirects=False,
    )
    assert sent.status_code == 303
    assert state(client, admin, "lamps") == "published"
    retention = client.get("/governance/retention")
    ran = client.post(
        "/governance/retention/run",
        data={"csrf_token": csrf_from(retention.text), "dry_run": "true"},
        follow_redirects=False,
    )
    assert ran.status_code == 303
    assert "dry run" in client.get("/governance/retention").text


def test_governance_pages_need_the_permission(client):
    response = client.get("/governance", headers={"accept": "text/html"})
    assert response.status_code == 401


def test_retention_and_publishing_are_scheduled(runtime):
    schedule = scheduled_jobs(runtime.settings)
    assert schedule["governance.apply_retention"] == timedelta(days=1)
    assert schedule["publishing.run_due_pipelines"] == timedelta(minutes=15)
    queue = JobQueue(runtime, name=f"test-{id(runtime)}")
    try:
        assert {"governance.apply_retention", "publishing.run_pipeline"} <= set(queue.job_names)
        assert "governance.apply_retention" in queue.schedule
    finally:
        queue.close()
    daily = schedule_matcher("governance.apply_retention", timedelta(days=1))
    start = utcnow().replace(second=0, microsecond=0)
    minutes = [start + timedelta(minutes=m) for m in range(2 * 24 * 60)]
    assert sum(daily(m) for m in minutes) == 2  # once a day, every day


# Every path that makes data public goes through governance ------------------------------------


def publish(client, account, slug) -> None:
    response = client.post(f"/api/v1/datasets/{slug}/publish", headers=auth(account))
    assert response.status_code == 200, response.text


def ckan(client, account, action, /, **data):
    return client.post(
        f"/api/3/action/{action}", headers={"Authorization": account.token}, json=data
    ).json()


def visibility(client, account, slug) -> str:
    return client.get(f"/api/v1/datasets/{slug}", headers=auth(account)).json()["visibility"]


def test_making_a_published_dataset_public_is_governed(client, admin, alice):
    create(client, alice, "permits", visibility="restricted")
    upload(client, alice, "permits", b"permit_id,street,contact_email\n1,Elm,a@example.org\n")
    publish(client, alice, "permits")  # restricted to partners: allowed
    refused = client.patch(
        "/api/v1/datasets/permits", headers=auth(alice), json={"visibility": "public"}
    )
    assert refused.status_code == 409
    assert "contact_email" in refused.json()["message"]
    assert visibility(client, alice, "permits") == "restricted"
    # The same through CKAN: package_patch and package_update with private=false.
    patched = ckan(client, alice, "package_patch", id="permits", private=False)
    assert patched["success"] is False
    assert "contact_email" in str(patched["error"])
    package = ckan(client, alice, "package_show", id="permits")["result"]
    # The visibility extra (which package_show gives back) wins over `private`.
    package["extras"] = [e for e in package["extras"] if e["key"] != "visibility"]
    updated = ckan(client, alice, "package_update", **{**package, "private": False})
    assert updated["success"] is False
    assert "contact_email" in str(updated["error"])
    assert visibility(client, alice, "permits") == "restricted"
    # Declared personal: refused even for a governance manager.
    client.put(
        "/api/v1/datasets/permits/classification",
        headers=auth(alice),
        json={"columns": {"contact_email": "personal"}},
    )
    refused = client.patch(
        "/api/v1/datasets/permits", headers=auth(admin), json={"visibility": "public"}
    )
    assert refused.status_code == 409
    assert "personal or sensitive" in refused.json()["message"]
    assert visibility(client, alice, "permits") == "restricted"


def test_making_a_clean_published_dataset_public_is_allowed_and_audited(client, alice):
    create(client, alice, "benches", visibility="restricted")
    upload(client, alice, "benches", b"bench_id,park\n1,Central\n")
    publish(client, alice, "benches")
    made = client.patch(
        "/api/v1/datasets/benches", headers=auth(alice), json={"visibility": "public"}
    )
    assert made.status_code == 200, made.text
    assert made.json()["visibility"] == "public"


def test_making_public_where_review_is_required_needs_a_reviewer(client, admin, alice, bob):
    create(client, alice, "kiosks", visibility="restricted")
    client.put(
        "/api/v1/organizations/parks/review-rule",
        headers=auth(admin),
        json={"requires_review": True},
    )
    client.post("/api/v1/datasets/kiosks/submit", headers=auth(alice))
    assert client.post("/api/v1/datasets/kiosks/approve", headers=auth(bob)).status_code == 200
    publish(client, alice, "kiosks")
    own = client.patch(
        "/api/v1/datasets/kiosks", headers=auth(alice), json={"visibility": "public"}
    )
    assert own.status_code == 403
    assert "review" in own.json()["message"]
    assert visibility(client, alice, "kiosks") == "restricted"
    reviewed = client.patch(
        "/api/v1/datasets/kiosks", headers=auth(bob), json={"visibility": "public"}
    )
    assert reviewed.status_code == 200, reviewed.text
    activity = client.get("/api/v1/datasets/kiosks/activity", headers=auth(alice)).json()
    entry = next(e for e in activity if e["action"] == "dataset.update")
    assert entry["changes"]["visibility"] == ["restricted", "public"]
    assert entry["changes"]["approved_by"].endswith(bob.email)


def versions(client, account, slug) -> list[tuple[int, int]]:
    """(resource id, version number) of every version, in order."""
    response = client.get(f"/api/v1/datasets/{slug}/versions", headers=auth(account))
    return sorted((v["resource_id"], v["number"]) for v in response.json())


def test_a_new_version_with_a_personal_column_is_refused(client, admin, alice):
    create(client, alice, "trees")
    upload(client, alice, "trees", b"tree_id,species\n1,Oak\n")
    publish(client, alice, "trees")
    resource_id = client.get("/api/v1/datasets/trees").json()["resources"][0]["id"]
    url = f"/api/v1/datasets/trees/resources/{resource_id}/upload"
    personal = b"tree_id,species,owner_email\n1,Oak,a@example.org\n"
    refused = client.post(url, headers=auth(alice), files={"file": ("t.csv", personal, "text/csv")})
    assert refused.status_code == 409
    assert "owner_email" in refused.json()["message"]
    assert versions(client, alice, "trees") == [(resource_id, 1)]
    # Through CKAN: a new resource with an upload on the public dataset.
    created = client.post(
        "/api/3/action/resource_create",
        headers={"Authorization": alice.token},
        data={"package_id": "trees", "format": "CSV", "name": "Owners"},
        files={"upload": ("owners.csv", personal, "text/csv")},
    ).json()
    assert created["success"] is False
    assert "owner_email" in str(created["error"])
    assert versions(client, alice, "trees") == [(resource_id, 1)]
    rows = client.get("/api/v1/datasets/trees/rows", params={"resource": resource_id}).json()
    assert "owner_email" not in rows["rows"][0]
    # A clean new version is published as usual.
    clean = client.post(
        url,
        headers=auth(alice),
        files={"file": ("t.csv", b"tree_id,species\n1,Oak\n2,Elm\n", "text/csv")},
    )
    assert clean.status_code == 201, clean.text
    assert versions(client, alice, "trees") == [(resource_id, 1), (resource_id, 2)]
    # A column declared sensitive cannot arrive in a new version either.
    client.put(
        "/api/v1/datasets/trees/classification",
        headers=auth(admin),
        json={"columns": {"diagnosis_code": "sensitive"}},
    )
    sensitive = client.post(
        url,
        headers=auth(admin),
        files={"file": ("t.csv", b"tree_id,species,diagnosis_code\n1,Oak,A1\n", "text/csv")},
    )
    assert sensitive.status_code == 409
    assert "diagnosis_code" in sensitive.json()["message"]
    assert versions(client, alice, "trees") == [(resource_id, 1), (resource_id, 2)]


def test_a_governance_manager_new_version_confirms_detected_columns(client, admin, alice):
    create(client, alice, "offices")
    upload(client, alice, "offices", b"office,opening\nCity Hall,9\n")
    publish(client, alice, "offices")
    resource_id = client.get("/api/v1/datasets/offices").json()["resources"][0]["id"]
    response = client.post(
        f"/api/v1/datasets/offices/resources/{resource_id}/upload",
        headers=auth(admin),
        files={"file": ("o.csv", b"office,opening,phone\nCity Hall,9,413-555-0100\n", "text/csv")},
    )
    assert response.status_code == 201, response.text
    activity = client.get("/api/v1/datasets/offices/activity", headers=auth(admin)).json()
    entry = next(e for e in activity if e["action"] == "dataset.version.publish")
    assert entry["changes"]["confirmed_public_columns"] == ["phone"]


def test_declaring_a_published_column_personal_withdraws_the_dataset(client, alice):
    create(client, alice, "permit-holders")
    upload(client, alice, "permit-holders", b"permit_id,street,holder\n1,Elm,Ann Smith\n")
    publish(client, alice, "permit-holders")
    resource_id = client.get("/api/v1/datasets/permit-holders").json()["resources"][0]["id"]
    assert client.get("/api/v1/datasets/permit-holders/rows").status_code == 200
    # Declared ahead of any version that carries it: nothing is exposed, nothing withdrawn.
    ahead = client.put(
        "/api/v1/datasets/permit-holders/classification",
        headers=auth(alice),
        json={"columns": {"holder_phone": "personal"}},
    )
    assert ahead.status_code == 200, ahead.text
    assert ahead.json()["state"] == "published"

    declared = client.put(
        "/api/v1/datasets/permit-holders/classification",
        headers=auth(alice),
        json={"columns": {"holder": "personal"}, "note": "names of permit holders"},
    )
    assert declared.status_code == 200, declared.text
    assert declared.json()["state"] == "withdrawn"
    # Gone from public view at once, as any withdrawn dataset: rows, aggregates, downloads,
    # SQL, CKAN's package and datastore.
    for path in ("rows", "aggregate", "download.csv"):
        response = client.get(f"/api/v1/datasets/permit-holders/{path}")
        assert response.status_code in (404, 410), (path, response.status_code)
        assert response.json()["code"] == "dataset_not_found"
    sql = client.post("/api/v1/sql", json={"sql": 'SELECT holder FROM "permit-holders"'})
    assert sql.status_code == 404
    search = client.post("/api/3/action/datastore_search", json={"resource_id": resource_id})
    assert search.json()["success"] is False
    package = client.post("/api/3/action/package_show", json={"id": "permit-holders"})
    assert package.json()["success"] is False
    # Its editors still read it, to fix it.
    own = client.get("/api/v1/datasets/permit-holders/rows", headers=auth(alice))
    assert own.json()["rows"][0]["holder"] == "Ann Smith"

    activity = client.get("/api/v1/datasets/permit-holders/activity", headers=auth(alice)).json()
    entry = next(e for e in activity if e["action"] == "dataset.state")
    assert entry["changes"]["state"] == ["published", "withdrawn"]
    assert "holder" in entry["changes"]["reason"]
    assert "holder_phone" not in entry["changes"]["reason"]
    assert entry["actor"].endswith(alice.email)
    classify = [e for e in activity if e["action"] == "dataset.classify"]
    assert classify[0]["changes"]["column:holder"] == [None, "personal"]

    # Publishing again goes through the workflow: not as open data with the column...
    again = client.post("/api/v1/datasets/permit-holders/publish", headers=auth(alice))
    assert again.status_code == 409
    assert "holder" in again.json()["message"]
    # ...but restricted to partners it may be.
    client.patch(
        "/api/v1/datasets/permit-holders", headers=auth(alice), json={"visibility": "restricted"}
    )
    publish(client, alice, "permit-holders")
    assert client.get("/api/v1/datasets/permit-holders/rows").status_code == 404


def test_declaring_an_open_dataset_personal_withdraws_it(client, alice):
    create(client, alice, "visits")
    upload(client, alice, "visits", b"day,count\n2026-01-05,12\n")
    publish(client, alice, "visits")
    declared = client.put(
        "/api/v1/datasets/visits/classification",
        headers=auth(alice),
        json={"classification": "sensitive"},
    )
    assert declared.status_code == 200, declared.text
    assert declared.json()["state"] == "withdrawn"
    assert client.get("/api/v1/datasets/visits/rows").status_code == 404
    activity = client.get("/api/v1/datasets/visits/activity", headers=auth(alice)).json()
    entry = next(e for e in activity if e["action"] == "dataset.state")
    assert "classified sensitive" in entry["changes"]["reason"]
    # A restricted dataset is not open data: declaring it personal leaves it published.
    create(client, alice, "counter-logs", visibility="restricted")
    upload(client, alice, "counter-logs", b"day,visitor\n2026-01-05,Ann\n")
    publish(client, alice, "counter-logs")
    kept = client.put(
        "/api/v1/datasets/counter-logs/classification",
        headers=auth(alice),
        json={"columns": {"visitor": "personal"}},
    )
    assert kept.json()["state"] == "published"
