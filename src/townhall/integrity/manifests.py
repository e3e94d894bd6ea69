"""Signed manifests of dataset versions: which Parquet files hold a version, and their SHA-256.

When a version is recorded, ingest calls `describe_lake_version` (after the lake commit,
outside any database transaction: it reads every data file of the snapshot) and then
`seal_version` inside the unit of work that records the version. The manifest names the
version (dataset, resource, number, snapshot), its row count and schema, and every data file
of the snapshot by its path under the lake's data folder, size and SHA-256; it is signed with
the installation's Ed25519 key and stored in `dataset_versions.manifest` / `.signature`.

`verify_version` checks a version against its manifest: the signature, that the manifest is
this version's own (not one copied from another version), that the lake's catalog still lists
exactly those files for the snapshot, and that every file still has its size and SHA-256. A
flipped byte in a data file, a replaced or edited manifest and a file swapped in the catalog
are each found and named.
"""

from __future__ import annotations

import contextlib
import hashlib
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

import duckdb

from townhall.config import Settings
from townhall.datastore.lake import LAKE, Lake, LakeError, table_ref
from townhall.integrity.keys import KeyRing, SigningKey, load_signing_key
from townhall.integrity.problems import Problem

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from townhall.catalog.models import DatasetVersion

MANIFEST_TYPE = "townhall.dataset-version-manifest/1"
HASH_CHUNK_BYTES = 1024 * 1024


@dataclass(frozen=True)
class LakeFile:
    path: str
    """Relative to the lake's data folder, with `/` separators."""
    bytes: int
    sha256: str
    kind: str = "data"  # data | delete

    def as_dict(self) -> dict[str, Any]:
        return {"path": self.path, "bytes": self.bytes, "sha256": self.sha256, "kind": self.kind}


@dataclass(frozen=True)
class LakeVersionFacts:
    """What the lake holds for one table at one snapshot, read from the lake itself."""

    table: str
    schema: str
    snapshot_id: int
    row_count: int
    columns: list[dict[str, str]]
    files: list[LakeFile] = field(default_factory=list)


def sha256_file(path: Path) -> tuple[str, int]:
    digest = hashlib.sha256()
    size = 0
    with path.open("rb") as handle:
        while chunk := handle.read(HASH_CHUNK_BYTES):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


def snapshot_files(
    lake: Lake, *, table_name: str, snapshot_id: int, schema: str = "main"
) -> list[tuple[str, str]]:
    """`(relative path, kind)` of every data and delete file of the table at the snapshot, as
    the lake's catalog lists them. Raises LakeError when the table is not in that snapshot."""
    try:
        rows = lake.read(
            f"SELECT data_file, delete_file FROM ducklake_list_files(?, ?, schema => ?, "
            f"snapshot_version => {int(snapshot_id)}) ORDER BY data_file",
            [LAKE, table_name, schema],
        ).rows
    except duckdb.Error as error:
        raise LakeError(f"no table {schema}.{table_name} at snapshot {snapshot_id}") from error
    listed: list[tuple[str, str]] = []
    for data_file, delete_file in rows:
        listed.append((_relative(lake, data_file), "data"))
        if delete_file:
            listed.append((_relative(lake, delete_file), "delete"))
    return listed


def _relative(lake: Lake, absolute: str) -> str:
    root = lake.data_path.resolve()
    try:
        return PurePosixPath(Path(absolute).resolve().relative_to(root)).as_posix()
    except ValueError as error:
        raise LakeError(f"data file {absolute} is outside the lake's data folder") from error


def describe_lake_version(
    lake: Lake, *, table_name: str, snapshot_id: int, schema: str = "main"
) -> LakeVersionFacts:
    """Read the facts a manifest states: files (hashed), row count and schema at the snapshot.

    Reads every data file once; call it outside any database transaction. Raises LakeError
    when the table is not in the snapshot, OSError when a file cannot be read.
    """
    listed = snapshot_files(lake, table_name=table_name, snapshot_id=snapshot_id, schema=schema)
    files = []
    for relative, kind in listed:
        digest, size = sha256_file(lake.data_path / relative)
        files.append(LakeFile(relative, size, digest, kind))
    ref = table_ref(table_name, schema=schema, snapshot=snapshot_id)
    count = lake.read(f"SELECT count(*) FROM {ref}").rows[0][0]
    described = lake.read(f"DESCRIBE SELECT * FROM {ref}").rows
    columns = [{"name": str(row[0]), "type": str(row[1])} for row in described]
    return LakeVersionFacts(table_name, schema, snapshot_id, int(count), columns, files)


def build_version_manifest(
    *,
    dataset_id: int,
    dataset_slug: str,
    resource_id: int,
    version_number: int,
    facts: LakeVersionFacts,
    source: dict[str, Any] | None = None,
    created_at: str,
) -> dict[str, Any]:
    """The manifest document (what is signed); docs/integrity.md describes every key."""
    return {
        "type": MANIFEST_TYPE,
        "dataset": {"id": dataset_id, "slug": dataset_slug},
        "resource_id": resource_id,
        "version": version_number,
        "snapshot_id": facts.snapshot_id,
        "table": f"{facts.schema}.{facts.table}",
        "row_count": facts.row_count,
        "columns": facts.columns,
        "files": [f.as_dict() for f in facts.files],
        "source": source or {},
        "created_at": created_at,
    }


def sign_manifest(settings: Settings, manifest: dict[str, Any]) -> str:
    """`ed25519:<key id>:<signature>` over the manifest's canonical JSON."""
    return load_signing_key(settings).sign(manifest)


def seal_version(
    session: Session,
    version: DatasetVersion,
    facts: LakeVersionFacts,
    *,
    settings: Settings,
    key: SigningKey | None = None,
) -> None:
    """Store the signed manifest of `version` (just recorded, in the caller's transaction).

    The ingest details already in `version.manifest` (format, encoding, ...) move under
    `source`. Raises ValueError if `facts` describe another snapshot, SigningKeyError when the
    key cannot be loaded; either way the caller's transaction, and so the version, rolls back.
    """
    from townhall.catalog import queries as catalog_queries

    if version.snapshot_id != facts.snapshot_id:
        raise ValueError(
            f"facts of snapshot {facts.snapshot_id} given for version at {version.snapshot_id}"
        )
    dataset = catalog_queries.dataset_by_id(session, version.dataset_id)
    if dataset is None:
        raise ValueError(f"version {version.id} has no dataset")
    details = {k: v for k, v in (version.manifest or {}).items() if k != "type"}
    source = {
        "name": version.source_name,
        "sha256": version.source_sha256,
        "bytes": version.source_bytes,
        **details,
    }
    manifest = build_version_manifest(
        dataset_id=dataset.id,
        dataset_slug=dataset.slug,
        resource_id=version.resource_id,
        version_number=version.number,
        facts=facts,
        source=source,
        created_at=version.created_at.isoformat(timespec="microseconds")
        if version.created_at
        else "",
    )
    version.manifest = manifest
    version.signature = (key or load_signing_key(settings)).sign(manifest)
    session.flush()


# Verification ------------------------------------------------------------------------------


@dataclass(frozen=True)
class VersionFacts:
    """A version row, detached from its session, with what verification needs."""

    id: int
    dataset_id: int
    dataset_slug: str
    resource_id: int
    number: int
    status: str
    snapshot_id: int | None
    table_name: str
    row_count: int
    manifest: dict[str, Any]
    signature: str | None
    columns: tuple[dict[str, Any], ...] = ()

    @property
    def subject(self) -> str:
        return f"{self.dataset_slug} version {self.number} (resource {self.resource_id})"

    @classmethod
    def of(cls, version: DatasetVersion, dataset_slug: str) -> VersionFacts:
        return cls(
            id=version.id,
            dataset_id=version.dataset_id,
            dataset_slug=dataset_slug,
            resource_id=version.resource_id,
            number=version.number,
            status=version.status,
            snapshot_id=version.snapshot_id,
            table_name=version.table_name,
            row_count=version.row_count,
            manifest=dict(version.manifest or {}),
            signature=version.signature,
            columns=tuple(dict(c) for c in version.columns or ()),
        )


@dataclass
class VersionCheck:
    files_checked: int = 0
    problems: list[Problem] = field(default_factory=list)


def verify_version(
    lake: Lake, ring: KeyRing, version: VersionFacts, *, check_files: bool = True
) -> VersionCheck:
    """Check one version against its signed manifest and the lake (see the module docstring)."""
    check = VersionCheck()
    subject = version.subject

    def problem(area: str, message: str, where: str = subject) -> None:
        check.problems.append(Problem(area, where, message))

    manifest = version.manifest
    if manifest.get("type") != MANIFEST_TYPE:
        problem("manifest", "has no signed manifest")
        return check
    reason = ring.verify_document(manifest, version.signature)
    if reason:
        problem("manifest", f"the manifest is not trustworthy: {reason} (it was edited)")
        return check
    expected = {
        "dataset id": (manifest.get("dataset", {}).get("id"), version.dataset_id),
        "resource": (manifest.get("resource_id"), version.resource_id),
        "version": (manifest.get("version"), version.number),
        "snapshot": (manifest.get("snapshot_id"), version.snapshot_id),
        "row count": (manifest.get("row_count"), version.row_count),
    }
    wrong = [name for name, (signed, stored) in expected.items() if signed != stored]
    if wrong:
        problem(
            "manifest",
            "the manifest belongs to another version (it names "
            f"{manifest.get('dataset', {}).get('slug')} version {manifest.get('version')}, "
            f"snapshot {manifest.get('snapshot_id')}): it was replaced; "
            f"differs in {', '.join(wrong)}",
        )
        return check
    if not check_files or version.snapshot_id is None:
        return check
    schema, _, table = str(manifest.get("table", "")).partition(".")
    try:
        listed = dict(
            snapshot_files(
                lake, table_name=table, snapshot_id=int(version.snapshot_id), schema=schema
            )
        )
    except LakeError as error:
        problem("data_file", f"the lake cannot list the version's files: {error}")
        return check
    signed_files = {f["path"]: f for f in manifest.get("files", [])}
    for path in sorted(set(listed) - set(signed_files)):
        problem(
            "data_file",
            "the lake's catalog lists this file for the version, but the signed manifest does "
            "not: the catalog was changed",
            f"{subject}: file {path}",
        )
    for path, signed in sorted(signed_files.items()):
        where = f"{subject}: file {path}"
        check.files_checked += 1
        if path not in listed:
            problem(
                "data_file",
                "the signed manifest names this file, but the lake's catalog no longer lists it",
                where,
            )
        full = lake.data_path / path
        try:
            digest, size = sha256_file(full)
        except FileNotFoundError:
            problem("data_file", "the data file is missing", where)
            continue
        except OSError as error:
            problem("data_file", f"the data file cannot be read: {error}", where)
            continue
        if size != signed.get("bytes"):
            problem(
                "data_file",
                f"the data file was changed: {size} bytes, signed as {signed.get('bytes')}",
                where,
            )
        elif digest != signed.get("sha256"):
            problem("data_file", "the data file was changed: its SHA-256 differs", where)
    if not check.problems:
        # The files are as signed; the catalog's own view must agree too.
        with contextlib.suppress(LakeError, duckdb.Error):
            ref = table_ref(table, schema=schema, snapshot=int(version.snapshot_id))
            count = int(lake.read(f"SELECT count(*) FROM {ref}").rows[0][0])
            if count != manifest.get("row_count"):
                problem(
                    "data_file",
                    f"the lake reads {count} rows, the signed manifest says "
                    f"{manifest.get('row_count')}",
                )
    return check


def verify_download(
    runtime: Any, version: VersionFacts, file: Path, *, resource_name: str
) -> Problem | None:
    """Whether `file` is a whole, unfiltered download of `version` (csv, ndjson, json, parquet
    or geojson, told by its extension): the version's table is exported again from the lake
    (whose files `verify_version` has checked against the signed manifest) and the two are
    compared byte for byte by SHA-256. None when they match."""
    from townhall.datastore import export
    from townhall.datastore.engine import query_engine
    from townhall.datastore.query import PublishedTable, RowsRequest

    fmt = file.suffix.lstrip(".").lower()
    if fmt not in export.EXPORT_FORMATS:
        return Problem(
            "download",
            str(file),
            f"unknown format {fmt!r}; expected one of " + ", ".join(export.EXPORT_FORMATS),
        )
    table = PublishedTable(
        dataset_slug=version.dataset_slug,
        resource_id=version.resource_id,
        resource_name=resource_name,
        table_name=version.table_name,
        snapshot_id=int(version.snapshot_id or 0),
        version=version.number,
        row_count=version.row_count,
        columns=version.columns,
    )
    exported = export.export_table(query_engine(runtime), table, RowsRequest(), fmt)
    try:
        digest = hashlib.sha256()
        for chunk in exported.stream():
            digest.update(chunk)
    finally:
        exported.discard()
    given, _ = sha256_file(file)
    if given != digest.hexdigest():
        return Problem(
            "download",
            str(file),
            f"differs from {version.subject} as exported from its verified data files: a "
            "filtered, sorted or altered download, or another version",
        )
    return None
