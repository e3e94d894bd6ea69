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

    def __init__(self, *, after: Params | None = None) -> None:
        """`after`: number on from another set, so both can be bound together."""
        self.values: list[Any] = []
        self.offset = len(after.values) + after.offset if after is not None else 0

    def add(self, value: Any) -> str:
        self.values.append(value)
        return f"${self.offset + len(self.values)}"

    def __bool__(self) -> bool:
        return bool(self.values)
