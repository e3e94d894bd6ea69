"""Password hashing, token generation and CSRF tokens: the only place secrets are made."""

from __future__ import annotations

import hashlib
import hmac
import secrets

from pwdlib import PasswordHash
from pwdlib.hashers.argon2 import Argon2Hasher

_password_hash = PasswordHash((Argon2Hasher(),))
# Hashing a dummy password on unknown emails keeps login time the same for every email; made on
# first use with the configured cost (at import it cost every CLI command a fifth of a second).
_dummy_hash: str | None = None

TOKEN_PREFIX = "th_"  # noqa: S105 - a prefix, not a secret
MIN_PASSWORD_LENGTH = 10


def configure_password_hashing(*, memory_kib: int, time_cost: int) -> None:
    """Set the Argon2id cost of new hashes (settings `password_hash_*`; the runtime calls
    this). Existing hashes keep verifying: each one carries the parameters it was made with."""
    global _password_hash, _dummy_hash
    _password_hash = PasswordHash((Argon2Hasher(memory_cost=memory_kib, time_cost=time_cost),))
    _dummy_hash = None


def hash_password(password: str) -> str:
    return _password_hash.hash(password)


def verify_password(password: str, password_hash: str | None) -> bool:
    global _dummy_hash
    if not password_hash:
        if _dummy_hash is None:
            _dummy_hash = _password_hash.hash("timing-equaliser-not-a-password")
        _password_hash.verify(password, _dummy_hash)
        return False
    return _password_hash.verify(password, password_hash)


def new_api_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def new_session_token() -> str:
    return secrets.token_urlsafe(32)


def digest(token: str) -> str:
    """SHA-256 of a high-entropy token; enough because tokens are not guessable like passwords."""
    return hashlib.sha256(token.encode()).hexdigest()


def csrf_token(secret_key: str, binding: str) -> str:
    """CSRF token bound to a session id or an anonymous nonce, so it cannot be replayed."""
    return hmac.new(secret_key.encode(), f"csrf:{binding}".encode(), hashlib.sha256).hexdigest()


def csrf_matches(secret_key: str, binding: str, given: str | None) -> bool:
    if not given:
        return False
    return hmac.compare_digest(csrf_token(secret_key, binding), given)
