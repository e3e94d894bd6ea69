"""The data API: rows with filters, sorting, paging and cursors; aggregates; SQL; downloads."""

from __future__ import annotations

import csv
import io
import json

import duckdb
import pytest

from .conftest import auth, make_account
from .test_datastore_support import DATA_DIR, csv_bytes, make_dataset, make_publisher, upload_ok

SPECIES = ["Oak", "Lime", "Plane", "Birch", "Elm"]


def _tree_rows(n: int = 120) -> list[list[object]]:
    return [
        [
            i,
            SPECIES[i % 5],
            f"2020-01-{(i % 28) + 1:02d}",
            round(1.5 + (i % 7) * 0.5, 2),
            None if i % 10 == 0 else f"Street {i % 3}",
        ]
        for i in range(1, n + 1)
    ]


@pytest.fixture
def publisher(client, admin, runtime):
    return make_publisher(client, admin, runtime)


@pytest.fixture
def trees(client, publisher):
    resource = make_dataset(client, publisher, "street-trees")
    upload_ok(
        client,
        publisher,
        "street-trees",
        resource,
        csv_bytes(["id", "species", "planted", "height", "street"], _tree_rows()),
    )
    return resource


def get(client, path, expect=200, **params):
    response = client.get(path, params=params)
    assert response.status_code == expect, response.text
    return response.json()


def rows(client, expect=200, **params):
    return get(client, "/api/v1/datasets/street-trees/rows", expect, **params)


def test_first_page_envelope(client, trees):
    page = rows(client, limit=5)
    assert page["ok"] is True
    assert [r["id"] for r in page["rows"]] == [1, 2, 3, 4, 5]
    assert page["fields"] == [
        {"name": "id", "type": "integer"},
        {"name": "species", "type": "string"},
        {"name": "planted", "type": "date"},
        {"name": "height", "type": "number"},
        {"name": "street", "type": "string"},
    ]
    assert page["total"] == 120
    assert page["total_estimated"] is False
    assert page["truncated"] is False
    assert page["version"] == 1
    assert isinstance(page["elapsed_ms"], float)
    assert page["next_cursor"]


@pytest.mark.parametrize(
    ("params", "expected_ids"),
    [
        ({"id__eq": "7"}, [7]),
        ({"id": "7"}, [7]),
        ({"id__lt": "3"}, [1, 2]),
        ({"id__lte": "3"}, [1, 2, 3]),
        ({"id__gt": "118"}, [119, 120]),
        ({"id__gte": "119"}, [119, 120]),
        ({"id__in": "3,5,400"}, [3, 5]),
        ({"species__eq": "Oak", "id__lt": "12"}, [5, 10]),
        ({"species__ne": "Oak", "id__lt": "5"}, [1, 2, 3, 4]),
        ({"species__like": "Pla%", "id__lt": "10"}, [2, 7]),
        ({"street__isnull": "true", "id__lt": "35"}, [10, 20, 30]),
        ({"planted__eq": "2020-01-03", "id__lt": "60"}, [2, 30, 58]),
        ({"height__gte": "4.5"}, [i for i in range(1, 121) if i % 7 == 6]),
    ],
)
def test_filters(client, trees, params, expected_ids):
    page = rows(client, limit=100, **params)
    assert [r["id"] for r in page["rows"]] == expected_ids
    assert page["total"] == len(expected_ids)


def test_isnull_false_and_full_text(client, trees):
    assert rows(client, street__isnull="false")["total"] == 108
    found = rows(client, q="street 2")
    assert found["total"] == sum(1 for r in _tree_rows() if r[4] == "Street 2")
    assert rows(client, q="OAK birch")["total"] == 0
    assert rows(client, q="lime")["total"] == 24


def test_fields_and_sort(client, trees):
    page = rows(client, fields="id,height", sort="-height,id", limit=3)
    assert page["rows"] == [
        {"id": 6, "height": 4.5},
        {"id": 13, "height": 4.5},
        {"id": 20, "height": 4.5},
    ]
    assert [f["name"] for f in page["fields"]] == ["id", "height"]
    nulls_last = rows(client, sort="street", fields="id,street", limit=200)["rows"]
    assert nulls_last[-1]["street"] is None
    assert nulls_last[0]["street"] == "Street 0"


def test_offset_paging(client, trees):
    page = rows(client, limit=10, offset=110)
    assert [r["id"] for r in page["rows"]] == list(range(111, 121))
    assert page["next_cursor"] is None


@pytest.mark.parametrize("sort", [None, "species,-id", "-planted", "street"])
def test_cursor_walks_every_row_once(client, trees, sort):
    seen = []
    params = {"limit": 17, "species__ne": "Elm"}
    if sort:
        params["sort"] = sort
    cursor = None
    for _ in range(20):
        page = rows(client, **params, **({"cursor": cursor} if cursor else {}))
        seen.extend(r["id"] for r in page["rows"])
        cursor = page["next_cursor"]
        if cursor is None:
            break
    expected = [r[0] for r in _tree_rows() if r[1] != "Elm"]
    assert sorted(seen) == expected
    assert len(seen) == len(set(seen))


def test_cursor_bound_to_its_query(client, trees):
    cursor = rows(client, limit=5)["next_cursor"]
    problem = rows(client, 400, limit=5, cursor=cursor, species__eq="Oak")
    assert problem["code"] == "invalid_cursor"
    assert rows(client, 400, cursor="not-a-cursor")["code"] == "invalid_cursor"


@pytest.mark.parametrize(
    ("params", "named"),
    [
        ({"nope__eq": "1"}, "nope"),
        ({"nope": "1"}, "nope"),
        ({"fields": "id,nope"}, "nope"),
        ({"sort": "-nope"}, "nope"),
        ({"id__eq": "abc"}, None),
        ({"street__isnull": "maybe"}, "street"),
    ],
)
def test_bad_filters_are_422(client, trees, params, named):
    problem = rows(client, 422, **params)
    assert problem["code"] == "invalid_filter"
    if named:
        assert named in problem["message"]


def test_count_estimated_past_the_budget(client, trees, monkeypatch):
    from townhall.datastore import query

    def too_slow(*_args):
        raise query.TownhallError(400, "query_timeout", "slow")

    monkeypatch.setattr(query, "exact_count", too_slow)
    page = rows(client, limit=2, species__eq="Oak")
    # The count could not finish in a zero budget: an estimate from a sample is given.
    assert page["total_estimated"] is True
    assert page["total"] == 24


def test_row_cap(client, trees, runtime):
    runtime.settings.query_row_cap = 50
    page = rows(client, limit=1000)
    assert len(page["rows"]) == 50
    assert page["truncated"] is True
    assert page["total"] == 120


def test_versions(client, publisher, trees):
    upload_ok(client, publisher, "street-trees", trees, csv_bytes(["id"], [[1000]]))
    assert rows(client)["rows"] == [{"id": 1000}]
    assert rows(client, version=1)["total"] == 120
    assert rows(client, version=9, expect=404)["code"] == "version_not_found"


def test_resource_parameter(client, publisher, trees):
    other = client.post(
        "/api/v1/datasets/street-trees/resources",
        headers=auth(publisher),
        json={"name": "inspections"},
    ).json()["id"]
    upload_ok(client, publisher, "street-trees", other, csv_bytes(["tree", "ok"], [[1, "fine"]]))
    assert rows(client)["total"] == 120  # default: the first table
    assert rows(client, resource="inspections")["rows"] == [{"tree": 1, "ok": "fine"}]
    assert rows(client, resource=str(other))["resource_id"] == other
    assert rows(client, 404, resource="nope")["code"] == "resource_not_found"


def test_dataset_without_table(client, publisher):
    make_dataset(client, publisher, "empty-one")
    problem = get(client, "/api/v1/datasets/empty-one/rows", 404)
    assert problem["code"] == "table_not_found"


# Visibility --------------------------------------------------------------------------------


def test_private_restricted_and_withdrawn(client, publisher, runtime):
    for slug, visibility in [("secret", "private"), ("partners", "restricted")]:
        resource = make_dataset(client, publisher, slug, visibility=visibility)
        upload_ok(client, publisher, slug, resource, csv_bytes(["a"], [[1]]))
    partner = make_account(runtime, "partner")
    for path in ("rows", "aggregate", "download.csv"):
        assert client.get(f"/api/v1/datasets/secret/{path}").status_code == 404
        assert client.get(f"/api/v1/datasets/partners/{path}").status_code == 404
        assert (
            client.get(f"/api/v1/datasets/partners/{path}", headers=auth(partner)).status_code
            == 200
        )
        assert (
            client.get(f"/api/v1/datasets/secret/{path}", headers=auth(partner)).status_code == 404
        )
        assert (
            client.get(f"/api/v1/datasets/secret/{path}", headers=auth(publisher)).status_code
            == 200
        )
    resource = make_dataset(client, publisher, "gone")
    upload_ok(client, publisher, "gone", resource, csv_bytes(["a"], [[1]]))
    upload_ok(client, publisher, "gone", resource, csv_bytes(["a"], [[2]]))
    assert client.get("/api/v1/datasets/gone/rows", params={"version": 1}).status_code == 200
    client.post("/api/v1/datasets/gone/withdraw", headers=auth(publisher))
    for version in (1, 2):
        response = client.get("/api/v1/datasets/gone/rows", params={"version": version})
        assert response.status_code == 404
        assert response.json()["code"] == "dataset_not_found"
    owner = client.get("/api/v1/datasets/gone/rows", params={"version": 1}, headers=auth(publisher))
    assert owner.json()["rows"] == [{"a": 1}]


# Aggregates --------------------------------------------------------------------------------


def test_aggregate_count_by_group(client, trees):
    result = get(client, "/api/v1/datasets/street-trees/aggregate", group_by="species")
    assert {r["species"]: r["count"] for r in result["rows"]} == dict.fromkeys(SPECIES, 24)
    assert result["fields"] == [
        {"name": "species", "type": "string"},
        {"name": "count", "type": "integer"},
    ]
    assert result["version"] == 1


def test_aggregate_metrics_filters_and_sort(client, trees):
    result = get(
        client,
        "/api/v1/datasets/street-trees/aggregate",
        group_by="species",
        metric=["count", "sum:height", "avg:height", "min:planted", "max:id", "median:height"],
        species__in="Oak,Lime",
        sort="-max_id",
    )
    assert [r["species"] for r in result["rows"]] == ["Oak", "Lime"]
    oak = result["rows"][0]
    expected = [r for r in _tree_rows() if r[1] == "Oak"]
    assert oak["count"] == 24
    assert oak["max_id"] == 120
    assert oak["sum_height"] == pytest.approx(sum(r[3] for r in expected))
    assert oak["min_planted"] == min(r[2] for r in expected)


def test_aggregate_without_group(client, trees):
    result = get(client, "/api/v1/datasets/street-trees/aggregate", metric="count,avg:id")
    assert result["rows"] == [{"count": 120, "avg_id": 60.5}]


@pytest.mark.parametrize(
    "params",
    [
        {"group_by": "nope"},
        {"metric": "sum:species"},
        {"metric": "mode:id"},
        {"metric": "sum"},
        {"group_by": "species", "sort": "-height"},
    ],
)
def test_aggregate_bad_input(client, trees, params):
    problem = get(client, "/api/v1/datasets/street-trees/aggregate", 422, **params)
    assert problem["code"] == "invalid_filter"


# SQL ---------------------------------------------------------------------------------------


def test_sql_get_and_post(client, trees):
    query_text = (
        'SELECT species, count(*) AS n FROM "street-trees" WHERE height > 3 '
        "GROUP BY species ORDER BY species"
    )
    by_get = get(client, "/api/v1/sql", sql=query_text)
    by_post = client.post("/api/v1/sql", json={"sql": query_text}).json()
    assert by_get["rows"] == by_post["rows"]
    birch = sum(1 for r in _tree_rows() if r[1] == "Birch" and r[3] > 3)
    assert by_get["rows"][0] == {"species": "Birch", "n": birch}
    assert by_get["fields"] == [
        {"name": "species", "type": "string"},
        {"name": "n", "type": "integer"},
    ]
    assert by_get["tables"] == ["street-trees@1"]
    assert by_get["truncated"] is False


def test_sql_with_cte_join_and_versions(client, publisher, trees):
    upload_ok(client, publisher, "street-trees", trees, csv_bytes(["id", "species"], [[1, "Ash"]]))
    sql = (
        'WITH old AS (SELECT id, species FROM "street-trees@1") '
        'SELECT n.species AS now, old.species AS before FROM "street-trees" AS n '
        "JOIN old USING (id)"
    )
    assert get(client, "/api/v1/sql", sql=sql)["rows"] == [{"now": "Ash", "before": "Lime"}]
    pinned = get(
        client,
        "/api/v1/datasets/street-trees/sql",
        sql='SELECT count(*) AS c FROM "street-trees"',
        version=1,
    )
    assert pinned["rows"] == [{"c": 120}]
    assert pinned["version"] == 1
    by_resource = get(client, "/api/v1/sql", sql=f"SELECT count(*) AS c FROM r_{trees}")
    assert by_resource["rows"] == [{"c": 1}]


def test_sql_row_cap(client, trees, runtime):
    runtime.settings.query_row_cap = 10
    page = get(client, "/api/v1/sql", sql='SELECT * FROM "street-trees"')
    assert len(page["rows"]) == 10
    assert page["truncated"] is True


# Downloads ---------------------------------------------------------------------------------


def test_downloads_in_every_format(client, trees, tmp_path):
    response = client.get("/api/v1/datasets/street-trees/download.csv")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    assert 'filename="street-trees-v1.csv"' in response.headers["content-disposition"]
    table = list(csv.DictReader(io.StringIO(response.text)))
    assert len(table) == 120
    assert table[0]["species"] == "Lime"
    ndjson = client.get("/api/v1/datasets/street-trees/download.ndjson").text.splitlines()
    assert len(ndjson) == 120
    assert json.loads(ndjson[0])["id"] == 1
    array = client.get("/api/v1/datasets/street-trees/download.json").json()
    assert len(array) == 120
    assert array[-1]["id"] == 120
    parquet = client.get("/api/v1/datasets/street-trees/download.parquet")
    path = tmp_path / "t.parquet"
    path.write_bytes(parquet.content)
    assert duckdb.sql(f"SELECT count(*) FROM '{path}'").fetchone() == (120,)
    no_geometry = client.get("/api/v1/datasets/street-trees/download.geojson")
    assert no_geometry.status_code == 422


def test_filtered_download_has_no_row_cap(client, trees, runtime):
    runtime.settings.query_row_cap = 5
    response = client.get(
        "/api/v1/datasets/street-trees/download.csv",
        params={"species__eq": "Oak", "fields": "id,species", "sort": "-id"},
    )
    table = list(csv.DictReader(io.StringIO(response.text)))
    assert len(table) == 24
    assert table[0] == {"id": "120", "species": "Oak"}
    older = client.get("/api/v1/datasets/street-trees/download.csv", params={"version": 1})
    assert older.status_code == 200


def test_sql_download(client, trees, runtime):
    runtime.settings.query_row_cap = 5
    response = client.get(
        "/api/v1/sql/download.csv", params={"sql": 'SELECT id FROM "street-trees" WHERE id > 100'}
    )
    assert response.status_code == 200
    assert len(response.text.strip().splitlines()) == 21


def test_downloads_leave_no_temporary_files(client, trees, runtime):
    for fmt in ("csv", "json", "parquet"):
        assert client.get(f"/api/v1/datasets/street-trees/download.{fmt}").status_code == 200
    exports = runtime.settings.data_dir.resolve() / "tmp" / "exports"
    assert list(exports.iterdir()) == []


@pytest.mark.skipif(not DATA_DIR.is_dir(), reason=f"{DATA_DIR} is absent")
def test_geojson_rows_filters_and_download(client, publisher):
    resource = make_dataset(client, publisher, "districts")
    upload_ok(
        client,
        publisher,
        "districts",
        resource,
        DATA_DIR / "nyc_community_districts.geojson",
        "districts.geojson",
    )
    # Central Park is in Manhattan community district 164 (a joint-interest area) or nearby.
    near = get(
        client,
        "/api/v1/datasets/districts/rows",
        geometry__bbox="-73.99,40.70,-73.97,40.72",
        fields="boro_cd",
    )
    assert near["total"] >= 1
    response = client.get("/api/v1/datasets/districts/download.geojson")
    collection = response.json()
    assert collection["type"] == "FeatureCollection"
    assert len(collection["features"]) == 71
    feature = collection["features"][0]
    assert feature["geometry"]["type"] == "MultiPolygon"
    assert set(feature["properties"]) == {"boro_cd", "shape_area", "shape_leng"}
    problem = get(client, "/api/v1/datasets/districts/rows", 422, geometry__eq="x")
    assert problem["code"] == "invalid_filter"
