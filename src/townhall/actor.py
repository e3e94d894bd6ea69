"""Who is acting: a user through a session or a token, the CLI, a job, or nobody.

Lives outside `accounts` so that the audit slice can name actors without importing accounts.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from townhall.errors import PermissionDenied, TownhallError


@dataclass(frozen=True)
class Actor:
    label: str
    via: str = "system"  # session | token | cli | system | anonymous
    user_id: int | None = None
    role: str | None = None
    permissions: frozenset[str] = frozenset()
    organization_ids: frozenset[int] = frozenset()
    session_id: int | None = None
    token_id: int | None = None
    csrf_binding: str | None = field(default=None, repr=False)
    session_expired: bool = False

    @property
    def is_authenticated(self) -> bool:
        return self.user_id is not None

    def can(self, permission: str) -> bool:
        return permission in self.permissions

    def require(self, permission: str) -> None:
        """Raise 401 for nobody, 403 for somebody without the permission."""
        if not self.is_authenticated and self.via not in ("system", "cli"):
            if self.session_expired:
                raise TownhallError(401, "session_expired", "Your session has expired; log in.")
            raise TownhallError(401, "not_authenticated", "Log in or send an API token.")
        if not self.can(permission):
            raise PermissionDenied(permission)


ANONYMOUS = Actor(label="anonymous", via="anonymous")


def system_actor(label: str = "system") -> Actor:
    """A job or the CLI acting with every permission (the operator's shell is trusted)."""
    from townhall.accounts.permissions import PERMISSIONS

    return Actor(label=label, via="system", permissions=frozenset(PERMISSIONS))
