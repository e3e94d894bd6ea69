"""Imports every slice's models so Alembic and tests see the whole schema."""

from __future__ import annotations

from townhall.accounts import models as accounts_models
from townhall.audit import models as audit_models
from townhall.catalog import models as catalog_models
from townhall.db import Base

metadata = Base.metadata

__all__ = ["accounts_models", "audit_models", "catalog_models", "metadata"]
