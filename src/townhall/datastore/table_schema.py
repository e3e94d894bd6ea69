"""Frictionless Table Schemas supplied with an upload, turned into DuckDB casts and checks.

Frictionless describes the schema and shapes the report; DuckDB does the work. Each declared
field becomes one cast expression (`TRY_CAST`, `TRY_STRPTIME` for a date format, a `CASE` for
custom boolean values) and a handful of failure predicates (the cast failed, a constraint is
broken). `ingest` counts every predicate in one aggregate query over the source and locates the
first failing rows only for the predicates that failed, so a clean file costs one scan.

Every value taken from the schema (formats, enum members, bounds, patterns) reaches the SQL as
a bound parameter (`$n`), never as text.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from townhall.datastore.coltypes import TABLE_SCHEMA_TYPES
from townhall.datastore.sqltext import Params, quote_identifier
from townhall.errors import TownhallError

MAX_SCHEMA_FIELDS = 2_000
DEFAULT_TRUE_VALUES = ("true", "True", "TRUE", "1")
DEFAULT_FALSE_VALUES = ("false", "False", "FALSE", "0")
# Table Schema formats that are not strptime patterns.
_PLAIN_FORMATS = frozenset({"default", "any", ""})


@dataclass(frozen=True)
class DeclaredField:
    name: str
    type: str
    format: str = "default"
    constraints: dict[str, Any] = field(default_factory=dict)
    true_values: tuple[str, ...] = DEFAULT_TRUE_VALUES
    false_values: tuple[str, ...] = DEFAULT_FALSE_VALUES
    group_char: str | None = None
    decimal_char: str = "."
    bare_number: bool = True

    @property
    def db_type(self) -> str:
        return TABLE_SCHEMA_TYPES.get(self.type, "VARCHAR")


@dataclass(frozen=True)
class TableSchema:
    fields: tuple[DeclaredField, ...]
    missing_values: tuple[str, ...] = ("",)
    primary_key: tuple[str, ...] = ()
    descriptor: dict[str, Any] = field(default_factory=dict)

    def by_name(self) -> dict[str, DeclaredField]:
        return {f.name: f for f in self.fields}


def _schema_error(message: str, errors: list[dict[str, Any]] | None = None) -> TownhallError:
    return TownhallError(422, "invalid_table_schema", message, errors=errors or [])


def parse_table_schema(raw: dict[str, Any] | str | None) -> TableSchema | None:
    """Check a Frictionless Table Schema (a dict or its JSON text) and keep what ingest uses.

    `None` or an empty value gives `None` (types are inferred). Raises TownhallError
    `invalid_table_schema` naming what is wrong.
    """
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        return None
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except json.JSONDecodeError as error:
            raise _schema_error(f"The table schema is not valid JSON: {error.msg}.") from error
    if not isinstance(raw, dict) or not isinstance(raw.get("fields"), list):
        raise _schema_error("A table schema is a JSON object with a `fields` list.")
    if len(raw["fields"]) > MAX_SCHEMA_FIELDS:
        raise _schema_error(f"A table schema may declare at most {MAX_SCHEMA_FIELDS} fields.")
    # Imported here: frictionless takes most of a second to import, and most ingests have no
    # schema.
    from frictionless import FrictionlessException, Schema

    try:
        schema = Schema.from_descriptor(raw)
    except FrictionlessException as error:
        reasons = [{"message": reason.message} for reason in error.reasons] or [
            {"message": error.error.message}
        ]
        message = f"The table schema is not valid: {error.error.message}"
        raise _schema_error(message, reasons) from error
    fields: list[DeclaredField] = []
    seen: set[str] = set()
    for item in raw["fields"]:
        name = str(item.get("name", ""))
        if not name or name in seen:
            raise _schema_error(f"Field names must be present and unique; {name!r} is not.")
        seen.add(name)
        fields.append(
            DeclaredField(
                name=name,
                type=str(item.get("type", "any")),
                format=str(item.get("format", "default")),
                constraints=dict(item.get("constraints") or {}),
                true_values=tuple(map(str, item.get("trueValues", DEFAULT_TRUE_VALUES))),
                false_values=tuple(map(str, item.get("falseValues", DEFAULT_FALSE_VALUES))),
                group_char=item.get("groupChar"),
                decimal_char=str(item.get("decimalChar", ".")),
                bare_number=bool(item.get("bareNumber", True)),
            )
        )
    primary_key = schema.primary_key or []
    for name in primary_key:
        if name not in seen:
            raise _schema_error(f"primaryKey names {name!r}, which is not a field.")
    return TableSchema(
        fields=tuple(fields),
        missing_values=tuple(schema.missing_values),
        primary_key=tuple(primary_key),
        descriptor=raw,
    )


@dataclass(frozen=True)
class Check:
    """One way a declared field can fail: `predicate` is true on a failing row."""

    field_name: str
    kind: str  # a Frictionless error type: type-error, constraint-error, unique-error
    predicate: str
    note: str


def _strptime_format(fmt: str) -> str | None:
    return None if fmt in _PLAIN_FORMATS else fmt


def cast_expression(declared: DeclaredField, source: str, source_is_text: bool, p: Params) -> str:
    """SQL that turns the raw column `source` into the declared type; NULL where it cannot."""
    db_type = declared.db_type
    text = source if source_is_text else f"CAST({source} AS VARCHAR)"
    kind = declared.type
    if kind in ("string", "any", "yearmonth", "geopoint"):
        return text
    if kind in ("integer", "number"):
        needs_text = declared.group_char or declared.decimal_char != "." or not declared.bare_number
        if not needs_text and not source_is_text:
            return f"TRY_CAST({source} AS {db_type})"
        value = text
        if declared.group_char:
            value = f"replace({value}, {p.add(declared.group_char)}, '')"
        if declared.decimal_char != ".":
            value = f"replace({value}, {p.add(declared.decimal_char)}, '.')"
        if not declared.bare_number:
            # Table Schema's bareNumber=false: currency signs, percent and the like around it.
            value = f"regexp_replace({value}, '^[^0-9+\\-.]+|[^0-9.]+$', '', 'g')"
        return f"TRY_CAST(trim({value}) AS {db_type})"
    if kind == "boolean":
        if not source_is_text and (
            declared.true_values == DEFAULT_TRUE_VALUES
            and declared.false_values == DEFAULT_FALSE_VALUES
        ):
            return f"TRY_CAST({source} AS BOOLEAN)"
        trues = p.add(list(declared.true_values))
        falses = p.add(list(declared.false_values))
        return (
            f"CASE WHEN list_contains({trues}, {text}) THEN true "
            f"WHEN list_contains({falses}, {text}) THEN false END"
        )
    if kind in ("date", "datetime", "time"):
        fmt = _strptime_format(declared.format)
        if fmt is not None:
            return f"CAST(TRY_STRPTIME({text}, {p.add(fmt)}) AS {db_type})"
        return f"TRY_CAST({source} AS {db_type})"
    if kind == "year":
        return f"TRY_CAST({source} AS INTEGER)"
    if kind == "duration":
        return f"TRY_CAST({source} AS INTERVAL)"
    if kind in ("object", "array", "geojson"):
        if not source_is_text:
            return f"TRY_CAST({source} AS JSON)"
        json_kind = "ARRAY" if kind == "array" else "OBJECT"
        return (
            f"CASE WHEN json_valid({text}) AND json_type({text}) = '{json_kind}' "
            f"THEN CAST({text} AS JSON) END"
        )
    return text


def checks_for(
    declared: DeclaredField,
    source: str,
    cast: str,
    p: Params,
    *,
    in_primary_key: bool,
) -> list[Check]:
    """Failure predicates for one field: the cast, then each constraint it declares."""
    name = declared.name
    checks = [
        Check(
            name,
            "type-error",
            f"({source} IS NOT NULL AND ({cast}) IS NULL)",
            f'type is "{declared.type}/{declared.format}"',
        )
    ]
    constraints = declared.constraints
    if constraints.get("required") or in_primary_key:
        checks.append(
            Check(
                name, "constraint-error", f"({source} IS NULL)", 'constraint "required" is "True"'
            )
        )
    typed = f"({cast})"
    if constraints.get("unique"):
        checks.append(
            Check(
                name,
                "unique-error",
                # Window count: duplicates are found in the same scan, no self-join.
                f"({typed} IS NOT NULL AND count(*) OVER (PARTITION BY {typed}) > 1)",
                "the same value appears in more than one row",
            )
        )
    for key, operator in (
        ("minimum", "<"),
        ("maximum", ">"),
        ("exclusiveMinimum", "<="),
        ("exclusiveMaximum", ">="),
    ):
        if key in constraints:
            bound = f"TRY_CAST({p.add(str(constraints[key]))} AS {declared.db_type})"
            checks.append(
                Check(
                    name,
                    "constraint-error",
                    f"({typed} {operator} {bound})",
                    f'constraint "{key}" is "{constraints[key]}"',
                )
            )
    for key, operator in (("minLength", "<"), ("maxLength", ">")):
        if key in constraints:
            length = (
                f"json_array_length({typed})"
                if declared.type == "array"
                else f"length(CAST({typed} AS VARCHAR))"
            )
            checks.append(
                Check(
                    name,
                    "constraint-error",
                    f"({length} {operator} {p.add(int(constraints[key]))})",
                    f'constraint "{key}" is "{constraints[key]}"',
                )
            )
    if "pattern" in constraints:
        checks.append(
            Check(
                name,
                "constraint-error",
                f"(NOT regexp_full_match(CAST({source} AS VARCHAR), "
                f"{p.add(constraints['pattern'])}))",
                f'constraint "pattern" is "{constraints["pattern"]}"',
            )
        )
    if "enum" in constraints:
        members = [str(v) for v in constraints["enum"]]
        checks.append(
            Check(
                name,
                "constraint-error",
                f"({typed} IS NOT NULL AND NOT list_contains("
                f"list_transform({p.add(members)}, x -> TRY_CAST(x AS {declared.db_type})), "
                f"{typed}))",
                f'constraint "enum" is "{constraints["enum"]}"',
            )
        )
    return checks


def column(name: str) -> str:
    return quote_identifier(name)
