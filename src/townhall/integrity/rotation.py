"""Rotating the signing key, routinely or because it leaked.

- Routine (`townhall keys rotate`): a new key signs from now on; the old public key is kept in
  `retired/`, so everything it signed still verifies.
- Compromised (`townhall keys rotate --compromised`): whoever holds the old key could sign
  anything, so nothing it signed may count any more. Everything is verified first (a refusal
  if anything is wrong: investigate before re-signing), then the old key is revoked and every
  checkpoint and manifest is signed again with the new key, in one transaction.

Either way the rotation is audited and a fresh checkpoint is signed with the new key.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from sqlalchemy import select

from townhall.actor import Actor
from townhall.audit.actions import record
from townhall.db import unit_of_work
from townhall.integrity import checkpoints
from townhall.integrity.keys import load_signing_key, rotate_signing_key
from townhall.integrity.manifests import MANIFEST_TYPE
from townhall.integrity.problems import Problem
from townhall.integrity.verify import verify_installation

if TYPE_CHECKING:
    from townhall.runtime import Runtime


@dataclass
class RotationResult:
    old_key_id: str | None
    new_key_id: str | None
    resigned_checkpoints: int = 0
    resigned_manifests: int = 0
    refused: list[Problem] = field(default_factory=list)


def rotate_keys(runtime: Runtime, *, actor: Actor, compromised: bool) -> RotationResult:
    """Rotate the signing key (see the module docstring). With `compromised`, returns the
    problems found and changes nothing when verification fails. Raises SigningKeyError when
    there is no key or its folder is not writable."""
    from townhall.catalog.models import DatasetVersion

    settings = runtime.settings
    load_signing_key(settings)  # a first key, if there was none, so there is one to rotate
    if compromised:
        report = verify_installation(runtime)
        if not report.ok:
            return RotationResult(None, None, refused=report.problems)
    old_id, new_id = rotate_signing_key(settings, compromised=compromised)
    result = RotationResult(old_id, new_id)
    key = load_signing_key(settings, create=False)
    with unit_of_work(runtime.session_factory) as session:
        if compromised:
            result.resigned_checkpoints = checkpoints.resign_checkpoints(session, key)
            for version in session.scalars(select(DatasetVersion)):
                if (version.manifest or {}).get("type") == MANIFEST_TYPE:
                    version.signature = key.sign(version.manifest)
                    result.resigned_manifests += 1
        record(
            session,
            actor=actor,
            action="integrity.key.revoke" if compromised else "integrity.key.rotate",
            object_type="signing_key",
            object_id=new_id,
            changes={
                "old_key_id": old_id,
                "new_key_id": new_id,
                "resigned_checkpoints": result.resigned_checkpoints,
                "resigned_manifests": result.resigned_manifests,
            },
        )
    with unit_of_work(runtime.session_factory) as session:
        if compromised:
            checkpoints.rewrite_log(settings, session)
        checkpoints.create_checkpoint(session, settings=settings, key=key)
    return result
