"""The CKAN Action API over HTTP: envelope, error `__type`s, package/organization mapping,
package_search (q, fq, sort, facets, paging), writes and their permissions.

Every test runs on SQLite and PostgreSQL (the `client` fixture). The real `ckanapi` client is
exercised in test_ckan_client.py against a live server.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from .conftest import SHARED_DIR, auth, make_account

API = "/api/3/action"


def raw(account) -> dict[str, str]:
    """CKAN clients send the token bare in Authorization."""
    return {"Authorization": account.token}


def call(client, name, account=None, /, **data):
    headers = raw(account) if account else {}
    response = client.post(f"{API}/{name}", json=data, headers=headers)
    body = response.json()
    assert set(body) >= {"help", "success"}, body
    assert body["help"].endswith(f"/api/3/action/help_show?name={name}")
    return response, body


def ok(client, name, account=None, /, **data):
    response, body = call(client, name, account, **data)
    assert body["success"] is True, body
    assert response.status_code == 200
    return body["result"]


def fails(client, name, account=None, /, *, kind, status, **data):
    response, body = call(client, name, account, **data)
    assert body["success"] is False, body
    assert body["error"]["__type"] == kind, body
    assert response.status_code == status
    return body["error"]


@pytest.fixture
def orgs(client, admin):
    for slug, title in [("parks", "Parks Department"), ("transport", "Transport Office")]:
        ok(client, "organization_create", admin, name=slug, title=title, description=title)


@pytest.fixture
def publisher(orgs, runtime):
    return make_account(runtime, "publisher", orgs=["parks"])


def tree_package(**overrides):
    package = {
        "name": "street-trees",
        "title": "Street trees",
        "notes": "Every tree the city planted.",
        "owner_org": "parks",
        "license_id": "cc-by",
        "tags": [{"name": "trees"}, {"name": "urban forest"}],
        "groups": [{"name": "envi"}],
        "maintainer": "Parks data team",
        "maintainer_email": "trees@city.example",
        "url": "https://city.example/trees",
        "extras": [
            {"key": "frequency", "value": "MONTHLY"},
            {"key": "temporal_start", "value": "2020-01-01"},
            {"key": "language", "value": '["en"]'},
        ],
        "resources": [
            {"name": "Tree map", "url": "https://city.example/trees.pdf", "format": "PDF"}
        ],
    }
    package.update(overrides)
    return package


def test_package_create_show_round_trip_maps_every_field(client, publisher):
    created = ok(client, "package_create", publisher, **tree_package())
    assert created["name"] == "street-trees"
    assert created["state"] == "active"
    assert created["license_id"] == "CC-BY-4.0"
    assert created["license_title"] == "Creative Commons Attribution 4.0"
    assert created["isopen"] is True
    assert created["private"] is False
    assert [t["name"] for t in created["tags"]] == ["trees", "urban forest"]
    assert created["num_tags"] == 2
    assert [g["name"] for g in created["groups"]] == ["envi"]
    assert created["organization"]["name"] == "parks"
    assert created["organization"]["title"] == "Parks Department"
    assert created["owner_org"] == created["organization"]["id"]
    extras = {e["key"]: e["value"] for e in created["extras"]}
    assert extras["frequency"] == "MONTHLY"
    assert extras["temporal_start"] == "2020-01-01"
    assert json.loads(extras["language"]) == ["en"]
    assert created["resources"][0]["url"] == "https://city.example/trees.pdf"
    assert created["resources"][0]["format"] == "PDF"
    assert created["resources"][0]["datastore_active"] is False
    assert created["resources"][0]["package_id"] == created["id"]
    # CKAN's timestamp format: ISO, UTC, no offset.
    assert "+" not in created["metadata_created"]
    assert "T" in created["metadata_created"]

    # Anyone may read it, by name or by id, by POST or by GET.
    by_name = ok(client, "package_show", id="street-trees")
    by_id = client.get(f"{API}/package_show", params={"id": created["id"]}).json()["result"]
    assert by_name == by_id
    assert by_name["resources"] == created["resources"]
    # The native API sees the same dataset.
    native = client.get("/api/v1/datasets/street-trees").json()
    assert native["description"] == "Every tree the city planted."
    assert native["themes"] == ["ENVI"]
    assert native["frequency"] == "MONTHLY"
    assert native["contact_email"] == "trees@city.example"


def test_show_modify_update_round_trip(client, publisher):
    ok(client, "package_create", publisher, **tree_package())
    package = ok(client, "package_show", id="street-trees")
    package["title"] = "Street trees of the city"
    package["tags"].append({"name": "shade"})
    updated = ok(client, "package_update", publisher, **package)
    assert updated["title"] == "Street trees of the city"
    assert [t["name"] for t in updated["tags"]] == ["trees", "urban forest", "shade"]
    assert len(updated["resources"]) == 1
    # package_update replaces: tags left out are cleared.
    package = dict(updated)
    del package["tags"]
    cleared = ok(client, "package_update", publisher, **package)
    assert cleared["tags"] == []
    # package_patch changes only what it is given.
    patched = ok(client, "package_patch", publisher, id="street-trees", notes="New notes.")
    assert patched["notes"] == "New notes."
    assert patched["title"] == "Street trees of the city"
    # Audited like every other write.
    activity = client.get("/api/v1/datasets/street-trees/activity", headers=auth(publisher))
    assert [e["action"] for e in activity.json()].count("dataset.update") == 3


def test_drafts_private_and_deleted_packages(client, publisher):
    ok(client, "package_create", publisher, **tree_package(name="draft-trees", state="draft"))
    ok(client, "package_create", publisher, **tree_package(name="secret-trees", private=True))
    ok(client, "package_create", publisher, **tree_package(name="open-trees"))
    assert ok(client, "package_list") == ["open-trees"]
    fails(client, "package_show", kind="Not Found Error", status=404, id="draft-trees")
    fails(client, "package_show", kind="Not Found Error", status=404, id="secret-trees")
    assert ok(client, "package_show", publisher, id="secret-trees")["private"] is True
    mine = ok(client, "package_list", publisher, include_private=True, include_drafts=True)
    assert mine == ["draft-trees", "open-trees", "secret-trees"]
    # Publishing a draft with package_patch.
    assert ok(client, "package_patch", publisher, id="draft-trees", state="active")["state"] == (
        "active"
    )
    assert ok(client, "package_delete", publisher, id="open-trees") is None
    fails(client, "package_show", kind="Not Found Error", status=404, id="open-trees")
    assert ok(client, "package_list") == ["draft-trees"]


def test_errors_carry_ckan_types(client, publisher, runtime):
    error = fails(client, "package_show", kind="Not Found Error", status=404, id="nothing")
    assert error["message"].startswith("Not found")
    fails(client, "no_such_action", kind="Bad Request", status=400)
    # Writes need credentials, then the permission, then the organization.
    fails(client, "package_create", kind="Authorization Error", status=403, **tree_package())
    partner = make_account(runtime, "partner")
    fails(
        client, "package_create", partner, kind="Authorization Error", status=403, **tree_package()
    )
    outsider = make_account(runtime, "publisher", orgs=["transport"])
    fails(
        client,
        "package_create",
        outsider,
        kind="Authorization Error",
        status=403,
        **tree_package(),
    )
    bad_token = client.post(f"{API}/package_list", headers={"Authorization": "th_nope"}, json={})
    assert bad_token.json()["error"]["__type"] == "Authorization Error"
    # Validation errors name CKAN's fields.
    ok(client, "package_create", publisher, **tree_package())
    duplicate = fails(
        client,
        "package_create",
        publisher,
        kind="Validation Error",
        status=409,
        **tree_package(),
    )
    assert duplicate["name"] == ["That URL is already in use."]
    for overrides, field in [
        ({"name": "Bad Name"}, "name"),
        ({"license_id": "mit-ish"}, "license_id"),
        ({"groups": [{"name": "cats"}]}, "groups"),
        ({"maintainer_email": "not-an-email"}, "maintainer_email"),
        ({"extras": [{"key": "frequency", "value": "SOMETIMES"}]}, "frequency"),
        ({"extras": [{"key": "colour", "value": "green"}]}, "extras"),
        ({"notes_typo": "x"}, "notes_typo"),
        ({"owner_org": None}, "owner_org"),
        ({"license_id": None}, "license_id"),  # active needs a licence
    ]:
        error = fails(
            client,
            "package_create",
            publisher,
            kind="Validation Error",
            status=409,
            **tree_package(**{"name": "other-trees", **overrides}),
        )
        assert field in error, (overrides, error)
    # Nothing half-made was left behind by the refused creations.
    assert ok(client, "package_list", publisher, include_private=True, include_drafts=True) == [
        "street-trees"
    ]
    # Writes refuse GET; malformed JSON is a clear error, not a 500.
    get_write = client.get(f"{API}/package_delete", params={"id": "street-trees"})
    assert get_write.json()["error"]["__type"] == "Bad Request"
    broken = client.post(
        f"{API}/package_show", content=b"{nope", headers={"Content-Type": "application/json"}
    )
    assert broken.json()["error"]["__type"] == "Bad Request"
    assert client.post(f"{API}/package_show", json=[1, 2]).json()["success"] is False
    assert ok(client, "package_show", id="street-trees")["state"] == "active"


def test_unversioned_prefix_and_get_parameters(client, publisher):
    ok(client, "package_create", publisher, **tree_package())
    response = client.get("/api/action/package_search", params={"q": "trees", "rows": "1"})
    body = response.json()
    assert body["success"] is True
    assert body["result"]["count"] == 1
    missing = client.get("/api/action/package_show", params={"id": "nope"}).json()
    assert missing["error"]["__type"] == "Not Found Error"
    assert client.get("/api/3").json() == {"version": 3}
    assert client.get(f"{API}/help_show", params={"name": "package_search"}).json()["result"]


def _seed_search(client, publisher, runtime):
    transport = make_account(runtime, "publisher", orgs=["transport"])
    ok(client, "package_create", publisher, **tree_package())
    ok(
        client,
        "package_create",
        publisher,
        **tree_package(
            name="park-budget",
            title="Park budget",
            notes="Spending on parks and tree care.",
            tags=[{"name": "budget"}],
            groups=[{"name": "econ"}],
            license_id="odc-odbl",
            resources=[{"name": "Budget", "url": "https://city.example/b.csv", "format": "csv"}],
        ),
    )
    ok(
        client,
        "package_create",
        transport,
        **tree_package(
            name="bus-stops",
            title="Bus stops",
            notes="Every stop.",
            owner_org="transport",
            tags=[{"name": "transport"}],
            groups=[{"name": "tran"}],
            license_id="CC0-1.0",
            resources=[],
        ),
    )


def test_package_search_q_fq_sort_facets_and_paging(client, publisher, runtime):
    _seed_search(client, publisher, runtime)
    everything = ok(client, "package_search")
    assert everything["count"] == 3
    assert everything["facets"] == {}
    assert everything["search_facets"] == {}
    assert everything["sort"] == "score desc, metadata_modified desc"
    # Words rank title matches first.
    tree = ok(client, "package_search", q="tree")
    assert [p["name"] for p in tree["results"]] == ["street-trees", "park-budget"]
    # Field queries in q and fq.
    assert ok(client, "package_search", q="tags:budget")["count"] == 1
    assert ok(client, "package_search", fq="organization:parks")["count"] == 2
    assert ok(client, "package_search", fq='tags:"urban forest"')["count"] == 1
    assert ok(client, "package_search", fq="res_format:(PDF OR CSV)")["count"] == 2
    assert ok(client, "package_search", fq="-organization:parks")["count"] == 1
    assert ok(client, "package_search", fq="+dataset_type:dataset +state:active")["count"] == 3
    assert ok(client, "package_search", q="*:*", fq="groups:envi")["count"] == 1
    since = ok(client, "package_search", fq="metadata_modified:[2000-01-01T00:00:00Z TO *]")
    assert since["count"] == 3
    assert ok(client, "package_search", fq="metadata_modified:[NOW+1DAY TO *]")["count"] == 0
    # Sorting and paging.
    by_name = ok(client, "package_search", sort="name asc")
    assert [p["name"] for p in by_name["results"]] == ["bus-stops", "park-budget", "street-trees"]
    by_title_desc = ok(client, "package_search", sort="title_string desc")
    assert next(p["title"] for p in by_title_desc["results"]) == "Street trees"
    page = ok(client, "package_search", sort="name asc", rows=1, start=1)
    assert page["count"] == 3
    assert [p["name"] for p in page["results"]] == ["park-budget"]
    # Facets in both of CKAN's shapes.
    faceted = ok(
        client,
        "package_search",
        **{"facet.field": ["organization", "tags", "groups", "res_format", "license_id"]},
    )
    assert faceted["facets"]["organization"] == {"parks": 2, "transport": 1}
    assert faceted["facets"]["res_format"] == {"PDF": 1, "CSV": 1}
    items = {i["name"]: i for i in faceted["search_facets"]["organization"]["items"]}
    assert items["parks"] == {"name": "parks", "display_name": "Parks Department", "count": 2}
    assert faceted["search_facets"]["groups"]["items"][0]["display_name"] in (
        "Environment",
        "Economy and finance",
        "Transport",
    )
    # GET sends facet.field as a JSON string, as CKAN clients do.
    got = client.get(
        f"{API}/package_search", params={"facet.field": '["tags"]', "facet.limit": "1"}
    ).json()["result"]
    assert len(got["facets"]["tags"]) == 1
    # Limits and bad queries.
    fails(client, "package_search", kind="Validation Error", status=409, rows=1001)
    fails(client, "package_search", kind="Validation Error", status=409, rows="ten")
    for bad in ["colour:green", "tree OR park", "tags:(a AND b)", "name:[a TO b]"]:
        fails(client, "package_search", kind="Search Query Error", status=400, q=bad)
    fails(client, "package_search", kind="Search Query Error", status=400, sort="colour asc")


def test_organizations_groups_tags_licences_status(client, publisher, runtime, admin):
    _seed_search(client, publisher, runtime)
    assert ok(client, "organization_list") == ["parks", "transport"]
    full = ok(client, "organization_list", all_fields=True, sort="package_count desc")
    assert [(o["name"], o["package_count"]) for o in full] == [("parks", 2), ("transport", 1)]
    assert full[0]["title"] == "Parks Department"
    assert full[0]["is_organization"] is True
    shown = ok(client, "organization_show", id="parks", include_datasets=True)
    assert shown["package_count"] == 2
    assert sorted(p["name"] for p in shown["packages"]) == ["park-budget", "street-trees"]
    assert ok(client, "organization_show", id=shown["id"])["name"] == "parks"
    fails(client, "organization_show", kind="Not Found Error", status=404, id="nobody")
    # Updates are audited and need organizations:manage.
    fails(
        client,
        "organization_update",
        publisher,
        kind="Authorization Error",
        status=403,
        id="parks",
        title="Mine",
    )
    updated = ok(client, "organization_update", admin, id="parks", title="Parks and Recreation")
    assert updated["title"] == "Parks and Recreation"
    assert updated["description"] == ""  # update replaces; patch would keep it
    patched = ok(client, "organization_patch", admin, id="parks", description="Green spaces.")
    assert patched["title"] == "Parks and Recreation"
    assert patched["description"] == "Green spaces."
    fails(client, "organization_create", admin, kind="Validation Error", status=409, name="parks")
    fails(client, "organization_create", admin, kind="Validation Error", status=409, name="Bad Org")
    audit = client.get("/api/v1/audit", headers=auth(admin), params={"object_type": "organization"})
    assert [e["action"] for e in audit.json()].count("organization.update") == 2
    # Groups are the EU data themes.
    groups = ok(client, "group_list")
    assert "envi" in groups
    assert "tran" in groups
    counts = {g["name"]: g["package_count"] for g in ok(client, "group_list", all_fields=True)}
    assert counts["envi"] == 1
    assert counts["agri"] == 0
    assert ok(client, "group_show", id="econ")["package_count"] == 1
    # Tags of public datasets only.
    assert ok(client, "tag_list") == ["budget", "transport", "trees", "urban forest"]
    assert ok(client, "tag_list", query="tre") == ["trees"]
    licences = {lic["id"]: lic for lic in ok(client, "license_list")}
    assert licences["CC-BY-4.0"]["od_conformance"] == "approved"
    status = ok(client, "status_show")
    assert status["ckan_version"].startswith("2.")
    assert "datastore" in status["extensions"]


def test_resource_actions(client, publisher):
    ok(client, "package_create", publisher, **tree_package())
    resource = ok(
        client,
        "resource_create",
        publisher,
        package_id="street-trees",
        name="Tree list",
        url="https://city.example/trees.json",
        format="json",
    )
    assert resource["format"] == "JSON"
    assert resource["mimetype"] == "application/json"
    assert ok(client, "resource_show", id=resource["id"])["name"] == "Tree list"
    assert ok(client, "resource_view_list", id=resource["id"]) == []
    patched = ok(client, "resource_patch", publisher, id=resource["id"], name="Trees (JSON)")
    assert patched["name"] == "Trees (JSON)"
    assert patched["url"].endswith("trees.json")
    package = ok(client, "package_show", id="street-trees")
    assert [r["name"] for r in package["resources"]] == ["Tree map", "Trees (JSON)"]
    assert ok(client, "resource_delete", publisher, id=resource["id"]) is None
    fails(client, "resource_show", kind="Not Found Error", status=404, id=resource["id"])
    fails(client, "resource_show", kind="Not Found Error", status=404, id="9" * 40)
    fails(
        client,
        "resource_create",
        publisher,
        kind="Validation Error",
        status=409,
        package_id="street-trees",
        name="No url",
    )
    fails(
        client,
        "resource_create",
        publisher,
        kind="Validation Error",
        status=409,
        package_id="street-trees",
        url="file:///etc/passwd",
    )
    # package_update reconciles the resource list: keep by id, add new, drop the rest.
    package = ok(client, "package_show", id="street-trees")
    package["resources"] = [
        {"name": "Tree census", "url": "https://city.example/census.csv", "format": "CSV"}
    ]
    updated = ok(client, "package_update", publisher, **package)
    assert [r["name"] for r in updated["resources"]] == ["Tree census"]


def test_session_cookie_writes_need_csrf(client, publisher):
    from .conftest import login

    login(client, publisher.email)
    response = client.post(f"{API}/package_create", json=tree_package())
    assert response.json()["error"]["__type"] == "Authorization Error"
    assert ok(client, "package_list") == []


def test_package_search_has_birminghams_shape(client, publisher):
    """A real CKAN answer (Birmingham City Council) and ours have the same keys and types."""
    theirs = json.loads((SHARED_DIR / "data" / "ckan_birmingham_package_search.json").read_text())
    ok(client, "package_create", publisher, **tree_package())
    ours = client.get(f"{API}/package_search", params={"q": "trees"}).json()
    assert set(ours) == set(theirs) == {"help", "success", "result"}
    assert set(ours["result"]) == set(theirs["result"])

    def same_shape(mine, real, where):
        if real is None or mine is None:
            return  # CKAN itself leaves many fields null
        if isinstance(real, dict):
            assert isinstance(mine, dict), where
            missing = set(real) - set(mine)
            assert not missing, (where, missing)
            for key in real:
                same_shape(mine[key], real[key], f"{where}.{key}")
        elif isinstance(real, list):
            assert isinstance(mine, list), where
            if real and mine:
                same_shape(mine[0], real[0], f"{where}[0]")
        else:
            assert type(mine) is type(real) or {type(mine), type(real)} <= {int, float}, (
                where,
                mine,
                real,
            )

    same_shape(ours["result"], theirs["result"], "result")
    package = ours["result"]["results"][0]
    real = theirs["result"]["results"][0]
    assert set(real) <= set(package)
    assert set(real["resources"][0]) <= set(package["resources"][0])
    assert set(real["organization"]) <= set(package["organization"])
    assert set(real["tags"][0]) <= set(package["tags"][0])
    assert set(real["groups"][0]) <= set(package["groups"][0])
    # Birmingham's results use every licence key the same way we do.
    assert Counter(type(p["license_id"]).__name__ for p in theirs["result"]["results"]) == {
        "str": 10
    }


def test_fuzzed_inputs_never_make_a_server_error(client, publisher):
    ok(client, "package_create", publisher, **tree_package())
    weird = [None, "", "x" * 5000, -1, 10**30, [], {}, ["a", {"b": 1}], True, 1.5]
    for name in [
        "package_search",
        "package_show",
        "package_list",
        "organization_list",
        "tag_list",
        "resource_show",
        "group_show",
        "organization_show",
    ]:
        for value in weird:
            for key in [
                "id",
                "q",
                "fq",
                "rows",
                "start",
                "sort",
                "limit",
                "offset",
                "facet.field",
                "all_fields",
                "include_datasets",
                "query",
            ]:
                response = client.post(f"{API}/{name}", json={key: value})
                assert response.status_code < 500, (name, key, value, response.text)
                assert "success" in response.json()
    for value in weird:
        for key in ["name", "tags", "groups", "extras", "resources", "private", "state"]:
            response = client.post(
                f"{API}/package_patch",
                headers=raw(publisher),
                json={"id": "street-trees", key: value},
            )
            assert response.status_code < 500, (key, value, response.text)


def test_shared_fixture_exists():
    assert Path(SHARED_DIR / "data" / "ckan_birmingham_package_search.json").is_file()
