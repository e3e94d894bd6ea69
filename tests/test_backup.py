"""Backup then restore on a fresh folder or database gives back every row, file and audit entry.

Both backends, each with its own lake catalog arrangement: SQLite with `lake.sqlite`, and
PostgreSQL with the lake catalog in the main database (schema `lake`). The archive is checked
before anything is written: a wrong passphrase, a changed member or a replaced manifest is
refused, and so is a target that is not empty.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import sqlite3
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient
from psycopg import sql
from pydantic import SecretStr
from typer.testing import CliRunner

from townhall.app import create_app
from townhall.cli import app as cli_app
from townhall.config import Settings
from townhall.db import unit_of_work
from townhall.demo.seed import seed_demo_city
from townhall.integrity.checkpoints import create_checkpoint, log_path
from townhall.integrity.keys import key_path, load_signing_key
from townhall.integrity.verify import verify_installation
from townhall.migrate import upgrade
from townhall.recovery.archive import BackupError
from townhall.recovery.backup import create_backup
from townhall.recovery.restore import restore_backup
from townhall.runtime import Runtime

from .conftest import (
    PG_HOST,
    SECRET,
    auth,
    create_pg_database,
    drop_pg_database,
    make_account,
    postgres_available,
)
from .test_datastore_support import csv_bytes, make_dataset, make_publisher, upload_ok

PASSPHRASE = "a long backup passphrase"
# Tables the round trip must see filled, or it would prove little.
MUST_HOLD_ROWS = {
    "users",
    "organizations",
    "api_tokens",
    "datasets",
    "resources",
    "dataset_versions",
    "service_requests",
    "audit_entries",
    "audit_checkpoints",
    "lockdowns",
    "ducklake_snapshot",
    "ducklake_data_file",
}


class Installation:
    """One Townhall installation of its own: data folder and (on PostgreSQL) database."""

    def __init__(self, backend: str, folder: Path) -> None:
        self.backend = backend
        self.database_url = (
            create_pg_database("townhall_backup") if backend == "postgresql" else None
        )
        self.settings = Settings(
            data_dir=folder,
            database_url=self.database_url,
            secret_key=SECRET,
            run_jobs_in_process=False,
            env="development",
        )
        self.runtime = Runtime(self.settings)

    def env(self) -> dict[str, str]:
        env = {
            "TOWNHALL_DATA_DIR": str(self.settings.data_dir),
            "TOWNHALL_SECRET_KEY": SECRET,
            "TOWNHALL_CONFIG_FILE": "/nonexistent/townhall.toml",
            "TEST_BACKUP_PASSPHRASE": PASSPHRASE,
        }
        if self.database_url:
            env["TOWNHALL_DATABASE_URL"] = self.database_url
        return env

    def close(self) -> None:
        self.runtime.close()
        if self.database_url:
            drop_pg_database(self.database_url)


@pytest.fixture(params=["sqlite", "postgresql"])
def installations(request, tmp_path) -> Iterator[tuple[Installation, Installation]]:
    if request.param == "postgresql" and not postgres_available():
        pytest.skip(f"PostgreSQL is not reachable at {PG_HOST}:5432")
    source = Installation(request.param, tmp_path / "source")
    target = Installation(request.param, tmp_path / "target")
    try:
        yield source, target
    finally:
        source.close()
        target.close()


def populate(source: Installation) -> None:
    """The demo city (most tables get rows), plus versions, tokens and a checkpoint."""
    upgrade(source.runtime.engine)
    seed_demo_city(source.runtime, seed=7, request_count=150)
    app = create_app(source.settings, runtime=source.runtime)
    with TestClient(app) as client:
        admin = make_account(source.runtime, "admin")
        publisher = make_publisher(client, admin, source.runtime, org="backup-office")
        resource = make_dataset(client, publisher, "backup-check", org="backup-office")
        rows = [[i, f"name {i}", i / 4] for i in range(2000)]
        upload_ok(client, publisher, "backup-check", resource, csv_bytes(["id", "n", "x"], rows))
        upload_ok(
            client, publisher, "backup-check", resource, csv_bytes(["id", "n", "x"], rows[:9])
        )
        lockdown = client.put(
            "/api/v1/lockdown", headers=auth(admin), json={"active": True, "message": "drill"}
        )
        assert lockdown.status_code == 200
        assert client.put("/api/v1/lockdown", headers=auth(admin), json={"active": False})
    with unit_of_work(source.runtime.session_factory) as session:
        create_checkpoint(session, settings=source.settings)


# Reading every row of every table, on either backend --------------------------------------


def _normal(value: Any) -> Any:
    if isinstance(value, memoryview):
        return bytes(value)
    if isinstance(value, dict | list):
        return json.dumps(value, sort_keys=True)
    return value


def all_rows(installation: Installation) -> dict[str, list[str]]:
    """{table: sorted rows as text} for every table of the database and the lake catalog."""
    settings = installation.settings
    tables: dict[str, list[str]] = {}
    if installation.backend == "sqlite":
        files = {"": settings.data_dir / "townhall.db", "lake.": settings.data_dir / "lake.sqlite"}
        for prefix, path in files.items():
            with contextlib.closing(sqlite3.connect(path)) as con:
                names = [
                    r[0]
                    for r in con.execute(
                        "SELECT name FROM sqlite_master WHERE type = 'table' "
                        "AND name NOT LIKE 'sqlite_%'"
                    )
                ]
                for name in names:
                    rows = con.execute(f'SELECT * FROM "{name}"').fetchall()
                    tables[prefix + name] = sorted(repr(tuple(map(_normal, r))) for r in rows)
        return tables
    dsn = installation.database_url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(dsn) as con:
        names = con.execute(
            "SELECT table_schema, table_name FROM information_schema.tables "
            "WHERE table_type = 'BASE TABLE' AND table_schema IN ('public', 'lake')"
        ).fetchall()
        for schema, name in names:
            rows = con.execute(
                sql.SQL("SELECT * FROM {}.{}").format(sql.Identifier(schema), sql.Identifier(name))
            ).fetchall()
            tables[f"{schema}.{name}"] = sorted(repr(tuple(map(_normal, r))) for r in rows)
    return tables


def audit_rows(tables: dict[str, list[str]], *, without: str) -> list[str]:
    name = "audit_entries" if "audit_entries" in tables else "public.audit_entries"
    return [row for row in tables[name] if f"'{without}'" not in row]


def lake_files(installation: Installation) -> dict[str, str]:
    root = installation.settings.resolved_lake_data_path
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in root.rglob("*")
        if p.is_file()
    }


# The round trip -----------------------------------------------------------------------------


def test_backup_then_restore_gives_back_every_row_file_and_audit_entry(installations, tmp_path):
    source, target = installations
    populate(source)
    archive = tmp_path / "townhall.tar"
    runner = CliRunner()
    made = runner.invoke(
        cli_app,
        ["backup", str(archive), "--passphrase-env", "TEST_BACKUP_PASSPHRASE"],
        env=source.env(),
    )
    assert made.exit_code == 0, made.output
    assert archive.is_file()
    before = all_rows(source)
    files = lake_files(source)
    assert len(files) >= 8  # the demo's datasets and both versions of ours

    restored = runner.invoke(
        cli_app,
        ["restore", str(archive), "--passphrase-env", "TEST_BACKUP_PASSPHRASE"],
        env=target.env(),
    )
    assert restored.exit_code == 0, restored.output
    assert "Verified" in restored.output
    after = all_rows(target)

    # Every table, every row; the trails differ only by each side's own last entry.
    assert set(after) == set(before)
    filled = {name.split(".")[-1] for name, rows in before.items() if rows}
    assert filled >= MUST_HOLD_ROWS, f"nothing to prove in {sorted(MUST_HOLD_ROWS - filled)}"
    for name in before:
        if name.endswith("audit_entries"):
            continue
        assert after[name] == before[name], name
    assert audit_rows(after, without="backup.restore") == audit_rows(
        before, without="backup.create"
    )
    assert lake_files(target) == files
    assert log_path(target.settings).read_bytes() == log_path(source.settings).read_bytes()
    assert key_path(target.settings).read_bytes() == key_path(source.settings).read_bytes()
    assert key_path(target.settings).stat().st_mode & 0o077 == 0

    # The restored installation works: reads, verifies, and takes new writes.
    report = verify_installation(target.runtime)
    assert report.ok, report.problems
    assert report.versions_checked >= 8
    app = create_app(target.settings, runtime=target.runtime)
    with TestClient(app) as client:
        rows = client.get("/api/v1/datasets/backup-check/rows").json()
        assert rows["total"] == 9
        assert rows["version"] == 2
        old = client.get("/api/v1/datasets/backup-check/rows?version=1&limit=1").json()
        assert old["total"] == 2000
        admin = make_account(target.runtime, "admin")
        assert (
            client.post(
                "/api/v1/organizations",
                headers=auth(admin),
                json={"slug": "after-restore", "name": "After"},
            ).status_code
            == 201
        )

    again = runner.invoke(
        cli_app,
        ["restore", str(archive), "--passphrase-env", "TEST_BACKUP_PASSPHRASE"],
        env=target.env(),
    )
    assert again.exit_code == 1
    assert "not empty" in again.output or "already has tables" in again.output


# Refusals -----------------------------------------------------------------------------------


@pytest.fixture
def small_backup(tmp_path) -> Iterator[tuple[Installation, Path]]:
    """A small SQLite installation with one dataset version, backed up."""
    source = Installation("sqlite", tmp_path / "small")
    upgrade(source.runtime.engine)
    app = create_app(source.settings, runtime=source.runtime)
    with TestClient(app) as client:
        admin = make_account(source.runtime, "admin")
        publisher = make_publisher(client, admin, source.runtime)
        resource = make_dataset(client, publisher, "small")
        upload_ok(client, publisher, "small", resource, csv_bytes(["a"], [[1], [2]]))
    archive = tmp_path / "small.tar"
    create_backup(source.runtime, archive, passphrase=PASSPHRASE)
    yield source, archive
    source.close()


def rewrite_member(archive: Path, output: Path, name: str, change) -> None:
    with tarfile.open(archive) as tar, tarfile.open(output, "w", format=tarfile.PAX_FORMAT) as out:
        for member in tar:
            data = tar.extractfile(member).read()
            if member.name == name or (name.endswith("/") and member.name.startswith(name)):
                data = change(data)
                name = member.name  # only the first match
            info = tarfile.TarInfo(member.name)
            info.size = len(data)
            out.addfile(info, io.BytesIO(data))


def untouched(installation: Installation) -> bool:
    folder = installation.settings.data_dir
    return not (folder / "townhall.db").exists() and not key_path(installation.settings).exists()


def test_wrong_passphrase_is_refused(small_backup, tmp_path):
    _, archive = small_backup
    target = Installation("sqlite", tmp_path / "t1")
    with pytest.raises(BackupError, match="wrong passphrase"):
        restore_backup(target.runtime, archive, passphrase="not the passphrase!")
    assert untouched(target)
    target.close()


def test_changed_member_is_refused_and_named(small_backup, tmp_path):
    _, archive = small_backup
    changed = tmp_path / "changed.tar"

    def flip(data: bytes) -> bytes:
        middle = len(data) // 2
        return data[:middle] + bytes([data[middle] ^ 1]) + data[middle + 1 :]

    rewrite_member(archive, changed, "lake/data/", flip)
    target = Installation("sqlite", tmp_path / "t2")
    with pytest.raises(BackupError, match=r"lake/data/.*\.parquet was changed"):
        restore_backup(target.runtime, changed, passphrase=PASSPHRASE)
    assert untouched(target)
    target.close()


def test_replaced_manifest_is_refused(small_backup, tmp_path):
    _, archive = small_backup
    forged = tmp_path / "forged.tar"

    def edit(data: bytes) -> bytes:
        manifest = json.loads(data)
        manifest["database"]["audit_seq"] += 1
        return json.dumps(manifest).encode()

    rewrite_member(archive, forged, "MANIFEST.json", edit)
    target = Installation("sqlite", tmp_path / "t3")
    with pytest.raises(BackupError, match="signature does not match"):
        restore_backup(target.runtime, forged, passphrase=PASSPHRASE)
    assert untouched(target)
    target.close()


def test_pinned_key_and_existing_files(small_backup, tmp_path):
    source, archive = small_backup
    key_id = load_signing_key(source.settings).key_id
    target = Installation("sqlite", tmp_path / "t4")
    with pytest.raises(BackupError, match="not by 0000"):
        restore_backup(target.runtime, archive, passphrase=PASSPHRASE, trust_key_id="0000")
    load_signing_key(target.settings)  # another key already in place
    with pytest.raises(BackupError, match="different signing key"):
        restore_backup(target.runtime, archive, passphrase=PASSPHRASE, trust_key_id=key_id)
    target.close()


def test_backup_refuses_an_existing_file_and_a_short_passphrase(small_backup, tmp_path):
    source, archive = small_backup
    with pytest.raises(BackupError, match="exists already"):
        create_backup(source.runtime, archive, passphrase=PASSPHRASE)
    with pytest.raises(BackupError, match="at least"):
        create_backup(source.runtime, tmp_path / "new.tar", passphrase="short")
    assert not (tmp_path / "new.tar").exists()


def test_scheduled_backups_keep_the_newest(small_backup, tmp_path):
    from townhall.recovery.tasks import scheduled_backup

    source, _ = small_backup
    folder = tmp_path / "scheduled"
    settings = source.settings.model_copy(
        update={"backup_dir": folder, "backup_keep": 2, "backup_passphrase": SecretStr(PASSPHRASE)}
    )
    runtime = Runtime(settings)
    try:
        made = [scheduled_backup(runtime) for _ in range(3)]
    finally:
        runtime.close()
    kept = sorted(p.name for p in folder.glob("townhall-*.tar"))
    assert kept == sorted(Path(p).name for p in made[1:])
