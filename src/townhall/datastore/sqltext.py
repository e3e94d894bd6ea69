"""Small helpers for the SQL Townhall writes itself: quoted names and bound parameters.

Values never become SQL text: `Params.add(value)` returns a `$n` placeholder and keeps the
value for DuckDB to bind. The only literals written into SQL are our own (file paths under the
data folder, temporary table names), through `string_literal`, which doubles quotes and refuses
NUL.
"""

from __future__ import annotations

from typing import Any

from townhall.datastore.lake import quote_identifier

__all__ = ["Params", "quote_identifier", "string_literal"]


def string_literal(value: str) -> str:
    """A DuckDB string literal for a value of our own making (a path, a generated name)."""
    if "\x00" in value:
        raise ValueError("a SQL string literal cannot hold a NUL character")
    return "'" + value.replace("'", "''") + "'"


class Params:
    """Positional parameters referenced as `$1`, `$2`, ...: order of use does not matter."""

    def __init__(self) -> None:
        self.values: list[Any] = []

    def add(self, value: Any) -> str:
        self.values.append(value)
        return f"${len(self.values)}"

    def __bool__(self) -> bool:
        return bool(self.values)
