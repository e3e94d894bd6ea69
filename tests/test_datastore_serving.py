"""Serving copies: the per-node DuckDB file of a published version answers rows, aggregates, SQL
and downloads; cursors stay correct across the copy, the lake and a node without the copy."""

from __future__ import annotations

import csv
import io

import pytest

from townhall.datastore.engine import query_engine
from townhall.datastore.serving import serving_copies

from .conftest import auth
from .test_datastore_support import csv_bytes, make_dataset, make_publisher, upload_ok

SPECIES = ["Oak", "Lime", "Plane", "Birch", "Elm"]
ROWS = 120


@pytest.fixture
def settings(settings):
    # Every table gets a copy here (the default skips small ones).
    return settings.model_copy(update={"serving_copy_min_rows": 0})


def _tree_csv(n: int = ROWS, height_offset: float = 0.0) -> bytes:
    rows = [
        [
            i,
            SPECIES[i % 5],
            f"2020-01-{(i % 28) + 1:02d}",
            round(1.5 + (i % 7) * 0.5 + height_offset, 2),
            None if i % 10 == 0 else f"Street {i % 3}",
        ]
        for i in range(1, n + 1)
    ]
    return csv_bytes(["id", "species", "planted", "height", "street"], rows)


@pytest.fixture
def publisher(client, admin, runtime):
    return make_publisher(client, admin, runtime)


@pytest.fixture
def trees(client, publisher, runtime):
    resource = make_dataset(client, publisher, "street-trees")
    upload_ok(client, publisher, "street-trees", resource, _tree_csv())
    assert serving_copies(runtime).wait(60)
    return resource


def rows(client, **params):
    response = client.get("/api/v1/datasets/street-trees/rows", params=params)
    assert response.status_code == 200, response.text
    return response.json()


def every_page(client, **params) -> tuple[list[int], list[str]]:
    """Follow next_cursor to the end: the ids in order, and where each page was read."""
    ids: list[int] = []
    served: list[str] = []
    page = rows(client, **params)
    while True:
        ids += [r["id"] for r in page["rows"]]
        served.append(page["served_from"])
        if not page["next_cursor"]:
            return ids, served
        page = rows(client, **params, cursor=page["next_cursor"])


def test_published_version_is_served_from_its_copy(client, trees, runtime):
    copies = serving_copies(runtime)
    [(table_name, snapshot)] = copies.available()
    assert copies.cluster(table_name, snapshot) == ["species", "planted"]
    page = rows(client, limit=200)
    assert page["served_from"] == "copy"
    assert page["total"] == ROWS
    # The copy is sorted by its cluster key: species, then the planting date.
    species = [r["species"] for r in page["rows"]]
    assert species == sorted(species)
    birch = [r["planted"] for r in page["rows"] if r["species"] == "Birch"]
    assert birch == sorted(birch)
    filtered = rows(client, species="Oak", limit=5)
    assert filtered["served_from"] == "copy"
    assert filtered["total"] == ROWS // 5
    assert filtered["total_estimated"] is False
    assert {r["species"] for r in filtered["rows"]} == {"Oak"}


def test_aggregate_sql_and_download_read_the_copy(client, trees):
    agg = client.get(
        "/api/v1/datasets/street-trees/aggregate",
        params={"group_by": "species", "metric": ["count", "max:height"], "street__like": "%1"},
    ).json()
    assert agg["served_from"] == "copy"
    expected = dict.fromkeys(SPECIES, 0)
    for i in range(1, ROWS + 1):
        if i % 10 != 0 and i % 3 == 1:
            expected[SPECIES[i % 5]] += 1
    assert {r["species"]: r["count"] for r in agg["rows"]} == expected

    sql = client.get(
        "/api/v1/sql",
        params={"sql": 'SELECT species, count(*) AS n FROM "street-trees" GROUP BY 1 ORDER BY 1'},
    ).json()
    assert sql["served_from"] == "copy"
    assert sql["rows"] == [{"species": s, "n": ROWS // 5} for s in sorted(SPECIES)]

    download = client.get("/api/v1/datasets/street-trees/download.csv", params={"sort": "id"})
    assert download.status_code == 200
    records = list(csv.DictReader(io.StringIO(download.text)))
    assert [int(r["id"]) for r in records] == list(range(1, ROWS + 1))


@pytest.mark.parametrize("params", [{}, {"species__in": "Oak,Elm"}, {"sort": "-height"}])
def test_cursor_pages_cover_every_row_once_on_the_copy(client, trees, params):
    ids, served = every_page(client, limit=7, **params)
    wanted = (
        {i for i in range(1, ROWS + 1) if SPECIES[i % 5] in ("Oak", "Elm")}
        if "species__in" in params
        else set(range(1, ROWS + 1))
    )
    assert sorted(ids) == sorted(wanted)
    assert len(ids) == len(set(ids))
    assert set(served) == {"copy"}


def test_copy_cursor_continues_on_a_node_without_the_copy(client, trees, runtime):
    """A cursor made on a copy, followed on a node that has none, gives the copy's order."""
    on_copy, _ = every_page(client, limit=200)
    first = rows(client, limit=25)
    assert first["served_from"] == "copy"
    # This node loses its copy and builds none: it now answers from the lake.
    runtime.settings.serving_copies = False
    query_engine(runtime).refresh()
    ids = [r["id"] for r in first["rows"]]
    page = first
    served = []
    while page["next_cursor"]:
        page = rows(client, limit=25, cursor=page["next_cursor"])
        served.append(page["served_from"])
        ids += [r["id"] for r in page["rows"]]
    assert set(served) == {"lake"}
    assert ids == on_copy


def test_lake_cursor_stays_on_the_lake_when_a_copy_appears(client, publisher, runtime):
    runtime.settings.serving_copies = False
    resource = make_dataset(client, publisher, "street-trees")
    upload_ok(client, publisher, "street-trees", resource, _tree_csv())
    first = rows(client, limit=30)
    assert first["served_from"] == "lake"
    runtime.settings.serving_copies = True
    assert rows(client, limit=1)["served_from"] == "lake"  # queues the build
    assert serving_copies(runtime).wait(60)
    assert rows(client, limit=1)["served_from"] == "copy"
    ids = [r["id"] for r in first["rows"]]
    page = first
    while page["next_cursor"]:
        page = rows(client, limit=30, cursor=page["next_cursor"])
        assert page["served_from"] == "lake"
        ids += [r["id"] for r in page["rows"]]
    assert sorted(ids) == list(range(1, ROWS + 1))
    assert len(ids) == ROWS


def test_new_version_replaces_the_copy(client, trees, publisher, runtime):
    copies = serving_copies(runtime)
    [old] = copies.available()
    upload_ok(client, publisher, "street-trees", trees, _tree_csv(60, height_offset=100.0))
    assert copies.wait(60)
    [new] = copies.available()
    assert new != old
    assert new[1] > old[1]
    latest = rows(client, limit=1, sort="height")
    assert latest["served_from"] == "copy"
    assert latest["version"] == 2
    assert latest["total"] == 60
    assert latest["rows"][0]["height"] > 100
    # The superseded version is still readable, from the lake.
    older = rows(client, version=1, limit=1)
    assert older["served_from"] == "lake"
    assert older["total"] == ROWS


def test_visibility_change_reaches_cached_table(client, trees, publisher):
    assert rows(client, limit=1)["total"] == ROWS
    changed = client.patch(
        "/api/v1/datasets/street-trees", headers=auth(publisher), json={"visibility": "private"}
    )
    assert changed.status_code == 200, changed.text
    hidden = client.get("/api/v1/datasets/street-trees/rows")
    assert hidden.status_code == 404
    assert hidden.json()["code"] == "dataset_not_found"
    own = client.get("/api/v1/datasets/street-trees/rows", headers=auth(publisher))
    assert own.status_code == 200
    assert own.json()["served_from"] == "copy"


def test_bad_cursor_storage_is_a_4xx(client, trees):
    import base64
    import json

    page = rows(client, limit=5)
    doc = json.loads(base64.urlsafe_b64decode(page["next_cursor"] + "=="))
    for change in ({"s": "x"}, {"c": "species"}, {"c": ["no_such_column"]}):
        bad = base64.urlsafe_b64encode(json.dumps({**doc, **change}).encode()).decode()
        response = client.get(
            "/api/v1/datasets/street-trees/rows", params={"limit": 5, "cursor": bad}
        )
        assert 400 <= response.status_code < 500, response.text


def test_cluster_key_buckets_time_then_category():
    """A table of many row groups is clustered by time bucket, then category, then time."""
    import duckdb

    from townhall.datastore.serving import cluster_columns, key_sql, order_by

    con = duckdb.connect()
    con.execute(
        "CREATE TABLE t AS SELECT range AS id, "
        "TIMESTAMP '2020-01-01' + to_seconds(range * 60) AS at, "
        "['a', 'b', 'c'][1 + range % 3] AS kind, 'free text ' || range AS note "
        "FROM range(1000000)"
    )
    columns = [
        {"name": "id", "db_type": "BIGINT"},
        {"name": "at", "db_type": "TIMESTAMP"},
        {"name": "kind", "db_type": "VARCHAR"},
        {"name": "note", "db_type": "VARCHAR"},
    ]
    cluster = cluster_columns(con, "t", columns)
    assert cluster[1:] == ["kind", "at"]
    bucket_column, seconds = cluster[0].split("//")
    assert bucket_column == "at"
    assert int(seconds) > 0
    names = {c["name"] for c in columns}
    ordered = con.execute(
        f'SELECT {key_sql(cluster[0], names)}, kind, "at" FROM t '
        f"ORDER BY {order_by(cluster, names)} LIMIT 5"
    ).fetchall()
    assert ordered == sorted(ordered)
    assert {row[1] for row in ordered} == {"a"}
    with pytest.raises(ValueError):
        key_sql("nope//60", names)
    with pytest.raises(ValueError):
        key_sql("at//0", names)
