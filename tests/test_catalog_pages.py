"""The catalog's pages over HTTP, on SQLite and PostgreSQL: search with facets, the dataset page
(metadata, freshness, versions, preview, chart, map, downloads, API examples, JSON-LD,
validation report), and the publisher's forms (create, edit, upload without JavaScript,
publish) and the late-datasets list.

Pages are asked for as a browser asks (`Accept: text/html`), so errors come back as pages.
"""

from __future__ import annotations

import json
import re
from datetime import timedelta
from html import unescape
from urllib.parse import parse_qsl, urlsplit

import pytest
from sqlalchemy import update

from townhall.catalog.models import Dataset
from townhall.db import unit_of_work, utcnow

from .conftest import auth, csrf_from, login, make_account
from .test_datastore_support import DATA_DIR, csv_bytes, make_dataset, make_publisher, upload_ok
from .test_web import assert_accessible_shell

BROWSER = {"Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"}
SPECIES = ["Oak", "Lime", "Plane", "Birch", "Elm"]


# Helpers ------------------------------------------------------------------------------------


def page(client, path, expect=200, **params):
    response = client.get(path, params=params, headers=BROWSER, follow_redirects=False)
    assert response.status_code == expect, response.text[-3000:]
    return response.text


def tree_rows(n: int = 60) -> list[list[object]]:
    return [
        [
            i,
            SPECIES[i % 5],
            f"2020-{(i % 6) + 1:02d}-{(i % 28) + 1:02d}",
            round(1.5 + (i % 7) * 0.5, 2),
            round(51.50 + i / 1000, 5),
            round(-0.12 - i / 1000, 5),
        ]
        for i in range(1, n + 1)
    ]


TREE_HEADER = ["id", "species", "planted", "height", "latitude", "longitude"]


def create(client, account, slug, *, publish=True, org="parks", **fields):
    body = {
        "slug": slug,
        "title": slug.replace("-", " ").title(),
        "organization": org,
        "license_id": "CC-BY-4.0",
    }
    body.update(fields)
    response = client.post("/api/v1/datasets", headers=auth(account), json=body)
    assert response.status_code == 201, response.text
    if publish:
        published = client.post(f"/api/v1/datasets/{slug}/publish", headers=auth(account))
        assert published.status_code == 200, published.text


def set_due(runtime, slug, when):
    with unit_of_work(runtime.session_factory) as session:
        session.execute(update(Dataset).where(Dataset.slug == slug).values(next_update_due=when))


def preview_ids(html: str) -> list[int]:
    """The `id` column of the preview table, in order."""
    body = html[html.index('<table class="preview">') :]
    body = body[body.index("<tbody>") : body.index("</tbody>")]
    return [int(v) for v in re.findall(r"<tr>\s*<td class=\"num\">(\d+)</td>", body)]


def chart_numbers(html: str) -> dict[str, str]:
    """The chart's data table: label -> count text."""
    start = html.index('id="chart-table-caption"')
    body = html[start : html.index("</table>", start)]
    return {
        unescape(label): value
        for label, value in re.findall(
            r"<tr><th scope=\"row\">([^<]*)</th><td class=\"num\">([^<]*)</td></tr>", body
        )
    }


@pytest.fixture
def publisher(client, admin, runtime):
    return make_publisher(client, admin, runtime)


@pytest.fixture
def trees(client, publisher):
    """A published dataset with one 60-row table of street trees (with lat/long)."""
    create(
        client,
        publisher,
        "street-trees",
        description="Every **tree** the city planted.\n\n<script>alert(1)</script>",
        keywords=["trees", "parks"],
        themes=["ENVI"],
        frequency="MONTHLY",
        contact_name="Tree Team",
        contact_email="trees@city.example",
        publish=False,
    )
    created = client.post(
        "/api/v1/datasets/street-trees/resources",
        headers=auth(publisher),
        json={"name": "trees", "format": "CSV"},
    )
    resource = created.json()["id"]
    client.post("/api/v1/datasets/street-trees/publish", headers=auth(publisher))
    upload_ok(client, publisher, "street-trees", resource, csv_bytes(TREE_HEADER, tree_rows()))
    return resource


# Search -------------------------------------------------------------------------------------


def test_search_with_facets_sort_pages_and_late_badges(client, publisher, admin, runtime):
    client.post(
        "/api/v1/organizations", headers=auth(admin), json={"slug": "roads", "name": "Roads Office"}
    )
    roads = make_account(runtime, "publisher", orgs=["roads"])
    for i in range(22):
        create(
            client,
            publisher,
            f"parks-table-{i:02d}",
            title=f"Park table {i:02d}",
            keywords=["parks"] + (["benches"] if i % 2 else []),
            themes=["ENVI"],
        )
    create(
        client,
        roads,
        "potholes",
        org="roads",
        title="Potholes reported",
        description="Every pothole, with where and when.",
        keywords=["roads"],
        themes=["TRAN"],
        license_id="CC0-1.0",
    )
    create(client, publisher, "secret-draft", title="Draft nobody sees", publish=False)
    set_due(runtime, "potholes", utcnow() - timedelta(days=3))

    html = page(client, "/datasets")
    shell = assert_accessible_shell(html)
    assert "23 datasets" in html
    assert "Draft nobody sees" not in html
    # Facets are checkboxes in one GET form, labelled with names, not codes.
    form = shell.find("form", method="get", action="/datasets")
    assert form
    boxes = {(a["name"], a["value"]) for a in shell.find("input", type="checkbox")}
    assert {("organization", "roads"), ("theme", "TRAN"), ("freshness", "late")} <= boxes
    assert 'Roads Office <span class="count">(1)</span>' in html
    assert "Transport" in html  # the TRAN theme's label
    # 20 a page, with page links.
    assert html.count('class="dataset-item"') == 20
    assert 'aria-label="Result pages"' in html
    second = page(client, "/datasets", page=2)
    assert second.count('class="dataset-item"') == 3

    # The late dataset carries the badge, and the freshness facet finds it.
    late = page(client, "/datasets", freshness="late")
    assert "1 dataset<" in late
    assert "Potholes reported" in late
    assert "badge-late" in late
    assert 'value="late" checked' in late
    assert "Remove filter </span>Freshness: Late" in late

    # Facet values combine: AND across facets, OR within one.
    both = page(client, "/datasets", keyword=["benches"], theme="ENVI")
    assert "11 datasets" in both
    either = page(client, "/datasets", organization=["roads", "parks"])
    assert "23 datasets" in either

    # Full text (title, description, keywords), and sorting by name.
    found = page(client, "/datasets", q="pothole")
    assert "1 dataset " in found
    assert "Potholes reported" in found
    by_name = page(client, "/datasets", sort="name")
    titles = re.findall(r'<h3><a href="/datasets/[^"]+">([^<]+)</a>', by_name)
    assert titles == sorted(titles, key=str.lower)
    assert '<option value="name" selected>' in by_name

    nothing = page(client, "/datasets", q="zebra")
    assert "No datasets match." in nothing
    # A bad page number is the user's mistake, shown as a page, not a crash.
    assert "Page not found" not in page(client, "/datasets", 422, page="x")


# The dataset page -----------------------------------------------------------------------------


def test_dataset_page_shows_metadata_freshness_versions_and_report(client, publisher, trees):
    rows = tree_rows(70)
    more = csv_bytes([*TREE_HEADER, "street"], [[*r, f"Street {r[0] % 3}"] for r in rows])
    upload_ok(client, publisher, "street-trees", trees, more, "trees-v2.csv")

    html = page(client, "/datasets/street-trees")
    shell = assert_accessible_shell(html)
    assert "<title>Street Trees · " in html
    # Markdown rendered, raw HTML escaped.
    assert "<strong>tree</strong>" in html
    assert "<script>alert(1)</script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    # Metadata: licence, keywords as links, themes by label, contact.
    assert 'href="https://creativecommons.org/licenses/by/4.0/" rel="license"' in html
    assert 'href="/datasets?keyword=trees"' in html
    assert "Environment" in html
    assert 'href="mailto:trees@city.example"' in html
    # Freshness: monthly, published now, next update due in about a month.
    assert "Monthly" in html
    assert re.search(r"Next update due</dt><dd>\d{4}-\d\d-\d\d \d\d:\d\d UTC", html)
    assert "(in 34 days)" in html or "(in 35 days)" in html
    assert "badge-late" not in html

    # Versions: both, newest first, with row counts, schema changes and who published.
    start = html.index('id="versions-caption"')
    versions = html[start : html.index("</table>", start)]
    assert versions.index("Version 2") < versions.index("Version 1")
    assert ">70<" in versions
    assert ">60<" in versions
    assert "added street" in versions
    assert "first version, 6 columns" in versions
    # Who published: the office for the public, the person for the dataset's editors.
    assert publisher.email not in versions
    assert "<td>Parks</td>" in versions

    # The validation report of the version shown, with its columns.
    report = html[html.index('id="validation"') :]
    assert "<strong>Valid.</strong>" in report
    assert "trees-v2.csv" in report
    assert re.search(r"<dt>Rows</dt><dd>70</dd>", report)
    assert '<th scope="row">street</th><td>string</td>' in report

    # Downloads, each format, and the metadata documents.
    for fmt in ("csv", "ndjson", "json", "parquet"):
        assert f'href="/api/v1/datasets/street-trees/download.{fmt}"' in html
    assert "download.geojson" not in html  # no geometry column
    assert client.get("/api/v1/datasets/street-trees/download.csv").status_code == 200
    assert 'href="/datasets/street-trees.jsonld"' in html

    # API examples, with the configured public address.
    base = client.app.state.settings.base_url.rstrip("/")
    assert f"curl &#34;{base}/api/v1/datasets/street-trees/rows?limit=100&#34;" in html
    assert "import httpx" in html
    assert "pd.read_csv(" in html
    assert "jsonlite::fromJSON(rows_url)" in html

    # schema.org Dataset JSON-LD, as search engines read it.
    match = re.search(r'<script type="application/ld\+json">(.*?)</script>', html, re.S)
    assert match
    document = json.loads(match.group(1))
    assert document["@type"] == "Dataset"
    assert document["name"] == "Street Trees"
    assert document["license"] == "https://creativecommons.org/licenses/by/4.0/"
    assert "street" in document["variableMeasured"]
    assert shell.find("caption", id="preview-caption")

    # An earlier version can be looked at, and says so.
    old = page(client, "/datasets/street-trees", version=1)
    assert "an earlier version" in old
    assert "Rows 1–25 of 60" in old
    assert "Street 1" not in old
    page(client, "/datasets/street-trees", 404, version=9)
    page(client, "/datasets/nope", 404)
    login(client, publisher.email)
    assert publisher.email in page(client, "/datasets/street-trees").split('id="versions"')[1]


def test_preview_sorts_filters_and_pages_through_query_parameters(client, trees):
    first = page(client, "/datasets/street-trees")
    assert preview_ids(first) == list(range(1, 26))
    assert "Rows 1–25 of 60" in first
    assert 'aria-label="Preview pages"' in first

    second = page(client, "/datasets/street-trees", _page=3)
    assert preview_ids(second) == list(range(51, 61))

    by_height = page(client, "/datasets/street-trees", sort="-height")
    heights = [tree_rows()[i - 1][3] for i in preview_ids(by_height)]
    assert heights == sorted(heights, reverse=True)
    assert 'aria-sort="descending"' in by_height

    oaks = page(client, "/datasets/street-trees", species__eq="Oak", sort="id")
    assert preview_ids(oaks) == [i for i in range(1, 61) if i % 5 == 0][:25]
    assert "Rows 1–12 of 12" in oaks
    assert "Remove filter: </span>species is Oak" in oaks
    # The filtered view's downloads and API example carry the same filter.
    assert "download.csv?species__eq=Oak&amp;sort=id&amp;version=1" in oaks
    assert "rows?species__eq=Oak&amp;sort=id&amp;limit=100" in oaks

    # The add-a-filter form (GET, no script) becomes `col__op=value` in the address.
    added = client.get(
        "/datasets/street-trees",
        params={"sort": "id", "_fcol": "height", "_fop": "gte", "_fval": "4"},
        headers=BROWSER,
        follow_redirects=False,
    )
    assert added.status_code == 303
    target = added.headers["location"]
    assert dict(parse_qsl(urlsplit(target).query)) == {"sort": "id", "height__gte": "4"}
    tall = client.get(target, headers=BROWSER).text
    assert all(tree_rows()[i - 1][3] >= 4 for i in preview_ids(tall))

    words = page(client, "/datasets/street-trees", q="birch")
    assert "Rows 1–12 of 12" in words

    # Mistakes in the address are shown beside the preview; the rest of the page still works.
    bad_column = page(client, "/datasets/street-trees", colour__eq="red")
    assert "No column &#39;colour&#39; in this table." in bad_column
    assert 'id="versions"' in bad_column
    bad_value = page(client, "/datasets/street-trees", height__gt="tall")
    assert 'class="alert error" role="alert"' in bad_value
    assert "Fix the filter above to see a chart." in bad_value


def test_chart_of_a_chosen_column_is_inline_svg(client, trees):
    # By default the date column, as a line over time.
    default = page(client, "/datasets/street-trees")
    assert 'data-chart="line" data-column="planted"' in default
    assert '<polyline class="line"' in default
    assert 'role="img" aria-labelledby="chart-title chart-summary"' in default
    months = chart_numbers(default)
    assert sum(int(v) for v in months.values()) == 60

    bar = page(client, "/datasets/street-trees", _chart="species")
    assert 'data-chart="bar"' in bar
    assert bar.count('<g class="bar">') == 5
    assert chart_numbers(bar) == dict.fromkeys(SPECIES, "12")
    # The chart follows the preview's filters.
    filtered = page(client, "/datasets/street-trees", _chart="species", height__gte="4")
    assert sum(int(v) for v in chart_numbers(filtered).values()) < 60

    histogram = page(client, "/datasets/street-trees", _chart="height")
    assert 'data-chart="histogram"' in histogram
    assert '<rect class="bin"' in histogram
    assert sum(int(v.replace(",", "")) for v in chart_numbers(histogram).values()) == 60

    as_bars = page(client, "/datasets/street-trees", _chart="height", _kind="bar")
    assert 'data-chart="bar"' in as_bars
    wrong = page(client, "/datasets/street-trees", _chart="species", _kind="line")
    assert "A line chart needs a date column" in wrong
    unknown = page(client, "/datasets/street-trees", _chart="nope")
    assert "No column &#39;nope&#39;" in unknown


def test_map_from_latitude_longitude_columns(client, trees):
    html = page(client, "/datasets/street-trees")
    assert 'id="data-map"' in html
    assert "/directory-assets/leaflet/leaflet.js" in html  # the one vendored copy
    assert "/directory-assets/leaflet/leaflet.css" in html
    match = re.search(
        r'<script type="application/json" id="data-map-features">(.*?)</script>', html, re.S
    )
    collection = json.loads(match.group(1))
    assert len(collection["features"]) == 60
    first = collection["features"][0]
    assert first["geometry"]["type"] == "Point"
    assert first["geometry"]["coordinates"] == [-0.121, 51.501]
    assert first["properties"]["label"] in SPECIES
    oaks = page(client, "/datasets/street-trees", species="Oak")
    match = re.search(r'id="data-map-features">(.*?)</script>', oaks, re.S)
    assert len(json.loads(match.group(1))["features"]) == 12
    assert client.get("/catalog-assets/datamap.js").status_code == 200


def test_map_of_geometry_column(client, publisher, runtime):
    from townhall.datastore.ingest import spatial_available

    if not spatial_available(runtime.lake):
        pytest.skip("the DuckDB spatial extension is not installed")
    resource = make_dataset(client, publisher, "districts")
    upload_ok(
        client,
        publisher,
        "districts",
        resource,
        DATA_DIR / "nyc_community_districts.geojson",
        "districts.geojson",
    )
    html = page(client, "/datasets/districts")
    match = re.search(r'id="data-map-features">(.*?)</script>', html, re.S)
    collection = json.loads(match.group(1))
    assert len(collection["features"]) == 71
    assert {f["geometry"]["type"] for f in collection["features"]} <= {
        "Polygon",
        "MultiPolygon",
    }
    # Shapes are simplified for the page: far smaller than the 3.8 MB file.
    assert len(match.group(1)) < 1_000_000
    assert 'href="/api/v1/datasets/districts/download.geojson"' in html
    assert "71 shapes from the column <code>geometry</code>" in html
    # Every property of the districts is a distinct code: the chart says a bar chart says little.
    assert "Every value in this column is different" in html


# Publisher pages ------------------------------------------------------------------------------


def test_publisher_creates_a_dataset_through_the_form(client, publisher):
    assert page(client, "/datasets/new", 401)  # anonymous: the log-in page
    login(client, publisher.email)
    form = page(client, "/datasets/new")
    shell = assert_accessible_shell(form)
    csrf = csrf_from(form)
    # Every DCAT field is on the form, vocabularies as selects and checkboxes.
    names = {a.get("name") for t, a in shell.tags if t in ("input", "select", "textarea")}
    assert {
        "title", "slug", "organization", "description", "keywords", "themes", "license_id",
        "visibility", "frequency", "temporal_start", "temporal_end", "spatial", "languages",
        "contact_name", "contact_email", "landing_page", "conforms_to",
    } <= names  # fmt: skip
    assert '<option value="MONTHLY">Monthly</option>' in form
    assert '<option value="ODbL-1.0">' in form
    assert 'id="theme-ENVI"' in form

    mistakes = client.post(
        "/datasets/new",
        data={
            "csrf_token": csrf,
            "title": "Benches",
            "slug": "Bad Slug!",
            "organization": "parks",
            "contact_email": "not-an-email",
            "languages": "english",
            "temporal_start": "2024-05-01",
            "temporal_end": "2024-01-01",
        },
        headers=BROWSER,
    )
    assert mistakes.status_code == 422
    assert "There is a problem" in mistakes.text
    assert 'href="#field-slug"' in mistakes.text
    assert 'href="#field-contact_email"' in mistakes.text
    assert 'href="#field-languages"' in mistakes.text
    assert 'aria-invalid="true"' in mistakes.text
    assert 'value="Benches"' in mistakes.text  # what was typed is kept
    assert_accessible_shell(mistakes.text)

    refused = client.post(
        "/datasets/new", data={"title": "Benches", "organization": "parks"}, headers=BROWSER
    )
    assert refused.status_code == 403  # no CSRF token

    created = client.post(
        "/datasets/new",
        data={
            "csrf_token": csrf,
            "title": "Park benches",
            "organization": "parks",
            "description": "Where to sit.",
            "keywords": "benches, parks",
            "themes": ["ENVI", "REGI"],
            "license_id": "CC0-1.0",
            "visibility": "public",
            "frequency": "ANNUAL",
            "languages": "en, fr",
            "temporal_start": "2020-01-01",
            "landing_page": "https://city.example/benches",
            "conforms_to": "https://schema.example/benches\nhttps://schema.example/seats",
        },
        headers=BROWSER,
        follow_redirects=False,
    )
    assert created.status_code == 303, created.text[-2000:]
    assert created.headers["location"] == "/datasets/park-benches/upload?created=1"
    record = client.get("/api/v1/datasets/park-benches", headers=auth(publisher)).json()
    assert record["state"] == "draft"
    assert record["keywords"] == ["benches", "parks"]
    assert record["themes"] == ["ENVI", "REGI"]
    assert record["languages"] == ["en", "fr"]
    assert record["conforms_to"] == [
        "https://schema.example/benches",
        "https://schema.example/seats",
    ]
    assert record["temporal_start"] == "2020-01-01"

    taken = client.post(
        "/datasets/new",
        data={"csrf_token": csrf, "title": "Park benches", "organization": "parks"},
        headers=BROWSER,
    )
    assert taken.status_code == 409
    assert "already exists" in taken.text

    # Editing keeps the slug, changes the rest.
    edit = page(client, "/datasets/park-benches/edit")
    assert 'value="Park benches"' in edit
    assert "benches, parks" in edit
    changed = client.post(
        "/datasets/park-benches/edit",
        data={
            "csrf_token": csrf_from(edit),
            "title": "Benches in parks",
            "license_id": "CC0-1.0",
            "visibility": "public",
            "themes": ["ENVI"],
            "keywords": "benches",
        },
        headers=BROWSER,
        follow_redirects=False,
    )
    assert changed.status_code == 303
    record = client.get("/api/v1/datasets/park-benches", headers=auth(publisher)).json()
    assert record["title"] == "Benches in parks"
    assert record["themes"] == ["ENVI"]
    assert record["description"] == ""


def test_upload_without_javascript_then_publish(client, publisher, runtime):
    create(client, publisher, "benches", publish=False, frequency="WEEKLY")
    other = make_account(runtime, "publisher", orgs=[])
    login(client, other.email)
    assert page(client, "/datasets/benches/upload", 404)  # a draft of another office
    client.cookies.clear()
    login(client, publisher.email)
    form = page(client, "/datasets/benches/upload")
    shell = assert_accessible_shell(form)
    csrf = csrf_from(form)
    assert shell.find("form", enctype="multipart/form-data", action="/datasets/benches/upload")
    assert shell.find("progress", id="upload-progress")
    assert '<option value="new" selected>' in form
    assert "/catalog-assets/upload.js" in form

    body = csv_bytes(["id", "seats", "park"], [[i, i % 4 + 2, f"Park {i % 3}"] for i in range(40)])
    no_csrf = client.post(
        "/datasets/benches/upload",
        files={"file": ("benches.csv", body, "text/csv")},
        data={"resource": "new"},
        headers=BROWSER,
    )
    assert no_csrf.status_code == 403

    sent = client.post(
        "/datasets/benches/upload",
        files={"file": ("benches.csv", body, "text/csv")},
        data={"csrf_token": csrf, "resource": "new", "new_resource_name": "Benches table"},
        headers=BROWSER,
        follow_redirects=False,
    )
    assert sent.status_code == 303, sent.text[-2000:]
    location = sent.headers["location"]
    assert re.fullmatch(r"/datasets/benches/upload\?resource=\d+&version=1", location)
    report = client.get(location, headers=BROWSER).text
    assert_accessible_shell(report)
    assert "Version 1 of Benches table is loaded" in report
    assert "<strong>Valid.</strong>" in report
    assert "40 rows and 3 columns from <strong>benches.csv</strong>" in report
    assert 'action="/datasets/benches/publish"' in report
    resource_id = int(dict(parse_qsl(urlsplit(location).query))["resource"])
    assert f'<option value="{resource_id}" selected>' in report

    # A bad file is refused with its rows named; the loaded version stays.
    ragged = b"id,seats,park\n1,2,Park 1\n2,3\n3,4,Park 2,extra\n"
    bad = client.post(
        "/datasets/benches/upload",
        files={"file": ("ragged.csv", ragged, "text/csv")},
        data={"csrf_token": csrf, "resource": str(resource_id)},
        headers=BROWSER,
    )
    assert bad.status_code == 422
    assert "ragged.csv was not loaded" in bad.text
    assert "Problems found" in bad.text
    assert re.search(r"<td>3</td>", bad.text)  # row 3 (the header is row 1)
    assert "keeps serving its previous version" in bad.text
    rows = client.get("/api/v1/datasets/benches/rows", headers=auth(publisher)).json()
    assert rows["total"] == 40
    assert rows["version"] == 1

    published = client.post(
        "/datasets/benches/publish",
        data={"csrf_token": csrf},
        headers=BROWSER,
        follow_redirects=False,
    )
    assert published.status_code == 303
    assert published.headers["location"] == "/datasets/benches?_published=1"
    client.cookies.clear()
    public = page(client, "/datasets/benches")
    assert "Rows 1–25 of 40" in public
    assert "Publisher actions" not in public
    assert re.search(r"Next update due</dt><dd>\d{4}-", public)


def test_upload_through_the_api_with_the_csrf_header(client, publisher):
    """What upload.js does: the session cookie plus X-CSRF-Token, to the native endpoints."""
    create(client, publisher, "benches", publish=False)
    login(client, publisher.email)
    csrf = csrf_from(page(client, "/datasets/benches/upload"))
    missing = client.post("/api/v1/datasets/benches/resources", json={"name": "t", "format": "CSV"})
    assert missing.status_code == 403
    created = client.post(
        "/api/v1/datasets/benches/resources",
        json={"name": "benches", "format": "CSV"},
        headers={"X-CSRF-Token": csrf},
    )
    assert created.status_code == 201, created.text
    resource = created.json()["id"]
    body = csv_bytes(["id", "seats", "applicant"], [[i, i % 4, f"P{i}"] for i in range(10)])
    refused = client.post(
        f"/api/v1/datasets/benches/resources/{resource}/upload",
        files={"file": ("b.csv", body, "text/csv")},
    )
    assert refused.status_code == 403
    loaded = client.post(
        f"/api/v1/datasets/benches/resources/{resource}/upload",
        files={"file": ("b.csv", body, "text/csv")},
        headers={"X-CSRF-Token": csrf},
    )
    assert loaded.status_code == 201, loaded.text
    report = page(client, "/datasets/benches/upload", resource=resource, version=1)
    assert "Version 1 of benches is loaded" in report

    # The publication workflow refuses a column that looks personal: the page says why.
    blocked = client.post("/datasets/benches/publish", data={"csrf_token": csrf}, headers=BROWSER)
    assert blocked.status_code == 409
    assert "Benches was not published" in blocked.text
    assert "applicant" in blocked.text
    assert 'href="/governance/datasets/benches"' in blocked.text
    assert_accessible_shell(blocked.text)
    state = client.get("/api/v1/datasets/benches", headers=auth(publisher)).json()["state"]
    assert state == "draft"


def test_late_datasets_list_for_publishers(client, publisher, admin, runtime):
    create(client, publisher, "benches", frequency="DAILY", contact_email="b@city.example")
    create(client, publisher, "fountains", frequency="DAILY")
    set_due(runtime, "benches", utcnow() - timedelta(days=4))
    assert page(client, "/datasets/late", 401)
    partner = make_account(runtime, "partner")
    login(client, partner.email)
    assert page(client, "/datasets/late", 403)
    client.cookies.clear()
    login(client, publisher.email)
    html = page(client, "/datasets/late")
    assert_accessible_shell(html)
    assert "1 late dataset" in html
    assert 'href="/datasets/benches"' in html
    assert "fountains" not in html
    assert "4 days" in html
    assert 'href="mailto:b@city.example"' in html
    listing = page(client, "/datasets")
    assert 'href="/datasets/late"' in listing
    assert 'href="/datasets/new"' in listing
    dataset = page(client, "/datasets/benches")
    assert "badge-late" in dataset
    assert "The next update was due 4 days ago." in dataset


def test_restricted_and_draft_pages_are_hidden(client, publisher, runtime):
    create(client, publisher, "partners-only", visibility="restricted")
    create(client, publisher, "draft-one", publish=False)
    page(client, "/datasets/partners-only", 404)
    page(client, "/datasets/draft-one", 404)
    assert "Partners Only" not in page(client, "/datasets")
    partner = make_account(runtime, "partner")
    login(client, partner.email)
    html = page(client, "/datasets/partners-only")
    assert "badge-visibility" in html
    assert "Authorization: Bearer" in html  # API examples say to send a token
    assert '<script type="application/ld+json">' not in html  # not for search engines
    page(client, "/datasets/draft-one", 404)
