"""Feeds checked against the published standards in ../shared/standards/:

* DCAT-AP 3 (catalog and per dataset; JSON-LD, Turtle, RDF/XML): zero violations against the
  DCAT-AP 3.0.1 split SHACL shapes (`shapes.ttl` + `range.ttl`, the pair the standards README
  says works as-is), with Hydra paging;
* DCAT-US 1.1 `data.json`: valid against the Project Open Data v1.1 JSON Schema;
* Frictionless `datapackage.json`: valid per the frictionless library and the v1 profile;
* schema.org `Dataset` JSON-LD for pages.

Only public, published datasets may appear anywhere. Every test runs on both backends.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

import frictionless
import jsonschema
import pyshacl
import pytest
from rdflib import Graph, URIRef
from rdflib import namespace as rdfns
from referencing import Registry
from referencing.jsonschema import DRAFT4

from townhall.actor import system_actor
from townhall.catalog import actions, queries
from townhall.db import unit_of_work
from townhall.feeds import schemaorg_jsonld, schemaorg_script

from .conftest import SHARED_DIR, auth, make_account

STANDARDS = SHARED_DIR / "standards"
SHAPES = STANDARDS / "dcat-ap" / "3.0.1" / "shacl-split"
POD = STANDARDS / "dcat-us-pod-v1.1" / "schema"
BASE = "http://127.0.0.1:8000"  # the settings' default base_url
RDF_FORMATS = {"jsonld": "json-ld", "ttl": "turtle", "rdf": "xml"}


@cache
def shapes(recommended: bool = False) -> Graph:
    graph = Graph()
    files = ["shapes.ttl", "range.ttl"] + (["shapes_recommended.ttl"] if recommended else [])
    for name in files:
        graph.parse(SHAPES / name, format="turtle")
    return graph


def shacl_results(data: Graph, *, recommended: bool = False) -> dict[str, list[str]]:
    """SHACL findings by severity name, each as 'focus path: message'."""
    _, report, _ = pyshacl.validate(
        data, shacl_graph=shapes(recommended), inference="none", allow_warnings=True
    )
    found: dict[str, list[str]] = {}
    for result in report.subjects(rdfns.RDF.type, rdfns.SH.ValidationResult):
        severity = str(report.value(result, rdfns.SH.resultSeverity)).rsplit("#", 1)[-1]
        focus = report.value(result, rdfns.SH.focusNode)
        path = report.value(result, rdfns.SH.resultPath)
        message = report.value(result, rdfns.SH.resultMessage)
        found.setdefault(severity, []).append(f"{focus} {path}: {message}")
    return found


def parsed(response, fmt: str) -> Graph:
    assert response.status_code == 200, response.text
    graph = Graph()
    graph.parse(data=response.content, format=RDF_FORMATS[fmt])
    return graph


@pytest.fixture
def settings(settings):
    """The portal's sender address is data.json's contact of last resort (it must look real)."""
    return settings.model_copy(update={"mail_from": "opendata@city.example"})


@pytest.fixture
def catalog(client, admin, runtime):
    """Datasets in every state: only `street-trees` and `bus-stops` are public and published."""
    for slug, name in [("parks", "Parks Department"), ("transport", "Transport Office")]:
        client.post("/api/v1/organizations", headers=auth(admin), json={"slug": slug, "name": name})
    publisher = make_account(runtime, "publisher", orgs=["parks", "transport"])
    datasets = {
        "street-trees": {
            "organization": "parks",
            "title": "Street trees",
            "description": "Every tree the city planted, with species and <b>height</b>.",
            "keywords": ["trees", "urban forest"],
            "themes": ["ENVI", "REGI"],
            "license_id": "CC-BY-4.0",
            "contact_name": "Parks data team",
            "contact_email": "trees@city.example",
            "temporal_start": "2020-01-01",
            "temporal_end": "2024-12-31",
            "spatial": '{"type": "Point", "coordinates": [4.35, 50.85]}',
            "frequency": "MONTHLY",
            "languages": ["en", "fr"],
            "landing_page": "https://city.example/trees",
            "conforms_to": ["https://www.geonames.org/", "Local tree register v2"],
        },
        "bus-stops": {"organization": "transport", "title": "Bus stops", "license_id": "CC0-1.0"},
        "draft-plan": {"organization": "parks", "title": "Draft plan", "license_id": "CC0-1.0"},
        "inspections": {
            "organization": "parks",
            "title": "Inspections",
            "license_id": "CC0-1.0",
            "visibility": "restricted",
        },
        "payroll": {
            "organization": "parks",
            "title": "Payroll",
            "license_id": "CC0-1.0",
            "visibility": "private",
        },
        "old-data": {"organization": "parks", "title": "Old data", "license_id": "CC0-1.0"},
    }
    for slug, body in datasets.items():
        response = client.post(
            "/api/v1/datasets", headers=auth(publisher), json={"slug": slug, **body}
        )
        assert response.status_code == 201, response.text
        if slug != "draft-plan":
            client.post(f"/api/v1/datasets/{slug}/publish", headers=auth(publisher))
    client.delete("/api/v1/datasets/old-data", headers=auth(publisher))
    for slug in ("street-trees", "payroll"):
        client.post(
            f"/api/v1/datasets/{slug}/resources",
            headers=auth(publisher),
            json={"name": "Tree map", "format": "PDF", "url": "https://city.example/map.pdf"},
        )
    # A table resource with a published version (what ingest records after a lake write).
    with unit_of_work(runtime.session_factory) as session:
        actor = system_actor("test")
        resource = actions.create_resource(
            session, actor=actor, slug="street-trees", name="Tree inventory", format="CSV"
        )
        session.flush()
        actions.record_version(
            session,
            actor=actor,
            resource_id=resource.id,
            snapshot_id=1,
            row_count=3,
            columns=[
                {"name": "tree_id", "type": "BIGINT"},
                {"name": "species", "type": "VARCHAR"},
                {"name": "height_m", "type": "DOUBLE"},
                {"name": "planted", "type": "DATE"},
                {"name": "checked_at", "type": "TIMESTAMP WITH TIME ZONE"},
                {"name": "healthy", "type": "BOOLEAN"},
            ],
            source_name="trees.csv",
            source_sha256="ab" * 32,
            source_bytes=120,
            validation_report={"valid": True},
        )
    return publisher


PUBLIC = {f"{BASE}/datasets/street-trees", f"{BASE}/datasets/bus-stops"}


@pytest.mark.parametrize("fmt", ["jsonld", "ttl", "rdf"])
def test_dcat_catalog_conforms_to_dcat_ap_and_lists_only_public_datasets(client, catalog, fmt):
    response = client.get(f"/catalog.{fmt}")
    assert response.headers["content-type"].split(";")[0] in (
        "application/ld+json",
        "text/turtle",
        "application/rdf+xml",
    )
    graph = parsed(response, fmt)
    listed = {str(d) for d in graph.subjects(rdfns.RDF.type, rdfns.DCAT.Dataset)}
    assert listed == PUBLIC
    assert not shacl_results(graph).get("Violation"), shacl_results(graph)["Violation"]
    # Recommended properties: the fully described dataset and the catalog's own nodes lack
    # none that Townhall knows; what is left is metadata the publishers did not give.
    warnings = shacl_results(graph, recommended=True).get("Warning", [])
    about_trees = [w for w in warnings if w.startswith(f"{BASE}/datasets/street-trees ")]
    assert not about_trees, about_trees
    assert len(warnings) <= 12, warnings


def test_dcat_dataset_documents_conform_and_carry_the_metadata(client, catalog):
    for fmt in RDF_FORMATS:
        graph = parsed(client.get(f"/datasets/street-trees.{fmt}"), fmt)
        assert not shacl_results(graph).get("Violation")
    graph = parsed(client.get("/datasets/street-trees.ttl"), "ttl")
    dataset = URIRef(f"{BASE}/datasets/street-trees")
    text = graph.serialize(format="turtle")
    for expected in [
        "data-theme/ENVI",
        "frequency/MONTHLY",
        "language/ENG",
        "language/FRA",
        "file-type/CSV",
        "file-type/PDF",
        "creativecommons.org/licenses/by/4.0",
        "mailto:trees@city.example",
        "geoJSONLiteral",
        "/api/v1/datasets/street-trees/download.csv?resource=",
    ]:
        assert expected in text, expected
    assert len(list(graph.objects(dataset, rdfns.DCAT.distribution))) == 2
    assert (URIRef(f"{BASE}/api/v1"), rdfns.DCAT.servesDataset, dataset) in graph
    for slug in ("draft-plan", "inspections", "payroll", "old-data", "nothing"):
        assert client.get(f"/datasets/{slug}.ttl").status_code == 404, slug
    assert client.get("/datasets/street-trees.xml").status_code == 422


def test_a_broken_dataset_is_caught_by_the_shapes(client, catalog):
    """The check has teeth: a dataset without its title is a violation."""
    graph = parsed(client.get("/datasets/bus-stops.ttl"), "ttl")
    graph.remove((URIRef(f"{BASE}/datasets/bus-stops"), rdfns.DCTERMS.title, None))
    assert shacl_results(graph).get("Violation")


def test_dcat_catalog_pages_with_hydra(client, catalog):
    hydra = "http://www.w3.org/ns/hydra/core#"
    first = parsed(client.get("/catalog.ttl", params={"page_size": 1}), "ttl")
    view = URIRef(f"{BASE}/catalog.ttl?page_size=1&page=1")
    assert int(first.value(view, URIRef(hydra + "totalItems"))) == 2
    assert str(first.value(view, URIRef(hydra + "next"))).endswith("page=2")
    assert str(first.value(view, URIRef(hydra + "nextPage"))).endswith("page=2")
    assert str(first.value(view, URIRef(hydra + "last"))).endswith("page=2")
    assert len(set(first.subjects(rdfns.RDF.type, rdfns.DCAT.Dataset))) == 1
    second = parsed(client.get("/catalog.ttl", params={"page_size": 1, "page": 2}), "ttl")
    view2 = URIRef(f"{BASE}/catalog.ttl?page_size=1&page=2")
    assert second.value(view2, URIRef(hydra + "next")) is None
    assert str(second.value(view2, URIRef(hydra + "previous"))).endswith("page=1")
    both = set(first.subjects(rdfns.RDF.type, rdfns.DCAT.Dataset)) | set(
        second.subjects(rdfns.RDF.type, rdfns.DCAT.Dataset)
    )
    assert {str(d) for d in both} == PUBLIC
    empty = parsed(client.get("/catalog.jsonld", params={"page": 5}), "jsonld")
    assert not set(empty.subjects(rdfns.RDF.type, rdfns.DCAT.Dataset))
    future = parsed(client.get("/catalog.ttl", params={"modified_since": "2999-01-01"}), "ttl")
    assert not set(future.subjects(rdfns.RDF.type, rdfns.DCAT.Dataset))
    assert client.get("/catalog.ttl", params={"page": 0}).status_code == 422


def pod_validator() -> jsonschema.Draft4Validator:
    registry: Registry = Registry()
    for path in POD.glob("*.json"):
        schema = json.loads(path.read_text())
        resource = DRAFT4.create_resource(schema)
        registry = registry.with_resources([(schema["id"], resource), (path.name, resource)])
    catalog_schema = json.loads((POD / "catalog.json").read_text())
    return jsonschema.Draft4Validator(catalog_schema, registry=registry)


def test_data_json_is_valid_dcat_us(client, catalog):
    response = client.get("/data.json")
    assert response.status_code == 200
    document = response.json()
    errors = sorted(pod_validator().iter_errors(document), key=lambda e: list(e.path))
    assert not errors, [f"{list(e.path)}: {e.message}" for e in errors]
    identifiers = {d["identifier"] for d in document["dataset"]}
    assert identifiers == PUBLIC
    trees = next(d for d in document["dataset"] if d["identifier"].endswith("street-trees"))
    assert trees["accrualPeriodicity"] == "R/P1M"
    assert trees["temporal"] == "2020-01-01/2024-12-31"
    assert trees["license"] == "https://creativecommons.org/licenses/by/4.0/"
    assert trees["contactPoint"]["hasEmail"] == "mailto:trees@city.example"
    stops = next(d for d in document["dataset"] if d["identifier"].endswith("bus-stops"))
    assert stops["contactPoint"] == {
        "@type": "vcard:Contact",
        "fn": "Transport Office",
        "hasEmail": "mailto:opendata@city.example",
    }
    assert stops["keyword"] == ["Transport Office"]
    assert stops["bureauCode"] == ["000:00"]
    assert trees["describedBy"].endswith("/datasets/street-trees/datapackage.json")
    formats = sorted(d["format"] for d in trees["distribution"])
    assert formats == ["CSV", "PDF"]
    # The schema check has teeth: the official sample passes, a broken copy fails.
    sample = json.loads((STANDARDS / "dcat-us-pod-v1.1/examples/catalog-sample.json").read_text())
    assert not list(pod_validator().iter_errors(sample))
    del document["dataset"][0]["title"]
    assert list(pod_validator().iter_errors(document))


def test_datapackage_is_valid_frictionless(client, catalog):
    response = client.get("/datasets/street-trees/datapackage.json")
    assert response.status_code == 200
    descriptor = response.json()
    report = frictionless.Package.validate_descriptor(descriptor)
    assert report.valid, report.flatten(["type", "note"])
    profile = json.loads((STANDARDS / "frictionless/v1/data-package.json").read_text())
    assert not list(jsonschema.Draft4Validator(profile).iter_errors(descriptor))
    table = next(r for r in descriptor["resources"] if r["profile"] == "tabular-data-resource")
    assert [(f["name"], f["type"]) for f in table["schema"]["fields"]] == [
        ("tree_id", "integer"),
        ("species", "string"),
        ("height_m", "number"),
        ("planted", "date"),
        ("checked_at", "datetime"),
        ("healthy", "boolean"),
    ]
    tabular = json.loads((STANDARDS / "frictionless/v1/tabular-data-resource.json").read_text())
    assert not list(jsonschema.Draft4Validator(tabular).iter_errors(table))
    assert descriptor["licenses"][0]["path"] == "https://creativecommons.org/licenses/by/4.0/"
    package = frictionless.Package(descriptor)
    assert {r.name for r in package.resources} == {"tree-map", "tree-inventory"}
    # A dataset with nothing to download has no package; non-public ones are not found.
    assert client.get("/datasets/bus-stops/datapackage.json").status_code == 404
    for slug in ("payroll", "inspections", "draft-plan", "old-data"):
        assert client.get(f"/datasets/{slug}/datapackage.json").status_code == 404, slug


def test_schemaorg_dataset_for_pages(catalog, runtime):
    with unit_of_work(runtime.session_factory) as session:
        dataset = queries.dataset_by_slug(session, "street-trees")
        assert dataset is not None
        versions = queries.published_version_map(session, dataset.resources)
        document = schemaorg_jsonld(
            dataset, base_url=BASE, site_name="Springfield", versions=versions
        )
        script = schemaorg_script(dataset, base_url=BASE, versions=versions)
    assert document["@context"] == "https://schema.org"
    assert document["@type"] == "Dataset"
    assert document["url"] == f"{BASE}/datasets/street-trees"
    assert document["license"] == "https://creativecommons.org/licenses/by/4.0/"
    assert document["publisher"] == {
        "@type": "GovernmentOrganization",
        "name": "Parks Department",
        "url": f"{BASE}/organizations/parks",
    }
    assert document["temporalCoverage"] == "2020-01-01/2024-12-31"
    assert "trees" in document["keywords"]
    assert "Environment" in document["keywords"]
    assert document["variableMeasured"][:2] == ["tree_id", "species"]
    downloads = {d["encodingFormat"] for d in document["distribution"]}
    assert downloads == {"text/csv", "PDF"}
    assert document["includedInDataCatalog"]["name"] == "Springfield"
    # Safe to embed: the description's markup cannot close the script element.
    assert script.startswith('<script type="application/ld+json">')
    assert "<b>" not in script
    assert script.count("</script>") == 1
    body = script.removeprefix('<script type="application/ld+json">').removesuffix("</script>")
    assert json.loads(body)["description"].endswith("<b>height</b>.")
    # Also valid JSON-LD that rdflib reads as a schema:Dataset.
    graph = Graph().parse(
        data=json.dumps({**document, "@context": {"@vocab": "https://schema.org/"}}),
        format="json-ld",
    )
    assert (
        URIRef(f"{BASE}/datasets/street-trees"),
        rdfns.RDF.type,
        URIRef("https://schema.org/Dataset"),
    ) in graph


def test_feed_routes_are_public_and_never_leak(client, catalog, runtime):
    partner = make_account(runtime, "partner")
    # Even a caller who may read restricted data gets only the public catalog.
    document = client.get("/data.json", headers=auth(partner)).json()
    assert {d["identifier"] for d in document["dataset"]} == PUBLIC
    assert client.get("/datasets/inspections.ttl", headers=auth(partner)).status_code == 404
    assert client.get("/datasets/payroll/datapackage.json", headers=auth(catalog)).status_code == (
        404
    )


def test_shared_standards_are_present():
    for path in [SHAPES / "shapes.ttl", SHAPES / "range.ttl", POD / "catalog.json"]:
        assert Path(path).is_file(), path
