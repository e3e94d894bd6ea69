"""The catalog over the native API: metadata, visibility, search with facets, activity."""

from __future__ import annotations

import pytest

from .conftest import auth, make_account


@pytest.fixture
def publisher(client, admin, runtime):
    for slug, name in [("parks", "Parks Department"), ("transport", "Transport Office")]:
        response = client.post(
            "/api/v1/organizations", headers=auth(admin), json={"slug": slug, "name": name}
        )
        assert response.status_code == 201
    return make_account(runtime, "publisher", orgs=["parks"])


def _create(client, account, slug, **fields):
    body = {"slug": slug, "title": slug.replace("-", " ").title(), "organization": "parks"}
    body.update(fields)
    response = client.post("/api/v1/datasets", headers=auth(account), json=body)
    assert response.status_code == 201, response.text
    return response.json()


def _publish(client, account, slug):
    response = client.post(f"/api/v1/datasets/{slug}/publish", headers=auth(account))
    assert response.status_code == 200, response.text


def test_create_read_update_with_activity(client, publisher):
    created = _create(
        client,
        publisher,
        "street-trees",
        description="Every tree the city plants.",
        keywords=["trees", "Trees", "urban forest"],
        themes=["ENVI"],
        license_id="CC-BY-4.0",
        frequency="MONTHLY",
        languages=["en"],
    )
    assert created["keywords"] == ["trees", "Trees", "urban forest"]
    assert created["state"] == "draft"
    changed = client.patch(
        "/api/v1/datasets/street-trees", headers=auth(publisher), json={"title": "Street trees"}
    )
    assert changed.status_code == 200
    assert changed.json()["title"] == "Street trees"
    activity = client.get("/api/v1/datasets/street-trees/activity", headers=auth(publisher))
    actions = [entry["action"] for entry in activity.json()]
    assert actions == ["dataset.update", "dataset.create"]
    assert activity.json()[0]["changes"]["title"] == ["Street Trees", "Street trees"]


def test_drafts_are_invisible_to_the_public_until_published(client, publisher):
    _create(client, publisher, "benches", license_id="CC0-1.0")
    assert client.get("/api/v1/datasets/benches").status_code == 404
    assert client.get("/api/v1/datasets").json()["total"] == 0
    _publish(client, publisher, "benches")
    assert client.get("/api/v1/datasets/benches").status_code == 200
    assert client.get("/api/v1/datasets").json()["total"] == 1


def test_publish_needs_a_licence(client, publisher):
    _create(client, publisher, "no-licence")
    response = client.post("/api/v1/datasets/no-licence/publish", headers=auth(publisher))
    assert response.status_code == 409
    assert "licence" in response.json()["message"]


def test_restricted_and_private_visibility(client, publisher, runtime):
    _create(client, publisher, "inspections", license_id="CC-BY-4.0", visibility="restricted")
    _create(client, publisher, "payroll", license_id="CC-BY-4.0", visibility="private")
    _publish(client, publisher, "inspections")
    _publish(client, publisher, "payroll")
    partner = make_account(runtime, "partner")
    assert client.get("/api/v1/datasets/inspections").status_code == 404
    assert client.get("/api/v1/datasets/inspections", headers=auth(partner)).status_code == 200
    assert client.get("/api/v1/datasets/payroll", headers=auth(partner)).status_code == 404
    assert client.get("/api/v1/datasets/payroll", headers=auth(publisher)).status_code == 200


def test_publisher_of_another_org_cannot_edit(client, publisher, runtime):
    _create(client, publisher, "playgrounds", license_id="CC0-1.0")
    outsider = make_account(runtime, "publisher", orgs=["transport"])
    response = client.patch(
        "/api/v1/datasets/playgrounds", headers=auth(outsider), json={"title": "Mine"}
    )
    assert response.status_code in (403, 404)
    cannot_create = client.post(
        "/api/v1/datasets",
        headers=auth(outsider),
        json={"slug": "x-data", "title": "X", "organization": "parks"},
    )
    assert cannot_create.status_code == 403


def test_search_ranks_title_matches_first_and_counts_facets(client, publisher):
    _create(
        client,
        publisher,
        "tree-inventory",
        title="Tree inventory",
        license_id="CC0-1.0",
        themes=["ENVI"],
        keywords=["trees"],
    )
    _create(
        client,
        publisher,
        "park-budget",
        title="Park budget",
        license_id="CC-BY-4.0",
        description="Spending on parks, including tree planting.",
        themes=["ECON"],
    )
    _create(
        client, publisher, "bus-stops", title="Bus stops", license_id="CC-BY-4.0", themes=["TRAN"]
    )
    for slug in ("tree-inventory", "park-budget", "bus-stops"):
        _publish(client, publisher, slug)
    found = client.get("/api/v1/datasets", params={"q": "tree"}).json()
    assert [d["slug"] for d in found["items"]] == ["tree-inventory", "park-budget"]
    assert {f["value"]: f["count"] for f in found["facets"]["theme"]} == {"ENVI": 1, "ECON": 1}
    # Prefix matching and facet filters together.
    filtered = client.get("/api/v1/datasets", params={"q": "tre", "theme": "ECON"}).json()
    assert [d["slug"] for d in filtered["items"]] == ["park-budget"]
    by_name = client.get("/api/v1/datasets", params={"sort": "name"}).json()
    assert [d["title"] for d in by_name["items"]] == ["Bus stops", "Park budget", "Tree inventory"]
    # FTS syntax in user input is treated as words, never as an error.
    assert client.get("/api/v1/datasets", params={"q": 'tree" OR NEAR(*'}).status_code == 200


def test_bad_metadata_is_refused_with_the_field_named(client, publisher):
    cases = [
        ({"themes": ["CATS"]}, "themes"),
        ({"license_id": "MIT-ish"}, "license_id"),
        ({"frequency": "SOMETIMES"}, "frequency"),
        ({"languages": ["English"]}, "languages"),
        ({"slug": "Bad Slug"}, "slug"),
        ({"temporal_start": "2024-05-01", "temporal_end": "2024-01-01"}, "temporal_start"),
    ]
    for index, (fields, field_name) in enumerate(cases):
        body = {"slug": f"bad-{index}", "title": "Bad", "organization": "parks", **fields}
        response = client.post("/api/v1/datasets", headers=auth(publisher), json=body)
        assert response.status_code == 422, (fields, response.text)
        assert field_name in response.text
    assert client.get("/api/v1/datasets", headers=auth(publisher)).json()["total"] == 0


def test_deleted_dataset_disappears(client, publisher):
    _create(client, publisher, "old-data", license_id="CC0-1.0")
    _publish(client, publisher, "old-data")
    assert client.delete("/api/v1/datasets/old-data", headers=auth(publisher)).status_code == 200
    assert client.get("/api/v1/datasets/old-data").status_code == 404
    assert client.get("/api/v1/datasets", params={"q": "old"}).json()["total"] == 0


def test_vocabularies_are_served(client):
    licences = {lic["id"] for lic in client.get("/api/v1/licenses").json()}
    assert {"CC-BY-4.0", "CC0-1.0", "ODbL-1.0"} <= licences
    assert any(t["code"] == "TRAN" for t in client.get("/api/v1/themes").json())
    assert any(f["code"] == "MONTHLY" for f in client.get("/api/v1/frequencies").json())


def test_public_versions_do_not_name_the_publishing_person(client, publisher, runtime):
    from townhall.actor import system_actor
    from townhall.catalog import actions
    from townhall.db import unit_of_work

    _create(client, publisher, "bins", license_id="CC0-1.0")
    _publish(client, publisher, "bins")
    resource = client.post(
        "/api/v1/datasets/bins/resources", headers=auth(publisher), json={"name": "bins"}
    ).json()
    with unit_of_work(runtime.session_factory) as session:
        actions.record_version(
            session,
            actor=system_actor("user:someone@city.example"),
            resource_id=resource["id"],
            snapshot_id=None,
            row_count=0,
            columns=[],
            source_name="bins.csv",
            source_sha256=None,
            source_bytes=0,
            validation_report={},
        )
    public = client.get("/api/v1/datasets/bins/versions").json()
    assert public[0]["published_by"] == "Parks Department"
    own = client.get("/api/v1/datasets/bins/versions", headers=auth(publisher)).json()
    assert own[0]["published_by"] == "user:someone@city.example"


def test_reserved_slugs_are_refused(client, publisher):
    response = client.post(
        "/api/v1/datasets",
        headers=auth(publisher),
        json={"slug": "new", "title": "New", "organization": "parks"},
    )
    assert response.status_code == 422
    assert "reserved" in response.text
