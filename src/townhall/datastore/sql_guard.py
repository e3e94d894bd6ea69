"""User SQL, checked before DuckDB sees it: one SELECT over published tables the caller may read.

The check works on sqlglot's syntax tree (DuckDB dialect) and the SQL that runs is generated from
that same tree, every identifier quoted, so what was checked is what runs:

- exactly one statement, and it is a query: SELECT, a set operation (UNION ...), WITH allowed;
  no command anywhere in it (COPY, ATTACH, INSTALL, LOAD, SET, PRAGMA, CALL, DDL, DML, EXPORT);
- every table is a CTE in scope or a dataset name the resolver accepts (a slug such as
  `"street-trees"`, optionally `@N` for version N, or a resource's table `r_<id>`); the resolver
  checks the caller may read it and binds it to its lake table *at the published snapshot*;
  nothing else may stand in FROM: no table functions (`read_csv`, `read_parquet`, `glob`,
  `query_table`, `range`...), no strings or file paths, no `catalog.schema.table`, no `AT
  (VERSION => ...)` of the user's own;
- every function called is on the allowlist: DuckDB's own scalar, aggregate and macro functions
  (table functions are never on it) less a few that read settings or write logs;
- no parameters, no `SELECT ... INTO`, no locking clauses.

CTE names must be plain identifiers, so a name in a wrong scope can never become a file read by
DuckDB's replacement scans.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

import sqlglot
from sqlglot import exp
from sqlglot.errors import ParseError, TokenError

from townhall.errors import TownhallError

MAX_SQL_CHARS = 20_000
_PLAIN_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_FILE_LIKE = re.compile(r"[/\\:*?]|\.[A-Za-z0-9]+$|^\.|~")
_CALL_NAME = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*\(")

_DENIED_NODE_NAMES = (
    "Command",
    "Copy",
    "Insert",
    "Update",
    "Delete",
    "Merge",
    "Create",
    "Drop",
    "Alter",
    "AlterColumn",
    "Set",
    "SetItem",
    "Pragma",
    "Use",
    "Attach",
    "Detach",
    "Install",
    "Load",
    "Transaction",
    "Commit",
    "Rollback",
    "Describe",
    "Summarize",
    "Export",
    "Into",
    "Lock",
    "Placeholder",
    "Parameter",
    "SessionParameter",
    "Kill",
    "Refresh",
    "Cache",
    "Uncache",
    "Analyze",
    "Grant",
    "Revoke",
    "Comment",
    "Truncate",
    "TruncateTable",
)
_DENIED_NODES: tuple[type[exp.Expression], ...] = tuple(
    node for name in _DENIED_NODE_NAMES if isinstance(node := getattr(exp, name, None), type)
)
_QUERY_ROOTS: tuple[type[exp.Expression], ...] = (exp.Select, exp.SetOperation, exp.Subquery)


@dataclass(frozen=True)
class TableBinding:
    """Where a name the user wrote really points: a lake table at a snapshot."""

    table_name: str
    snapshot_id: int
    label: str
    """How the table is reported back (`street-trees@2`)."""


Resolver = Callable[[str, int | None], TableBinding]
"""`resolve(name, version)` -> binding; raises TownhallError (404 for names the caller may not
read, so existence is not leaked)."""


@dataclass(frozen=True)
class GuardedSql:
    sql: str
    """The query to run, generated from the checked tree."""
    tables: tuple[str, ...]
    tree: exp.Expression | None = field(default=None, compare=False, repr=False)
    """The checked tree with every table bound to the lake (for `sql_on_copies`)."""

    def sql_on_copies(self, alias_of: Callable[[str, int], str | None]) -> str:
        """The query with each lake table that has a serving copy (`alias_of(table,
        snapshot)` names the attached copy, or None) read from that copy instead. Only tables
        this query was checked and bound to are rewritten: the guard refuses qualified names,
        so every `lake.` table in the tree is one of its bindings."""
        if self.tree is None:
            return self.sql
        from townhall.datastore.lake import LAKE

        def swap(node: exp.Expression) -> exp.Expression:
            if not isinstance(node, exp.Table) or node.catalog != LAKE:
                return node
            when = node.args.get("when")
            snapshot = when.expression if isinstance(when, exp.HistoricalData) else None
            if not isinstance(snapshot, exp.Literal):
                return node
            alias = alias_of(node.name, int(snapshot.this))
            if alias is None:
                return node
            return exp.Table(
                this=exp.to_identifier(node.name, quoted=True),
                db=exp.to_identifier("main", quoted=True),
                catalog=exp.to_identifier(alias, quoted=True),
                alias=node.args.get("alias"),
            )

        return self.tree.copy().transform(swap).sql(dialect="duckdb", identify=True)


def invalid_sql(message: str) -> TownhallError:
    return TownhallError(400, "invalid_sql", message)


def not_allowed(message: str, errors: list[dict[str, object]] | None = None) -> TownhallError:
    return TownhallError(400, "sql_not_allowed", message, errors=errors or [])


def guard_sql(sql: str, resolve: Resolver, allowed_functions: frozenset[str]) -> GuardedSql:
    """Check `sql` and return the query to run. Raises TownhallError `invalid_sql` (does not
    parse, not one statement) or `sql_not_allowed` (names what is refused), both 400, or the
    resolver's error for a table the caller may not read."""
    if not sql or not sql.strip():
        raise invalid_sql("The SQL is empty.")
    if len(sql) > MAX_SQL_CHARS:
        raise invalid_sql(f"The SQL is longer than {MAX_SQL_CHARS} characters.")
    if "\x00" in sql:
        raise invalid_sql("The SQL holds a NUL character.")
    try:
        statements = [s for s in sqlglot.parse(sql, read="duckdb") if s is not None]
    except (ParseError, TokenError) as error:
        raise invalid_sql(f"The SQL does not parse: {_first_line(error)}") from error
    except RecursionError as error:
        raise invalid_sql("The SQL is nested too deeply.") from error
    if len(statements) != 1:
        raise invalid_sql(f"Send exactly one statement, not {len(statements)}.")
    tree = statements[0]
    if not isinstance(tree, _QUERY_ROOTS) or (
        isinstance(tree, exp.Subquery) and not isinstance(tree.unnest(), exp.Query)
    ):
        raise not_allowed(
            f"Only a SELECT query is allowed (WITH is fine), not {_statement_name(tree)}."
        )
    for node in tree.walk():
        if isinstance(node, _DENIED_NODES):
            raise not_allowed(f"{_statement_name(node)} is not allowed in a query.")
    bindings: list[tuple[exp.Table, TableBinding]] = []
    _check_scope(tree, frozenset(), resolve, bindings)
    _check_functions(tree, allowed_functions)
    for node, binding in bindings:
        node.replace(_lake_table(node, binding))
    try:
        text = tree.sql(dialect="duckdb", identify=True)
    except Exception as error:  # sqlglot cannot render what it parsed: refuse, never guess
        raise invalid_sql(f"The SQL cannot be processed: {_first_line(error)}") from error
    return GuardedSql(
        text, tuple(dict.fromkeys(binding.label for _, binding in bindings)), tree=tree
    )


def _first_line(error: Exception) -> str:
    text = str(error).strip().splitlines()
    return re.sub(r"\x1b\[[0-9;]*m", "", text[0] if text else type(error).__name__)[:300]


def _statement_name(node: exp.Expression) -> str:
    if isinstance(node, exp.Command):
        return str(node.this).upper()
    return re.sub(r"(?<!^)(?=[A-Z])", " ", type(node).__name__).upper()


def _children(node: exp.Expression) -> list[tuple[str, exp.Expression]]:
    found = []
    for key, value in node.args.items():
        values = value if isinstance(value, list) else [value]
        found.extend((key, item) for item in values if isinstance(item, exp.Expression))
    return found


def _check_scope(
    node: exp.Expression,
    ctes: frozenset[str],
    resolve: Resolver,
    bindings: list[tuple[exp.Table, TableBinding]],
) -> None:
    """Walk the tree keeping the CTE names visible at each point (WITH scoping)."""
    with_clause = node.args.get("with") or node.args.get("with_")
    if isinstance(with_clause, exp.With):
        visible = set(ctes)
        names = []
        for cte in with_clause.expressions:
            name = cte.alias_or_name
            if not _PLAIN_NAME.match(name):
                raise not_allowed(
                    f"CTE names must be plain identifiers (letters, digits, _), not {name!r}."
                )
            names.append(name.lower())
        recursive = bool(with_clause.args.get("recursive"))
        for cte, name in zip(with_clause.expressions, names, strict=True):
            scope = visible | {name} if recursive else visible
            _check_scope(cte.this, frozenset(scope), resolve, bindings)
            visible.add(name)
        ctes = frozenset(visible)
    if isinstance(node, exp.Table):
        _check_table(node, ctes, resolve, bindings)
    for key, child in _children(node):
        if child is with_clause or key in ("with", "with_"):
            continue
        if isinstance(node, exp.Table) and key in ("this", "db", "catalog", "alias"):
            continue
        _check_scope(child, ctes, resolve, bindings)


def _check_table(
    node: exp.Table,
    ctes: frozenset[str],
    resolve: Resolver,
    bindings: list[tuple[exp.Table, TableBinding]],
) -> None:
    target = node.this
    if not isinstance(target, exp.Identifier):
        name = _call_name(target) if isinstance(target, exp.Func) else target.sql("duckdb")
        raise not_allowed(
            f"Only dataset tables may stand in FROM; table functions and file reads such as "
            f"{name!r} are not allowed.",
            [{"table": name}],
        )
    if node.args.get("when") is not None or node.args.get("version") is not None:
        raise not_allowed(
            'Name a version as "slug@N" or with the `version` parameter, not with AT/AS OF.'
        )
    if node.args.get("db") is not None or node.args.get("catalog") is not None:
        raise not_allowed(
            f'Tables are named by dataset slug (FROM "street-trees"), not {node.sql("duckdb")}.',
            [{"table": node.sql("duckdb")}],
        )
    name = target.name
    if name.lower() in ctes:
        return
    if _FILE_LIKE.search(name):
        # DuckDB would read such a name as a file (a replacement scan); slugs never look so.
        raise not_allowed(
            f"Files cannot be read: {name!r} is not a dataset. Name datasets by slug.",
            [{"table": name}],
        )
    name, version = _split_version(name)
    bindings.append((node, resolve(name, version)))


def _split_version(name: str) -> tuple[str, int | None]:
    base, at, number = name.rpartition("@")
    if at and base and number.isdigit():
        return base, int(number)
    return name, None


def _lake_table(node: exp.Table, binding: TableBinding) -> exp.Table:
    from townhall.datastore.lake import LAKE

    alias = node.args.get("alias")
    if alias is None:
        # Keep the name the user wrote usable as a qualifier ("street-trees".col).
        alias = exp.TableAlias(this=exp.to_identifier(node.this.name, quoted=True))
    return exp.Table(
        this=exp.to_identifier(binding.table_name, quoted=True),
        db=exp.to_identifier("main", quoted=True),
        catalog=exp.to_identifier(LAKE, quoted=True),
        when=exp.HistoricalData(
            this="AT", kind="VERSION", expression=exp.Literal.number(binding.snapshot_id)
        ),
        alias=alias,
    )


def _call_name(node: exp.Func) -> str:
    if isinstance(node, exp.Anonymous):
        return str(node.name).lower()
    try:
        rendered = node.sql(dialect="duckdb")
    except Exception:
        return type(node).__name__.lower()
    match = _CALL_NAME.match(rendered)
    return match.group(1).lower() if match else ""


def _check_functions(tree: exp.Expression, allowed: frozenset[str]) -> None:
    for node in tree.find_all(exp.Func):
        name = _call_name(node)
        if not name:
            continue  # syntax, not a call: [1, 2], {'a': 1}, x::INT, CASE ...
        if name not in allowed:
            raise not_allowed(f"The function {name}() is not allowed.", [{"function": name}])
