"""Integrity: the signing key, signed audit checkpoints and signed dataset version manifests.

Tamper tests: flip one byte of a data file, delete or reorder an audit entry, cut the tail of
the trail, rewrite the chain, replace or edit a manifest. Each is detected and named.
"""

from __future__ import annotations

import base64
import json
import stat

import pytest
from cryptography.hazmat.primitives import serialization
from sqlalchemy import delete, select, update
from typer.testing import CliRunner

from townhall.accounts import actions
from townhall.actor import system_actor
from townhall.audit.chain import entry_hash
from townhall.audit.models import AuditEntry
from townhall.catalog.models import DatasetVersion
from townhall.cli import app as cli_app
from townhall.config import Settings
from townhall.db import unit_of_work
from townhall.integrity import checkpoints
from townhall.integrity.keys import (
    SigningKeyError,
    canonical_json,
    key_path,
    load_key_ring,
    load_signing_key,
)
from townhall.integrity.models import AuditCheckpoint
from townhall.integrity.verify import verify_installation

from .test_datastore_support import csv_bytes, make_dataset, make_publisher, upload_ok


def cli_env(settings: Settings) -> dict[str, str]:
    env = {
        "TOWNHALL_DATABASE_URL": settings.resolved_database_url,
        "TOWNHALL_DATA_DIR": str(settings.data_dir),
        "TOWNHALL_LAKE_CATALOG_URL": settings.resolved_lake_catalog_url,
        "TOWNHALL_SECRET_KEY": settings.secret_key.get_secret_value(),
        "TOWNHALL_CONFIG_FILE": "/nonexistent/townhall.toml",
    }
    if settings.signing_key_path:
        env["TOWNHALL_SIGNING_KEY_PATH"] = str(settings.signing_key_path)
    return env


def run_cli(settings: Settings, *args: str):
    return CliRunner().invoke(cli_app, list(args), env=cli_env(settings))


def write_entries(runtime, count: int = 5, start: int = 0) -> None:
    with unit_of_work(runtime.session_factory) as session:
        for index in range(start, start + count):
            actions.create_organization(
                session, actor=system_actor("test"), slug=f"office-{index}", name=f"Office {index}"
            )


def checkpoint(runtime):
    with unit_of_work(runtime.session_factory) as session:
        made = checkpoints.create_checkpoint(session, settings=runtime.settings)
        return made.seq if made else None


def problems(runtime, **kwargs) -> list[str]:
    return [str(p) for p in verify_installation(runtime, **kwargs).problems]


# The key ------------------------------------------------------------------------------------


def test_key_is_made_on_first_use_private_and_served(client, runtime):
    path = key_path(runtime.settings)
    assert not path.exists()
    response = client.get("/api/v1/integrity/public-key")
    assert response.status_code == 200
    body = response.json()
    assert path.is_file()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    key = load_signing_key(runtime.settings, create=False)
    assert body["key_id"] == key.key_id
    assert body["algorithm"] == "Ed25519"
    served = serialization.load_pem_public_key(body["public_key_pem"].encode())
    raw = base64.b64decode(body["public_key_base64"])
    assert len(raw) == 32
    assert served.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw) == raw
    # Anyone can check a signature with what the endpoint serves.
    document = {"hello": "Zoë"}
    signature = key.sign(document)
    served.verify(base64.b64decode(signature.split(":")[2]), canonical_json(document))
    # The same key on the next call: it is made once.
    assert client.get("/api/v1/integrity/public-key").json()["key_id"] == key.key_id


def test_signing_key_path_setting_is_used(tmp_path):
    given = tmp_path / "secrets" / "townhall.pem"
    settings = Settings(data_dir=tmp_path / "data", signing_key_path=given)
    with pytest.raises(SigningKeyError, match="does not exist"):
        load_signing_key(settings)  # a configured path is never invented
    made = load_signing_key(Settings(data_dir=tmp_path / "other"))
    given.parent.mkdir()
    made.path.rename(given)
    assert key_path(settings) == given.resolve()
    assert load_signing_key(settings).key_id == made.key_id


# Audit checkpoints --------------------------------------------------------------------------


def test_intact_trail_and_checkpoints_verify(runtime):
    write_entries(runtime)
    assert checkpoint(runtime) == 5
    assert checkpoint(runtime) is None  # nothing new: idempotent
    write_entries(runtime, 2, start=5)
    assert checkpoint(runtime) == 7
    report = verify_installation(runtime)
    assert report.ok, report.problems
    assert report.entries_checked == 7
    assert report.checkpoints_checked == 4  # two in the table, two in the local log


def test_cut_tail_is_found_by_the_checkpoint_not_by_the_chain(runtime):
    write_entries(runtime, 6)
    checkpoint(runtime)
    with unit_of_work(runtime.session_factory) as session:
        session.execute(delete(AuditEntry).where(AuditEntry.seq >= 5))
    found = problems(runtime)
    # The chain that is left is valid: only the signed checkpoint can tell.
    assert not any("audit entry seq" in p and "missing" in p for p in found)
    assert any("seq 6" in p and "tail was cut" in p for p in found), found


def test_deleting_checkpoints_too_is_caught_by_the_local_log(runtime):
    write_entries(runtime, 4)
    checkpoint(runtime)
    with unit_of_work(runtime.session_factory) as session:
        session.execute(delete(AuditEntry).where(AuditEntry.seq >= 3))
        session.execute(delete(AuditCheckpoint))
    found = problems(runtime)
    assert any("logged checkpoint" in p and "tail was cut" in p for p in found), found


def test_rewritten_chain_is_found_by_the_checkpoint(runtime):
    write_entries(runtime, 4)
    checkpoint(runtime)
    # Someone with database access edits entry 2 and recomputes every hash after it.
    with unit_of_work(runtime.session_factory) as session:
        entries = list(session.scalars(select(AuditEntry).order_by(AuditEntry.seq)))
        prev = entries[0].entry_hash
        for entry in entries[1:]:
            if entry.seq == 2:
                entry.changes = {"slug": "forged"}
            entry.prev_hash = prev
            entry.entry_hash = entry_hash(
                seq=entry.seq,
                at=entry.at,
                actor_id=entry.actor_id,
                actor=entry.actor,
                action=entry.action,
                object_type=entry.object_type,
                object_id=entry.object_id,
                changes=entry.changes,
                request_id=entry.request_id,
                prev_hash=entry.prev_hash,
            )
            prev = entry.entry_hash
    found = problems(runtime)
    assert not any(p.startswith("audit entry") for p in found), found
    assert any("seq 4" in p and "rewritten" in p for p in found), found


def test_deleted_and_reordered_entries_are_named(runtime):
    write_entries(runtime, 5)
    with unit_of_work(runtime.session_factory) as session:
        session.execute(delete(AuditEntry).where(AuditEntry.seq == 3))
    found = problems(runtime)
    assert any("seq 4" in p and "missing or were moved" in p for p in found), found

    with unit_of_work(runtime.session_factory) as session:
        session.execute(delete(AuditEntry))
    write_entries(runtime, 5, start=10)
    with unit_of_work(runtime.session_factory) as session:
        # Swap entries 2 and 3 (through a free seq, since seq is unique).
        session.execute(update(AuditEntry).where(AuditEntry.seq == 2).values(seq=1000))
        session.execute(update(AuditEntry).where(AuditEntry.seq == 3).values(seq=2))
        session.execute(update(AuditEntry).where(AuditEntry.seq == 1000).values(seq=3))
    found = problems(runtime)
    assert any("seq 2" in p and "does not link" in p for p in found), found


def test_forged_checkpoint_signature_and_fields_are_named(runtime):
    write_entries(runtime, 3)
    checkpoint(runtime)
    with unit_of_work(runtime.session_factory) as session:
        session.execute(update(AuditCheckpoint).values(seq=2))
    found = problems(runtime)
    assert any("checkpoint 1" in p and "changed after it was signed" in p for p in found)
    assert any("checkpoint 1" in p and "does not match" in p for p in found), found


def test_checkpoint_refuses_to_sign_a_broken_chain(runtime):
    write_entries(runtime, 3)
    with unit_of_work(runtime.session_factory) as session:
        session.execute(update(AuditEntry).where(AuditEntry.seq == 2).values(actor="mallory"))
    with pytest.raises(checkpoints.CheckpointRefused, match="seq 2"):
        checkpoint(runtime)


def test_checkpoints_api_and_external_checkpoint_file(client, runtime, tmp_path):
    write_entries(runtime, 3)
    assert client.get("/api/v1/integrity/checkpoints/latest").status_code == 404
    checkpoint(runtime)
    listed = client.get("/api/v1/integrity/checkpoints").json()
    assert len(listed) == 1
    latest = client.get("/api/v1/integrity/checkpoints/latest").json()
    assert latest["checkpoint"]["seq"] == 3
    assert latest["signature"].startswith("ed25519:")
    saved = tmp_path / "checkpoint.json"
    saved.write_text(json.dumps(latest))
    ok = run_cli(runtime.settings, "verify", "--checkpoint", str(saved))
    assert ok.exit_code == 0, ok.output
    # The trail is cut and every copy inside the installation is wiped: the saved one remains.
    with unit_of_work(runtime.session_factory) as session:
        session.execute(delete(AuditEntry).where(AuditEntry.seq >= 2))
        session.execute(delete(AuditCheckpoint))
    checkpoints.log_path(runtime.settings).unlink()
    cut = run_cli(runtime.settings, "verify", "--checkpoint", str(saved))
    assert cut.exit_code == 1
    assert "tail was cut" in cut.output


def test_checkpoint_command_prints_the_checkpoint(runtime):
    write_entries(runtime, 2)
    result = run_cli(runtime.settings, "checkpoint")
    assert result.exit_code == 0, result.output
    printed = json.loads(result.output.strip().splitlines()[-1])
    assert printed["checkpoint"]["seq"] == 2
    again = run_cli(runtime.settings, "checkpoint")
    assert "Unchanged" in again.output


# Dataset version manifests ------------------------------------------------------------------


@pytest.fixture
def published(client, admin, runtime):
    """A dataset `trees` with two versions; returns (publisher, resource id)."""
    publisher = make_publisher(client, admin, runtime)
    resource_id = make_dataset(client, publisher, "trees")
    rows = [[i, f"species {i % 7}", i * 1.5] for i in range(1, 501)]
    upload_ok(client, publisher, "trees", resource_id, csv_bytes(["id", "species", "h"], rows))
    upload_ok(
        client, publisher, "trees", resource_id, csv_bytes(["id", "species", "h"], rows[:300])
    )
    return publisher, resource_id


def data_file(runtime, number: int):
    with unit_of_work(runtime.session_factory) as session:
        version = session.scalar(select(DatasetVersion).where(DatasetVersion.number == number))
        relative = version.manifest["files"][0]["path"]
    return runtime.settings.resolved_lake_data_path / relative


def test_manifest_is_served_signed_and_verifiable(client, runtime, published):
    response = client.get("/api/v1/datasets/trees/versions/2/manifest")
    assert response.status_code == 200, response.text
    body = response.json()
    manifest = body["manifest"]
    assert manifest["type"] == "townhall.dataset-version-manifest/1"
    assert manifest["version"] == 2
    assert manifest["row_count"] == 300
    assert [c["name"] for c in manifest["columns"]] == ["id", "species", "h"]
    assert manifest["files"]
    assert all(len(f["sha256"]) == 64 for f in manifest["files"])
    assert manifest["source"]["format"] == "csv"
    # Verifiable with the published key alone.
    key = client.get("/api/v1/integrity/public-key").json()
    public = serialization.load_pem_public_key(key["public_key_pem"].encode())
    public.verify(base64.b64decode(body["signature"].split(":")[2]), canonical_json(manifest))
    assert body["key_id"] == key["key_id"]
    assert client.get("/api/v1/datasets/trees/versions/9/manifest").status_code == 404
    report = verify_installation(runtime)
    assert report.ok, report.problems
    assert report.versions_checked == 2
    assert report.files_checked >= 2


def test_flipped_byte_in_a_data_file_is_named(runtime, published):
    path = data_file(runtime, 1)
    content = bytearray(path.read_bytes())
    content[len(content) // 2] ^= 0x01
    path.write_bytes(bytes(content))
    result = run_cli(runtime.settings, "verify", "--dataset", "trees")
    assert result.exit_code == 1, result.output
    assert "trees version 1" in result.output
    assert path.name in result.output.replace("\n", "")
    assert "SHA-256 differs" in result.output
    found = problems(runtime, dataset_slugs=["trees"], audit=False)
    assert len(found) == 1, found
    assert "version 2" not in found[0]


def test_missing_data_file_is_named(runtime, published):
    path = data_file(runtime, 2)
    path.unlink()
    found = problems(runtime, dataset_slugs=["trees"], audit=False)
    assert any("trees version 2" in p and "missing" in p for p in found), found


def test_replaced_manifest_is_named(runtime, published):
    with unit_of_work(runtime.session_factory) as session:
        first, second = session.scalars(select(DatasetVersion).order_by(DatasetVersion.number))
        # A genuine, validly signed manifest, but another version's.
        second.manifest = dict(first.manifest)
        second.signature = first.signature
    found = problems(runtime, dataset_slugs=["trees"], audit=False)
    assert any("trees version 2" in p and "belongs to another version" in p for p in found)


def test_edited_manifest_is_named(runtime, published):
    path = data_file(runtime, 2)
    with unit_of_work(runtime.session_factory) as session:
        version = session.scalar(select(DatasetVersion).where(DatasetVersion.number == 2))
        manifest = json.loads(json.dumps(version.manifest))
        # Someone swaps the data file and writes its new hash into the manifest.
        manifest["files"][0]["sha256"] = "0" * 64
        version.manifest = manifest
    found = problems(runtime, dataset_slugs=["trees"], audit=False)
    assert any("trees version 2" in p and "edited" in p for p in found), found
    assert path.is_file()


def test_download_is_checked_against_the_version(client, runtime, published, tmp_path):
    download = client.get("/api/v1/datasets/trees/download.csv")
    assert download.status_code == 200
    saved = tmp_path / "trees.csv"
    saved.write_bytes(download.content)
    good = run_cli(runtime.settings, "verify", "--dataset", "trees", "--file", str(saved))
    assert good.exit_code == 0, good.output
    assert "matches" in good.output
    saved.write_bytes(download.content.replace(b"species 3", b"species 9", 1))
    bad = run_cli(runtime.settings, "verify", "--dataset", "trees", "--file", str(saved))
    assert bad.exit_code == 1
    assert "differs" in bad.output
    older = tmp_path / "trees-v1.csv"
    older.write_bytes(client.get("/api/v1/datasets/trees/download.csv?version=1").content)
    as_v1 = run_cli(
        runtime.settings, "verify", "--dataset", "trees", "--version", "1", "--file", str(older)
    )
    assert as_v1.exit_code == 0, as_v1.output


# Key rotation -------------------------------------------------------------------------------


def test_routine_rotation_keeps_old_signatures_valid(runtime, published):
    write_entries(runtime, 2)
    checkpoint(runtime)
    old = load_signing_key(runtime.settings).key_id
    result = run_cli(runtime.settings, "keys", "rotate")
    assert result.exit_code == 0, result.output
    ring = load_key_ring(runtime.settings)
    assert ring.keys[old].state == "retired"
    assert ring.active.key_id != old
    report = verify_installation(runtime)
    assert report.ok, report.problems


def test_compromised_rotation_resigns_and_revokes(runtime, published):
    write_entries(runtime, 2)
    checkpoint(runtime)
    old = load_signing_key(runtime.settings)
    with unit_of_work(runtime.session_factory) as session:
        old_signature = session.scalar(
            select(DatasetVersion.signature).where(DatasetVersion.number == 1)
        )
    result = run_cli(runtime.settings, "keys", "rotate", "--compromised")
    assert result.exit_code == 0, result.output
    assert load_key_ring(runtime.settings).keys[old.key_id].state == "revoked"
    assert verify_installation(runtime).ok
    # Something the leaked key signs is no longer believed.
    with unit_of_work(runtime.session_factory) as session:
        session.execute(
            update(DatasetVersion).where(DatasetVersion.number == 1).values(signature=old_signature)
        )
    found = problems(runtime, dataset_slugs=["trees"], audit=False)
    assert any("revoked" in p for p in found), found


def test_compromised_rotation_refuses_when_something_is_wrong(runtime, published):
    data_file(runtime, 1).write_bytes(b"not parquet")
    old = load_signing_key(runtime.settings).key_id
    result = run_cli(runtime.settings, "keys", "rotate", "--compromised")
    assert result.exit_code == 1
    assert "Refused" in result.output
    assert load_signing_key(runtime.settings).key_id == old
