"""Public integrity endpoints: the signing keys, the audit checkpoints, version manifests.

All of it is public on purpose: anyone (a partner, an archive, a journalist) can fetch the
public key and the signed checkpoints, keep copies, and later check the trail and the data
with `townhall verify` or the algorithm in docs/integrity.md. A checkpoint reveals only how
many audit entries exist and their head hash, never their content.
"""

from __future__ import annotations

import logging
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request

from townhall.accounts.auth import PublicActor
from townhall.catalog import queries as catalog_queries
from townhall.deps import DbSession
from townhall.errors import NotFoundError
from townhall.integrity import checkpoints
from townhall.integrity.keys import SigningKeyError, load_key_ring, load_signing_key
from townhall.integrity.manifests import MANIFEST_TYPE
from townhall.schemas import MAX_ID, PublicOutput

log = logging.getLogger(__name__)
router = APIRouter(prefix="/api/v1", tags=["integrity"])


class PublicKeyPublic(PublicOutput):
    key_id: str
    algorithm: str = "Ed25519"
    state: str
    public_key_pem: str
    public_key_base64: str


class KeyRingPublic(PublicOutput):
    key_id: str
    algorithm: str = "Ed25519"
    public_key_pem: str
    public_key_base64: str
    signature_format: str = "ed25519:<key_id>:<base64 signature over the canonical JSON>"
    keys: list[PublicKeyPublic]


class CheckpointPublic(PublicOutput):
    id: int
    checkpoint: dict[str, Any]
    checkpoint_hash: str
    signature: str


class ManifestPublic(PublicOutput):
    dataset: str
    resource_id: int
    version: int
    manifest: dict[str, Any]
    signature: str
    key_id: str


@router.get(
    "/integrity/public-key",
    response_model=KeyRingPublic,
    summary="The Ed25519 public key that signs checkpoints, manifests and backups",
    description="`public_key_pem` (SubjectPublicKeyInfo) and `public_key_base64` (the raw 32 "
    "bytes) of the active key, and in `keys` every key this installation knows: `retired` "
    "keys still vouch for what they signed before a rotation, `revoked` ones never do.",
)
def public_key(request: Request, _actor: PublicActor) -> KeyRingPublic:
    settings = request.app.state.settings
    try:
        active = load_signing_key(settings)  # made on first use
        ring = load_key_ring(settings)
    except SigningKeyError as error:
        # Only when TOWNHALL_SIGNING_KEY_PATH names a missing or unreadable file; logged.
        log.error("public key unavailable: %s", error)
        raise NotFoundError("signing_key", "(the server's key file is missing)") from error
    info = ring.keys[active.key_id]
    return KeyRingPublic(
        key_id=info.key_id,
        public_key_pem=info.pem,
        public_key_base64=info.raw_base64,
        keys=[
            PublicKeyPublic(
                key_id=k.key_id,
                state=k.state,
                public_key_pem=k.pem,
                public_key_base64=k.raw_base64,
            )
            for k in sorted(ring.keys.values(), key=lambda k: (k.state != "active", k.key_id))
        ],
    )


@router.get(
    "/integrity/checkpoints",
    response_model=list[CheckpointPublic],
    summary="Signed checkpoints of the audit trail, newest first",
    description="Each item is what `townhall verify --checkpoint FILE` reads back: save one "
    "(or all) and keep them elsewhere.",
)
def list_checkpoints(
    db: DbSession,
    _actor: PublicActor,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    before_id: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None,
) -> list[CheckpointPublic]:
    return [
        CheckpointPublic(id=c.id, **checkpoints.exported(c))
        for c in checkpoints.list_checkpoints(db, limit=limit, before_id=before_id)
    ]


@router.get(
    "/integrity/checkpoints/latest",
    response_model=CheckpointPublic,
    summary="The newest signed checkpoint",
)
def latest_checkpoint(db: DbSession, _actor: PublicActor) -> CheckpointPublic:
    checkpoint = checkpoints.latest_checkpoint(db)
    if checkpoint is None:
        raise NotFoundError("checkpoint", "yet (the audit trail has not been checkpointed)")
    return CheckpointPublic(id=checkpoint.id, **checkpoints.exported(checkpoint))


@router.get(
    "/datasets/{slug}/versions/{number}/manifest",
    response_model=ManifestPublic,
    summary="The signed manifest of a dataset version",
    description="SHA-256 and size of every Parquet data file of the version, its row count and "
    "schema, signed with Ed25519 over the manifest's canonical JSON (docs/integrity.md). "
    "`resource` picks the resource (id or name) when the dataset has several tables.",
)
def version_manifest(
    slug: str,
    number: Annotated[int, Path(ge=1, le=MAX_ID)],
    db: DbSession,
    actor: PublicActor,
    resource: Annotated[
        str | None, Query(max_length=300, description="Resource id or name; default the first")
    ] = None,
) -> ManifestPublic:
    from townhall.datastore.query import readable_dataset

    dataset = readable_dataset(db, actor, slug)
    if resource is not None:
        chosen = next(
            (r for r in dataset.resources if str(r.id) == resource or r.name == resource), None
        )
        if chosen is None:
            raise NotFoundError("resource", f"{resource} in {slug}")
    else:
        chosen = next((r for r in dataset.resources if r.published_version_id), None)
        if chosen is None:
            raise NotFoundError("version", f"{number} of {slug}")
    version = catalog_queries.version_of(db, chosen, number)
    if version is None or (
        version.status == "withdrawn" and not catalog_queries.can_edit(actor, dataset)
    ):
        raise NotFoundError("version", f"{number} of {slug}")
    manifest = dict(version.manifest or {})
    if manifest.get("type") != MANIFEST_TYPE or not version.signature:
        raise NotFoundError("manifest", f"for {slug} version {number} (not signed)")
    return ManifestPublic(
        dataset=dataset.slug,
        resource_id=chosen.id,
        version=version.number,
        manifest=manifest,
        signature=version.signature,
        key_id=version.signature.split(":")[1],
    )
