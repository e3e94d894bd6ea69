"""The installation's Ed25519 signing key, its retired and revoked predecessors, and signatures.

One key signs audit checkpoints, dataset version manifests and backup manifests. It lives in a
PEM file (PKCS#8, mode 0600): `Settings.signing_key_path`, or `<data_dir>/keys/signing-key.pem`,
made on first use. Public keys of earlier keys sit next to it, in `retired/` (still trusted for
what they signed before a rotation) and `revoked/` (never trusted again: a compromised key).

Trust comes from these files only, never from the database: someone who can write to the
database must not be able to add a key of their own and sign with it.

A signature is written as `ed25519:<key id>:<base64 signature>`; the key id is the first 16 hex
digits of the SHA-256 of the raw 32-byte public key. What is signed is always the canonical
JSON form of a document (`canonical_json`), the same form the audit chain hashes.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import json
import os
import threading
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from townhall.config import Settings

SIGNATURE_SCHEME = "ed25519"
KEY_FILE_NAME = "signing-key.pem"
RETIRED_DIR = "retired"
REVOKED_DIR = "revoked"

_create_lock = threading.Lock()


class SigningKeyError(Exception):
    """The signing key is missing, unreadable or not an Ed25519 key; the message says which."""


def canonical_json(document: Any) -> bytes:
    """The bytes that are hashed and signed: sorted keys, no whitespace, UTF-8.

    Identical to the audit chain's canonical form (docs/audit.md), so one re-implementation
    serves both. Documents hold only strings, integers, booleans, null, lists and objects.
    """
    return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode(
        "utf-8"
    )


def key_path(settings: Settings) -> Path:
    """Where the active private key lives (it may not exist yet)."""
    if settings.signing_key_path is not None:
        return settings.signing_key_path.expanduser().resolve()
    return (settings.data_dir / "keys" / KEY_FILE_NAME).resolve()


def keys_dir(settings: Settings) -> Path:
    """The folder of the key ring: the active key's folder, holding `retired/` and `revoked/`."""
    return key_path(settings).parent


def raw_public_bytes(public_key: Ed25519PublicKey) -> bytes:
    return public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def public_pem(public_key: Ed25519PublicKey) -> str:
    return public_key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode("ascii")


def key_id_of(public_key: Ed25519PublicKey) -> str:
    return hashlib.sha256(raw_public_bytes(public_key)).hexdigest()[:16]


@dataclass(frozen=True)
class SigningKey:
    """The active private key. `sign(document)` returns the signature string."""

    private_key: Ed25519PrivateKey
    path: Path

    @property
    def public_key(self) -> Ed25519PublicKey:
        return self.private_key.public_key()

    @property
    def key_id(self) -> str:
        return key_id_of(self.public_key)

    def sign_bytes(self, data: bytes) -> str:
        signature = base64.b64encode(self.private_key.sign(data)).decode("ascii")
        return f"{SIGNATURE_SCHEME}:{self.key_id}:{signature}"

    def sign(self, document: Any) -> str:
        return self.sign_bytes(canonical_json(document))


@dataclass(frozen=True)
class PublicKeyInfo:
    key_id: str
    public_key: Ed25519PublicKey
    state: str  # active | retired | revoked

    @property
    def pem(self) -> str:
        return public_pem(self.public_key)

    @property
    def raw_base64(self) -> str:
        return base64.b64encode(raw_public_bytes(self.public_key)).decode("ascii")


@dataclass(frozen=True)
class KeyRing:
    """Every public key this installation knows, by key id."""

    keys: dict[str, PublicKeyInfo]

    @property
    def active(self) -> PublicKeyInfo | None:
        return next((k for k in self.keys.values() if k.state == "active"), None)

    def verify(self, data: bytes, signature: str | None) -> str | None:
        """None when `signature` is a valid signature of `data` by a trusted key (the active
        one or a retired one); otherwise a short reason, for a verification report."""
        if not signature:
            return "it has no signature"
        scheme, _, rest = signature.partition(":")
        key_id, _, encoded = rest.partition(":")
        if scheme != SIGNATURE_SCHEME or not key_id or not encoded:
            return "its signature is malformed"
        info = self.keys.get(key_id)
        if info is None:
            return f"it is signed by key {key_id}, which is not a key of this installation"
        if info.state == "revoked":
            return f"it is signed by key {key_id}, which was revoked"
        try:
            info.public_key.verify(base64.b64decode(encoded, validate=True), data)
        except (InvalidSignature, binascii.Error, ValueError):
            return f"its signature does not match its content (key {key_id})"
        return None

    def verify_document(self, document: Any, signature: str | None) -> str | None:
        return self.verify(canonical_json(document), signature)


def load_signing_key(settings: Settings, *, create: bool = True) -> SigningKey:
    """The active signing key; made on first use when `create` (the default).

    Safe when several processes start at once: the key is written under a temporary name and
    linked into place, so exactly one key wins and every process reads that one. Raises
    SigningKeyError when the file is missing (and `create` is false, or the path was given by
    the `signing_key_path` setting) or is not an Ed25519 private key.
    """
    path = key_path(settings)
    if not path.exists():
        if not create or settings.signing_key_path is not None:
            raise SigningKeyError(
                f"no signing key at {path}"
                + (
                    " (TOWNHALL_SIGNING_KEY_PATH names a file that does not exist)"
                    if settings.signing_key_path is not None
                    else ""
                )
            )
        with _create_lock:
            _create_key_file(path)
    return SigningKey(_read_private_key(path), path)


def signing_key_exists(settings: Settings) -> bool:
    return key_path(settings).is_file()


def _read_private_key(path: Path) -> Ed25519PrivateKey:
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as error:
        raise SigningKeyError(f"cannot read the signing key {path}: {error}") from error
    if not isinstance(key, Ed25519PrivateKey):
        raise SigningKeyError(f"{path} is not an Ed25519 private key")
    return key


def private_pem(key: Ed25519PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _create_key_file(path: Path, key: Ed25519PrivateKey | None = None) -> None:
    """Write a new key at `path` unless one appeared meanwhile (then keep that one)."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    key = key or Ed25519PrivateKey.generate()
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex}")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(private_pem(key))
            handle.flush()
            os.fsync(handle.fileno())
        # link() fails if the name exists: the first writer wins, the others read its key.
        with contextlib.suppress(FileExistsError):
            os.link(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def write_private_key(path: Path, pem: bytes) -> None:
    """Put a private key (PEM) at `path` with mode 0600; refuses to overwrite a file."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    key = serialization.load_pem_private_key(pem, password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise SigningKeyError("not an Ed25519 private key")
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(pem)


def load_key_ring(settings: Settings) -> KeyRing:
    """The active key (if it exists) and every retired and revoked public key."""
    keys: dict[str, PublicKeyInfo] = {}
    folder = keys_dir(settings)
    for state, sub in (("retired", RETIRED_DIR), ("revoked", REVOKED_DIR)):
        for file in sorted((folder / sub).glob("*.pem")) if (folder / sub).is_dir() else []:
            public = _read_public_key(file)
            keys[key_id_of(public)] = PublicKeyInfo(key_id_of(public), public, state)
    if signing_key_exists(settings):
        active = load_signing_key(settings, create=False)
        if active.key_id not in keys or keys[active.key_id].state != "revoked":
            keys[active.key_id] = PublicKeyInfo(active.key_id, active.public_key, "active")
    return KeyRing(keys)


def _read_public_key(path: Path) -> Ed25519PublicKey:
    try:
        key = serialization.load_pem_public_key(path.read_bytes())
    except (OSError, ValueError) as error:
        raise SigningKeyError(f"cannot read the public key {path}: {error}") from error
    if not isinstance(key, Ed25519PublicKey):
        raise SigningKeyError(f"{path} is not an Ed25519 public key")
    return key


def key_ring_files(settings: Settings) -> dict[str, bytes]:
    """Every file of the key ring, by path relative to `keys_dir` (for backups)."""
    folder = keys_dir(settings)
    files: dict[str, bytes] = {}
    path = key_path(settings)
    if path.is_file():
        files[KEY_FILE_NAME] = path.read_bytes()
    for sub in (RETIRED_DIR, REVOKED_DIR):
        if (folder / sub).is_dir():
            for file in sorted((folder / sub).glob("*.pem")):
                files[f"{sub}/{file.name}"] = file.read_bytes()
    return files


def rotate_signing_key(settings: Settings, *, compromised: bool) -> tuple[str, str]:
    """Make a new active key; the old one's public key goes to `retired/` (or `revoked/` when
    `compromised`). Returns `(old key id, new key id)`.

    The new key is written beside the old one and renamed over it, so a reader sees one key
    or the other. Raises SigningKeyError when there is no key to rotate or the folder is not
    writable (a key given by `signing_key_path` on a read-only mount is rotated by replacing
    the file there).
    """
    old = load_signing_key(settings, create=False)
    path = old.path
    target = keys_dir(settings) / (REVOKED_DIR if compromised else RETIRED_DIR)
    new_key = Ed25519PrivateKey.generate()
    try:
        target.mkdir(parents=True, exist_ok=True, mode=0o700)
        (target / f"{old.key_id}.pem").write_text(public_pem(old.public_key), encoding="ascii")
        if compromised:
            (keys_dir(settings) / RETIRED_DIR / f"{old.key_id}.pem").unlink(missing_ok=True)
        temporary = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex}")
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(private_pem(new_key))
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except OSError as error:
        raise SigningKeyError(f"cannot rotate the signing key in {path.parent}: {error}") from error
    return old.key_id, key_id_of(new_key.public_key())
