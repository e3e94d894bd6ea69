"""Imports every slice's models so Alembic and tests see the whole schema."""

from __future__ import annotations

from townhall.accounts import models as accounts_models
from townhall.audit import models as audit_models
from townhall.catalog import models as catalog_models
from townhall.db import Base
from townhall.directory import models as directory_models
from townhall.governance import models as governance_models
from townhall.integrity import models as integrity_models
from townhall.notify import models as notify_models
from townhall.publishing import models as publishing_models
from townhall.recovery import models as recovery_models
from townhall.service_requests import models as service_requests_models

metadata = Base.metadata

__all__ = [
    "accounts_models",
    "audit_models",
    "catalog_models",
    "directory_models",
    "governance_models",
    "integrity_models",
    "metadata",
    "notify_models",
    "publishing_models",
    "recovery_models",
    "service_requests_models",
]
