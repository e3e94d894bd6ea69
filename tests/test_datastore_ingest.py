"""Ingest through the native API: formats, encodings, schemas, and bad files that change nothing."""

from __future__ import annotations

import hashlib
import io
import json
import threading
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

import duckdb
import pytest

from townhall.actor import system_actor
from townhall.datastore.ingest import ingest_file
from townhall.errors import TownhallError

from .conftest import auth, make_account
from .test_datastore_support import (
    DATA_DIR,
    csv_bytes,
    make_dataset,
    make_publisher,
    upload,
    upload_ok,
)

needs_shared_data = pytest.mark.skipif(
    not DATA_DIR.is_dir(), reason=f"shared real-data folder {DATA_DIR} is absent"
)


@pytest.fixture
def publisher(client, admin, runtime):
    return make_publisher(client, admin, runtime)


@pytest.fixture
def trees(client, publisher):
    return make_dataset(client, publisher, "street-trees")


def confirm_public(client, admin, *columns: str, slug: str = "street-trees") -> None:
    """The dataset is published open data: columns whose names look personal are classified
    before a version carries them (docs/governance.md); a governance manager confirms these."""
    response = client.put(
        f"/api/v1/datasets/{slug}/classification",
        headers=auth(admin),
        json={"columns": dict.fromkeys(columns, "public")},
    )
    assert response.status_code == 200, response.text


def rows(client, slug="street-trees", **params):
    response = client.get(f"/api/v1/datasets/{slug}/rows", params=params)
    assert response.status_code == 200, response.text
    return response.json()


def columns_of(result):
    return {c["name"]: (c["type"], c["db_type"]) for c in result["columns"]}


def test_csv_upload_publishes_a_typed_version(client, publisher, trees):
    content = csv_bytes(
        ["id", "species", "planted", "height", "healthy", "seen_at"],
        [
            [1, "Oak", "2020-03-01", 4.5, "true", "2024-01-02 10:00:00"],
            [2, "Lime", "2021-04-11", 2.25, "false", "2024-01-03 11:30:00"],
            [3, "Plane", "", 7.0, "true", ""],
        ],
    )
    result = upload_ok(client, publisher, "street-trees", trees, content, "trees.csv")
    assert result["version"] == 1
    assert result["row_count"] == 3
    assert result["source_sha256"] == hashlib.sha256(content).hexdigest()
    assert result["source_bytes"] == len(content)
    types = columns_of(result)
    assert types["id"] == ("integer", "BIGINT")
    assert types["species"] == ("string", "VARCHAR")
    assert types["planted"] == ("date", "DATE")
    assert types["height"] == ("number", "DOUBLE")
    assert types["healthy"] == ("boolean", "BOOLEAN")
    assert types["seen_at"] == ("datetime", "TIMESTAMP")
    nullable = {c["name"]: c["nullable"] for c in result["columns"]}
    assert nullable["planted"] is True
    assert nullable["id"] is False
    report = result["validation_report"]
    assert report["valid"] is True
    assert report["tasks"][0]["stats"]["rows"] == 3
    assert report["tasks"][0]["stats"]["sha256"] == hashlib.sha256(content).hexdigest()
    page = rows(client)
    assert page["version"] == 1
    assert page["rows"][0] == {
        "id": 1,
        "species": "Oak",
        "planted": "2020-03-01",
        "height": 4.5,
        "healthy": True,
        "seen_at": "2024-01-02 10:00:00",
    }
    versions = client.get("/api/v1/datasets/street-trees/versions").json()
    assert [v["number"] for v in versions] == [1]
    activity = client.get("/api/v1/datasets/street-trees/activity", headers=auth(publisher))
    assert "dataset.version.publish" in [e["action"] for e in activity.json()]


@pytest.mark.parametrize(
    ("delimiter", "filename"), [(";", "a.csv"), ("\t", "a.tsv"), ("|", "a.txt")]
)
def test_any_delimiter(client, publisher, trees, delimiter, filename):
    content = csv_bytes(["name", "count"], [["a", 1], ["b", 2], ["c", 3]], delimiter)
    result = upload_ok(client, publisher, "street-trees", trees, content, filename)
    assert columns_of(result) == {"name": ("string", "VARCHAR"), "count": ("integer", "BIGINT")}


@pytest.mark.parametrize(
    ("encoding", "text"),
    [
        ("utf-8-sig", "Köln;Straße"),
        ("latin-1", "Köln;Straße"),
        ("cp1252", "Köln;“Straße” kostet 5 €"),
    ],
)
def test_encodings(client, publisher, trees, encoding, text):
    content = f"stadt;notiz\n{text}\nBonn;ok\n".encode(encoding)
    upload_ok(client, publisher, "street-trees", trees, content, "orte.csv")
    page = rows(client)
    city, note = text.split(";")
    assert page["rows"][0] == {"stadt": city, "notiz": note}
    assert page["fields"] == [
        {"name": "stadt", "type": "string"},
        {"name": "notiz", "type": "string"},
    ]


def test_quoted_fields_with_embedded_newlines(client, publisher, trees, admin):
    confirm_public(client, admin, "address")
    content = b'id,address\n1,"1 Main St\nSpringfield"\n2,"say ""hi"""\n'
    upload_ok(client, publisher, "street-trees", trees, content)
    assert [r["address"] for r in rows(client)["rows"]] == ["1 Main St\nSpringfield", 'say "hi"']


def test_type_detected_from_the_whole_file_when_a_late_row_breaks_the_sample(
    client, publisher, trees
):
    body = csv_bytes(["code", "n"], [[i, i] for i in range(30_000)] + [["X-1", 30_000]])
    result = upload_ok(client, publisher, "street-trees", trees, body)
    assert result["row_count"] == 30_001
    assert columns_of(result)["code"] == ("string", "VARCHAR")
    assert columns_of(result)["n"] == ("integer", "BIGINT")


def test_json_array_and_ndjson(client, publisher, trees):
    array = json.dumps([{"id": 1, "tags": ["a"], "meta": {"x": 1}}, {"id": 2, "tags": []}])
    result = upload_ok(client, publisher, "street-trees", trees, array.encode(), "t.json")
    assert columns_of(result)["tags"][0] == "array"
    assert columns_of(result)["meta"][0] == "object"
    assert rows(client)["rows"][0] == {"id": 1, "tags": ["a"], "meta": {"x": 1}}
    ndjson = b'{"id": 1, "name": "a"}\n{"id": 2, "name": "b", "extra": true}\n'
    result = upload_ok(client, publisher, "street-trees", trees, ndjson, "t.ndjson")
    assert result["version"] == 2
    assert result["row_count"] == 2
    assert set(columns_of(result)) == {"id", "name", "extra"}


def test_parquet(client, publisher, trees, tmp_path):
    path = tmp_path / "t.parquet"
    duckdb.sql(
        "SELECT range AS id, 'n' || range AS name, DATE '2024-01-01' + range::INT AS day "
        "FROM range(50)"
    ).write_parquet(str(path))
    result = upload_ok(client, publisher, "street-trees", trees, path, "t.parquet")
    assert result["row_count"] == 50
    assert columns_of(result)["day"] == ("date", "DATE")


def _xlsx(tmp_path, runtime):
    path = tmp_path / "t.xlsx"
    con = runtime.lake.connect(extensions=("excel",))
    try:
        con.execute(
            "COPY (SELECT range AS id, 'n' || range AS name, range * 1.5 AS x FROM range(20)) "
            f"TO '{path}' (FORMAT xlsx, HEADER true)"
        )
    finally:
        con.close()
    return path


def test_xlsx_whole_numbers_become_integers(client, publisher, trees, tmp_path, runtime):
    result = upload_ok(client, publisher, "street-trees", trees, _xlsx(tmp_path, runtime), "t.xlsx")
    assert result["row_count"] == 20
    assert columns_of(result)["id"] == ("integer", "BIGINT")
    assert columns_of(result)["x"] == ("number", "DOUBLE")


@needs_shared_data
def test_real_geojson_keeps_geometry(client, publisher, trees):
    result = upload_ok(
        client,
        publisher,
        "street-trees",
        trees,
        DATA_DIR / "nyc_community_districts.geojson",
        "districts.geojson",
    )
    assert result["row_count"] == 71
    geometry = next(c for c in result["columns"] if c["name"] == "geometry")
    assert geometry["type"] == "geometry"
    first = rows(client, limit=1)["rows"][0]
    assert first["geometry"]["type"] == "MultiPolygon"
    assert "boro_cd" in first


@needs_shared_data
def test_real_311_sample(client, publisher, trees, admin):
    confirm_public(client, admin, "Incident Address", "Address Type")
    result = upload_ok(
        client,
        publisher,
        "street-trees",
        trees,
        DATA_DIR / "nyc311_service_requests_sample.csv",
        "311.csv",
    )
    assert result["row_count"] == 1000
    types = columns_of(result)
    assert types["Created Date"][0] == "datetime"
    assert types["Latitude"][0] == "number"
    assert types["Unique Key"][0] == "integer"
    statuses = client.get(
        "/api/v1/datasets/street-trees/aggregate", params={"group_by": "Status"}
    ).json()
    counts = {row["Status"]: row["count"] for row in statuses["rows"]}
    assert counts["Closed"] == 969


@needs_shared_data
def test_real_dmv_offices_with_embedded_newlines(client, publisher, trees, admin):
    confirm_public(
        client,
        admin,
        "Public Phone Number",
        "Public Phone Extension",
        "Street Address Line 1",
        "Street Address Line 2",
    )
    result = upload_ok(
        client,
        publisher,
        "street-trees",
        trees,
        DATA_DIR / "nys_dmv_office_locations.csv",
        "dmv.csv",
    )
    assert result["row_count"] == 175
    assert len(result["columns"]) == 22
    located = rows(client, limit=1)["rows"][0]["Location"]
    assert "\n" in located


@needs_shared_data
def test_real_koeln_budget_with_bom_and_semicolons(client, publisher, trees):
    result = upload_ok(
        client,
        publisher,
        "street-trees",
        trees,
        DATA_DIR / "koeln_bezirke_einzeldarstellung_bom.csv",
        "koeln.csv",
    )
    assert result["row_count"] == 252
    names = [c["name"] for c in result["columns"]]
    assert names[0] == "Bezirk"  # no BOM glued to the first name
    assert len(names) == 10


# Table Schema ------------------------------------------------------------------------------


def test_table_schema_overrides_types_and_formats(client, publisher, trees):
    content = b"id;amount;day;ok\n007;1.234,50;31/12/2023;ja\n8;2,00;01/01/2024;nein\n"
    schema = {
        "fields": [
            {"name": "id", "type": "string"},
            {"name": "amount", "type": "number", "groupChar": ".", "decimalChar": ","},
            {"name": "day", "type": "date", "format": "%d/%m/%Y"},
            {"name": "ok", "type": "boolean", "trueValues": ["ja"], "falseValues": ["nein"]},
        ]
    }
    result = upload_ok(client, publisher, "street-trees", trees, content, schema=schema)
    assert columns_of(result) == {
        "id": ("string", "VARCHAR"),
        "amount": ("number", "DOUBLE"),
        "day": ("date", "DATE"),
        "ok": ("boolean", "BOOLEAN"),
    }
    assert rows(client)["rows"][0] == {
        "id": "007",
        "amount": 1234.5,
        "day": "2023-12-31",
        "ok": True,
    }


def test_values_breaking_the_declared_type_are_located(client, publisher, trees):
    upload_ok(client, publisher, "street-trees", trees, csv_bytes(["age"], [[1]]))
    body = csv_bytes(["name", "age"], [["a", 1], ["b", "two"], ["c", 3], ["d", "x"]])
    schema = {"fields": [{"name": "name", "type": "string"}, {"name": "age", "type": "integer"}]}
    response = upload(client, publisher, "street-trees", trees, body, schema=schema)
    assert response.status_code == 422
    problem = response.json()
    assert problem["code"] == "ingest_failed"
    assert "age" in problem["message"]
    assert "rows 3, 5" in problem["message"]
    located = [(e["row"], e["column"], e["cell"]) for e in problem["errors"]]
    assert located == [(3, "age", "two"), (5, "age", "x")]
    assert {e["type"] for e in problem["errors"]} == {"type-error"}
    # The previous version is still what is served.
    assert rows(client)["version"] == 1
    assert rows(client)["rows"] == [{"age": 1}]


def test_constraints_are_checked(client, publisher, trees):
    body = csv_bytes(["id", "kind", "size"], [[1, "oak", 5], [1, "elm", -2], [3, "fir", None]])
    schema = {
        "fields": [
            {"name": "id", "type": "integer", "constraints": {"unique": True}},
            {"name": "kind", "type": "string", "constraints": {"enum": ["oak", "fir"]}},
            {
                "name": "size",
                "type": "integer",
                "constraints": {"required": True, "minimum": 0},
            },
        ]
    }
    response = upload(client, publisher, "street-trees", trees, body, schema=schema)
    assert response.status_code == 422
    found = {(e["type"], e["column"], e["row"]) for e in response.json()["errors"]}
    assert ("unique-error", "id", 2) in found
    assert ("unique-error", "id", 3) in found
    assert ("constraint-error", "kind", 3) in found
    assert ("constraint-error", "size", 3) in found  # minimum
    assert ("constraint-error", "size", 4) in found  # required


def test_valid_rows_pass_constraints_with_values(client, publisher, trees):
    """Constraints that bind values (minimum, enum, pattern) must not break a valid upload."""
    body = csv_bytes(["id", "kind", "size"], [[1, "oak", 5], [2, "fir", 7]])
    schema = {
        "fields": [
            {"name": "id", "type": "integer", "constraints": {"minimum": 1, "maximum": 99}},
            {
                "name": "kind",
                "type": "string",
                "constraints": {"enum": ["oak", "fir"], "pattern": "[a-z]+", "maxLength": 10},
            },
            {"name": "size", "type": "integer", "constraints": {"minimum": 0}},
        ]
    }
    response = upload(client, publisher, "street-trees", trees, body, schema=schema)
    assert response.status_code == 201, response.text
    assert rows(client)["rows"] == [
        {"id": 1, "kind": "oak", "size": 5},
        {"id": 2, "kind": "fir", "size": 7},
    ]


def test_schema_naming_a_missing_column(client, publisher, trees):
    schema = {"fields": [{"name": "nope", "type": "integer"}]}
    response = upload(client, publisher, "street-trees", trees, b"a\n1\n", schema=schema)
    assert response.status_code == 422
    assert response.json()["errors"][0]["type"] == "missing-label"
    assert response.json()["errors"][0]["column"] == "nope"


def test_invalid_table_schema(client, publisher, trees):
    schema = {"fields": [{"name": "a", "type": "integr"}]}
    response = upload(client, publisher, "street-trees", trees, b"a\n1\n", schema=schema)
    assert response.status_code == 422
    assert response.json()["code"] == "invalid_table_schema"


# Bad files: refused, and the previous version keeps being served ----------------------------


def _zip_bomb() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
        archive.writestr("xl/workbook.xml", "<workbook/>")
        archive.writestr("xl/worksheets/sheet1.xml", b"\0" * (64 * 1024 * 1024))
    return buffer.getvalue()


BAD_FILES = {
    "ragged rows": (b"a,b,c\n" + b"1,2,3\n" * 50 + b"4,5\n" + b"6,7,8,9\n", "bad.csv"),
    "wrong encoding": ("id,name\n1,café\n".encode() + b"2,caf\xe9\n", "bad.csv"),
    "empty file": (b"", "bad.csv"),
    "blank file": (b"\n\n  \n", "bad.csv"),
    "binary garbage": (bytes(range(256)) * 64, "bad.csv"),
    "zip bomb": (_zip_bomb(), "bomb.xlsx"),
    "zip that is no workbook": (b"PK\x03\x04" + b"\x00" * 100, "x.xlsx"),
    "malformed json": (b'[{"a": 1}, {"a": 2,', "bad.json"),
    "fake parquet": (b"id,name\n1,a\n", "bad.parquet"),
}


@pytest.mark.parametrize("case", list(BAD_FILES))
def test_bad_files_are_refused_and_the_old_version_stays(client, publisher, trees, case):
    good = csv_bytes(["id", "name"], [[1, "kept"]])
    upload_ok(client, publisher, "street-trees", trees, good)
    content, filename = BAD_FILES[case]
    response = upload(client, publisher, "street-trees", trees, content, filename)
    assert response.status_code == 422, response.text
    problem = response.json()
    assert problem["ok"] is False
    assert problem["code"] == "ingest_failed"
    assert problem["errors"], problem
    assert "/tmp" not in problem["message"]  # no server paths in messages
    page = rows(client)
    assert page["version"] == 1
    assert page["rows"] == [{"id": 1, "name": "kept"}]
    versions = client.get("/api/v1/datasets/street-trees/versions").json()
    assert [v["number"] for v in versions] == [1]


def test_ragged_rows_are_named(client, publisher, trees):
    content, filename = BAD_FILES["ragged rows"]
    problem = upload(client, publisher, "street-trees", trees, content, filename).json()
    found = {(e["type"], e["row"]) for e in problem["errors"]}
    assert found == {("missing-cell", 52), ("extra-cell", 53)}


def test_wrong_encoding_is_named(client, publisher, trees):
    content, filename = BAD_FILES["wrong encoding"]
    problem = upload(client, publisher, "street-trees", trees, content, filename).json()
    assert problem["errors"][0]["type"] == "encoding-error"
    assert problem["errors"][0]["row"] == 3


def test_zip_bomb_refused_before_inflating(client, publisher, trees):
    content, filename = BAD_FILES["zip bomb"]
    problem = upload(client, publisher, "street-trees", trees, content, filename).json()
    assert problem["errors"][0]["type"] == "zip-bomb"


# Access and transport ------------------------------------------------------------------------


def test_upload_needs_publish_rights_on_the_dataset(client, publisher, trees, runtime, admin):
    other = make_publisher(client, admin, runtime, org="transport")
    body = csv_bytes(["a"], [[1]])
    assert upload(client, other, "street-trees", trees, body).status_code == 403
    anonymous = client.post(
        f"/api/v1/datasets/street-trees/resources/{trees}/upload",
        files={"file": ("a.csv", body, "text/csv")},
    )
    assert anonymous.status_code == 401
    partner = make_account(runtime, "partner")
    assert upload(client, partner, "street-trees", trees, body).status_code == 403


def test_upload_to_unknown_resource(client, publisher, trees):
    response = upload(client, publisher, "street-trees", trees + 999, b"a\n1\n")
    assert response.status_code == 404


def test_raw_body_upload_and_missing_file_part(client, publisher, trees):
    response = client.post(
        f"/api/v1/datasets/street-trees/resources/{trees}/upload",
        params={"filename": "raw.csv"},
        headers={**auth(publisher), "content-type": "text/csv"},
        content=b"a,b\n1,2\n",
    )
    assert response.status_code == 201, response.text
    assert response.json()["source_name"] == "raw.csv"
    response = client.post(
        f"/api/v1/datasets/street-trees/resources/{trees}/upload",
        headers=auth(publisher),
        data={"schema": "{}"},
        files={"other": ("a.csv", b"a\n1\n", "text/csv")},
    )
    assert response.status_code == 422
    assert response.json()["code"] == "invalid_request"


def test_upload_limit_applies(client, publisher, trees, app):
    limit = app.state.settings.max_upload_bytes
    response = client.post(
        f"/api/v1/datasets/street-trees/resources/{trees}/upload",
        headers={**auth(publisher), "content-length": str(limit + 1)},
        content=b"x",
    )
    assert response.status_code == 413


def test_new_version_supersedes_and_old_versions_stay_readable(client, publisher, trees):
    upload_ok(client, publisher, "street-trees", trees, csv_bytes(["a"], [[1], [2]]))
    second = upload_ok(client, publisher, "street-trees", trees, csv_bytes(["a", "b"], [[3, 4]]))
    assert second["version"] == 2
    assert second["schema_changes"] == {"added": ["b"], "removed": [], "retyped": {}}
    assert rows(client)["rows"] == [{"a": 3, "b": 4}]
    assert rows(client, version=1)["rows"] == [{"a": 1}, {"a": 2}]
    assert rows(client, version=1)["version"] == 1


def test_ingest_file_called_directly_reports_progress(runtime, client, publisher, trees, tmp_path):
    path = tmp_path / "direct.csv"
    path.write_bytes(csv_bytes(["a"], [[i] for i in range(100)]))
    stages = []
    version = ingest_file(
        runtime,
        actor=system_actor("test"),
        resource_id=trees,
        path=path,
        source_name="direct.csv",
        progress=lambda stage, fraction: stages.append(stage),
    )
    assert version.row_count == 100
    assert stages[0] == "detecting"
    assert stages[-1] == "done"
    assert "writing" in stages
    with pytest.raises(TownhallError) as refused:
        ingest_file(
            runtime,
            actor=system_actor("test"),
            resource_id=trees,
            path=tmp_path / "missing.csv",
            source_name="missing.csv",
        )
    assert refused.value.code == "ingest_failed"


# URL fetch job -------------------------------------------------------------------------------


class _Files(BaseHTTPRequestHandler):
    files: ClassVar[dict[str, bytes]] = {}

    def do_GET(self):
        body = self.files.get(self.path)
        if body is None:
            self.send_response(404)
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_args):
        pass


@pytest.fixture
def file_server():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Files)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", _Files.files
    server.shutdown()
    server.server_close()
    _Files.files.clear()


def test_fetch_and_ingest_job(client, publisher, runtime, file_server):
    from townhall.datastore.tasks import fetch_and_ingest

    base, files = file_server
    files["/trees.csv"] = csv_bytes(["id", "kind"], [[1, "oak"], [2, "elm"]])
    response = client.post(
        "/api/v1/datasets",
        headers=auth(publisher),
        json={
            "slug": "fetched",
            "title": "Fetched",
            "organization": "parks",
            "license_id": "CC0-1.0",
        },
    )
    assert response.status_code == 201
    resource = client.post(
        "/api/v1/datasets/fetched/resources",
        headers=auth(publisher),
        json={"name": "remote", "format": "CSV", "url": f"{base}/trees.csv"},
    ).json()
    client.post("/api/v1/datasets/fetched/publish", headers=auth(publisher))
    queued = client.post(
        f"/api/v1/datasets/fetched/resources/{resource['id']}/fetch", headers=auth(publisher)
    )
    assert queued.status_code == 202, queued.text
    # Run the job as the worker would (the test app runs no consumer).
    assert fetch_and_ingest(runtime, resource["id"]) == 1
    assert rows(client, "fetched")["rows"] == [{"id": 1, "kind": "oak"}, {"id": 2, "kind": "elm"}]
    # Same bytes again: idempotent, no new version.
    assert fetch_and_ingest(runtime, resource["id"]) is None
    files["/trees.csv"] = csv_bytes(["id", "kind"], [[3, "fir"]])
    assert fetch_and_ingest(runtime, resource["id"]) == 2
    files.pop("/trees.csv")
    with pytest.raises(Exception, match="404"):
        fetch_and_ingest(runtime, resource["id"])
    assert rows(client, "fetched")["version"] == 2


def test_latin1_past_an_ascii_sample_is_read_as_windows_1252(client, publisher, trees):
    filler = b"".join(b"%d,plain ascii row\n" % i for i in range(70_000))  # > 1 MiB
    content = b"id,note\n" + filler + "70000,5 € für Köln\n".encode("cp1252")
    result = upload_ok(client, publisher, "street-trees", trees, content)
    assert result["row_count"] == 70_001
    assert result["validation_report"]["townhall"]["encoding"] == "windows-1252"
    last = rows(client, id__eq=70000)["rows"]
    assert last == [{"id": 70000, "note": "5 € für Köln"}]


def test_geojson_without_the_spatial_extension(client, publisher, trees, monkeypatch):
    from townhall.datastore import ingest

    monkeypatch.setattr(ingest, "spatial_available", lambda _lake: False)
    collection = {
        "type": "FeatureCollection",
        "features": [
            {
                "type": "Feature",
                "properties": {"name": "bench", "seats": 3},
                "geometry": {"type": "Point", "coordinates": [6.95, 50.94]},
            }
        ],
    }
    result = upload_ok(
        client, publisher, "street-trees", trees, json.dumps(collection).encode(), "b.geojson"
    )
    geometry = next(c for c in result["columns"] if c["name"] == "geometry")
    assert geometry["type"] == "geometry"
    assert geometry["format"] == "geojson"
    warnings = result["validation_report"]["warnings"]
    assert any("spatial extension" in w for w in warnings)
    page = rows(client)
    assert page["rows"] == [
        {"name": "bench", "seats": 3, "geometry": {"type": "Point", "coordinates": [6.95, 50.94]}}
    ]
    assert {"name": "geometry", "type": "geometry"} in page["fields"]
