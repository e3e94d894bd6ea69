"""Alembic environment: the URL comes from the settings, passed in by `townhall db upgrade`."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from townhall.models import metadata


def _include_name(name: str | None, type_: str, _parent_names: object) -> bool:
    # Search structures made by hand in migrations (FTS5 tables, expression indexes) are not
    # models; autogenerate must not try to drop them.
    if type_ == "table" and name and name.startswith("dataset_search"):
        return False
    return not (type_ == "index" and name == "ix_datasets_fulltext")


def run_migrations_online() -> None:
    connection: Connection | None = context.config.attributes.get("connection")
    if connection is None:
        raise RuntimeError("run migrations through townhall.migrate.upgrade(), not bare alembic")
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
        include_name=_include_name,
    )
    with context.begin_transaction():
        context.run_migrations()


run_migrations_online()
