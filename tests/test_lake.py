"""The DuckLake lake on both catalogs: versions, time travel, offline extensions, several nodes."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import psycopg
import pytest

from townhall.config import Settings
from townhall.datastore import lake as lake_module
from townhall.datastore.lake import (
    Lake,
    LakeExtensionError,
    LakeTimeoutError,
    quote_identifier,
    table_ref,
)

PG_ADMIN_DSN = "host=127.0.0.1 port=5432 user=postgres dbname=postgres connect_timeout=3"
SRC_DIR = Path(__file__).resolve().parents[1] / "src"


@pytest.fixture
def pg_database() -> Iterator[str]:
    """A fresh PostgreSQL database for one test, as a SQLAlchemy URL; dropped afterwards."""
    try:
        admin = psycopg.connect(PG_ADMIN_DSN, autocommit=True)
    except psycopg.OperationalError as error:
        pytest.skip(f"PostgreSQL is not reachable at 127.0.0.1:5432: {error}")
    name = f"townhall_test_lake_{uuid.uuid4().hex[:12]}"
    with admin:
        admin.execute(f"CREATE DATABASE {quote_identifier(name)}")
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    finally:
        with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as admin:
            admin.execute(f"DROP DATABASE IF EXISTS {quote_identifier(name)} WITH (FORCE)")


@pytest.fixture(params=["sqlite", "postgres"])
def lake_settings(request: pytest.FixtureRequest, tmp_path: Path) -> Settings:
    if request.param == "sqlite":
        return Settings(data_dir=tmp_path / "data")
    database_url = request.getfixturevalue("pg_database")
    return Settings(data_dir=tmp_path / "data", database_url=database_url)


@pytest.fixture
def lake(lake_settings: Settings) -> Iterator[Lake]:
    with Lake(lake_settings) as opened:
        yield opened


@pytest.fixture
def sqlite_lake(tmp_path: Path) -> Iterator[Lake]:
    with Lake(Settings(data_dir=tmp_path / "data")) as opened:
        yield opened


@pytest.fixture
def offline(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every DuckDB instance made during the test downloads extensions from a closed port."""
    real_connect = duckdb.connect

    def connect_offline(*args: Any, config: dict[str, Any] | None = None, **kwargs: Any) -> Any:
        config = {**(config or {}), "custom_extension_repository": "http://127.0.0.1:9"}
        return real_connect(*args, config=config, **kwargs)

    monkeypatch.setattr(duckdb, "connect", connect_offline)


def rows(lake: Lake, sql: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]:
    return lake.read(sql, params).rows


def test_catalog_is_where_the_settings_say(lake: Lake, lake_settings: Settings) -> None:
    expected = "postgres" if lake_settings.is_postgres else "sqlite"
    assert lake.catalog_kind == expected
    assert lake.ping()
    if expected == "sqlite":
        assert (lake_settings.data_dir / "lake.sqlite").is_file()
    else:
        dsn = lake_settings.resolved_lake_catalog_url.removeprefix("postgres:")
        with psycopg.connect(dsn) as conn:
            found = conn.execute(
                "SELECT count(*) FROM information_schema.tables "
                "WHERE table_schema = 'lake' AND table_name = 'ducklake_snapshot'"
            ).fetchone()
        assert found == (1,)


def test_older_version_stays_readable_by_snapshot(lake: Lake) -> None:
    first = lake.write_table(
        "permits",
        "SELECT * FROM (VALUES (1, 'fence'), (2, 'garage')) AS v(id, kind)",
        author="clerk@city.example",
        message="first upload",
    )
    assert rows(lake, f"SELECT id, kind FROM {table_ref('permits')} ORDER BY id") == [
        (1, "fence"),
        (2, "garage"),
    ]

    second = lake.write_table(
        "permits", "SELECT range AS id, ? AS kind FROM range(?)", params=["shed", 3]
    )

    assert second > first
    assert rows(lake, f"SELECT id, kind FROM {table_ref('permits')} ORDER BY id") == [
        (0, "shed"),
        (1, "shed"),
        (2, "shed"),
    ]
    old = table_ref("permits", snapshot=first)
    assert rows(lake, f"SELECT id, kind FROM {old} ORDER BY id") == [(1, "fence"), (2, "garage")]
    assert lake.current_snapshot() == second

    by_id = {snapshot.id: snapshot for snapshot in lake.snapshots()}
    assert {first, second} <= by_id.keys()
    assert by_id[first].author == "clerk@city.example"
    assert by_id[first].message == "first upload"
    assert by_id[first].changes["tables_created"] == ["main.permits"]
    assert by_id[second].time.tzinfo is UTC
    assert by_id[first].time <= by_id[second].time <= datetime.now(UTC)


def test_every_version_is_a_parquet_file(lake: Lake) -> None:
    # Inlining would keep small tables in the catalog database, out of exports and backups.
    lake.write_table("tiny", "SELECT 1 AS one")
    assert list(lake.data_path.glob("main/tiny/*.parquet"))


def test_extensions_load_from_packages_without_network(
    lake_settings: Settings, offline: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(lake_module, "_verified_extensions", {})  # as in a new process
    scanner = "postgres_scanner" if lake_settings.is_postgres else "sqlite_scanner"
    with Lake(lake_settings) as lake, lake.connect() as con:
        loaded = dict(
            con.execute(
                "SELECT extension_name, install_path FROM duckdb_extensions() WHERE loaded"
            ).fetchall()
        )
        settings = dict(
            con.execute(
                "SELECT name, value FROM duckdb_settings() WHERE name IN "
                "('autoinstall_known_extensions', 'autoload_known_extensions', "
                "'extension_directory')"
            ).fetchall()
        )
    for name in ("ducklake", scanner):
        assert Path(loaded[name]).parent.parent.parent == lake.extension_directory
        assert Path(loaded[name]).name == f"{name}.duckdb_extension"
    assert settings == {
        "autoinstall_known_extensions": "false",
        "autoload_known_extensions": "false",
        "extension_directory": str(lake.extension_directory),
    }


def test_an_extension_is_checked_once_per_process_unless_its_file_changes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first instance checks each extension's signature; later ones load the same,
    unchanged packaged files without checking again; a file that is not the checked one
    (here a tampered copy) is checked, and refused."""
    monkeypatch.setattr(lake_module, "_verified_extensions", {})

    def unsigned_allowed(con: duckdb.DuckDBPyConnection) -> bool:
        return bool(
            con.execute("SELECT current_setting('allow_unsigned_extensions')").fetchone()[0]
        )

    def unsigned_allowed_in_new(lake: Lake) -> bool:
        with lake.connect() as con:
            return unsigned_allowed(con)

    with Lake(Settings(data_dir=tmp_path / "first")) as first:
        assert unsigned_allowed(first._cursor()) is False  # the first instance: checked
        assert unsigned_allowed_in_new(first) is True  # already checked, unchanged
    with Lake(Settings(data_dir=tmp_path / "second")) as second:
        assert unsigned_allowed_in_new(second) is True  # the same packaged files
    tampered = Lake(Settings(data_dir=tmp_path / "tampered"))
    lake_module.prepare_extension_directory(tampered.extension_directory)
    version, platform = lake_module.duckdb_build()
    entry = tampered.extension_directory / version / platform / "ducklake.duckdb_extension"
    content = bytearray(entry.read_bytes())
    content[len(content) // 2] ^= 0xFF
    entry.unlink()
    entry.write_bytes(bytes(content))
    tampered._extensions_ready = True  # as laid out; laying out again would relink the entry
    with pytest.raises(duckdb.Error, match="signature"):
        tampered.connect()


def test_extension_directory_is_idempotent(tmp_path: Path) -> None:
    first = lake_module.prepare_extension_directory(tmp_path)
    second = lake_module.prepare_extension_directory(tmp_path)
    assert first == second
    assert {"ducklake", "sqlite_scanner", "postgres_scanner"} <= first
    version, platform = lake_module.duckdb_build()
    entries = sorted(p.name for p in (tmp_path / version / platform).iterdir())
    assert entries == sorted(f"{name}.duckdb_extension" for name in first)


def test_second_lake_on_the_same_folder(lake_settings: Settings) -> None:
    with Lake(lake_settings) as one, Lake(lake_settings) as two:
        first = one.write_table("offices", "SELECT 'north' AS name")
        assert rows(two, f"SELECT name FROM {table_ref('offices')}") == [("north",)]

        second = two.write_table("offices", "SELECT unnest(['north', 'south']) AS name")
        assert second > first
        assert rows(one, f"SELECT count(*) FROM {table_ref('offices')}") == [(2,)]
        assert one.ping()
        assert two.ping()


def test_processes_starting_together_share_one_new_lake(
    lake_settings: Settings, tmp_path: Path
) -> None:
    # Each process lays out extensions, may create the catalog and writes its own table at once.
    script = textwrap.dedent(
        """
        import sys
        from pathlib import Path
        from townhall.config import Settings
        from townhall.datastore.lake import Lake

        data_dir, database_url, name = sys.argv[1], sys.argv[2] or None, sys.argv[3]
        with Lake(Settings(data_dir=Path(data_dir), database_url=database_url)) as lake:
            print(lake.write_table(name, "SELECT 42 AS answer"))
        """
    )
    env = {"PYTHONPATH": str(SRC_DIR), "PATH": "/usr/bin:/bin"}
    names = [f"node_{number}" for number in range(4)]
    workers = [
        subprocess.Popen(
            [
                sys.executable,
                "-c",
                script,
                str(lake_settings.data_dir),
                lake_settings.database_url or "",
                name,
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
            cwd=tmp_path,
        )
        for name in names
    ]
    outputs = [worker.communicate(timeout=120) for worker in workers]
    for worker, (_out, err) in zip(workers, outputs, strict=True):
        assert worker.returncode == 0, err
    snapshot_ids = sorted(int(out) for out, _ in outputs)
    assert len(set(snapshot_ids)) == len(names)

    with Lake(lake_settings) as lake:
        for name in names:
            assert rows(lake, f"SELECT answer FROM {table_ref(name)}") == [(42,)]


def test_read_only_connection_on_a_new_lake(lake: Lake) -> None:
    with lake.connect(read_only=True) as con:
        assert con.execute("SELECT count(*) FROM lake.snapshots()").fetchone() == (1,)
        with pytest.raises(duckdb.Error, match="read-only"):
            con.execute("CREATE TABLE lake.nope AS SELECT 1")


def test_table_exists_and_drop(sqlite_lake: Lake) -> None:
    assert not sqlite_lake.table_exists("requests")
    assert sqlite_lake.drop_table("requests") is None

    created = sqlite_lake.write_table("requests", "SELECT 1 AS id", schema="open")
    assert sqlite_lake.table_exists("requests", schema="open")
    assert not sqlite_lake.table_exists("requests")

    dropped = sqlite_lake.drop_table("requests", schema="open")
    assert dropped is not None
    assert dropped > created
    assert not sqlite_lake.table_exists("requests", schema="open")
    old = table_ref("requests", schema="open", snapshot=created)
    assert rows(sqlite_lake, f"SELECT id FROM {old}") == [(1,)]


def test_write_from_a_relation_on_a_lake_connection(sqlite_lake: Lake) -> None:
    with sqlite_lake.connect() as con:
        relation = con.sql("SELECT range AS n FROM range(10)").filter("n % 2 = 0")
        with pytest.raises(TypeError, match="con="):
            sqlite_lake.write_table("evens", relation)
        snapshot = sqlite_lake.write_table("evens", relation, con=con)
    assert rows(sqlite_lake, f"SELECT sum(n) FROM {table_ref('evens', snapshot=snapshot)}") == [
        (20,)
    ]


def test_write_from_an_arrow_table(sqlite_lake: Lake) -> None:
    pyarrow = pytest.importorskip("pyarrow")
    table = pyarrow.table({"ward": ["1", "2"], "residents": [1200, 800]})
    sqlite_lake.write_table("wards", table)
    assert rows(sqlite_lake, f"SELECT sum(residents) FROM {table_ref('wards')}") == [(2000,)]


def test_failed_write_keeps_the_previous_version(sqlite_lake: Lake) -> None:
    good = sqlite_lake.write_table("budget", "SELECT 10 AS amount")
    with pytest.raises(duckdb.Error):
        sqlite_lake.write_table("budget", "SELECT 1 / 0 AS amount, error('bad row')")
    assert rows(sqlite_lake, f"SELECT amount FROM {table_ref('budget')}") == [(10,)]
    assert sqlite_lake.current_snapshot() == good


def test_slow_read_is_stopped(sqlite_lake: Lake) -> None:
    with pytest.raises(LakeTimeoutError):
        sqlite_lake.read("SELECT count(*) FROM range(10000000000) a", timeout_seconds=0.2)
    assert sqlite_lake.read("SELECT 1").rows == [(1,)]


def test_ping_is_false_when_the_catalog_is_unreachable(tmp_path: Path) -> None:
    settings = Settings(
        data_dir=tmp_path,
        lake_catalog_url="postgres:host=127.0.0.1 port=1 dbname=none user=none connect_timeout=2",
    )
    with Lake(settings) as lake:
        assert lake.ping() is False


@pytest.mark.parametrize(
    ("name", "quoted"),
    [("permits", '"permits"'), ('a"b', '"a""b"'), ("x; DROP TABLE y", '"x; DROP TABLE y"')],
)
def test_identifiers_are_quoted(name: str, quoted: str) -> None:
    assert quote_identifier(name) == quoted


@pytest.mark.parametrize("bad", ["", "a\x00b"])
def test_impossible_identifiers_are_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="identifier"):
        quote_identifier(bad)


def test_table_ref_takes_only_a_number_as_snapshot() -> None:
    assert table_ref("t", snapshot=3) == 'lake."main"."t" AT (VERSION => 3)'
    for bad in (True, -1, "3; DROP TABLE t"):
        with pytest.raises(ValueError, match="snapshot"):
            table_ref("t", snapshot=bad)  # type: ignore[arg-type]


def test_catalog_url_must_be_sqlite_or_postgres(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="sqlite"):
        Lake(Settings(data_dir=tmp_path, lake_catalog_url="lake.duckdb"))


def test_missing_extension_is_a_clear_error_offline(sqlite_lake: Lake, offline: None) -> None:
    with pytest.raises(LakeExtensionError, match="not_packaged_anywhere"):
        sqlite_lake.connect(extensions=["not_packaged_anywhere"])
    with pytest.raises(ValueError, match="extension name"):
        sqlite_lake.connect(extensions=["spatial; DROP TABLE x"])
