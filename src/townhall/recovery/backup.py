"""`townhall backup FILE`: one consistent archive of an installation, taken online.

Order matters for consistency without stopping anything:

1. a signed audit checkpoint of the trail's head (so the backup carries one);
2. the main database (SQLite online backup, or pg_dump on an exported snapshot);
3. the lake catalog (the same dump when it lives in the main PostgreSQL database): taken after
   the main database, it knows every snapshot that database's versions point at;
4. the lake's data files: taken after the catalog, and DuckLake only ever adds files, so every
   file the catalog copy names is there (an ingest running meanwhile adds files no copy names,
   which is harmless);
5. the key ring, encrypted with the passphrase; the local checkpoint log;
6. the manifest (every member's size and SHA-256, every table's row count, the audit head),
   signed with the signing key.

The archive is written under a temporary name beside FILE and renamed when complete, so FILE
is either a whole backup or absent.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from townhall import __version__
from townhall.actor import Actor, system_actor
from townhall.audit.actions import record
from townhall.db import unit_of_work, utcnow
from townhall.integrity.checkpoints import CheckpointRefused, create_checkpoint, log_path
from townhall.integrity.keys import key_ring_files, load_signing_key
from townhall.recovery import databases
from townhall.recovery.archive import (
    BACKUP_FORMAT,
    CHECKPOINT_LOG_MEMBER,
    KEYRING_MEMBER,
    LAKE_DATA_PREFIX,
    MANIFEST_NAME,
    SIGNATURE_NAME,
    ArchiveWriter,
    BackupError,
    check_passphrase,
    encrypt_key_ring,
)
from townhall.recovery.progress import NoSteps, Steps

if TYPE_CHECKING:
    from townhall.runtime import Runtime

log = logging.getLogger(__name__)

MAIN_SQLITE_MEMBER = "db/townhall.sqlite"
MAIN_PGDUMP_MEMBER = "db/townhall.pgdump"
LAKE_SQLITE_MEMBER = "lake/catalog.sqlite"
LAKE_PGDUMP_MEMBER = "lake/catalog.pgdump"


@dataclass(frozen=True)
class BackupResult:
    path: Path
    bytes: int
    files: int
    manifest: dict[str, Any]
    warnings: list[str]


def lake_files(data_path: Path) -> list[Path]:
    """Every file under the lake's data folder, in a stable order."""
    if not data_path.is_dir():
        return []
    return sorted(p for p in data_path.rglob("*") if p.is_file())


def create_backup(
    runtime: Runtime,
    destination: Path,
    *,
    passphrase: str,
    actor: Actor | None = None,
    steps: Steps | None = None,
) -> BackupResult:
    """Write a backup of the installation to `destination` (which must not exist).

    Raises BackupError (an existing destination, a short passphrase, pg_dump missing or
    failing); nothing is left behind on failure. The backup is recorded in the audit trail
    after it is complete (so that entry is not in it).
    """
    steps = steps or NoSteps()
    actor = actor or system_actor("cli")
    settings = runtime.settings
    destination = destination.expanduser().resolve()
    check_passphrase(passphrase)
    if destination.exists():
        raise BackupError(f"{destination} exists already; choose a new file name")
    if not destination.parent.is_dir():
        raise BackupError(f"no folder {destination.parent}")
    key = load_signing_key(settings)  # made now if this installation never signed anything
    warnings: list[str] = []

    advance = steps.step("Audit checkpoint", 1)
    try:
        with unit_of_work(runtime.session_factory) as session:
            create_checkpoint(session, settings=settings, key=key)
    except CheckpointRefused as error:
        # A damaged trail is evidence: back it up anyway, and say so.
        warnings.append(f"no checkpoint was signed: {error}")
    advance(1)

    staging = settings.data_dir.resolve() / "tmp" / f"backup-{uuid.uuid4().hex}"
    staging.mkdir(parents=True)
    partial = destination.with_name(f".{destination.name}.{uuid.uuid4().hex}.partial")
    writer = ArchiveWriter(partial)
    try:
        manifest = _write_members(runtime, writer, staging, steps, passphrase)
        manifest["warnings"] = warnings
        manifest["key_id"] = key.key_id
        manifest["members"] = [m.as_dict() for m in writer.members]
        manifest_bytes = json.dumps(manifest, indent=1, sort_keys=True).encode("utf-8")
        writer.add_bytes(manifest_bytes, MANIFEST_NAME, record=False)
        writer.add_bytes(
            key.sign_bytes(manifest_bytes).encode("ascii"), SIGNATURE_NAME, record=False
        )
        writer.close()
        os.replace(partial, destination)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    size = destination.stat().st_size
    with unit_of_work(runtime.session_factory) as session:
        record(
            session,
            actor=actor,
            action="backup.create",
            object_type="backup",
            object_id=destination.name,
            changes={
                "bytes": size,
                "members": len(manifest["members"]),
                "audit_seq": manifest["database"]["audit_seq"],
            },
        )
    log.info("backup written to %s (%d bytes)", destination, size)
    return BackupResult(destination, size, len(manifest["members"]), manifest, warnings)


def _write_members(
    runtime: Runtime, writer: ArchiveWriter, staging: Path, steps: Steps, passphrase: str
) -> dict[str, Any]:
    settings = runtime.settings
    lake_kind, lake_target = databases.lake_catalog(settings)
    lake_inside = databases.lake_in_main_database(settings)

    advance = steps.step("Database", 1)
    if settings.is_postgres:
        dump = staging / "townhall.pgdump"
        facts = databases.pg_dump(databases.main_conninfo(settings), dump)
        writer.add_file(dump, MAIN_PGDUMP_MEMBER)
        dump.unlink()
        main_kind = "postgresql"
    else:
        copy = staging / "townhall.sqlite"
        databases.sqlite_copy(databases.sqlite_path(settings), copy)
        facts = databases.sqlite_facts(copy)
        writer.add_file(copy, MAIN_SQLITE_MEMBER)
        copy.unlink()
        main_kind = "sqlite"
    advance(1)

    advance = steps.step("Lake catalog", 1)
    lake_facts = databases.DatabaseFacts(lake_snapshot=facts.lake_snapshot)
    if lake_kind == "sqlite":
        copy = staging / "catalog.sqlite"
        catalog_file = Path(lake_target)
        if catalog_file.exists():
            databases.sqlite_copy(catalog_file, copy)
            lake_facts = databases.sqlite_facts(copy, lake=True)
            writer.add_file(copy, LAKE_SQLITE_MEMBER)
            copy.unlink()
    elif not lake_inside:
        dump = staging / "catalog.pgdump"
        from psycopg.conninfo import conninfo_to_dict

        lake_facts = databases.pg_dump(
            conninfo_to_dict(lake_target), dump, schema=databases.LAKE_SCHEMA, audit=False
        )
        writer.add_file(dump, LAKE_PGDUMP_MEMBER)
        dump.unlink()
    advance(1)

    data_path = settings.resolved_lake_data_path
    files = lake_files(data_path)
    advance = steps.step(f"Lake files ({len(files)})", sum(p.stat().st_size for p in files))
    for path in files:
        writer.add_file(path, LAKE_DATA_PREFIX + path.relative_to(data_path).as_posix(), advance)

    advance = steps.step("Keys (encrypted)", 1)
    writer.add_bytes(encrypt_key_ring(key_ring_files(settings), passphrase), KEYRING_MEMBER)
    checkpoint_log = log_path(settings)
    if checkpoint_log.is_file():
        writer.add_file(checkpoint_log, CHECKPOINT_LOG_MEMBER)
    advance(1)

    return {
        "format": BACKUP_FORMAT,
        "created_at": utcnow().isoformat(timespec="microseconds"),
        "townhall_version": __version__,
        "database": {
            "kind": main_kind,
            "alembic_revision": facts.alembic_revision,
            "row_counts": facts.row_counts,
            "audit_seq": facts.audit_seq,
            "audit_hash": facts.audit_hash,
        },
        "lake": {
            "catalog": "main-database" if lake_inside else lake_kind,
            "row_counts": lake_facts.row_counts,
            "snapshot": lake_facts.lake_snapshot,
            "files": len(files),
        },
    }


def prune_backups(folder: Path, keep: int, *, prefix: str = "townhall-") -> list[Path]:
    """Delete all but the `keep` newest `<prefix>*.tar` archives in `folder` (names sort by
    time); returns the deleted paths."""
    archives = sorted(folder.glob(f"{prefix}*.tar"))
    doomed = archives[:-keep] if keep > 0 else archives
    for path in doomed:
        path.unlink(missing_ok=True)
    return doomed
