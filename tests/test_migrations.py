"""The migrations build exactly the schema the models describe, on both backends: a model
change without its migration (or the reverse) fails here instead of on a city's upgrade."""

from __future__ import annotations

import importlib

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from townhall.app import SLICES
from townhall.db import Base
from townhall.migrate import current_revision

# Made by hand in the migrations because SQLAlchemy cannot describe them: SQLite's FTS5 search
# table (and its shadow tables) and PostgreSQL's full-text expression index.
NOT_MODELLED_TABLES = ("dataset_search",)
NOT_MODELLED_INDEXES = {"ix_datasets_fulltext"}


def _load_every_model() -> None:
    for name in SLICES:
        try:
            importlib.import_module(f"{name}.models")
        except ModuleNotFoundError as missing:
            if missing.name != f"{name}.models":
                raise


def _expected(difference: tuple) -> bool:
    kind, thing = difference[0], difference[1]
    if kind == "remove_table":
        return thing.name.startswith(NOT_MODELLED_TABLES)
    if kind == "remove_index":
        return thing.name in NOT_MODELLED_INDEXES
    return False


def test_migrated_database_matches_the_models(runtime):
    _load_every_model()
    assert current_revision(runtime.engine) is not None
    with runtime.engine.connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    unexpected = [difference for difference in differences if not _expected(difference)]
    assert unexpected == []
