"""The real `ckanapi` client (PyPI) against a live Townhall: its Python API and its CLI.

A uvicorn server runs in a thread on a free loopback port (`serve_in_thread`), on the test's
database (SQLite and PostgreSQL), with `base_url` set to its own address so the URLs it hands
out work.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import ckanapi
import frictionless
import pytest
import requests

from townhall.app import create_app

from .conftest import SHARED_DIR, make_account, serve_in_thread

BIN = Path(sys.executable).parent


@pytest.fixture
def live_url(runtime) -> Iterator[str]:
    app = create_app(runtime.settings.model_copy(), runtime=runtime)
    with serve_in_thread(app) as url:
        # The URLs the CKAN API hands out must be the server's own; its port is known only
        # now, before any request (every route reads `app.state.settings` per request).
        app.state.settings.base_url = url
        yield url


@pytest.fixture
def accounts(runtime, live_url):
    admin = make_account(runtime, "admin")
    ckan = ckanapi.RemoteCKAN(live_url, apikey=admin.token)
    ckan.action.organization_create(name="parks", title="Parks Department")
    ckan.action.organization_create(name="transport", title="Transport Office")
    publisher = make_account(runtime, "publisher", orgs=["parks"])
    return admin, publisher


def _package(name: str, **extra):
    return {
        "name": name,
        "title": name.replace("-", " ").capitalize(),
        "notes": f"About {name}.",
        "owner_org": "parks",
        "license_id": "CC-BY-4.0",
        "tags": [{"name": "parks"}],
        **extra,
    }


def test_python_client_reads_writes_and_gets_ckan_exceptions(live_url, accounts):
    _, publisher = accounts
    anonymous = ckanapi.RemoteCKAN(live_url)
    ckan = ckanapi.RemoteCKAN(live_url, apikey=publisher.token)
    created = ckan.action.package_create(**_package("benches", groups=[{"name": "regi"}]))
    assert created["name"] == "benches"
    ckan.action.package_create(**_package("playgrounds"))
    assert anonymous.action.package_list() == ["benches", "playgrounds"]
    shown = anonymous.action.package_show(id="benches")
    assert shown["organization"]["name"] == "parks"
    assert shown["groups"][0]["name"] == "regi"

    # The classic show → modify → update cycle.
    shown["notes"] = "Every bench in every park."
    ckan.action.package_update(**shown)
    assert anonymous.action.package_show(id="benches")["notes"] == "Every bench in every park."

    found = anonymous.action.package_search(q="bench", **{"facet.field": ["tags"]})
    assert found["count"] == 1
    assert found["facets"]["tags"] == {"parks": 1}
    assert anonymous.action.organization_list() == ["parks", "transport"]
    assert "parks" in anonymous.action.tag_list()
    assert {lic["id"] for lic in anonymous.action.license_list()} >= {"CC-BY-4.0"}
    assert anonymous.action.status_show()["site_url"] == live_url

    # GET-only clients work too.
    getter = ckanapi.RemoteCKAN(live_url, get_only=True)
    assert getter.action.package_show(id="playgrounds")["name"] == "playgrounds"

    # Errors come back as ckanapi's own exceptions, read from error.__type.
    with pytest.raises(ckanapi.NotFound):
        anonymous.action.package_show(id="nothing-here")
    with pytest.raises(ckanapi.NotAuthorized):
        anonymous.action.package_create(**_package("sneaky"))
    with pytest.raises(ckanapi.ValidationError) as refused:
        ckan.action.package_create(**_package("benches"))
    assert refused.value.error_dict["name"] == ["That URL is already in use."]
    with pytest.raises(ckanapi.SearchQueryError):
        anonymous.action.package_search(q="colour:green")

    ckan.action.package_delete(id="playgrounds")
    assert anonymous.action.package_list() == ["benches"]


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    return subprocess.run(
        [str(BIN / "ckanapi"), *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=False,
    )


def test_cli_action_search_and_dump(live_url, accounts):
    _, publisher = accounts
    ckan = ckanapi.RemoteCKAN(live_url, apikey=publisher.token)
    for name in ("benches", "fountains", "playgrounds"):
        ckan.action.package_create(**_package(name))

    listed = _cli("action", "package_list", "-r", live_url)
    assert listed.returncode == 0, listed.stderr
    assert json.loads(listed.stdout) == ["benches", "fountains", "playgrounds"]

    shown = _cli("action", "package_show", "id=fountains", "-r", live_url)
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["title"] == "Fountains"

    # `search datasets` pages through package_search with rows/start until a page is empty.
    searched = _cli("search", "datasets", "q=parks", "-r", live_url)
    assert searched.returncode == 0, searched.stderr
    names = [json.loads(line)["name"] for line in searched.stdout.splitlines() if line.strip()]
    assert sorted(names) == ["benches", "fountains", "playgrounds"]

    # `dump datasets --all` lists with package_list, then a worker process shows each one.
    dumped = _cli("dump", "datasets", "--all", "-q", "-r", live_url)
    assert dumped.returncode == 0, dumped.stderr
    records = [json.loads(line) for line in dumped.stdout.splitlines() if line.strip()]
    assert [r["name"] for r in records] == ["benches", "fountains", "playgrounds"]
    assert all(r["organization"]["name"] == "parks" for r in records)

    missing = _cli("action", "package_show", "id=nothing", "-r", live_url)
    assert missing.returncode != 0
    assert "NotFound" in missing.stderr or "Not found" in missing.stderr


def test_python_client_uploads_and_queries_the_datastore(live_url, accounts, tmp_path):
    """ckanapi's file upload (multipart), then datastore_search and SQL on the loaded table."""
    admin, publisher = accounts
    ckan = ckanapi.RemoteCKAN(live_url, apikey=publisher.token)
    ckan.action.package_create(**_package("service-requests"))
    # Open data: columns whose names look personal are classified before a version carries
    # them (docs/governance.md). NYC publishes these; a governance manager confirms them public.
    confirmed = requests.put(
        f"{live_url}/api/v1/datasets/service-requests/classification",
        headers={"Authorization": f"Bearer {admin.token}"},
        json={"columns": {"Incident Address": "public", "Address Type": "public"}},
        timeout=30,
    )
    assert confirmed.status_code == 200, confirmed.text
    source = SHARED_DIR / "data" / "nyc311_service_requests_sample.csv"
    with source.open("rb") as handle:
        resource = ckan.action.resource_create(
            package_id="service-requests", name="311 sample", format="CSV", upload=handle
        )
    assert resource["datastore_active"] is True
    page = ckan.action.datastore_search(
        resource_id=resource["id"], filters={"Borough": "BROOKLYN"}, limit=5
    )
    assert len(page["records"]) == 5
    assert all(r["Borough"] == "BROOKLYN" for r in page["records"])
    counted = ckan.action.datastore_search_sql(
        sql=f'SELECT "Status", count(*) AS n FROM "{resource["id"]}" GROUP BY 1 ORDER BY n DESC'
    )
    assert counted["records"][0] == {"Status": "Closed", "n": 969}
    # The resource URL downloads the table, and the data package describes it truly:
    # frictionless reads the CSV over HTTP and checks every row against the Table Schema.
    descriptor = requests.get(f"{live_url}/datasets/service-requests/datapackage.json", timeout=30)
    assert descriptor.status_code == 200
    report = frictionless.validate(descriptor.json())
    assert report.valid, report.flatten(["rowNumber", "fieldName", "type", "note"])[:10]
    assert report.tasks[0].stats["rows"] == 1000
    with pytest.raises(ckanapi.ValidationError):
        ckan.action.resource_create(
            package_id="service-requests", name="Empty", upload=(tmp_path / "e.csv").open("w+b")
        )
