"""Roles, permissions and the route access markers.

Every route declares either `requires("x:y")` or `PUBLIC` among its dependencies; a test walks
`app.routes` and fails on one that declares neither (as warehouse refuses such views).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

ROLES: dict[str, str] = {
    "admin": "Runs the portal: users, roles, tokens, audit, backups, lockdown.",
    "publisher": "Publishes open datasets for their organizations.",
    "manager": "Leads an office: dashboards, queues, staffing, service directory.",
    "staff": "Works service requests and the counter queue of their office.",
    "partner": "An outside body (another agency, a researcher) that may read restricted data.",
}

# Every permission, with what it allows. docs/permissions.md lists them all (checked by a test).
PERMISSIONS: dict[str, str] = {
    "account:read": "See one's own account.",
    "tokens:manage-own": "Create, list and revoke one's own API tokens.",
    "users:read": "List users and their roles.",
    "users:manage": "Create users, change roles and memberships, deactivate users.",
    "tokens:manage-any": "List and revoke any user's API tokens.",
    "audit:read": "Read the audit trail and verify it.",
    "events:subscribe": "Subscribe to the staff event stream.",
    "organizations:manage": "Create and edit organizations (offices).",
    "datasets:read-restricted": "Read datasets restricted to partners.",
    "datasets:publish": "Create, ingest and publish datasets of one's organizations.",
    "datasets:review": "Approve or send back datasets in review (never one's own, where the "
    "organization requires review).",
    "governance:read": "See the data inventory, classifications, retention reports and "
    "publication runs.",
    "governance:manage": "Set review rules, lower a column's classification, edit retention "
    "policies and privacy-safe publication pipelines, and run them.",
    "directory:edit": "Edit the public service directory and office status.",
    "queues:operate": "Issue, call and serve tickets at an office counter.",
    "requests:work": "Work service requests: triage, assign, update, reply.",
    "insights:read": "See staff dashboards and area indicators.",
    "open311:submit": "Submit service requests through Open311 (the api_key scope).",
    "system:admin": "Backups, restore, lockdown and other administration.",
}

_STAFF = {
    "account:read",
    "tokens:manage-own",
    "events:subscribe",
    "queues:operate",
    "requests:work",
}
ROLE_PERMISSIONS: dict[str, frozenset[str]] = {
    "admin": frozenset(PERMISSIONS),
    "publisher": frozenset(
        {
            "account:read",
            "tokens:manage-own",
            "events:subscribe",
            "datasets:publish",
            "datasets:review",
            "datasets:read-restricted",
            "governance:read",
            "open311:submit",
        }
    ),
    "manager": frozenset(
        _STAFF
        | {
            "insights:read",
            "governance:read",
            "directory:edit",
            "users:read",
            "datasets:read-restricted",
            "open311:submit",
        }
    ),
    "staff": frozenset(_STAFF | {"open311:submit"}),
    "partner": frozenset(
        {"account:read", "tokens:manage-own", "datasets:read-restricted", "open311:submit"}
    ),
}

ACCESS_MARKER = "__townhall_access__"


def mark_access(dependency: Callable[..., Any], access: str) -> Callable[..., Any]:
    """Tag a dependency so the route walker can see which access a route declared."""
    setattr(dependency, ACCESS_MARKER, access)
    return dependency


def permissions_for_role(role: str) -> frozenset[str]:
    return ROLE_PERMISSIONS.get(role, frozenset())
