"""The backup archive: a tar file with a signed manifest of SHA-256 sums, and the key ring
encrypted with a passphrase.

Layout (docs/operations.md, "Backup and restore"):

    db/townhall.sqlite | db/townhall.pgdump     the main database
    lake/catalog.sqlite | lake/catalog.pgdump   the DuckLake catalog, unless inside the dump
    lake/data/<path>                            every file under the lake's data folder
    keys/keyring.enc                            the signing key ring, scrypt + AES-256-GCM
    integrity/checkpoints.jsonl                 the local checkpoint log, when there is one
    MANIFEST.json                               what the archive holds, with SHA-256 sums
    MANIFEST.sig                                Ed25519 signature of MANIFEST.json

The manifest is signed with the signing key that the archive carries encrypted: whoever knows
the passphrase can check that nothing in the archive was changed, and nobody without it can
forge a manifest that passes (AES-GCM authenticates the key ring).
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import tarfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO, Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

BACKUP_FORMAT = "townhall-backup/1"
KEYRING_FORMAT = "townhall-keyring/1"
MANIFEST_NAME = "MANIFEST.json"
SIGNATURE_NAME = "MANIFEST.sig"
KEYRING_MEMBER = "keys/keyring.enc"
CHECKPOINT_LOG_MEMBER = "integrity/checkpoints.jsonl"
LAKE_DATA_PREFIX = "lake/data/"
MIN_PASSPHRASE_LENGTH = 12
# 2**17 x 8 x 128 bytes = 128 MiB and about a second per derivation: slow enough to make
# guessing a passphrase expensive, fast enough for a backup or a restore.
SCRYPT_N = 2**17
SCRYPT_R = 8
SCRYPT_P = 1
_AAD = KEYRING_FORMAT.encode()
CHUNK_BYTES = 1024 * 1024


class BackupError(Exception):
    """A backup or restore cannot go on; the message says why and what to do."""


def check_passphrase(passphrase: str) -> None:
    if len(passphrase) < MIN_PASSPHRASE_LENGTH:
        raise BackupError(
            f"the passphrase must be at least {MIN_PASSPHRASE_LENGTH} characters long"
        )


def encrypt_key_ring(files: dict[str, bytes], passphrase: str) -> bytes:
    """The key ring files as one JSON document, encrypted with a key derived by scrypt."""
    check_passphrase(passphrase)
    salt = os.urandom(16)
    key = Scrypt(salt=salt, length=32, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P).derive(
        passphrase.encode("utf-8")
    )
    nonce = os.urandom(12)
    plain = json.dumps(
        {name: content.decode("ascii") for name, content in sorted(files.items())}
    ).encode()
    sealed = AESGCM(key).encrypt(nonce, plain, _AAD)
    return json.dumps(
        {
            "format": KEYRING_FORMAT,
            "kdf": {
                "name": "scrypt",
                "n": SCRYPT_N,
                "r": SCRYPT_R,
                "p": SCRYPT_P,
                "salt": _b64(salt),
            },
            "cipher": "AES-256-GCM",
            "nonce": _b64(nonce),
            "ciphertext": _b64(sealed),
        },
        indent=1,
    ).encode()


def decrypt_key_ring(blob: bytes, passphrase: str) -> dict[str, bytes]:
    """Raises BackupError for a wrong passphrase or a damaged key ring (the two look alike)."""
    try:
        document = json.loads(blob)
        kdf = document["kdf"]
        if document.get("format") != KEYRING_FORMAT or kdf.get("name") != "scrypt":
            raise BackupError("the archive's key ring is in an unknown format")
        key = Scrypt(
            salt=base64.b64decode(kdf["salt"]),
            length=32,
            n=int(kdf["n"]),
            r=int(kdf["r"]),
            p=int(kdf["p"]),
        ).derive(passphrase.encode("utf-8"))
        plain = AESGCM(key).decrypt(
            base64.b64decode(document["nonce"]), base64.b64decode(document["ciphertext"]), _AAD
        )
    except InvalidTag as error:
        raise BackupError("wrong passphrase, or the archive's key ring was changed") from error
    except (ValueError, KeyError, TypeError) as error:
        raise BackupError(f"the archive's key ring cannot be read: {error}") from error
    return {name: content.encode("ascii") for name, content in json.loads(plain).items()}


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def safe_member_name(name: str) -> str:
    """Refuse absolute names and `..`: an archive must not write outside its targets."""
    path = PurePosixPath(name)
    if path.is_absolute() or ".." in path.parts or not path.parts or "\x00" in name:
        raise BackupError(f"unsafe name in the archive: {name!r}")
    return path.as_posix()


@dataclass
class Member:
    name: str
    bytes: int
    sha256: str

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "bytes": self.bytes, "sha256": self.sha256}


class _HashingReader(io.RawIOBase):
    """Reads a file for tarfile, hashing and counting what passes, reporting progress."""

    def __init__(self, handle: IO[bytes], advance: Callable[[int], None] | None) -> None:
        self._handle = handle
        self._advance = advance
        self.digest = hashlib.sha256()
        self.size = 0

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        chunk = self._handle.read(size)
        self.digest.update(chunk)
        self.size += len(chunk)
        if self._advance and chunk:
            self._advance(len(chunk))
        return chunk


class ArchiveWriter:
    """Adds members to a tar file, hashing each one on the way in."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._tar = tarfile.open(path, "w", format=tarfile.PAX_FORMAT)  # noqa: SIM115 - closed by close()
        self.members: list[Member] = []

    def add_file(
        self, source: Path, name: str, advance: Callable[[int], None] | None = None
    ) -> Member:
        name = safe_member_name(name)
        info = tarfile.TarInfo(name)
        stat = source.stat()
        info.size = stat.st_size
        info.mtime = int(stat.st_mtime)
        info.mode = 0o600
        with source.open("rb") as handle:
            reader = _HashingReader(handle, advance)
            self._tar.addfile(info, reader)
        if reader.size != info.size:
            raise BackupError(f"{source} changed size while it was being copied")
        member = Member(name, reader.size, reader.digest.hexdigest())
        self.members.append(member)
        return member

    def add_bytes(self, data: bytes, name: str, *, record: bool = True) -> Member:
        name = safe_member_name(name)
        info = tarfile.TarInfo(name)
        info.size = len(data)
        info.mode = 0o600
        self._tar.addfile(info, io.BytesIO(data))
        member = Member(name, len(data), hashlib.sha256(data).hexdigest())
        if record:
            self.members.append(member)
        return member

    def close(self) -> None:
        self._tar.close()
        with self.path.open("rb") as handle:
            os.fsync(handle.fileno())


def read_manifest(path: Path) -> tuple[bytes, str]:
    """The manifest's bytes and its signature. Raises BackupError when the file is not a
    Townhall backup."""
    try:
        with tarfile.open(path, "r:") as tar:
            manifest = _read_member(tar, MANIFEST_NAME)
            signature = _read_member(tar, SIGNATURE_NAME).decode("ascii").strip()
    except (tarfile.TarError, OSError) as error:
        raise BackupError(f"{path} is not a readable backup archive: {error}") from error
    return manifest, signature


def _read_member(tar: tarfile.TarFile, name: str) -> bytes:
    try:
        member = tar.getmember(name)
    except KeyError as error:
        raise BackupError(f"the archive has no {name}: not a Townhall backup") from error
    handle = tar.extractfile(member)
    if handle is None:
        raise BackupError(f"{name} in the archive is not a file")
    return handle.read()


def copy_member(
    handle: IO[bytes], target: IO[bytes] | None, advance: Callable[[int], None] | None = None
) -> tuple[str, int]:
    """Copy (or only read, when `target` is None) a member; returns its SHA-256 and size."""
    digest = hashlib.sha256()
    size = 0
    while chunk := handle.read(CHUNK_BYTES):
        digest.update(chunk)
        size += len(chunk)
        if target is not None:
            target.write(chunk)
        if advance:
            advance(len(chunk))
    return digest.hexdigest(), size
