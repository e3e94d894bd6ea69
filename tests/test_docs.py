"""Docs kept honest (as datasette's tests/test_docs.py does): every setting, CLI command and
option, role, permission and error code in the code must be documented in docs/, and the
reference material there must agree with the code."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import typer.main

from townhall.accounts.permissions import PERMISSIONS, ROLE_PERMISSIONS, ROLES
from townhall.audit.chain import GENESIS_HASH
from townhall.audit.chain import entry_hash as chain_entry_hash
from townhall.cli import app as cli_app
from townhall.config import Settings
from townhall.errors import ERROR_CODES

DOCS = Path(__file__).resolve().parents[1] / "docs"
REQUIRED_PAGES = [
    "architecture.md",
    "configuration.md",
    "operations.md",
    "api.md",
    "permissions.md",
    "audit.md",
    "cli.md",
]


def page(name: str) -> str:
    return (DOCS / name).read_text(encoding="utf-8")


def all_docs() -> str:
    return "\n".join(path.read_text(encoding="utf-8") for path in sorted(DOCS.rglob("*.md")))


def mentioned(text: str, name: str) -> bool:
    """`name` appears as code (in backticks), so `env` is not found inside `environment`."""
    return f"`{name}`" in text


@pytest.mark.parametrize("name", REQUIRED_PAGES)
def test_page_exists(name):
    assert (DOCS / name).is_file(), f"docs/{name} is missing"


def test_links_between_pages_resolve():
    broken = []
    for path in DOCS.rglob("*.md"):
        for target in re.findall(r"\]\(([^)#\s]+\.md)(?:#[^)]*)?\)", path.read_text("utf-8")):
            if not (path.parent / target).is_file():
                broken.append(f"{path.name} -> {target}")
    assert not broken, broken


# Settings


@pytest.mark.parametrize("field", list(Settings.model_fields))
def test_every_setting_is_documented(field):
    text = page("configuration.md")
    assert mentioned(text, field), f"setting {field!r} is not in docs/configuration.md"
    variable = f"TOWNHALL_{field.upper()}"
    assert mentioned(text, variable), f"{variable} is not in docs/configuration.md"


def test_the_config_file_variable_is_documented():
    assert mentioned(page("configuration.md"), "TOWNHALL_CONFIG_FILE")


def test_documented_settings_exist():
    """A setting removed from the code must leave the docs too."""
    documented = set(re.findall(r"`TOWNHALL_([A-Z0-9_]+)`", page("configuration.md")))
    known = {field.upper() for field in Settings.model_fields} | {"CONFIG_FILE"}
    assert documented <= known, f"documented but not settings: {sorted(documented - known)}"


# CLI


def cli_commands() -> Iterator[tuple[str, Any]]:
    """Every command and subcommand as ('townhall users create', click command)."""

    def walk(command: Any, path: list[str]) -> Iterator[tuple[str, Any]]:
        yield " ".join(["townhall", *path]), command
        # Typer 0.29 vendors click: groups are recognised by their `commands`, not by type.
        for name, sub in (getattr(command, "commands", None) or {}).items():
            yield from walk(sub, [*path, name])

    yield from walk(typer.main.get_command(cli_app), [])


def cli_section(text: str, command: str) -> str:
    """The part of cli.md under the heading of `command`, up to the next heading."""
    match = re.search(rf"^#+ `{re.escape(command)}`\s*$", text, re.MULTILINE)
    assert match, f"no heading for `{command}` in docs/cli.md"
    rest = text[match.end() :]
    following = re.search(r"^#+ ", rest, re.MULTILINE)
    return rest[: following.start()] if following else rest


COMMANDS = [name for name, _ in cli_commands() if name != "townhall"]


def test_the_cli_walk_finds_subcommands():
    assert {"townhall serve", "townhall db upgrade", "townhall tokens revoke"} <= set(COMMANDS)


@pytest.mark.parametrize("command", COMMANDS)
def test_every_cli_command_has_a_section(command):
    cli_section(page("cli.md"), command)


@pytest.mark.parametrize("command", ["townhall", *COMMANDS])
def test_every_cli_option_is_documented(command):
    click_command = dict(cli_commands())[command]
    text = page("cli.md")
    section = text if command == "townhall" else cli_section(text, command)
    for param in click_command.params:
        if getattr(param, "hidden", False):
            continue
        names = param.opts if param.opts and param.opts[0].startswith("-") else [param.name.upper()]
        assert any(mentioned(section, name) for name in names), (
            f"{command}: {names[0]} is not documented in its section of docs/cli.md"
        )


# Roles and permissions


@pytest.mark.parametrize("permission", list(PERMISSIONS))
def test_every_permission_is_documented(permission):
    assert mentioned(page("permissions.md"), permission)


@pytest.mark.parametrize("role", list(ROLES))
def test_every_role_is_documented(role):
    assert mentioned(page("permissions.md"), role)


def documented_matrix() -> dict[str, set[str]]:
    """The role-by-permission table of permissions.md, as {role: {permissions}}."""
    text = page("permissions.md")
    headers = [
        match
        for match in re.finditer(r"^\| permission \|((?: [a-z]+ \|)+)\s*$", text, re.MULTILINE)
        if {cell.strip() for cell in match.group(1).split("|") if cell.strip()} & set(ROLES)
    ]
    assert len(headers) == 1, "expected one role-by-permission table in docs/permissions.md"
    header = headers[0]
    roles = [cell.strip() for cell in header.group(1).split("|") if cell.strip()]
    matrix: dict[str, set[str]] = {role: set() for role in roles}
    for line in text[header.end() :].splitlines()[2:]:
        if not line.startswith("| `"):
            break
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        permission = cells[0].strip("`")
        for role, cell in zip(roles, cells[1:], strict=True):
            if cell:
                matrix[role].add(permission)
    return matrix


def test_the_role_table_matches_the_code():
    expected = {role: set(permissions) for role, permissions in ROLE_PERMISSIONS.items()}
    assert documented_matrix() == expected


# Error codes


@pytest.mark.parametrize("code", list(ERROR_CODES))
def test_every_error_code_is_documented(code):
    assert mentioned(page("api.md"), code), f"error code {code!r} is not in docs/api.md"


def test_the_not_found_family_is_documented():
    assert mentioned(page("api.md"), "<thing>_not_found")


def test_documented_error_codes_exist():
    text = page("api.md")
    table = text[text.index("### Error codes") :]
    documented = set(re.findall(r"^\| `([a-z_<>]+)` \|", table, re.MULTILINE))
    unknown = {
        code for code in documented if code not in ERROR_CODES and not code.endswith("_not_found")
    }
    assert not unknown, f"documented but not in ERROR_CODES: {sorted(unknown)}"


def test_everything_is_somewhere_in_docs():
    """The brief's floor: each name appears in docs/ at all (the tests above say where)."""
    text = all_docs()
    names = [*Settings.model_fields, *PERMISSIONS, *ROLES, *ERROR_CODES]
    missing = [name for name in names if not mentioned(text, name)]
    assert not missing, missing


# The audit chain's reference implementation


def reference_implementation() -> dict[str, Any]:
    blocks = re.findall(r"```python\n(.*?)```", page("audit.md"), re.DOTALL)
    assert blocks, "docs/audit.md has no Python reference implementation"
    namespace: dict[str, Any] = {}
    exec(compile(blocks[0], "docs/audit.md", "exec"), namespace)
    return namespace


def sample_chain() -> list[dict[str, Any]]:
    """Entries as townhall.audit.chain hashes them, with awkward values on purpose."""
    start = datetime(2026, 3, 1, 8, 30, 0, tzinfo=UTC)
    samples: list[dict[str, Any]] = [
        {"actor_id": 1, "actor": "user:admin@city.example", "changes": {}, "request_id": "r-1"},
        {
            "actor_id": None,
            "actor": "cli",
            "changes": {"name": 'Zoë "Z" — Ünïcode\n\u2028'},
            "request_id": None,
        },
        {
            "actor_id": 7,
            "actor": "user:b@city.example",
            "changes": {
                "role": ["staff", "admin"],
                "z": {"b": 1, "a": [0.1, 1e-05, 10**20]},
                "flag": True,
                "none": None,
            },
            "request_id": "abc",
        },
    ]
    rows: list[dict[str, Any]] = []
    prev = GENESIS_HASH
    for seq, sample in enumerate(samples, start=1):
        # Microseconds of zero and a non-UTC offset: both must still give the canonical form.
        at = (start + timedelta(minutes=seq, microseconds=seq % 2 * 123)).astimezone(
            timezone(timedelta(hours=2))
        )
        fields = {
            "seq": seq,
            "at": at,
            "action": "user.update",
            "object_type": "user",
            "object_id": str(seq),
            "prev_hash": prev,
            **sample,
        }
        row = {**fields, "entry_hash": chain_entry_hash(**fields)}
        rows.append(row)
        prev = row["entry_hash"]
    return rows


def test_reference_hash_matches_the_code():
    reference = reference_implementation()
    for row in sample_chain():
        assert reference["entry_hash"](row) == row["entry_hash"]
        # As SQLite gives them back: naive UTC text, changes as JSON text.
        stored = {
            **row,
            "at": row["at"].astimezone(UTC).replace(tzinfo=None).isoformat(sep=" "),
            "changes": json.dumps(row["changes"]),
        }
        assert reference["entry_hash"](stored) == row["entry_hash"]


def test_reference_verify_finds_what_townhall_verify_finds():
    first_problem = reference_implementation()["first_problem"]
    rows = sample_chain()
    assert first_problem(rows) is None
    assert "seq 2 was altered" in first_problem([rows[0], {**rows[1], "actor": "x"}, rows[2]])
    assert "missing or were moved" in first_problem([rows[0], rows[2]])
    relinked = {**rows[2], "prev_hash": rows[0]["entry_hash"]}
    assert "does not link" in first_problem([rows[0], rows[1], relinked])


def test_the_documented_checkpoint_is_the_signed_one():
    from townhall.integrity.checkpoints import CHECKPOINT_TYPE, checkpoint_document

    text = page("audit.md")
    block = re.search(r"## Signed checkpoints.*?```json\n(.*?)```", text, re.DOTALL)
    assert block, "docs/audit.md shows no checkpoint document"
    keys = re.findall(r'^\s*"([a-z_]+)":', block.group(1), re.MULTILINE)
    signed = checkpoint_document(
        seq=1, entry_hash="0" * 64, at=datetime(2026, 1, 1, tzinfo=UTC), prev=GENESIS_HASH
    )
    assert set(keys) == set(signed)
    assert f'"type": "{CHECKPOINT_TYPE}"' in block.group(1)
