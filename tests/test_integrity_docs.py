"""docs/integrity.md's reference code, run against checkpoints and manifests Townhall made: the
documented algorithm and the code cannot drift apart."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import delete, select

from townhall.audit.models import AuditEntry
from townhall.db import unit_of_work
from townhall.integrity.checkpoints import checkpoint_document, exported, latest_checkpoint
from townhall.integrity.manifests import LakeVersionFacts, build_version_manifest

from .test_datastore_support import csv_bytes, make_dataset, make_publisher, upload_ok
from .test_integrity import checkpoint, write_entries

DOC = Path(__file__).resolve().parents[1] / "docs" / "integrity.md"


def reference() -> dict[str, Any]:
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(encoding="utf-8"), re.DOTALL)
    namespace: dict[str, Any] = {}
    exec(compile(blocks[0], "docs/integrity.md", "exec"), namespace)
    return namespace


def test_every_signed_key_is_documented():
    text = DOC.read_text(encoding="utf-8")
    signed_checkpoint = checkpoint_document(seq=1, entry_hash="0", at=datetime.now(UTC), prev="0")
    signed_manifest = build_version_manifest(
        dataset_id=1,
        dataset_slug="x",
        resource_id=1,
        version_number=1,
        facts=LakeVersionFacts("t", "main", 1, 0, []),
        created_at="",
    )
    for key in [*signed_checkpoint, *signed_manifest]:
        assert f"`{key}`" in text, f"signed key {key!r} is not described in docs/integrity.md"


def test_reference_checks_a_checkpoint(client, runtime):
    code = reference()
    write_entries(runtime, 4)
    checkpoint(runtime)
    key = client.get("/api/v1/integrity/public-key").json()["public_key_pem"]
    saved = client.get("/api/v1/integrity/checkpoints/latest").json()
    with unit_of_work(runtime.session_factory) as session:
        assert exported(latest_checkpoint(session))["signature"] == saved["signature"]
        rows = [
            {"seq": seq, "entry_hash": digest}
            for seq, digest in session.execute(
                select(AuditEntry.seq, AuditEntry.entry_hash).order_by(AuditEntry.seq)
            )
        ]
    assert code["checkpoint_problem"](key, saved, rows) is None
    forged = json.loads(json.dumps(saved))
    forged["checkpoint"]["seq"] = 3
    assert "signature" in code["checkpoint_problem"](key, forged, rows)
    with unit_of_work(runtime.session_factory) as session:
        session.execute(delete(AuditEntry).where(AuditEntry.seq == 4))
    assert "tail was cut" in code["checkpoint_problem"](key, saved, rows[:3])


def test_reference_checks_a_manifest(client, admin, runtime):
    code = reference()
    publisher = make_publisher(client, admin, runtime)
    resource = make_dataset(client, publisher, "docs-check")
    upload_ok(
        client, publisher, "docs-check", resource, csv_bytes(["a", "b"], [[1, "x"], [2, "y"]])
    )
    key = client.get("/api/v1/integrity/public-key").json()["public_key_pem"]
    body = client.get("/api/v1/datasets/docs-check/versions/1/manifest").json()
    lake = runtime.settings.resolved_lake_data_path
    assert code["manifest_problems"](key, body["manifest"], body["signature"], lake) == []
    path = lake / body["manifest"]["files"][0]["path"]
    path.write_bytes(path.read_bytes()[:-1] + b"\x00")
    assert code["manifest_problems"](key, body["manifest"], body["signature"], lake) == [
        f"{body['manifest']['files'][0]['path']} was changed"
    ]
    edited = {**body["manifest"], "row_count": 3}
    assert code["manifest_problems"](key, edited, body["signature"], lake) == [
        "the manifest's signature does not match"
    ]
