"""Answers that are not recomputed: filtered totals read from the per-value counts recorded with a
serving copy, counts and aggregates of a version kept once known; values written into the SQL as
quoted constants instead of bound parameters."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import math
import random
import re

import duckdb
import pytest
from sqlglot import exp

from townhall.datastore.engine import AnswerCache, query_engine
from townhall.datastore.query import render, sql_literal
from townhall.datastore.serving import CLUSTER_MAX_DISTINCT, serving_copies, value_counts

from . import test_datastore_serving as serving_tests
from .conftest import auth, make_account
from .test_datastore_support import DATA_DIR, csv_bytes, make_dataset, upload_ok

# The street trees of the serving-copy tests: the same table, fixtures and helpers.
SPECIES, ROWS, _tree_csv, rows = (
    serving_tests.SPECIES, serving_tests.ROWS, serving_tests._tree_csv, serving_tests.rows,
)  # fmt: skip
settings = serving_tests.settings  # every table gets a serving copy
publisher = serving_tests.publisher
trees = serving_tests.trees


def aggregate(client, **params):
    response = client.get("/api/v1/datasets/street-trees/aggregate", params=params)
    assert response.status_code == 200, response.text
    return response.json()


def sql_count(client, where: str, version: int | None = None) -> int:
    """The exact count, by user SQL (never read from recorded counts or kept answers)."""
    table = '"street-trees"' if version is None else f'"street-trees@{version}"'
    sql = f"SELECT count(*) AS n FROM {table} {where}"
    response = client.get("/api/v1/sql", params={"sql": sql})
    assert response.status_code == 200, response.text
    return int(response.json()["rows"][0]["n"])


def test_recorded_counts_equal_exact_counts(client, trees, runtime):
    copies = serving_copies(runtime)
    [(table_name, snapshot)] = copies.available()
    meta = copies.meta(table_name, snapshot)
    assert meta is not None
    # Category-like text columns are counted; the nulls of `street` are recorded apart.
    assert set(meta["counts"]) == {"species", "street"}
    assert meta["counts"]["street"]["nulls"] == ROWS // 10
    for species in SPECIES:
        exact = sql_count(client, f"WHERE species = '{species}'")
        assert copies.value_count(table_name, snapshot, "species", [species]) == exact
        page = rows(client, species=species, limit=2)
        assert page["total"] == exact
        assert page["total_estimated"] is False
    street = rows(client, street="Street 1", limit=1)
    assert street["total"] == sql_count(client, "WHERE street = 'Street 1'")
    either = rows(client, species__in="Oak,Elm,Oak", limit=1)
    assert either["total"] == sql_count(client, "WHERE species IN ('Oak', 'Elm')")
    assert rows(client, species="Maple", limit=1)["total"] == 0
    # Not a single equality on a counted column: counted by a query, still exact.
    both = rows(client, species="Oak", street="Street 2", limit=1)
    assert both["total"] == sql_count(client, "WHERE species = 'Oak' AND street = 'Street 2'")
    assert copies.value_count(table_name, snapshot, "height", ["2.0"]) is None


def test_kept_counts_and_aggregates_stay_with_their_version(client, trees, publisher, runtime):
    """The same filter on two versions: each version gets its own count and aggregate, and a
    repeated question gets the answer it got the first time."""
    first = rows(client, height__gte="3", limit=1)
    expected_first = sql_count(client, "WHERE height >= 3")
    assert first["total"] == expected_first
    upload_ok(client, publisher, "street-trees", trees, _tree_csv(60, height_offset=1.0))
    assert serving_copies(runtime).wait(60)
    expected_second = sql_count(client, "WHERE height >= 3")
    assert expected_second != expected_first
    for _ in range(2):
        assert rows(client, height__gte="3", limit=1)["total"] == expected_second
        assert rows(client, height__gte="3", limit=1, version=1)["total"] == expected_first
        latest = aggregate(client, metric="count", height__gte="3")
        older = aggregate(client, metric="count", height__gte="3", version=1)
        assert latest["rows"] == [{"count": expected_second}]
        assert latest["version"] == 2
        assert older["rows"] == [{"count": expected_first}]
        assert older["version"] == 1
    grouped = aggregate(client, group_by="species", metric="count", height__gte="3")
    assert sum(r["count"] for r in grouped["rows"]) == expected_second
    assert len(query_engine(runtime).answers) >= 4


def test_filter_values_are_quoted_constants(client, trees):
    """Values reach DuckDB as string constants whatever they hold; NUL is refused."""
    for value in ["x' OR '1'='1", "Street 1'; --", "a\\'b", "$1", "?", "é\u2028"]:
        page = rows(client, street=value, limit=1)
        assert page["total"] == 0
        assert page["rows"] == []
        assert aggregate(client, metric="count", street__like=f"%{value}%")["rows"] == [
            {"count": 0}
        ]
    assert rows(client, street__like="Street 1%", limit=1)["total"] == sql_count(
        client, "WHERE street LIKE 'Street 1%'"
    )
    refused = client.get("/api/v1/datasets/street-trees/rows", params={"street": "a\x00b"})
    assert refused.status_code == 422
    assert refused.json()["code"] == "invalid_filter"


def test_sql_literal_round_trips_through_duckdb():
    con = duckdb.connect()
    chooser = random.Random(3)
    alphabet = "ab'\"\\$?;-%_\n\t é€\u2028\U0001f600"
    values: list[object] = [
        "".join(chooser.choice(alphabet) for _ in range(chooser.randint(0, 12))) for _ in range(200)
    ]
    values += [0, -7, 10**20, 1.25, -0.0, 1e-300, True, False, None]
    naive = dt.datetime(2023, 1, 2, 3, 4, 5, 6)  # noqa: DTZ001 - DuckDB's TIMESTAMP is naive
    values += [dt.date(2020, 2, 29), naive, dt.time(12, 30)]
    for value in values:
        got = con.execute(f"SELECT {render(sql_literal(value))}").fetchone()[0]
        assert got == value, (value, got)
        assert type(got) is type(value), (value, got)
    for special in (math.inf, -math.inf):
        assert con.execute(f"SELECT {render(sql_literal(special))}").fetchone()[0] == special
    assert math.isnan(con.execute(f"SELECT {render(sql_literal(math.nan))}").fetchone()[0])
    with pytest.raises(Exception, match="NUL"):
        sql_literal("a\x00")
    with pytest.raises(Exception, match="dict"):
        sql_literal({"a": 1})


def test_value_counts_leave_out_columns_with_many_values():
    con = duckdb.connect()
    con.execute(
        "CREATE TABLE t AS SELECT range AS id, "
        "CASE WHEN range % 4 = 0 THEN NULL ELSE ['a', 'b'][1 + range % 2] END AS kind, "
        "'note ' || range AS note FROM range(5000)"
    )
    columns = [
        {"name": "id", "db_type": "BIGINT"},
        {"name": "kind", "db_type": "VARCHAR"},
        {"name": "note", "db_type": "VARCHAR"},
    ]
    counted = value_counts(con, "t", columns)
    assert CLUSTER_MAX_DISTINCT < 5000
    assert set(counted) == {"kind"}
    exact = dict(con.execute("SELECT kind, count(*) FROM t GROUP BY kind").fetchall())
    assert counted["kind"]["nulls"] == exact.pop(None)
    assert counted["kind"]["values"] == exact


def test_answer_cache_keeps_within_its_budget():
    cache = AnswerCache(max_bytes=1600, max_entries=3)
    cache.put("a", 1, 100)
    cache.put("b", 2, 100)
    assert cache.get("a") == 1  # now the most recently used
    cache.put("c", 3, 100)
    cache.put("d", 4, 100)
    assert cache.get("b") is None  # least recently used, out past three entries
    assert [cache.get(k) for k in "acd"] == [1, 3, 4]
    cache.put("big", 5, 101)  # more than a sixteenth of the budget: not kept
    assert cache.get("big") is None
    for key in "efghijklmnop":
        cache.put(key, key, 100)
    assert len(cache) <= 3


def test_offset_on_a_copy_reads_by_row_id(client, trees):
    """An unfiltered, unsorted page at an offset of the copy is read by row id: the same rows
    as walking the copy from the start, and as OFFSET on the lake in the copy's order."""
    walked: list[int] = []
    page = rows(client, limit=50)
    while True:
        walked += [r["id"] for r in page["rows"]]
        if not page["next_cursor"]:
            break
        page = rows(client, limit=50, cursor=page["next_cursor"])
    assert sorted(walked) == list(range(1, ROWS + 1))
    for offset in (1, 37, ROWS - 3, ROWS, ROWS + 5):
        at = rows(client, limit=7, offset=offset)
        assert at["served_from"] == "copy"
        assert [r["id"] for r in at["rows"]] == walked[offset : offset + 7]
        assert at["total"] == ROWS
        follow = rows(client, limit=7, cursor=at["next_cursor"]) if at["next_cursor"] else None
        if follow is not None:
            assert [r["id"] for r in follow["rows"]] == walked[offset + 7 : offset + 14]
    # With a filter or a sort, OFFSET still counts rows of the answer.
    oaks = [i for i in walked if SPECIES[i % 5] == "Oak"]
    assert [r["id"] for r in rows(client, species="Oak", limit=3, offset=4)["rows"]] == oaks[4:7]
    by_height = rows(client, sort="-height,id", limit=200)["rows"]
    shifted = rows(client, sort="-height,id", limit=5, offset=10)["rows"]
    assert shifted == by_height[10:15]


def test_query_past_the_memory_limit_is_a_4xx(client, trees, runtime):
    runtime.settings.duckdb_query_memory_limit = "16MB"
    query_engine(runtime).reset()
    # One list of 1.7 million strings: an aggregate DuckDB cannot spill.
    sql = (
        "SELECT length(list(a.street || b.street || c.street)) AS n "
        'FROM "street-trees" a, "street-trees" b, "street-trees" c'
    )
    response = client.get("/api/v1/sql", params={"sql": sql})
    assert response.status_code == 400, response.text[:300]
    assert response.json()["code"] == "query_out_of_memory"
    # Small questions still fit.
    assert rows(client, species="Oak", limit=1)["total"] == ROWS // 5


@pytest.mark.skipif(not DATA_DIR.is_dir(), reason=f"{DATA_DIR} is absent")
def test_downloads_with_and_without_spatial_beside_a_geometry_table(client, trees, publisher):
    """A table without geometry is downloaded by an engine without the spatial extension, also
    when the lake holds a geometry table; a geometry table's download still has it."""
    resource = make_dataset(client, publisher, "districts")
    source = DATA_DIR / "nyc_community_districts.geojson"
    upload_ok(client, publisher, "districts", resource, source, "districts.geojson")
    for params in ({}, {"sort": "id"}):
        plain = client.get("/api/v1/datasets/street-trees/download.csv", params=params)
        assert plain.status_code == 200, plain.text[:300]
        assert len(list(csv.DictReader(io.StringIO(plain.text)))) == ROWS
    shapes = client.get("/api/v1/datasets/districts/download.csv")
    assert shapes.status_code == 200, shapes.text[:300]
    first = next(csv.DictReader(io.StringIO(shapes.text)))
    assert first["geometry"].startswith("MULTIPOLYGON")
    collection = client.get("/api/v1/datasets/districts/download.geojson").json()
    assert len(collection["features"]) == 71


def test_rendered_sql_kept_per_column_list_never_crosses_versions(
    client, trees, publisher, runtime
):
    """The JSON projection is rendered once per column list and type nodes parsed once per
    name: a new version whose column changed type gets its own, on the lake and on copies,
    cold (no kept answers) and asked alternately."""
    from townhall.datastore.query import data_type, row_json, row_json_sql

    texts = csv_bytes(
        ["id", "species", "planted", "height", "street"],
        [[i, SPECIES[i % 5], "2020-01-01", "tall" if i % 2 else "short", None] for i in range(30)],
    )
    upload_ok(client, publisher, "street-trees", trees, texts)
    assert serving_copies(runtime).wait(60)
    engine = query_engine(runtime)
    for _ in range(2):
        for version, kind, sample in ((1, "number", float), (2, "string", str)):
            engine.answers = AnswerCache()
            page = rows(client, version=version, limit=3)
            assert page["version"] == version
            assert {"name": "height", "type": kind} in page["fields"]
            assert all(isinstance(r["height"], sample) for r in page["rows"])
            top = aggregate(client, version=version, metric="max:height", group_by="species")
            assert {"name": "max_height", "type": kind} in top["fields"]
            assert all(isinstance(r["max_height"], sample) for r in top["rows"])
    assert aggregate(client, version=2, metric="max:height")["rows"] == [{"max_height": "tall"}]
    columns = (("a", "DOUBLE"), ("b", "VARCHAR"))
    assert row_json_sql(columns) == render(row_json(columns))
    assert row_json_sql((("a", "VARCHAR"), ("b", "VARCHAR"))) != row_json_sql(columns)
    first, second = data_type("DECIMAL(18,3)"), data_type("DECIMAL(18,3)")
    assert first is not second
    first.set("this", exp.DataType.Type.TEXT)
    assert render(data_type("DECIMAL(18,3)")) == "DECIMAL(18, 3)"


# Kept pages and plans ----------------------------------------------------------------------------

_ELAPSED = re.compile(rb'"elapsed_ms":[0-9.eE+-]+')


def _body(client, path: str, expect: int = 200, headers=None, **params) -> bytes:
    response = client.get(f"/api/v1/datasets/{path}", params=params, headers=headers)
    assert response.status_code == expect, response.text
    return response.content


def _timeless(body: bytes) -> bytes:
    """The body with its `elapsed_ms` blanked: the one field that may differ between asks."""
    assert _ELAPSED.search(body), body[:200]
    return _ELAPSED.sub(b'"elapsed_ms":0', body)


def test_kept_pages_are_byte_identical_to_computed_ones(client, trees, runtime):
    """A page asked twice is answered from memory (no new entry), and its bytes, `elapsed_ms`
    apart, are those of the same page computed with nothing kept: filtered, sorted, deep,
    with fields, and the page a cursor leads to (on the copy and on the lake)."""
    engine = query_engine(runtime)
    asks = [
        {"species": "Oak", "limit": 5},
        {"limit": 7, "offset": 40},
        {"sort": "-height,id", "limit": 4, "fields": "id,height"},
        {"height__gte": "3", "q": "street", "limit": 3},
        {"limit": 5, "version": 1},
    ]
    for params in asks:
        engine.answers.clear()
        first = _body(client, "street-trees/rows", **params)
        kept = len(engine.answers)
        assert kept >= 2  # the plan and the page
        again = _body(client, "street-trees/rows", **params)
        assert len(engine.answers) == kept
        assert _timeless(again) == _timeless(first)
        cursor = json.loads(first)["next_cursor"]
        assert cursor
        following = _body(client, "street-trees/rows", **{**params, "offset": 0, "cursor": cursor})
        engine.answers.clear()
        assert _timeless(_body(client, "street-trees/rows", **params)) == _timeless(first)
        fresh = _body(client, "street-trees/rows", **{**params, "offset": 0, "cursor": cursor})
        assert _timeless(fresh) == _timeless(following)
    # `elapsed_ms` is this request's own time, not the kept page's.
    assert json.loads(again)["elapsed_ms"] >= 0


def test_large_pages_are_not_kept(client, trees, runtime, monkeypatch):
    from townhall.datastore import query as datastore_query

    engine = query_engine(runtime)
    engine.answers.clear()
    monkeypatch.setattr(datastore_query, "PAGE_KEEP_MAX_BYTES", 1024)
    big = rows(client, limit=50)
    assert len(big["rows"]) == 50
    assert len(engine.answers) == 1  # the plan only: 50 rows take more than 1 KB
    rows(client, limit=2)
    assert len(engine.answers) == 3  # a small page is kept with its plan


def test_kept_page_never_crosses_versions_or_withdrawal(client, trees, publisher, runtime):
    """A kept page belongs to its snapshot: after a new version the same request reads the new
    one (the old one still by `version=1`), and once the dataset is withdrawn the public gets
    404 whatever was kept, while its publisher still reads it."""
    before = rows(client, species="Oak", limit=3)
    assert before["version"] == 1
    upload_ok(client, publisher, "street-trees", trees, _tree_csv(60, height_offset=1.0))
    assert serving_copies(runtime).wait(60)
    after = rows(client, species="Oak", limit=3)
    assert after["version"] == 2
    assert after["total"] == 12
    assert before["total"] == 24
    assert [r["height"] for r in after["rows"]] != [r["height"] for r in before["rows"]]
    older = rows(client, species="Oak", limit=3, version=1)
    assert older["version"] == 1
    assert older["total"] == 24
    # Version 1 lost its serving copy to version 2's and is read from the lake now: what is
    # kept of it is what reading it afresh gives.
    query_engine(runtime).answers.clear()
    assert rows(client, species="Oak", limit=3, version=1)["rows"] == older["rows"]
    kept = aggregate(client, group_by="species", metric="count")
    assert sum(r["count"] for r in kept["rows"]) == 60
    response = client.post("/api/v1/datasets/street-trees/withdraw", headers=auth(publisher))
    assert response.status_code == 200, response.text
    for path, params in (
        ("rows", {"species": "Oak", "limit": 3}),
        ("rows", {"species": "Oak", "limit": 3, "version": 1}),
        ("aggregate", {"group_by": "species", "metric": "count"}),
    ):
        problem = client.get(f"/api/v1/datasets/street-trees/{path}", params=params)
        assert problem.status_code == 404, problem.text
        assert problem.json()["code"] == "dataset_not_found"
        owner = client.get(
            f"/api/v1/datasets/street-trees/{path}", params=params, headers=auth(publisher)
        )
        assert owner.status_code == 200, owner.text


def test_restricted_page_kept_for_a_partner_is_not_served_to_others(client, publisher, runtime):
    """The caller's right to read is checked on every request, before any kept answer."""
    resource = make_dataset(client, publisher, "partners", visibility="restricted")
    upload_ok(client, publisher, "partners", resource, csv_bytes(["a", "b"], [[1, "x"], [2, "y"]]))
    assert serving_copies(runtime).wait(60)
    partner = make_account(runtime, "partner")
    staff = make_account(runtime, "staff", email="staff@example.org")
    for path, params in (("rows", {"b": "x", "limit": 1}), ("aggregate", {"metric": "count"})):
        for _ in range(2):
            allowed = _body(client, f"partners/{path}", headers=auth(partner), **params)
            assert json.loads(allowed)["rows"]
        problem = client.get(f"/api/v1/datasets/partners/{path}", params=params)
        assert problem.status_code == 404
        assert problem.json()["code"] == "dataset_not_found"
        assert b'"x"' not in problem.content
        other = client.get(f"/api/v1/datasets/partners/{path}", params=params, headers=auth(staff))
        assert other.status_code == 404
    bad = client.get(
        "/api/v1/datasets/partners/rows", headers={"Authorization": "Bearer th_not_a_token"}
    )
    assert bad.status_code == 401
    assert bad.json()["code"] == "invalid_token"


def test_anonymous_table_lookups_are_kept_until_the_dataset_changes(client, trees, publisher):
    """An anonymous read finds its table without the database once it was looked up
    (`app.state.table_cache`); a visibility change made through the API is seen by the very
    next read, both ways."""
    cache = client.app.state.table_cache
    first = rows(client, species="Oak", limit=2)
    hits = cache.hits
    assert rows(client, species="Oak", limit=2)["rows"] == first["rows"]
    assert cache.hits == hits + 1
    private = client.patch(
        "/api/v1/datasets/street-trees", json={"visibility": "private"}, headers=auth(publisher)
    )
    assert private.status_code == 200, private.text
    hidden = client.get("/api/v1/datasets/street-trees/rows", params={"species": "Oak"})
    assert hidden.status_code == 404
    # The publisher still reads it (not through the anonymous lookup).
    own = client.get(
        "/api/v1/datasets/street-trees/rows", params={"limit": 1}, headers=auth(publisher)
    )
    assert own.status_code == 200
    public = client.patch(
        "/api/v1/datasets/street-trees", json={"visibility": "public"}, headers=auth(publisher)
    )
    assert public.status_code == 200, public.text
    assert rows(client, species="Oak", limit=2)["rows"] == first["rows"]
