"""`townhall restore FILE`: check a backup completely, then put it into an empty installation.

1. The manifest's signature is checked with the signing key the archive carries, decrypted with
   the passphrase (`--trust-key KEY_ID` also pins which key must have signed it).
2. Every member is read and compared with the manifest (size and SHA-256); a missing, extra or
   changed member stops the restore before anything is written.
3. The targets must be empty: the database (no tables), the lake catalog, the lake's data
   folder, and the signing key's place (unless it already holds the same key).
4. The members are put in place (each hashed again on the way), the database is migrated to
   this release's schema, and the row counts and the audit head are compared with the
   manifest. The restore is recorded in the restored audit trail.

Afterwards `townhall verify` (which the CLI runs) checks the audit trail, its checkpoints and
every dataset version's files against their signed manifests.
"""

from __future__ import annotations

import base64
import binascii
import json
import shutil
import tarfile
import uuid
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from psycopg.conninfo import conninfo_to_dict

from townhall.actor import Actor, system_actor
from townhall.audit.actions import record
from townhall.db import unit_of_work
from townhall.integrity.checkpoints import log_path
from townhall.integrity.keys import KEY_FILE_NAME, key_id_of, key_path, keys_dir
from townhall.recovery import databases
from townhall.recovery.archive import (
    BACKUP_FORMAT,
    CHECKPOINT_LOG_MEMBER,
    KEYRING_MEMBER,
    LAKE_DATA_PREFIX,
    MANIFEST_NAME,
    SIGNATURE_NAME,
    BackupError,
    copy_member,
    decrypt_key_ring,
    read_manifest,
    safe_member_name,
)
from townhall.recovery.backup import (
    LAKE_PGDUMP_MEMBER,
    LAKE_SQLITE_MEMBER,
    MAIN_PGDUMP_MEMBER,
    MAIN_SQLITE_MEMBER,
)
from townhall.recovery.progress import NoSteps, Steps

if TYPE_CHECKING:
    from townhall.config import Settings
    from townhall.runtime import Runtime


@dataclass
class VerifiedBackup:
    manifest: dict[str, Any]
    key_id: str
    key_files: dict[str, bytes]

    @property
    def members(self) -> dict[str, dict[str, Any]]:
        return {m["name"]: m for m in self.manifest.get("members", [])}


@dataclass
class RestoreResult:
    manifest: dict[str, Any]
    files: int
    bytes: int
    warnings: list[str] = field(default_factory=list)


def open_backup(path: Path, passphrase: str, *, trust_key_id: str | None = None) -> VerifiedBackup:
    """Read the manifest and check its signature. Raises BackupError: not a backup, a wrong
    passphrase, a manifest not signed by the archive's key (or not by `trust_key_id`)."""
    manifest_bytes, signature = read_manifest(path)
    try:
        manifest = json.loads(manifest_bytes)
    except json.JSONDecodeError as error:
        raise BackupError(f"the archive's manifest is not JSON: {error}") from error
    if manifest.get("format") != BACKUP_FORMAT:
        raise BackupError(f"unknown backup format {manifest.get('format')!r}")
    with tarfile.open(path, "r:") as tar:
        member = tar.getmember(KEYRING_MEMBER) if KEYRING_MEMBER in tar.getnames() else None
        handle = tar.extractfile(member) if member else None
        if handle is None:
            raise BackupError("the archive holds no key ring: it cannot be checked")
        key_files = decrypt_key_ring(handle.read(), passphrase)
    public = _public_keys(key_files)
    scheme, _, rest = signature.partition(":")
    key_id, _, encoded = rest.partition(":")
    if scheme != "ed25519" or key_id not in public:
        raise BackupError("the manifest is not signed by a key in the archive: it was replaced")
    if trust_key_id and key_id != trust_key_id:
        raise BackupError(f"the manifest is signed by key {key_id}, not by {trust_key_id}")
    try:
        public[key_id].verify(base64.b64decode(encoded, validate=True), manifest_bytes)
    except (InvalidSignature, binascii.Error, ValueError) as error:
        raise BackupError("the manifest's signature does not match: it was changed") from error
    return VerifiedBackup(manifest, key_id, key_files)


def _public_keys(key_files: dict[str, bytes]) -> dict[str, Ed25519PublicKey]:
    keys: dict[str, Ed25519PublicKey] = {}
    for name, content in key_files.items():
        if name == KEY_FILE_NAME:
            private = serialization.load_pem_private_key(content, password=None)
            if isinstance(private, Ed25519PrivateKey):
                keys[key_id_of(private.public_key())] = private.public_key()
        elif name.startswith("retired/"):
            public = serialization.load_pem_public_key(content)
            if isinstance(public, Ed25519PublicKey):
                keys[key_id_of(public)] = public
    return keys


def verify_members(path: Path, backup: VerifiedBackup, steps: Steps | None = None) -> int:
    """Read every member and compare it with the manifest; returns the bytes checked. Raises
    BackupError naming the first member that is missing, unexpected or changed."""
    expected = backup.members
    advance = (steps or NoSteps()).step(
        "Checking archive", sum(m["bytes"] for m in expected.values())
    )
    seen: set[str] = set()
    total = 0
    with tarfile.open(path, "r:") as tar:
        for member in tar:
            if member.name in (MANIFEST_NAME, SIGNATURE_NAME):
                continue
            signed = expected.get(member.name)
            if signed is None or not member.isfile():
                raise BackupError(f"{member.name} is in the archive but not in its manifest")
            handle = tar.extractfile(member)
            assert handle is not None
            digest, size = copy_member(handle, None, advance)
            if (digest, size) != (signed["sha256"], signed["bytes"]):
                raise BackupError(f"{member.name} was changed: its SHA-256 or size differs")
            seen.add(member.name)
            total += size
    missing = sorted(set(expected) - seen)
    if missing:
        raise BackupError(f"{missing[0]} is in the manifest but not in the archive")
    return total


def _lake_arrangement(settings: Settings) -> str:
    if databases.lake_in_main_database(settings):
        return "main-database"
    return databases.lake_catalog(settings)[0]


def target_problems(settings: Settings, backup: VerifiedBackup) -> list[str]:
    """Why this installation cannot receive the backup (empty list: it can)."""
    problems = []
    manifest = backup.manifest
    kind = "postgresql" if settings.is_postgres else "sqlite"
    if manifest["database"]["kind"] != kind:
        problems.append(
            f"the backup holds a {manifest['database']['kind']} database, this installation "
            f"is configured for {kind} (set TOWNHALL_DATABASE_URL accordingly)"
        )
    if manifest["lake"]["catalog"] != _lake_arrangement(settings):
        problems.append(
            f"the backup's lake catalog is {manifest['lake']['catalog']}, this installation's "
            f"is {_lake_arrangement(settings)} (set TOWNHALL_LAKE_CATALOG_URL accordingly)"
        )
    if problems:
        return problems
    if kind == "sqlite":
        if not databases.sqlite_is_empty(databases.sqlite_path(settings)):
            problems.append(f"the database {databases.sqlite_path(settings)} is not empty")
    elif not databases.pg_is_empty(databases.main_conninfo(settings), None):
        problems.append("the PostgreSQL database already has tables")
    lake_kind, lake_target = databases.lake_catalog(settings)
    if lake_kind == "sqlite":
        if not databases.sqlite_is_empty(Path(lake_target)):
            problems.append(f"the lake catalog {lake_target} is not empty")
    elif manifest["lake"]["catalog"] == "postgres" and not databases.pg_is_empty(
        conninfo_to_dict(lake_target), (databases.LAKE_SCHEMA,)
    ):
        problems.append("the lake catalog's PostgreSQL schema `lake` already has tables")
    data_path = settings.resolved_lake_data_path
    if data_path.is_dir() and any(p.is_file() for p in data_path.rglob("*")):
        problems.append(f"the lake's data folder {data_path} is not empty")
    existing = key_path(settings)
    if existing.exists() and existing.read_bytes() != backup.key_files.get(KEY_FILE_NAME):
        problems.append(f"a different signing key is already at {existing}")
    return problems


def restore_backup(
    runtime: Runtime,
    path: Path,
    *,
    passphrase: str,
    trust_key_id: str | None = None,
    actor: Actor | None = None,
    steps: Steps | None = None,
) -> RestoreResult:
    """Restore the backup at `path` into this (empty) installation; see the module docstring.

    Raises BackupError before writing anything when the archive does not check out or the
    targets are not empty; afterwards only when the restored data does not match the manifest.
    """
    from townhall.migrate import upgrade

    steps = steps or NoSteps()
    actor = actor or system_actor("cli")
    settings = runtime.settings
    path = path.expanduser().resolve()
    backup = open_backup(path, passphrase, trust_key_id=trust_key_id)
    _check_revision(backup.manifest["database"].get("alembic_revision"))
    problems = target_problems(settings, backup)
    if problems:
        raise BackupError("cannot restore here: " + "; ".join(problems))
    verify_members(path, backup, steps)

    staging = settings.data_dir.resolve() / "tmp" / f"restore-{uuid.uuid4().hex}"
    staging.mkdir(parents=True)
    try:
        restored_bytes, files = _extract(settings, path, backup, staging, steps)
        advance = steps.step("Restoring databases", 1)
        _restore_databases(settings, staging)
        advance(1)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    _write_keys(settings, backup)

    advance = steps.step("Checking restored data", 1)
    _compare_with_manifest(settings, backup.manifest)
    runtime.engine.dispose()  # nothing may reuse a connection opened before the files moved
    upgrade(runtime.engine)
    with unit_of_work(runtime.session_factory) as session:
        record(
            session,
            actor=actor,
            action="backup.restore",
            object_type="backup",
            object_id=path.name,
            changes={
                "created_at": backup.manifest["created_at"],
                "audit_seq": backup.manifest["database"]["audit_seq"],
                "key_id": backup.key_id,
            },
        )
    advance(1)
    return RestoreResult(
        backup.manifest, files, restored_bytes, list(backup.manifest.get("warnings", []))
    )


def _check_revision(revision: str | None) -> None:
    from alembic.script import ScriptDirectory

    from townhall.migrate import MIGRATIONS_DIR

    if revision is None:
        return
    script = ScriptDirectory(str(MIGRATIONS_DIR))
    try:
        found = script.get_revision(revision)
    except Exception as error:  # alembic raises several kinds for an unknown id
        raise BackupError(
            f"the backup's database is at schema revision {revision}, which this release of "
            "Townhall does not know: restore with the release that made the backup, or newer"
        ) from error
    if found is None:
        raise BackupError(f"unknown schema revision {revision}")


def _extract(
    settings: Settings, path: Path, backup: VerifiedBackup, staging: Path, steps: Steps
) -> tuple[int, int]:
    expected = backup.members
    advance = steps.step("Restoring files", sum(m["bytes"] for m in expected.values()))
    data_path = settings.resolved_lake_data_path
    data_path.mkdir(parents=True, exist_ok=True)
    total = files = 0
    with tarfile.open(path, "r:") as tar:
        for member in tar:
            name = member.name
            if name in (MANIFEST_NAME, SIGNATURE_NAME) or name == KEYRING_MEMBER:
                continue
            signed = expected.get(name)
            if signed is None or not member.isfile():
                raise BackupError(f"{name} is in the archive but not in its manifest")
            safe_member_name(name)
            if name.startswith(LAKE_DATA_PREFIX):
                relative = PurePosixPath(name[len(LAKE_DATA_PREFIX) :])
                target = data_path.joinpath(*relative.parts)
                files += 1
            elif name == CHECKPOINT_LOG_MEMBER:
                target = log_path(settings)
            elif name in (
                MAIN_SQLITE_MEMBER,
                MAIN_PGDUMP_MEMBER,
                LAKE_SQLITE_MEMBER,
                LAKE_PGDUMP_MEMBER,
            ):
                target = staging / PurePosixPath(name).name
            else:
                raise BackupError(f"{name}: this release does not know where it goes")
            target.parent.mkdir(parents=True, exist_ok=True)
            temporary = target.with_name(f".{target.name}.restoring")
            handle = tar.extractfile(member)
            assert handle is not None
            with temporary.open("wb") as out:
                digest, size = copy_member(handle, out, advance)
            if (digest, size) != (signed["sha256"], signed["bytes"]):
                temporary.unlink(missing_ok=True)
                raise BackupError(f"{name} changed while it was being restored")
            temporary.replace(target)
            total += size
    return total, files


def _restore_databases(settings: Settings, staging: Path) -> None:
    if (staging / "townhall.sqlite").exists():
        databases.sqlite_put_in_place(staging / "townhall.sqlite", databases.sqlite_path(settings))
    if (staging / "townhall.pgdump").exists():
        databases.pg_restore(databases.main_conninfo(settings), staging / "townhall.pgdump")
    _, lake_target = databases.lake_catalog(settings)
    if (staging / "catalog.sqlite").exists():
        databases.sqlite_put_in_place(staging / "catalog.sqlite", Path(lake_target))
    if (staging / "catalog.pgdump").exists():
        databases.pg_restore(conninfo_to_dict(lake_target), staging / "catalog.pgdump")


def _write_keys(settings: Settings, backup: VerifiedBackup) -> None:
    from townhall.integrity.keys import write_private_key

    folder = keys_dir(settings)
    for name, content in backup.key_files.items():
        if name == KEY_FILE_NAME:
            if not key_path(settings).exists():
                write_private_key(key_path(settings), content)
            continue
        target = folder.joinpath(*PurePosixPath(safe_member_name(name)).parts)
        target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        if not target.exists():
            target.write_bytes(content)


def _compare_with_manifest(settings: Settings, manifest: dict[str, Any]) -> None:
    database = manifest["database"]
    if database["kind"] == "sqlite":
        facts = databases.sqlite_facts(databases.sqlite_path(settings))
    else:
        facts = databases.pg_restored_facts(databases.main_conninfo(settings), None, audit=True)
    _same_counts("database", database["row_counts"], facts.row_counts)
    if (facts.audit_seq, facts.audit_hash) != (database["audit_seq"], database["audit_hash"]):
        raise BackupError(
            f"the restored audit trail ends at seq {facts.audit_seq}, the backup's at "
            f"{database['audit_seq']}"
        )
    lake = manifest["lake"]
    _, lake_target = databases.lake_catalog(settings)
    if lake["catalog"] == "sqlite" and lake["row_counts"]:
        restored = databases.sqlite_facts(Path(lake_target), lake=True).row_counts
        _same_counts("lake catalog", lake["row_counts"], restored)
    elif lake["catalog"] == "postgres":
        restored = databases.pg_restored_facts(
            conninfo_to_dict(lake_target), (databases.LAKE_SCHEMA,), audit=False
        ).row_counts
        _same_counts("lake catalog", lake["row_counts"], restored)


def _same_counts(what: str, expected: dict[str, int], found: dict[str, int]) -> None:
    for table, count in sorted(expected.items()):
        if found.get(table) != count:
            raise BackupError(
                f"{what}: table {table} has {found.get(table)} rows after restore, "
                f"{count} in the backup"
            )
