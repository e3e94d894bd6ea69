"""The HSDS 3.0 API and import, checked against Open Referral's published JSON schemas
(`../shared/standards/hsds-3.0/`), on SQLite and PostgreSQL, with the demo city's directory."""

from __future__ import annotations

import json

import pytest
from jsonschema import Draft202012Validator, FormatChecker
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from townhall.actor import system_actor
from townhall.db import unit_of_work
from townhall.demo.city import generate_city
from townhall.directory.demo import seed_directory

from .conftest import SHARED_DIR, auth, make_account

HSDS = SHARED_DIR / "standards" / "hsds-3.0"
SCHEMAS = HSDS / "schema"
EXAMPLES = HSDS / "examples"


def _registry() -> Registry:
    resources = []
    for path in sorted(SCHEMAS.glob("*.json")):
        if path.name == "openapi.json":
            continue
        contents = json.loads(path.read_text())
        resources.append(
            (path.name, Resource.from_contents(contents, default_specification=DRAFT202012))
        )
    return Registry().with_resources(resources)


REGISTRY = _registry()
PAGE_SCHEMA = json.loads((SCHEMAS / "openapi.json").read_text())["components"]["schemas"]["Page"]


def validator(name: str) -> Draft202012Validator:
    path = SCHEMAS / name
    schema = json.loads(path.read_text())
    return Draft202012Validator(schema, registry=REGISTRY, format_checker=FormatChecker())


def assert_valid(doc: object, schema: str) -> None:
    errors = sorted(validator(schema).iter_errors(doc), key=lambda e: list(e.path))
    assert not errors, "\n".join(f"{list(e.path)}: {e.message}" for e in errors[:10])


def assert_page(doc: dict, item_schema: str) -> None:
    page_errors = list(Draft202012Validator(PAGE_SCHEMA).iter_errors(doc))
    assert not page_errors, page_errors[0].message
    assert {"total_items", "total_pages", "page_number", "size", "contents"} <= doc.keys()
    for item in doc["contents"]:
        assert_valid(item, item_schema)


CITY = generate_city(request_count=0)


@pytest.fixture
def demo(runtime):
    with unit_of_work(runtime.session_factory) as session:
        return seed_directory(session, actor=system_actor("demo"), city=CITY)


def test_the_validator_accepts_the_official_examples_and_rejects_a_broken_one():
    assert_valid(json.loads((EXAMPLES / "service_full.json").read_text()), "service.json")
    broken = json.loads((EXAMPLES / "service_full.json").read_text())
    del broken["status"]
    broken["phones"][0]["extension"] = "one hundred"
    assert len(list(validator("service.json").iter_errors(broken))) == 2


def test_demo_city_is_complete(demo, client):
    assert demo == {"offices": len(CITY.offices), "services": len(CITY.services)}
    listed = client.get("/api/v1/directory/services", params={"limit": 500}).json()
    assert listed["total"] == len(CITY.services)
    offices = client.get("/api/v1/directory/offices").json()
    assert {o["slug"] for o in offices} == {o.slug for o in CITY.offices}
    city_hall = next(o for o in offices if o["slug"] == "city-hall")
    assert len(city_hall["hours"]) == 5
    assert city_hall["timezone"] == "America/New_York"


def test_hsds_root_and_lists_validate(demo, client):
    root = client.get("/hsds/").json()
    assert root["version"] == "3.0"
    assert root["openapi_url"].endswith("/api/openapi.json")
    services = client.get("/hsds/services", params={"per_page": 10}).json()
    assert services["total_items"] == len(CITY.services)
    assert services["size"] == 10
    assert services["first_page"] is True
    assert services["last_page"] is False
    assert_page(services, "compiled/service_list.json")
    last = client.get("/hsds/services", params={"per_page": 10, "page": 4}).json()
    assert last["last_page"] is True
    assert last["size"] == len(CITY.services) - 30
    assert_page(client.get("/hsds/organizations").json(), "compiled/organization_list.json")
    sal = client.get("/hsds/service_at_locations", params={"per_page": 500}).json()
    assert sal["total_items"] == sum(len(s.available_at) for s in CITY.services)
    assert_page(sal, "compiled/service_at_location_list.json")
    assert_page(client.get("/hsds/taxonomies").json(), "taxonomy.json")
    assert_page(
        client.get("/hsds/taxonomy_terms", params={"per_page": 200}).json(), "taxonomy_term.json"
    )


def test_every_fully_nested_object_validates(demo, client):
    for item in client.get("/hsds/services", params={"per_page": 100}).json()["contents"]:
        full = client.get(f"/hsds/services/{item['id']}").json()
        assert_valid(full, "service.json")
    birth = client.get("/hsds/services", params={"search": "birth certificate"}).json()
    full = client.get(f"/hsds/services/{birth['contents'][0]['id']}").json()
    assert full["required_documents"][0]["document"] == "Photo ID"
    assert full["cost_options"][0]["amount"] == 15.0
    assert {a["taxonomy_term"]["name"] for a in full["attributes"]} >= {"Civil Records"}
    locations = [link["location"] for link in full["service_at_locations"]]
    assert all(location["addresses"][0]["postal_code"] for location in locations)
    # Offices keep different weeks (one opens Tuesday to Saturday), and the database does not
    # promise the order of service_at_locations: look across them all.
    days = {s["byday"] for location in locations for s in location["schedules"]}
    assert days >= {"MO", "TU"}
    for org in client.get("/hsds/organizations").json()["contents"]:
        assert_valid(client.get(f"/hsds/organizations/{org['id']}").json(), "organization.json")
    for link in client.get("/hsds/service_at_locations", params={"per_page": 5}).json()["contents"]:
        assert_valid(
            client.get(f"/hsds/service_at_locations/{link['id']}").json(),
            "service_at_location.json",
        )
    for term in client.get("/hsds/taxonomy_terms").json()["contents"][:5]:
        assert_valid(client.get(f"/hsds/taxonomy_terms/{term['id']}").json(), "taxonomy_term.json")
    full_list = client.get("/hsds/services", params={"full": "true", "per_page": 3}).json()
    for item in full_list["contents"]:
        assert_valid(item, "service.json")


def test_hsds_filters(demo, client):
    terms = client.get("/hsds/taxonomy_terms", params={"search": "Pets"}).json()["contents"]
    pets = client.get("/hsds/services", params={"taxonomy_term_id": terms[0]["id"]}).json()
    assert [s["name"] for s in pets["contents"]] == ["Dog license"]
    orgs = {o["name"]: o["id"] for o in client.get("/hsds/organizations").json()["contents"]}
    permits = client.get(
        "/hsds/services", params={"organization_id": orgs["Permit & Licensing Center"]}
    ).json()
    assert permits["total_items"] == sum(
        1 for s in CITY.services if s.office_slug == "permit-center"
    )
    future = client.get("/hsds/services", params={"modified_after": "2999-01-01"}).json()
    assert future["total_items"] == 0
    assert future["empty"] is True
    assert client.get("/hsds/services", params={"modified_after": "yesterday"}).status_code == 422
    typo = client.get("/hsds/services", params={"search": "bulky furnature"}).json()
    assert typo["contents"][0]["name"] == "Bulky item pickup"
    city_hall = next(o for o in CITY.offices if o.slug == "city-hall")
    near = client.get(
        "/hsds/service_at_locations",
        params={"postcode": city_hall.postal_code, "proximity": "1500", "per_page": 200},
    ).json()
    assert near["total_items"] > 0
    assert {c["location"]["name"] for c in near["contents"]} <= {
        o.name for o in CITY.offices if o.postal_code == city_hall.postal_code
    }
    assert client.get("/hsds/services", params={"proximity": "500"}).status_code == 422
    assert client.get("/hsds/services", params={"page": 0}).status_code == 422
    assert client.get("/hsds/services/no-such-id").status_code == 404


def test_ndjson_streams_every_match(demo, client):
    response = client.get("/hsds/services", params={"format": "ndjson", "per_page": 1})
    assert response.headers["content-type"].startswith("application/x-ndjson")
    lines = [json.loads(line) for line in response.text.splitlines()]
    assert len(lines) == len(CITY.services)
    for line in lines:
        assert_valid(line, "compiled/service_list.json")
    assert client.get("/hsds/services", params={"format": "xml"}).status_code == 422


# Import -----------------------------------------------------------------------------------------


EXAMPLE_FILES = [
    "service_full.json",
    "organization_full.json",
    "service_at_location_full.json",
    "location.json",
    "taxonomy.json",
    "taxonomy_term.json",
    "service_list.json",
    "organization_list.json",
    "tabular.json",
]


@pytest.mark.parametrize("name", EXAMPLE_FILES)
def test_each_official_example_imports_and_comes_back_valid(client, admin, name):
    payload = json.loads((EXAMPLES / name).read_text())
    response = client.post("/api/v1/directory/import/hsds", headers=auth(admin), json=payload)
    assert response.status_code == 200, response.text
    report = response.json()
    assert sum(report["created"].values()) > 0
    again = client.post("/api/v1/directory/import/hsds", headers=auth(admin), json=payload)
    assert sum(again.json()["created"].values()) == 0, "re-importing updates in place"
    for item in client.get("/hsds/services").json()["contents"]:
        assert_valid(client.get(f"/hsds/services/{item['id']}").json(), "service.json")


def test_full_service_example_round_trips(client, admin):
    example = json.loads((EXAMPLES / "service_full.json").read_text())
    response = client.post("/api/v1/directory/import/hsds", headers=auth(admin), json=example)
    warnings = response.json()["warnings"]
    assert any("not on Earth" in w for w in warnings), "latitude 100 is dropped, not stored"
    served = client.get(f"/hsds/services/{example['id']}").json()
    assert_valid(served, "service.json")
    assert served["name"] == example["name"]
    assert served["organization"]["id"] == example["organization"]["id"]
    assert served["required_documents"][0]["id"] == example["required_documents"][0]["id"]
    assert served["cost_options"][0]["amount"] == example["cost_options"][0]["amount"]
    assert served["phones"][0]["number"] == example["phones"][0]["number"]
    link = served["service_at_locations"][0]
    assert link["id"] == example["service_at_locations"][0]["id"]
    assert link["location"]["addresses"][0]["address_1"] == "1-30 Main Street"
    assert served["schedules"][0]["byday"] == "TH,FR"
    assert (
        served["attributes"][0]["taxonomy_term"]["id"]
        == example["attributes"][0]["taxonomy_term"]["id"]
    )
    # Resident search finds what was imported.
    found = client.get("/api/v1/directory/services", params={"q": "counseling"}).json()
    assert found["items"][0]["id"] == example["id"]


def test_csv_examples_import(client, admin):
    tables = {path.name: path.read_text() for path in sorted((EXAMPLES / "csv").glob("*.csv"))}
    response = client.post("/api/v1/directory/import/hsds", headers=auth(admin), json=tables)
    assert response.status_code == 200, response.text
    created = response.json()["created"]
    assert created["services"] == 1
    assert created["locations"] == 1
    assert created["schedules"] == 1
    service = client.get("/hsds/services").json()["contents"][0]
    assert_valid(client.get(f"/hsds/services/{service['id']}").json(), "service.json")


@pytest.mark.parametrize(
    "payload",
    [
        [],
        "just text",
        {"foo.csv": []},
        {"services.csv": [1, 2]},
        [{"id": 3, "name": "x", "status": "active"}],
        {"no": "idea"},
        {"contents": [{"name": "no id", "status": "active"}]},
    ],
)
def test_bad_imports_are_refused(client, admin, payload):
    response = client.post("/api/v1/directory/import/hsds", headers=auth(admin), json=payload)
    assert response.status_code == 422, response.text
    assert response.json()["code"] == "invalid_request"


def test_import_needs_rights_to_create_organizations(client, runtime):
    manager = make_account(runtime, "manager")
    payload = json.loads((EXAMPLES / "service_full.json").read_text())
    response = client.post("/api/v1/directory/import/hsds", headers=auth(manager), json=payload)
    assert response.status_code == 403
    assert client.get("/hsds/services").json()["total_items"] == 0


# CPSV-AP ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(("format", "rdf_format"), [("turtle", "turtle"), ("jsonld", "json-ld")])
def test_cpsv_ap_export_parses_and_describes_every_service(demo, client, format, rdf_format):
    from rdflib import Graph, Namespace
    from rdflib.namespace import RDF

    response = client.get("/api/v1/directory/cpsv", params={"format": format})
    assert response.status_code == 200
    graph = Graph().parse(data=response.text, format=rdf_format)
    cpsv = Namespace("http://purl.org/vocab/cpsv#")
    cv = Namespace("http://data.europa.eu/m8g/")
    services = set(graph.subjects(RDF.type, cpsv.PublicService))
    assert len(services) == len(CITY.services)
    birth = next(s for s in services if str(s).endswith("/services/birth-cert"))
    assert graph.value(birth, cv.hasCompetentAuthority) is not None
    assert len(list(graph.objects(birth, cpsv.hasInput))) == 2
    assert len(list(graph.objects(birth, cv.isGroupedBy))) == 2
    assert str(graph.value(birth, cv.processingTime)) == "P1D"
    assert client.get("/api/v1/directory/cpsv", params={"format": "rdfxml"}).status_code == 422
