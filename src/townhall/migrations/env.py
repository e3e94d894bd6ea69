"""Alembic environment: the URL comes from Townhall's settings, passed in by `townhall db upgrade`."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from townhall.models import metadata


def run_migrations_online() -> None:
    connection: Connection | None = context.config.attributes.get("connection")
    if connection is None:
        raise RuntimeError("run migrations through townhall.migrate.upgrade(), not bare alembic")
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


run_migrations_online()
