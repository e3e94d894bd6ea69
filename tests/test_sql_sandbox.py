"""User SQL cannot leave its sandbox: each attempt is refused with a clear 4xx and code."""

from __future__ import annotations

import pytest

from townhall.datastore.sql_guard import guard_sql

from .conftest import auth, make_account
from .test_datastore_support import csv_bytes, make_dataset, make_publisher, upload_ok


@pytest.fixture
def publisher(client, admin, runtime):
    return make_publisher(client, admin, runtime)


@pytest.fixture
def lake_files(client, publisher, runtime):
    """A public, a restricted and a private dataset, and where the lake keeps their files."""
    for slug, visibility, secret in [
        ("street-trees", "public", "oak"),
        ("inspections", "restricted", "restricted-value"),
        ("payroll", "private", "private-salary"),
    ]:
        resource = make_dataset(client, publisher, slug, visibility=visibility)
        upload_ok(client, publisher, slug, resource, csv_bytes(["id", "value"], [[1, secret]]))
    return runtime.lake.data_path


def sql(client, text, expect, headers=None, path="/api/v1/sql"):
    response = client.post(path, json={"sql": text}, headers=headers or {})
    assert response.status_code == expect, response.text
    return response.json()


def refused(client, text, code="sql_not_allowed", status=400, headers=None):
    problem = sql(client, text, status, headers)
    assert problem["ok"] is False
    assert problem["code"] == code, problem
    assert problem["message"]
    return problem


def test_public_select_works(client, lake_files):
    assert sql(client, 'SELECT value FROM "street-trees"', 200)["rows"] == [{"value": "oak"}]


FILE_AND_CATALOG_READS = [
    "SELECT * FROM read_csv('/etc/passwd')",
    "SELECT * FROM read_csv_auto('/etc/passwd')",
    "SELECT * FROM read_text('/etc/hostname')",
    "SELECT * FROM read_blob('/etc/hostname')",
    "SELECT * FROM read_json('/etc/passwd')",
    "SELECT * FROM glob('/**')",
    "SELECT * FROM '/etc/passwd'",
    'SELECT * FROM "/etc/passwd"',
    "SELECT * FROM parquet_scan('x.parquet')",
    "SELECT * FROM query_table('r_1')",
    "SELECT * FROM query('SELECT 1')",
    "SELECT * FROM duckdb_settings()",
    "SELECT * FROM range(10)",
    "SELECT * FROM sniff_csv('/etc/passwd')",
    "SELECT * FROM lake.main.r_1",
    "SELECT * FROM memory.main.x",
    "SELECT * FROM information_schema.tables",
    'SELECT * FROM "street-trees" AT (VERSION => 1)',
    "SELECT current_setting('allowed_directories')",
    "SELECT getvariable('x')",
    "SELECT write_log('x')",
    "SELECT * FROM (SELECT * FROM read_parquet('x'))",
    "WITH t AS (SELECT * FROM glob('*')) SELECT * FROM t",
    "SELECT (SELECT count(*) FROM read_csv('/etc/passwd'))",
]


def test_file_and_catalog_reads_are_refused(client, lake_files):
    # One test looping over the attacks: each parametrized case would rebuild the lake.
    for attack in FILE_AND_CATALOG_READS:
        problem = sql(client, attack, 400)
        assert problem["code"] == "sql_not_allowed", (attack, problem)


def test_read_parquet_on_the_raw_lake_files_is_refused(client, lake_files):
    # The DuckDB sandbox alone would allow this (DESIGN.md, Known pitfalls): the guard must not.
    files = sorted(lake_files.rglob("*.parquet"))
    assert files, "the lake should hold Parquet files"
    for target in (str(files[-1]), f"{lake_files}/**/*.parquet"):
        problem = refused(client, f"SELECT * FROM read_parquet('{target}')")
        assert "read_parquet" in problem["message"]
        refused(client, f"SELECT * FROM '{target}'")
        refused(client, f'SELECT * FROM "{target}"')


COMMANDS = [
    "COPY (SELECT 1) TO '/tmp/out.csv'",
    "COPY \"street-trees\" TO '/tmp/out.csv'",
    "ATTACH '/tmp/other.db' AS other",
    "DETACH lake",
    "INSTALL httpfs",
    "LOAD httpfs",
    "SET threads = 1",
    "SET enable_external_access = true",
    "RESET lock_configuration",
    "PRAGMA version",
    "PRAGMA database_list",
    "CALL pragma_version()",
    "CREATE TABLE x AS SELECT 1",
    "CREATE MACRO m(a) AS a",
    "INSERT INTO \"street-trees\" VALUES (2, 'x')",
    'DROP TABLE "street-trees"',
    "EXPORT DATABASE '/tmp/x'",
    'DESCRIBE "street-trees"',
    'SUMMARIZE "street-trees"',
    "USE lake",
    "CHECKPOINT",
    "BEGIN TRANSACTION",
]


def test_commands_are_refused(client, lake_files):
    for command in COMMANDS:
        problem = sql(client, command, 400)
        assert problem["code"] in ("sql_not_allowed", "invalid_sql"), (command, problem)


def test_more_than_one_statement(client, lake_files):
    refused(client, 'SELECT 1; SELECT * FROM "street-trees"', code="invalid_sql")
    refused(client, "SELECT 1; COPY (SELECT 1) TO '/tmp/x.csv'", code="invalid_sql")
    refused(client, "SELEC 1", code="invalid_sql")
    refused(client, "", code="invalid_request", status=422)


def test_restricted_and_private_datasets(client, lake_files, publisher, runtime):
    for slug in ("inspections", "payroll", "no-such-dataset"):
        problem = sql(client, f'SELECT * FROM "{slug}"', 404)
        assert problem["code"] == "dataset_not_found"
    # Also by resource table name, and hidden inside a subquery or CTE.
    ids = runtime.lake.snapshots()
    assert ids
    for text in (
        "SELECT * FROM r_2",
        "SELECT * FROM r_3",
        'SELECT * FROM "street-trees" WHERE id IN (SELECT id FROM payroll)',
        "WITH p AS (SELECT * FROM payroll) SELECT * FROM p",
    ):
        problem = sql(client, text, 404)
        assert problem["code"] in ("dataset_not_found", "resource_not_found")
    partner = make_account(runtime, "partner")
    assert sql(client, "SELECT value FROM inspections", 200, auth(partner))["rows"] == [
        {"value": "restricted-value"}
    ]
    assert sql(client, "SELECT value FROM payroll", 404, auth(partner))["code"] == (
        "dataset_not_found"
    )
    assert sql(client, "SELECT value FROM payroll", 200, auth(publisher))["rows"] == [
        {"value": "private-salary"}
    ]


def test_cte_names_do_not_leak_out_of_their_scope(client, lake_files):
    # The outer `payroll` is not the CTE: it must resolve (and be refused) as a dataset.
    text = "SELECT * FROM (WITH payroll AS (SELECT 1 AS a) SELECT * FROM payroll), payroll"
    assert sql(client, text, 404)["code"] == "dataset_not_found"
    refused(client, 'WITH "x.parquet" AS (SELECT 1) SELECT * FROM "x.parquet"')
    ok = sql(
        client, "WITH a AS (SELECT 1 AS x), b AS (SELECT x + 1 AS y FROM a) SELECT y FROM b", 200
    )
    assert ok["rows"] == [{"y": 2}]


def test_previous_version_of_a_withdrawn_dataset(client, publisher, runtime):
    resource = make_dataset(client, publisher, "old-news")
    upload_ok(client, publisher, "old-news", resource, csv_bytes(["a"], [["first"]]))
    upload_ok(client, publisher, "old-news", resource, csv_bytes(["a"], [["second"]]))
    assert sql(client, 'SELECT a FROM "old-news@1"', 200)["rows"] == [{"a": "first"}]
    client.post("/api/v1/datasets/old-news/withdraw", headers=auth(publisher))
    for text in (
        'SELECT a FROM "old-news@1"',
        'SELECT a FROM "old-news"',
        f"SELECT a FROM r_{resource}",
    ):
        assert sql(client, text, 404)["code"] in ("dataset_not_found", "resource_not_found")
    # Nor through the lake's own versions, whatever the snapshot number.
    for snapshot in range(1, 6):
        refused(client, f"SELECT * FROM r_{resource} AT (VERSION => {snapshot})")
        refused(client, f"SELECT * FROM lake.main.r_{resource} AT (VERSION => {snapshot})")
    # Nor through the dataset-scoped endpoint.
    response = client.get("/api/v1/datasets/old-news/sql", params={"sql": "SELECT 1", "version": 1})
    assert response.status_code == 404


def test_cross_join_bomb_stops_at_the_time_limit(client, lake_files, runtime):
    runtime.settings.query_timeout_seconds = 1.0
    bomb = (
        'SELECT count(*) FROM "street-trees" a, '
        "(SELECT * FROM (VALUES (1),(2),(3),(4),(5),(6),(7),(8),(9),(10)) v(x)) b, "
        "(SELECT unnest(generate_series(1, 100000)) AS y) c, "
        "(SELECT unnest(generate_series(1, 100000)) AS z) d"
    )
    problem = refused(client, bomb, code="query_timeout")
    assert "time limit" in problem["message"]
    # The engine still answers afterwards.
    assert sql(client, 'SELECT count(*) AS n FROM "street-trees"', 200)["rows"] == [{"n": 1}]


def test_the_locked_connection_is_a_second_line(client, lake_files, runtime):
    """Even SQL that slipped past the guard meets a locked DuckDB."""
    from townhall.datastore.engine import query_engine

    engine = query_engine(runtime)

    def attempt(text):
        try:
            engine.run(lambda cursor: cursor.execute(text).fetchall())
        except Exception as error:
            return str(error)
        return None

    assert "locked" in attempt("SET enable_external_access = true")
    assert "disabled" in attempt("SELECT * FROM read_csv('/etc/passwd')")
    assert attempt("INSTALL httpfs") is not None
    assert attempt("LOAD httpfs") is not None
    assert attempt("ATTACH '/tmp/evil.db' AS evil") is not None
    assert attempt("SET threads = 1") is not None


def test_guard_unit_allowlist():
    allowed = frozenset({"count", "sum", "lower", "cast"})

    def resolve(name, version):
        from townhall.datastore.sql_guard import TableBinding

        return TableBinding("r_1", 7, f"{name}@{version}")

    guarded = guard_sql('SELECT lower(a), count(*) FROM "t" GROUP BY 1', resolve, allowed)
    assert "AT (VERSION => 7)" in guarded.sql
    assert '"lake"."main"."r_1"' in guarded.sql
    with pytest.raises(Exception, match="upper"):
        guard_sql("SELECT upper(a) FROM t", resolve, allowed)
    with pytest.raises(Exception, match="Only a SELECT"):
        guard_sql("PIVOT t ON a USING sum(b)", resolve, allowed)


def test_dataset_scoped_sql_pins_the_version(client, publisher, lake_files):
    resource = make_dataset(client, publisher, "counts")
    upload_ok(client, publisher, "counts", resource, csv_bytes(["n"], [[1]]))
    upload_ok(client, publisher, "counts", resource, csv_bytes(["n"], [[2]]))
    latest = client.get("/api/v1/datasets/counts/sql", params={"sql": "SELECT n FROM counts"})
    assert latest.json()["rows"] == [{"n": 2}]
    assert latest.json()["version"] == 2
    pinned = client.post(
        "/api/v1/datasets/counts/sql", json={"sql": "SELECT n FROM counts", "version": 1}
    )
    assert pinned.json()["rows"] == [{"n": 1}]
    assert pinned.json()["version"] == 1
