"""CKAN Action API (v3) over the catalog and the datastore, so `ckanapi` and harvesters work.

Served on `/api/3/action/{name}` and `/api/action/{name}`, by GET (query parameters) or POST
(JSON body, form fields, or multipart with an `upload` file). Answers keep CKAN's envelope
`{"help": ..., "success": true, "result": ...}` and, on failure, `{"help": ..., "success": false,
"error": {"__type": "Not Found Error", "message": ...}}`: CKAN clients ignore the HTTP status
and read `error.__type`, so the `__type` strings are CKAN's own ("Not Found Error", "Validation
Error", "Authorization Error", "Search Query Error", ...). HTTP statuses follow CKAN too (404,
409 for validation, 403, 400).

This module is an adapter: every write goes through the catalog's audited actions, every read
through its queries, with the caller's permissions. Mapping (CKAN → Townhall):

| CKAN package | Townhall dataset |
|---|---|
| `id` | the dataset's numeric id, as a string |
| `name` | `slug` (renaming is refused) |
| `title`, `notes` | `title`, `description` |
| `tags[].name` (or `tag_string`) | `keywords` |
| `groups[].name` | `themes` (EU data-theme codes, lower-cased as CKAN group names) |
| `owner_org`, `organization` | the organization (by id or name) |
| `license_id` | `license_id` (CKAN ids such as `cc-by`, `odc-odbl`, `uk-ogl` are mapped) |
| `maintainer`, `maintainer_email` | `contact_name`, `contact_email` |
| `url` | `landing_page` |
| `private` | `visibility` (`private: true` keeps an existing `restricted`) |
| `state` | `active` = published, `draft`, `deleted` |
| `extras` | frequency, temporal_start, temporal_end, spatial, language, conforms_to, visibility |
| `metadata_created`, `metadata_modified` | `created_at`, `updated_at` (naive UTC, CKAN's format) |

The DataStore actions name a table by its resource id. `resource_create`/`resource_update`
with an `upload` file, `datastore_create`, `datastore_upsert` (method `insert`) and
`datastore_delete` each publish a new version of the whole table through the datastore's
ingest, before the call returns (xloader's job, done in line: `datastore_search` works as soon
as the answer arrives, and a bad file is a "Validation Error" naming rows and columns while the
previous version stays). `datastore_search` and `datastore_search_sql` go through the
datastore's query layer: bound filters, the SQL guard, the time limit and the row cap.

Known differences from CKAN, each deliberate: `package_update` keeps the resources when the
`resources` key is absent (CKAN ≥ 2.10 does the same) and cannot clear a single-valued field
that is set (the catalog's update action treats `None` as "unchanged"), so it says so instead of
ignoring it; unknown top-level keys and extras are refused instead of being dropped silently;
`q`/`fq` understand the Solr subset harvesters use (words, `field:value`, `field:"a b"`,
`field:(a OR b)`, `-field:value`, `metadata_modified:[2024-01-01T00:00:00Z TO *]`), and say
so when given more.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response
from pydantic import ValidationError as PydanticValidationError
from sqlalchemy.orm import Session
from starlette.datastructures import UploadFile

from townhall import __version__
from townhall.accounts import actions as account_actions
from townhall.accounts import queries as account_queries
from townhall.accounts.auth import PublicActor, check_csrf
from townhall.accounts.models import Organization
from townhall.accounts.schemas import OrganizationCreate
from townhall.actor import Actor
from townhall.audit.actions import record
from townhall.catalog import actions, queries
from townhall.catalog.models import Dataset, Resource
from townhall.catalog.schemas import DatasetCreate, DatasetUpdate
from townhall.catalog.vocabularies import FREQUENCIES, LICENSES, THEMES
from townhall.config import Settings
from townhall.deps import DbSession
from townhall.errors import NotFoundError, PermissionDenied, TownhallError
from townhall.feeds import links

PREFIXES = ("/api/3/action/", "/api/action/")
# The CKAN release whose Action API this adapter follows; clients read it from status_show.
CKAN_API_VERSION = "2.10.4"
# CKAN's own limits: `ckan.search.rows_max` and `ckan.datastore.search.rows_max` defaults.
SEARCH_ROWS_MAX = 1000
SEARCH_ROWS_DEFAULT = 10
LIST_LIMIT_MAX = 1000
# The whole readable catalog is read once per search: hundreds or a few thousand datasets.
ALL = 1_000_000

router = APIRouter(tags=["ckan"])


# Plumbing ------------------------------------------------------------------------------------


@dataclass
class Call:
    """What one action call sees: the request's unit of work, the caller and the runtime."""

    session: Session
    actor: Actor
    request: Request

    @property
    def settings(self) -> Settings:
        return self.request.app.state.settings

    @property
    def base_url(self) -> str:
        return links.base(self.settings.base_url)

    @property
    def bus(self) -> Any:
        return self.request.app.state.runtime.events


ActionFunction = Callable[[Call, dict[str, Any]], Any]


@dataclass(frozen=True)
class ActionSpec:
    function: ActionFunction
    write: bool


ACTIONS: dict[str, ActionSpec] = {}


def action(name: str, *, write: bool = False) -> Callable[[ActionFunction], ActionFunction]:
    """Register a CKAN action. Read actions answer GET and POST; writes answer POST only."""

    def decorate(function: ActionFunction) -> ActionFunction:
        ACTIONS[name] = ActionSpec(function, write)
        return function

    return decorate


def help_url(settings: Settings, name: str) -> str:
    return f"{links.base(settings.base_url)}/api/3/action/help_show?name={name}"


def _invalid(field: str, message: str) -> TownhallError:
    """A CKAN "Validation Error" naming the field, as `{field: [message]}`."""
    return TownhallError(
        422,
        "invalid_request",
        f"{field}: {message}",
        errors=[{"loc": [field], "message": message, "type": "value_error"}],
    )


def _search_error(message: str) -> TownhallError:
    return TownhallError(400, "invalid_search_query", message)


_AUTH_CODES = frozenset(
    {
        "not_authenticated",
        "invalid_token",
        "session_expired",
        "permission_denied",
        "csrf_failed",
        "read_only_mode",
    }
)


_QUERY_ERRORS = frozenset({"invalid_sql", "query_timeout"})


def _error_type(status: int, code: str) -> tuple[str, int]:
    """CKAN's `__type` and HTTP status for one of our errors."""
    if code in _AUTH_CODES:
        return "Authorization Error", 403
    if status == 404 or code.endswith("_not_found"):
        return "Not Found Error", 404
    if code == "invalid_search_query":
        return "Search Query Error", 400
    if code in ("sql_not_allowed", "read_only_mode"):
        # Lockdown: CKAN has no "unavailable" type; clients treat this as not allowed now.
        return "Authorization Error", 403
    if code in ("unknown_action", "malformed_json", "method_not_allowed"):
        return "Bad Request", 400
    if status == 429:
        return "Too Many Requests", 429
    if status >= 500:
        return "Internal Server Error", 500
    return "Validation Error", 409


def ckan_error_shape(
    request: Request, status: int, code: str, message: str, errors: list[dict[str, Any]]
) -> Response:
    """Installed for the CKAN prefixes in `app.state.error_shapes` (see townhall.errors)."""
    name = request.url.path.rstrip("/").rsplit("/", 1)[-1]
    kind, http_status = _error_type(status, code)
    error: dict[str, Any] = {"__type": kind}
    if kind == "Validation Error":
        if not errors and code in _QUERY_ERRORS:
            errors = [{"loc": ["query"], "message": message}]  # CKAN's key for SQL errors
        for item in errors:
            loc = [str(p) for p in item.get("loc", [])]
            if len(loc) > 1 and loc[0] in ("body", "query", "path"):
                loc = loc[1:]  # FastAPI's "where" prefix; CKAN names the field alone
            key = loc[-1] if loc else "message"
            error.setdefault(key, []).append(item.get("message") or message)
        error["message"] = message
    elif kind == "Authorization Error":
        error["message"] = f"Access denied: {message}"
    elif kind == "Not Found Error":
        error["message"] = f"Not found: {message}"
    else:
        error["message"] = message
    body = {"help": help_url(request.app.state.settings, name), "success": False, "error": error}
    return JSONResponse(body, status_code=http_status)


async def _request_data(request: Request) -> dict[str, Any]:
    """The action's data dict, read as CKAN reads it: query string for GET, else the body."""

    def mixed(items: Iterable[tuple[str, Any]]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in items:
            if key in out:
                previous = out[key]
                out[key] = [*previous, value] if isinstance(previous, list) else [previous, value]
            else:
                out[key] = value
        return out

    if request.method == "GET":
        return mixed(request.query_params.multi_items())
    content_type = request.headers.get("content-type", "")
    if content_type.startswith(("multipart/form-data", "application/x-www-form-urlencoded")):
        form = await request.form()
        items = list(form.multi_items())
        values = [v for _, v in items]
        # Old jQuery clients post the JSON document as the only form key with an empty value.
        if len(items) == 1 and values[0] in ("", "1") and items[0][0].lstrip().startswith("{"):
            return _json_object(items[0][0])
        return mixed(items)
    body = await request.body()
    if not body.strip():
        return mixed(request.query_params.multi_items())
    return _json_object(body)


def _json_object(raw: str | bytes) -> dict[str, Any]:
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as error:
        raise TownhallError(400, "malformed_json", f"Bad request - JSON Error: {error}") from error
    if not isinstance(data, dict):
        raise TownhallError(
            400,
            "malformed_json",
            f"Bad request - JSON Error: the data decoded to a {type(data).__name__}; "
            "it needs to be an object",
        )
    return data


async def _call_action(name: str, request: Request, session: Session, actor: Actor) -> JSONResponse:
    spec = ACTIONS.get(name)
    if spec is None:
        raise TownhallError(400, "unknown_action", f"Bad request - Action name not known: {name}")
    if spec.write and request.method == "GET":
        raise TownhallError(
            400,
            "method_not_allowed",
            f"Bad request - {name} changes data: use POST for your request",
        )
    data = await _request_data(request)
    data.pop("callback", None)  # JSONP is not served
    if spec.write and actor.via == "session":
        await check_csrf(request, actor)
    result = await run_in_threadpool(spec.function, Call(session, actor, request), data)
    settings: Settings = request.app.state.settings
    return JSONResponse({"help": help_url(settings, name), "success": True, "result": result})


_ACTION_DOC = {
    "summary": "CKAN Action API",
    "description": "CKAN's Action API v3 (package_search, package_show, datastore_search, ...): "
    "GET with query parameters, or POST with a JSON body (multipart with an `upload` file for "
    "resource_create/update). Answers always carry CKAN's envelope; errors carry "
    "`error.__type`. `/api/action/{name}` is the same.",
}


@router.get("/api/3/action/{name}", operation_id="ckan_action_get", **_ACTION_DOC)
@router.post("/api/3/action/{name}", operation_id="ckan_action_post", **_ACTION_DOC)
async def ckan_action(name: str, request: Request, db: DbSession, actor: PublicActor) -> Response:
    return await _call_action(name, request, db, actor)


@router.api_route("/api/action/{name}", methods=["GET", "POST"], include_in_schema=False)
async def ckan_action_unversioned(
    name: str, request: Request, db: DbSession, actor: PublicActor
) -> Response:
    return await _call_action(name, request, db, actor)


@router.get("/api/3", include_in_schema=False)
def ckan_api_version(_actor: PublicActor) -> dict[str, int]:
    return {"version": 3}


def register(app: FastAPI) -> None:
    app.include_router(router)
    for prefix in PREFIXES:
        app.state.error_shapes[prefix] = ckan_error_shape


# Input coercion: GET and form values arrive as strings -----------------------------------------


def _str(data: dict[str, Any], key: str, default: str = "") -> str:
    value = data.get(key, default)
    if value is None:
        return default
    if isinstance(value, list):
        value = value[-1] if value else default
    if not isinstance(value, (str, int, float)) or isinstance(value, bool):
        raise _invalid(key, "must be a string")
    return str(value)


def _int(
    data: dict[str, Any], key: str, default: int, *, minimum: int = 0, maximum: int | None = None
) -> int:
    value = data.get(key)
    if value is None or value == "":
        return default
    if isinstance(value, bool):
        raise _invalid(key, "must be an integer")
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise _invalid(key, f"must be an integer, not {value!r}") from None
    if number < minimum:
        raise _invalid(key, f"must be at least {minimum}")
    if maximum is not None and number > maximum:
        raise _invalid(key, f"must be at most {maximum}")
    return number


_TRUE = frozenset({"true", "1", "yes", "on", "t", "y"})
_FALSE = frozenset({"false", "0", "no", "off", "f", "n", ""})


def _bool(data: dict[str, Any], key: str, default: bool) -> bool:
    value = data.get(key)
    if value is None:
        return default
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise _invalid(key, f"must be true or false, not {value!r}")


def _json_field(data: dict[str, Any], key: str) -> Any:
    """A structured value that GET and form requests send JSON-encoded."""
    value = data.get(key)
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def _str_list(data: dict[str, Any], key: str) -> list[str]:
    value = _json_field(data, key)
    if value is None or value == "":
        return []
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    if isinstance(value, list) and all(isinstance(v, (str, int)) for v in value):
        return [str(v) for v in value]
    raise _invalid(key, "must be a list of strings")


def _ref(data: dict[str, Any], key: str = "id") -> str:
    value = data.get(key)
    if isinstance(value, list):
        value = value[-1] if value else None
    if value is None or (isinstance(value, str) and not value.strip()):
        raise _invalid(key, "Missing value")
    if not isinstance(value, (str, int)) or isinstance(value, bool):
        raise _invalid(key, "must be an id or a name")
    return str(value).strip()


def _numeric_id(ref: str) -> int | None:
    # Bounded so that a 30-digit "id" is a miss, not an integer overflow in PostgreSQL.
    return int(ref) if ref.isdigit() and len(ref) <= 15 else None


# Output: CKAN's dictionaries --------------------------------------------------------------------


def ckan_time(value: datetime | None) -> str | None:
    """CKAN's timestamp format: ISO 8601, UTC, without an offset."""
    if value is None:
        return None
    return value.astimezone(UTC).replace(tzinfo=None).isoformat()


_MEDIA_TYPES = {
    "CSV": "text/csv",
    "TSV": "text/tab-separated-values",
    "JSON": "application/json",
    "NDJSON": "application/x-ndjson",
    "GEOJSON": "application/geo+json",
    "XLSX": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "XLS": "application/vnd.ms-excel",
    "PARQUET": "application/vnd.apache.parquet",
    "PDF": "application/pdf",
    "ZIP": "application/zip",
    "XML": "application/xml",
    "HTML": "text/html",
}


def media_type(resource: Resource) -> str | None:
    return resource.media_type or _MEDIA_TYPES.get(resource.format.upper())


def organization_dict(
    organization: Organization, *, package_count: int | None = None
) -> dict[str, Any]:
    result: dict[str, Any] = {
        "id": str(organization.id),
        "name": organization.slug,
        "title": organization.name,
        "display_name": organization.name,
        "description": organization.description or "",
        "type": "organization",
        "is_organization": True,
        "approval_status": "approved",
        "state": "active",
        "image_url": "",
        "image_display_url": "",
        "created": ckan_time(organization.created_at),
        "revision_id": None,
    }
    if package_count is not None:
        result["package_count"] = package_count
        result["num_followers"] = 0
    return result


def group_dict(code: str, *, package_count: int | None = None) -> dict[str, Any]:
    """An EU data theme as a CKAN group."""
    result: dict[str, Any] = {
        "id": code,
        "name": code.lower(),
        "title": THEMES[code],
        "display_name": THEMES[code],
        "description": f"EU data theme {code}",
        "image_display_url": "",
        "type": "group",
        "is_organization": False,
        "state": "active",
    }
    if package_count is not None:
        result["package_count"] = package_count
    return result


def tag_dict(name: str) -> dict[str, Any]:
    return {
        "id": name,
        "name": name,
        "display_name": name,
        "state": "active",
        "vocabulary_id": None,
    }


def resource_dict(call: Call, dataset: Dataset, resource: Resource) -> dict[str, Any]:
    table = resource.datastore_active or (resource.url is None)
    return {
        "id": str(resource.id),
        "package_id": str(dataset.id),
        "name": resource.name,
        "description": resource.description or "",
        "format": resource.format or "",
        "url": links.download_url(call.base_url, dataset, resource)
        if table
        else resource.url or "",
        "url_type": "upload" if table else None,
        "mimetype": media_type(resource),
        "mimetype_inner": None,
        "size": resource.size_bytes,
        "hash": resource.sha256 or "",
        "created": ckan_time(resource.created_at),
        "last_modified": ckan_time(resource.updated_at) if resource.datastore_active else None,
        "metadata_modified": ckan_time(resource.updated_at),
        "position": resource.position,
        "state": "active",
        "datastore_active": bool(resource.datastore_active),
        "resource_type": None,
        "cache_url": None,
        "cache_last_updated": None,
        "revision_id": None,
    }


def _state(dataset: Dataset) -> str:
    if dataset.state == "published":
        return "active"
    if dataset.state == "deleted":
        return "deleted"
    return "draft"


def _extras(dataset: Dataset) -> list[dict[str, str]]:
    extras: dict[str, str] = {}
    if dataset.frequency:
        extras["frequency"] = dataset.frequency
    if dataset.temporal_start:
        extras["temporal_start"] = dataset.temporal_start.isoformat()
    if dataset.temporal_end:
        extras["temporal_end"] = dataset.temporal_end.isoformat()
    if dataset.spatial:
        extras["spatial"] = dataset.spatial
    if dataset.languages:
        extras["language"] = json.dumps(dataset.languages)
    if dataset.conforms_to:
        extras["conforms_to"] = json.dumps(dataset.conforms_to)
    extras["visibility"] = dataset.visibility
    for key, value in sorted((dataset.extras or {}).items()):
        extras.setdefault(key, value if isinstance(value, str) else json.dumps(value))
    return [{"key": k, "value": v} for k, v in extras.items()]


def package_dict(call: Call, dataset: Dataset) -> dict[str, Any]:
    """A dataset as CKAN's package dictionary (the shape of `package_show`)."""
    license = LICENSES.get(dataset.license_id or "")
    keywords = list(dataset.keywords or [])
    return {
        "id": str(dataset.id),
        "name": dataset.slug,
        "title": dataset.title,
        "notes": dataset.description or "",
        "url": dataset.landing_page or "",
        "version": "",
        "type": "dataset",
        "state": _state(dataset),
        "private": dataset.visibility != "public",
        "author": None,
        "author_email": None,
        "maintainer": dataset.contact_name,
        "maintainer_email": dataset.contact_email,
        "license_id": dataset.license_id,
        "license_title": license.title if license else None,
        "license_url": license.url if license and license.url else None,
        "isopen": bool(license and license.open_data),
        "owner_org": str(dataset.organization_id),
        "organization": organization_dict(dataset.organization),
        "creator_user_id": str(dataset.created_by_id) if dataset.created_by_id else None,
        "metadata_created": ckan_time(dataset.created_at),
        "metadata_modified": ckan_time(dataset.updated_at),
        "tags": [tag_dict(k) for k in keywords],
        "num_tags": len(keywords),
        "groups": [group_dict(t) for t in dataset.themes or [] if t in THEMES],
        "extras": _extras(dataset),
        "resources": [resource_dict(call, dataset, r) for r in dataset.resources],
        "num_resources": len(dataset.resources),
        "relationships_as_object": [],
        "relationships_as_subject": [],
        "revision_id": None,
    }


# Lookups -------------------------------------------------------------------------------------


def find_dataset(call: Call, ref: str) -> Dataset:
    """A dataset by name (slug) or id that the caller may read; "Not Found Error" otherwise."""
    dataset = queries.dataset_by_slug(call.session, ref)
    if dataset is None and (number := _numeric_id(ref)) is not None:
        dataset = queries.dataset_by_id(call.session, number)
    if dataset is None or dataset.state == "deleted" or not queries.can_read(call.actor, dataset):
        raise NotFoundError("dataset", ref)
    return dataset


def find_resource(call: Call, ref: str) -> Resource:
    number = _numeric_id(ref)
    resource = queries.resource_by_id(call.session, number) if number is not None else None
    if resource is None:
        raise NotFoundError("resource", ref)
    dataset = resource.dataset
    if dataset.state == "deleted" or not queries.can_read(call.actor, dataset):
        raise NotFoundError("resource", ref)
    return resource


def find_organization(session: Session, ref: str) -> Organization:
    organization = account_queries.organization_by_slug(session, ref)
    if organization is None and (number := _numeric_id(ref)) is not None:
        organization = next(
            (o for o in account_queries.list_organizations(session) if o.id == number), None
        )
    if organization is None:
        raise NotFoundError("organization", ref)
    return organization


def readable_datasets(
    call: Call, *, q: str = "", include_private: bool = False, include_drafts: bool = False
) -> list[Dataset]:
    """Every dataset the caller may read, best match first when `q` has words.

    CKAN lists only public, active datasets unless asked for private ones or drafts (and the
    caller may read them).
    """
    outcome = queries.search_datasets(call.session, call.actor, q=q, limit=ALL)
    return [
        d
        for d in outcome.items
        if (include_drafts or d.state == "published")
        and (include_private or d.visibility == "public")
        and d.state != "deleted"
    ]


# Read actions --------------------------------------------------------------------------------


@action("status_show")
def status_show(call: Call, data: dict[str, Any]) -> dict[str, Any]:
    """The site's name, address, API version and extensions."""
    return {
        "site_title": call.settings.site_name,
        "site_url": call.base_url,
        "site_description": "Open data portal (Townhall)",
        "ckan_version": CKAN_API_VERSION,
        "townhall_version": __version__,
        "locale_default": "en",
        "extensions": ["datastore", "dcat"],
    }


@action("site_read")
def site_read(call: Call, data: dict[str, Any]) -> bool:
    """Whether the caller may read the site: always."""
    return True


@action("help_show")
def help_show(call: Call, data: dict[str, Any]) -> str:
    """The documentation of action `name`."""
    name = _ref(data, "name")
    spec = ACTIONS.get(name)
    if spec is None:
        raise NotFoundError("action", name)
    return (spec.function.__doc__ or name).strip()


@action("package_list")
def package_list(call: Call, data: dict[str, Any]) -> list[str]:
    """Names of the public, active datasets, sorted; `limit` and `offset` page them."""
    limit = _int(data, "limit", ALL, minimum=0)
    offset = _int(data, "offset", 0)
    names = sorted(
        d.slug
        for d in readable_datasets(
            call,
            include_private=_bool(data, "include_private", False),
            include_drafts=_bool(data, "include_drafts", False),
        )
    )
    return names[offset : offset + limit]


@action("current_package_list_with_resources")
def current_package_list_with_resources(call: Call, data: dict[str, Any]) -> list[dict[str, Any]]:
    """Public, active datasets with their resources, most recently modified first."""
    limit = _int(data, "limit", SEARCH_ROWS_MAX, minimum=0, maximum=SEARCH_ROWS_MAX)
    offset = _int(data, "offset", 0)
    datasets = sorted(readable_datasets(call), key=lambda d: d.updated_at, reverse=True)
    return [package_dict(call, d) for d in datasets[offset : offset + limit]]


@action("package_show")
def package_show(call: Call, data: dict[str, Any]) -> dict[str, Any]:
    """One dataset by `id` (id or name)."""
    return package_dict(call, find_dataset(call, _ref(data)))


@action("resource_show")
def resource_show(call: Call, data: dict[str, Any]) -> dict[str, Any]:
    """One resource by `id`."""
    resource = find_resource(call, _ref(data))
    return resource_dict(call, resource.dataset, resource)


@action("resource_view_list")
def resource_view_list(call: Call, data: dict[str, Any]) -> list[dict[str, Any]]:
    """The views of resource `id`: a table view for resources loaded into the datastore."""
    resource = find_resource(call, _ref(data))
    if not resource.datastore_active:
        return []
    return [
        {
            "id": f"{resource.id}-table",
            "resource_id": str(resource.id),
            "package_id": str(resource.dataset_id),
            "view_type": "datatables_view",
            "title": "Table",
            "description": "",
            "filterable": True,
        }
    ]


@action("organization_list")
def organization_list(call: Call, data: dict[str, Any]) -> list[Any]:
    """Organization names, or dictionaries with `all_fields=true`; `sort` by title (default),
    name or package_count; `limit`/`offset`; `organizations` keeps only the named ones."""
    all_fields = _bool(data, "all_fields", False)
    wanted = set(_str_list(data, "organizations"))
    sort = _str(data, "sort", "title asc").strip().lower() or "title asc"
    limit = _int(data, "limit", LIST_LIMIT_MAX, maximum=LIST_LIMIT_MAX)
    offset = _int(data, "offset", 0)
    counts = Counter(d.organization_id for d in readable_datasets(call))
    organizations = [
        o
        for o in account_queries.list_organizations(call.session)
        if not wanted or o.slug in wanted
    ]
    field, _, direction = sort.partition(" ")
    keys: dict[str, Callable[[Organization], Any]] = {
        "name": lambda o: o.slug,
        "title": lambda o: o.name.lower(),
        "display_name": lambda o: o.name.lower(),
        "package_count": lambda o: counts[o.id],
    }
    if field not in keys or direction.strip() not in ("", "asc", "desc"):
        raise _invalid("sort", f"cannot sort by {sort!r}; use name, title or package_count")
    organizations.sort(key=keys[field], reverse=direction.strip() == "desc")
    page = organizations[offset : offset + limit]
    if not all_fields:
        return [o.slug for o in page]
    return [organization_dict(o, package_count=counts[o.id]) for o in page]


@action("organization_list_for_user")
def organization_list_for_user(call: Call, data: dict[str, Any]) -> list[dict[str, Any]]:
    """Organizations the caller may publish datasets for."""
    if not call.actor.can("datasets:publish"):
        return []
    every = call.actor.can("system:admin")
    return [
        organization_dict(o)
        for o in account_queries.list_organizations(call.session)
        if every or o.id in call.actor.organization_ids
    ]


@action("organization_show")
def organization_show(call: Call, data: dict[str, Any]) -> dict[str, Any]:
    """One organization by `id` (id or name); `include_datasets=true` adds its datasets."""
    organization = find_organization(call.session, _ref(data))
    datasets = [d for d in readable_datasets(call) if d.organization_id == organization.id]
    result = organization_dict(organization, package_count=len(datasets))
    if _bool(data, "include_datasets", False):
        result["packages"] = [package_dict(call, d) for d in datasets[:LIST_LIMIT_MAX]]
    result["users"] = []
    result["extras"] = []
    return result


@action("group_list")
def group_list(call: Call, data: dict[str, Any]) -> list[Any]:
    """The EU data themes as groups: names, or dictionaries with `all_fields=true`."""
    counts: Counter[str] = Counter()
    for dataset in readable_datasets(call):
        counts.update(t for t in dataset.themes or [] if t in THEMES)
    codes = sorted(THEMES, key=str.lower)
    limit = _int(data, "limit", LIST_LIMIT_MAX, maximum=LIST_LIMIT_MAX)
    offset = _int(data, "offset", 0)
    page = codes[offset : offset + limit]
    if _bool(data, "all_fields", False):
        return [group_dict(c, package_count=counts[c]) for c in page]
    return [c.lower() for c in page]


def _theme_code(name: str) -> str | None:
    upper = name.strip().upper()
    if upper in THEMES:
        return upper
    for code in THEMES:
        if name.strip().rstrip("/").endswith("/" + code):
            return code
    return None


@action("group_show")
def group_show(call: Call, data: dict[str, Any]) -> dict[str, Any]:
    """One EU data theme by `id` (code or group name)."""
    ref = _ref(data)
    code = _theme_code(ref)
    if code is None:
        raise NotFoundError("group", ref)
    datasets = [d for d in readable_datasets(call) if code in (d.themes or [])]
    result = group_dict(code, package_count=len(datasets))
    if _bool(data, "include_datasets", False):
        result["packages"] = [package_dict(call, d) for d in datasets[:LIST_LIMIT_MAX]]
    return result


@action("tag_list")
def tag_list(call: Call, data: dict[str, Any]) -> list[Any]:
    """Keywords of the public, active datasets; `query` keeps those containing it."""
    query = _str(data, "query", _str(data, "q", "")).strip().lower()
    tags = sorted(
        {k for d in readable_datasets(call) for k in d.keywords or [] if query in k.lower()},
        key=str.lower,
    )
    if _bool(data, "all_fields", False):
        return [tag_dict(t) for t in tags]
    return tags


@action("license_list")
def license_list(call: Call, data: dict[str, Any]) -> list[dict[str, Any]]:
    """The licences a dataset may carry."""
    return [
        {
            "id": lic.id,
            "title": lic.title,
            "url": lic.url,
            "status": "active",
            "maintainer": "",
            "family": "",
            "is_generic": False,
            "is_okd_compliant": lic.open_data,
            "is_osi_compliant": False,
            "od_conformance": "approved" if lic.open_data else "not reviewed",
            "osd_conformance": "not reviewed",
            "domain_content": False,
            "domain_data": True,
            "domain_software": False,
        }
        for lic in LICENSES.values()
    ]


# package_search --------------------------------------------------------------------------------

_CLAUSE = re.compile(
    r"""
    (?P<sign>[+-]?)
    (?:(?P<field>[A-Za-z_][\w.]*):)?
    (?P<value>
        "(?:[^"\\]|\\.)*"
      | \[[^\]]*\]
      | \((?:[^()"]|"[^"]*")*\)
      | [^\s"()\[\]]+
    )
    \s*
    """,
    re.VERBOSE,
)
_RANGE = re.compile(r"^\[\s*(\S+)\s+TO\s+(\S+)\s*\]$", re.IGNORECASE)
# CKAN search fields this adapter understands, and what each one reads from a dataset.
SEARCH_FIELDS = (
    "name",
    "id",
    "title",
    "tags",
    "organization",
    "owner_org",
    "groups",
    "res_format",
    "license_id",
    "state",
    "dataset_type",
    "type",
    "capacity",
    "private",
    "metadata_modified",
    "metadata_created",
)
FACET_FIELDS = ("organization", "owner_org", "tags", "groups", "res_format", "license_id")
_SORT_KEYS: dict[str, Callable[[Dataset], Any]] = {
    "metadata_modified": lambda d: d.updated_at,
    "metadata_created": lambda d: d.created_at,
    "name": lambda d: d.slug,
    "title_string": lambda d: d.title.lower(),
    "title": lambda d: d.title.lower(),
    "views_recent": lambda d: d.updated_at,
}


@dataclass(frozen=True)
class Clause:
    field: str
    values: tuple[str, ...]
    negate: bool = False
    low: datetime | None = None
    high: datetime | None = None


def _unquote(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] == '"':
        return re.sub(r"\\(.)", r"\1", value[1:-1])
    return value


def _solr_time(text: str, *, upper: bool) -> datetime | None:
    """A Solr date bound: `*`, `NOW`, `NOW-7DAYS`, or an ISO date or time."""
    text = text.strip()
    if text == "*":
        return None
    now = datetime.now(UTC)
    match = re.fullmatch(r"NOW(?:([+-])(\d+)(DAY|DAYS|HOUR|HOURS|MINUTE|MINUTES))?", text.upper())
    if match:
        if not match.group(1):
            return now
        unit = match.group(3).rstrip("S").lower() + "s"
        delta = timedelta(**{unit: int(match.group(2))})
        return now + delta if match.group(1) == "+" else now - delta
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise _search_error(f"{text!r} is not a date, NOW or *") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    if upper and len(text) == 10:  # a bare date as upper bound includes that whole day
        parsed += timedelta(days=1) - timedelta(microseconds=1)
    return parsed


def parse_query(text: str) -> tuple[str, list[Clause]]:
    """Split a Solr-style `q`/`fq` into free words and field clauses (ANDed)."""
    words: list[str] = []
    clauses: list[Clause] = []
    text = text.strip()
    if text in ("", "*:*", "*"):
        return "", []
    position = 0
    while position < len(text):
        match = _CLAUSE.match(text, position)
        if match is None or match.end() == position:
            raise _search_error(f"cannot read the query near {text[position : position + 20]!r}")
        position = match.end()
        sign, field, value = match.group("sign"), match.group("field"), match.group("value")
        if field is None:
            if value in ("AND", "&&"):
                continue
            if value in ("OR", "||", "NOT"):
                raise _search_error(
                    f"{value} between clauses is not supported; use field:(a OR b) or -field:x"
                )
            if value.startswith(("(", "[")):
                raise _search_error("a group or a range needs a field, as in tags:(a OR b)")
            words.append(_unquote(value))
            continue
        if field == "text":
            words.append(_unquote(value))
            continue
        if field not in SEARCH_FIELDS:
            raise _search_error(
                f"unknown search field {field!r}; known: {', '.join(SEARCH_FIELDS)}"
            )
        negate = sign == "-"
        if value.startswith("["):
            ranged = _RANGE.match(value)
            if ranged is None or field not in ("metadata_modified", "metadata_created"):
                raise _search_error(
                    f"{field}:{value}: ranges work on metadata_modified and metadata_created"
                )
            clauses.append(
                Clause(
                    field,
                    (),
                    negate,
                    _solr_time(ranged.group(1), upper=False),
                    _solr_time(ranged.group(2), upper=True),
                )
            )
        elif value.startswith("("):
            inner = value[1:-1]
            parts = [p for p in re.split(r"\s+OR\s+|\s*\|\|\s*", inner.strip()) if p]
            if any(re.search(r"\sAND\s", p) for p in parts):
                raise _search_error(f"{field}:{value}: only OR is supported inside a group")
            clauses.append(Clause(field, tuple(_unquote(p.strip()) for p in parts), negate))
        else:
            clauses.append(Clause(field, (_unquote(value),), negate))
    return " ".join(words), clauses


def _field_values(dataset: Dataset, field: str) -> list[str]:
    if field == "name":
        return [dataset.slug]
    if field == "id":
        return [str(dataset.id)]
    if field == "title":
        return [dataset.title]
    if field == "tags":
        return list(dataset.keywords or [])
    if field == "organization":
        return [dataset.organization.slug]
    if field == "owner_org":
        return [str(dataset.organization_id)]
    if field == "groups":
        return [t.lower() for t in dataset.themes or []]
    if field == "res_format":
        return sorted({r.format.upper() for r in dataset.resources if r.format})
    if field == "license_id":
        return [dataset.license_id] if dataset.license_id else []
    if field == "state":
        return [_state(dataset)]
    if field in ("dataset_type", "type"):
        return ["dataset"]
    if field == "capacity":
        return ["public" if dataset.visibility == "public" else "private"]
    if field == "private":
        return ["true" if dataset.visibility != "public" else "false"]
    return []


def _matches(dataset: Dataset, clause: Clause) -> bool:
    if clause.field in ("metadata_modified", "metadata_created"):
        moment = dataset.updated_at if clause.field == "metadata_modified" else dataset.created_at
        inside = (clause.low is None or moment >= clause.low) and (
            clause.high is None or moment <= clause.high
        )
        return inside != clause.negate
    have = {v.lower() for v in _field_values(dataset, clause.field)}
    wanted = {v.lower() for v in clause.values}
    if "*" in wanted:
        hit = bool(have)
    elif clause.field == "title":
        hit = any(w in h for w in wanted for h in have)
    else:
        hit = bool(have & wanted)
    return hit != clause.negate


def _sort(datasets: list[Dataset], sort: str, *, ranked: bool) -> list[Dataset]:
    keys: list[tuple[str, bool]] = []
    for part in sort.split(","):
        if not part.strip():
            continue
        field, _, direction = part.strip().partition(" ")
        direction = direction.strip().lower() or "asc"
        if direction not in ("asc", "desc") or (field != "score" and field not in _SORT_KEYS):
            raise _search_error(
                f"cannot sort by {part.strip()!r}; use score, metadata_modified, "
                "metadata_created, name or title_string with asc or desc"
            )
        keys.append((field, direction == "desc"))
    ordered = list(datasets)  # already by relevance (with words) or by modification
    for field, descending in reversed(keys):
        if field == "score":
            if not ranked:
                continue
            rank = {d.id: i for i, d in enumerate(datasets)}
            ordered.sort(key=lambda d: rank[d.id], reverse=not descending)
        else:
            ordered.sort(key=_SORT_KEYS[field], reverse=descending)
    return ordered


def _facet_label(field: str, value: str, datasets: list[Dataset]) -> str:
    if field == "organization":
        for d in datasets:
            if d.organization.slug == value:
                return d.organization.name
    if field == "groups" and value.upper() in THEMES:
        return THEMES[value.upper()]
    if field == "license_id" and value in LICENSES:
        return LICENSES[value].title
    return value


@action("package_search")
def package_search(call: Call, data: dict[str, Any]) -> dict[str, Any]:
    """Search datasets: `q`, `fq`, `rows` (≤ 1000), `start`, `sort`, `facet.field`,
    `facet.limit`, `facet.mincount`, `include_private`, `include_drafts`."""
    q = _str(data, "q")
    fq = " ".join([_str(data, "fq"), *_str_list(data, "fq_list")])
    rows = _int(data, "rows", SEARCH_ROWS_DEFAULT, maximum=SEARCH_ROWS_MAX)
    start = _int(data, "start", 0)
    sort = _str(data, "sort", "score desc, metadata_modified desc") or "score desc"
    facet_on = _bool(data, "facet", True)
    facet_fields = _str_list(data, "facet.field") if facet_on else []
    facet_limit = _int(data, "facet.limit", 50, minimum=-1)
    facet_mincount = _int(data, "facet.mincount", 1)
    words, clauses = parse_query(q)
    more_words, more_clauses = parse_query(fq)
    words = f"{words} {more_words}".strip()
    clauses += more_clauses
    candidates = readable_datasets(
        call,
        q=words,
        include_private=_bool(data, "include_private", False),
        include_drafts=_bool(data, "include_drafts", False),
    )
    matched = [d for d in candidates if all(_matches(d, c) for c in clauses)]
    ordered = _sort(matched, sort, ranked=bool(words))
    facets: dict[str, dict[str, int]] = {}
    search_facets: dict[str, dict[str, Any]] = {}
    for field in facet_fields:
        counter: Counter[str] = Counter()
        if field in FACET_FIELDS:
            for dataset in matched:
                counter.update(set(_field_values(dataset, field)))
        items = [(v, c) for v, c in counter.most_common() if c >= facet_mincount]
        if facet_limit >= 0:
            items = items[:facet_limit]
        facets[field] = dict(items)
        search_facets[field] = {
            "title": field,
            "items": [
                {"name": v, "display_name": _facet_label(field, v, matched), "count": c}
                for v, c in items
            ],
        }
    return {
        "count": len(matched),
        "sort": sort,
        "facets": facets,
        "search_facets": search_facets,
        "results": [package_dict(call, d) for d in ordered[start : start + rows]],
    }


# Package writes ------------------------------------------------------------------------------

# CKAN licence ids seen in the field, mapped to our registry.
CKAN_LICENSE_IDS = {
    "cc-by": "CC-BY-4.0",
    "cc-by-4.0": "CC-BY-4.0",
    "cc-by-sa": "CC-BY-SA-4.0",
    "cc-by-sa-4.0": "CC-BY-SA-4.0",
    "cc-zero": "CC0-1.0",
    "cc0-1.0": "CC0-1.0",
    "odc-odbl": "ODbL-1.0",
    "odc-by": "ODC-By-1.0",
    "odc-pddl": "PDDL-1.0",
    "uk-ogl": "OGL-UK-3.0",
    "ogl-uk-3.0": "OGL-UK-3.0",
    "dl-de-by-2.0": "DL-DE-BY-2.0",
    "fr-lo": "etalab-2.0",
    "lo-2.0": "etalab-2.0",
    "us-pd": "US-PD",
    "other-closed": "other-closed",
}
# Keys of a package dict that `package_show` emits and writes ignore (read-only or derived).
READ_ONLY_PACKAGE_KEYS = frozenset(
    {
        "id",
        "type",
        "metadata_created",
        "metadata_modified",
        "num_resources",
        "num_tags",
        "isopen",
        "license_title",
        "license_url",
        "organization",
        "creator_user_id",
        "revision_id",
        "relationships_as_object",
        "relationships_as_subject",
        "tracking_summary",
    }
)
PACKAGE_KEYS = frozenset(
    {
        "name",
        "title",
        "notes",
        "url",
        "version",
        "state",
        "private",
        "author",
        "author_email",
        "maintainer",
        "maintainer_email",
        "license_id",
        "owner_org",
        "tags",
        "tag_string",
        "groups",
        "extras",
        "resources",
    }
)
EXTRA_FIELDS = {
    "frequency": "frequency",
    "temporal_start": "temporal_start",
    "temporal_end": "temporal_end",
    "spatial": "spatial",
    "language": "languages",
    "conforms_to": "conforms_to",
    "visibility": "visibility",
}
# Our field → the CKAN key to name in a validation error.
CKAN_FIELD_NAMES = {
    "slug": "name",
    "title": "title",
    "description": "notes",
    "keywords": "tags",
    "themes": "groups",
    "license_id": "license_id",
    "contact_name": "maintainer",
    "contact_email": "maintainer_email",
    "landing_page": "url",
    "organization": "owner_org",
    "languages": "language",
}
NULLABLE_FIELDS = (
    "license_id",
    "contact_name",
    "contact_email",
    "temporal_start",
    "temporal_end",
    "spatial",
    "frequency",
    "landing_page",
)


def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _license(value: Any) -> str | None:
    if _blank(value) or value == "notspecified":
        return None
    text = str(value).strip()
    if text in LICENSES:
        return text
    mapped = CKAN_LICENSE_IDS.get(text.lower())
    if mapped is None:
        raise _invalid(
            "license_id", f"unknown licence {text!r}; see license_list for the ones accepted"
        )
    return mapped


def _tags(data: dict[str, Any]) -> list[str] | None:
    if "tags" in data:
        raw = _json_field(data, "tags")
        if raw is None:
            return []
        if isinstance(raw, str):
            raw = [raw]
        if not isinstance(raw, list):
            raise _invalid("tags", "must be a list of {name: ...} objects")
        names: list[str] = []
        for item in raw:
            name = item.get("name") if isinstance(item, dict) else item
            if not isinstance(name, str):
                raise _invalid("tags", "each tag needs a string name")
            names.append(name)
        return names
    if "tag_string" in data:
        return [t.strip() for t in _str(data, "tag_string").split(",") if t.strip()]
    return None


def _groups(data: dict[str, Any]) -> list[str] | None:
    if "groups" not in data:
        return None
    raw = _json_field(data, "groups")
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise _invalid("groups", "must be a list of {name: ...} objects")
    codes: list[str] = []
    for item in raw:
        ref = (item.get("name") or item.get("id")) if isinstance(item, dict) else item
        code = _theme_code(str(ref)) if ref is not None else None
        if code is None:
            raise _invalid(
                "groups", f"unknown group {ref!r}; groups are EU data themes, see group_list"
            )
        codes.append(code)
    return list(dict.fromkeys(codes))


def _list_extra(value: str) -> list[str]:
    text = value.strip()
    if text.startswith("["):
        try:
            parsed = json.loads(text)
        except ValueError:
            parsed = None
        if isinstance(parsed, list):
            return [str(v) for v in parsed]
    return [part.strip() for part in text.split(",") if part.strip()]


def _extras_fields(data: dict[str, Any], dataset: Dataset | None) -> dict[str, Any]:
    raw = _json_field(data, "extras")
    if raw is None:
        return {}
    if isinstance(raw, dict):  # a plain {key: value} object is accepted too
        raw = [{"key": k, "value": v} for k, v in raw.items()]
    if not isinstance(raw, list):
        raise _invalid("extras", "must be a list of {key, value} objects")
    stored = dataset.extras if dataset is not None and dataset.extras else {}
    fields: dict[str, Any] = {}
    unknown: list[str] = []
    for item in raw:
        if not isinstance(item, dict) or not isinstance(item.get("key"), str):
            raise _invalid("extras", "each extra needs a string key")
        key, value = item["key"], item.get("value")
        if key in EXTRA_FIELDS:
            if value is not None and not isinstance(value, str):
                value = json.dumps(value) if isinstance(value, list) else str(value)
            fields[EXTRA_FIELDS[key]] = _extra_value(key, value)
        elif key in stored and _same_extra(stored[key], value):
            continue  # round trip of a stored extra: unchanged
        else:
            unknown.append(key)
    if unknown:
        raise _invalid(
            "extras",
            f"unknown extra(s) {unknown}; Townhall keeps {sorted(EXTRA_FIELDS)} "
            "(other metadata belongs in the dataset's own fields)",
        )
    return fields


def _same_extra(stored: Any, given: Any) -> bool:
    return stored == given or (not isinstance(stored, str) and json.dumps(stored) == given)


def _extra_value(key: str, value: str | None) -> Any:
    if _blank(value):
        return [] if key in ("language", "conforms_to") else None
    assert value is not None
    if key in ("language", "conforms_to"):
        return _list_extra(value)
    if key == "frequency":
        code = value.strip().rstrip("/").rsplit("/", 1)[-1].upper()
        if code not in FREQUENCIES:
            raise _invalid("frequency", f"unknown frequency {value!r}; use an EU frequency code")
        return code
    if key in ("temporal_start", "temporal_end"):
        try:
            return date.fromisoformat(value.strip()[:10])
        except ValueError:
            raise _invalid(key, f"{value!r} is not a date (YYYY-MM-DD)") from None
    return value.strip()


def _visibility(data: dict[str, Any], dataset: Dataset | None, current: str | None) -> str | None:
    """`private` → visibility; a restricted dataset stays restricted when `private` is true."""
    if current is not None:
        return current
    if "private" not in data:
        return None
    private = _bool(data, "private", False)
    if not private:
        return "public"
    if dataset is not None and dataset.visibility in ("restricted", "private"):
        return dataset.visibility
    return "private"


def _package_fields(
    data: dict[str, Any], dataset: Dataset | None, *, replace: bool
) -> dict[str, Any]:
    """Our dataset fields from a CKAN package dict.

    `replace` (package_update) clears the list fields and the description that are absent, as
    CKAN does; absent single-valued fields stay (see the module docstring).
    """
    unknown = set(data) - PACKAGE_KEYS - READ_ONLY_PACKAGE_KEYS
    if unknown:
        raise _invalid(
            sorted(unknown)[0],
            f"unknown key(s) {sorted(unknown)}; package keys are {sorted(PACKAGE_KEYS)}",
        )
    if not _blank(data.get("version")):
        raise _invalid("version", "not kept: Townhall versions each table itself")
    fields: dict[str, Any] = {}
    if "title" in data:
        fields["title"] = _str(data, "title")
    if "notes" in data or replace:
        fields["description"] = _str(data, "notes")
    if "url" in data:
        fields["landing_page"] = None if _blank(data["url"]) else _str(data, "url").strip()
    if "license_id" in data:
        fields["license_id"] = _license(data["license_id"])
    if "maintainer" in data or "author" in data:
        value = data.get("maintainer") if not _blank(data.get("maintainer")) else data.get("author")
        fields["contact_name"] = None if _blank(value) else str(value).strip()
    if "maintainer_email" in data or "author_email" in data:
        value = data.get("maintainer_email")
        if _blank(value):
            value = data.get("author_email")
        fields["contact_email"] = None if _blank(value) else str(value).strip()
    tags = _tags(data)
    if tags is not None or replace:
        fields["keywords"] = tags or []
    groups = _groups(data)
    if groups is not None or replace:
        fields["themes"] = groups or []
    extras = _extras_fields(data, dataset)
    visibility = _visibility(data, dataset, extras.pop("visibility", None))
    if visibility is not None:
        fields["visibility"] = visibility
    fields.update(extras)
    if replace:
        fields.setdefault("languages", [])
        fields.setdefault("conforms_to", [])
    return fields


def _validated(model: type[DatasetCreate] | type[DatasetUpdate], fields: dict[str, Any]) -> Any:
    try:
        return model(**fields)
    except PydanticValidationError as error:
        errors = []
        for item in error.errors():
            loc = [str(p) for p in item.get("loc", ())]
            name = CKAN_FIELD_NAMES.get(loc[0], loc[0]) if loc else "message"
            errors.append({"loc": [name], "message": item.get("msg", ""), "type": "value_error"})
        first = errors[0] if errors else {"loc": ["message"], "message": "invalid"}
        raise TownhallError(
            422, "invalid_request", f"{first['loc'][0]}: {first['message']}", errors=errors
        ) from None


def _check_clearing(dataset: Dataset, fields: dict[str, Any]) -> None:
    for name in NULLABLE_FIELDS:
        if name in fields and fields[name] is None and getattr(dataset, name) is not None:
            raise _invalid(
                CKAN_FIELD_NAMES.get(name, name),
                "clearing a value that is set is not supported through the CKAN API; "
                "send a new value instead",
            )


def _set_state(call: Call, dataset: Dataset, state: str) -> None:
    if state == "active" and dataset.state != "published":
        if not dataset.license_id:
            raise _invalid(
                "license_id",
                "a dataset needs a licence before it is published; give license_id, or "
                "state=draft to keep it unpublished",
            )
        actions.set_dataset_state(
            call.session, actor=call.actor, slug=dataset.slug, state="published"
        )
    elif state == "draft" and dataset.state != "draft":
        actions.set_dataset_state(call.session, actor=call.actor, slug=dataset.slug, state="draft")
    elif state == "deleted":
        actions.delete_dataset(call.session, actor=call.actor, slug=dataset.slug)
    elif state not in ("active", "draft"):
        raise _invalid("state", f"unknown state {state!r}; use active, draft or deleted")


def _resource_fields(item: dict[str, Any], *, partial: bool) -> dict[str, Any]:
    allowed = {"name", "description", "format", "url"}
    fields: dict[str, Any] = {}
    for key in allowed:
        if key in item and item[key] is not None:
            if not isinstance(item[key], str):
                raise _invalid(key, "must be a string")
            fields[key] = item[key].strip()
    if "url" in fields and fields["url"] and not re.match(r"^https?://", fields["url"]):
        raise _invalid("url", "must be an http(s) address; upload a file with `upload` instead")
    if fields.get("url") == "":
        fields.pop("url")
    if not partial and not fields.get("name"):
        fields["name"] = fields.get("url", "").rsplit("/", 1)[-1] or "Resource"
    return fields


def _reconcile_resources(call: Call, dataset: Dataset, items: Any) -> None:
    """Make the dataset's resources those listed: update by id, create new, delete the rest."""
    if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
        raise _invalid("resources", "must be a list of resource objects")
    existing = {str(r.id): r for r in dataset.resources}
    kept: set[str] = set()
    for item in items:
        ref = str(item["id"]) if item.get("id") is not None else None
        if ref is not None and ref in existing:
            kept.add(ref)
            actions.update_resource(
                call.session,
                actor=call.actor,
                resource_id=existing[ref].id,
                **_resource_fields(item, partial=True),
            )
        else:
            fields = _resource_fields(item, partial=False)
            if not fields.get("url"):
                raise _invalid("resources", "a new resource needs a url (or use resource_create)")
            actions.create_resource(call.session, actor=call.actor, slug=dataset.slug, **fields)
    for ref, resource in existing.items():
        if ref not in kept:
            _delete_resource(call, resource)


def _delete_resource(call: Call, resource: Resource) -> None:
    table = resource.table_name if resource.datastore_active else None
    actions.delete_resource(call.session, actor=call.actor, resource_id=resource.id)
    if table:
        _drop_table_after_commit(call, table)


def _drop_table_after_commit(call: Call, table: str) -> None:
    from townhall.db import after_commit

    lake = call.request.app.state.runtime.lake
    after_commit(call.session, lambda: lake.drop_table(table))


@action("package_create", write=True)
def package_create(call: Call, data: dict[str, Any]) -> dict[str, Any]:
    """Create a dataset from a package dict (`name`, `owner_org`, `title`, `notes`, `tags`,
    `license_id`, `extras`, `resources` with URLs, ...). `state` defaults to `active`
    (published), which needs a licence; `state=draft` keeps it unpublished."""
    call.actor.require("datasets:publish")
    fields = _package_fields(data, None, replace=False)
    slug = _str(data, "name").strip()
    if not slug:
        raise _invalid("name", "Missing value")
    if _blank(data.get("owner_org")):
        raise _invalid("owner_org", "Missing value: the organization that publishes it")
    organization = find_organization(call.session, _ref(data, "owner_org"))
    fields.setdefault("title", slug)
    create = _validated(DatasetCreate, {**fields, "slug": slug, "organization": organization.slug})
    if queries.dataset_by_slug(call.session, slug) is not None:
        raise _invalid("name", "That URL is already in use.")
    values = create.model_dump(exclude={"slug", "title", "organization"}, exclude_none=True)
    dataset = actions.create_dataset(
        call.session,
        actor=call.actor,
        organization_slug=organization.slug,
        slug=slug,
        title=create.title,
        bus=call.bus,
        **values,
    )
    if "resources" in data:
        _reconcile_resources(call, dataset, _json_field(data, "resources") or [])
    _set_state(call, dataset, _str(data, "state", "active") or "active")
    call.session.flush()
    call.session.refresh(dataset)
    return package_dict(call, dataset)


def _update(call: Call, data: dict[str, Any], *, replace: bool) -> dict[str, Any]:
    call.actor.require("datasets:publish")
    dataset = find_dataset(call, _ref(data) if "id" in data else _ref(data, "name"))
    if not queries.can_edit(call.actor, dataset):
        raise PermissionDenied(f"datasets:publish for {dataset.organization.slug}")
    if "name" in data and _str(data, "name").strip() not in (dataset.slug, ""):
        raise _invalid("name", "renaming a dataset is not supported; its name is its address")
    if not _blank(data.get("owner_org")):
        organization = find_organization(call.session, _ref(data, "owner_org"))
        if organization.id != dataset.organization_id:
            raise _invalid("owner_org", "moving a dataset to another organization is not supported")
    fields = _package_fields(data, dataset, replace=replace)
    _check_clearing(dataset, fields)
    validated = _validated(DatasetUpdate, fields)
    changes = validated.model_dump(exclude_unset=True)
    actions.update_dataset(
        call.session, actor=call.actor, slug=dataset.slug, bus=call.bus, **changes
    )
    if "resources" in data:
        _reconcile_resources(call, dataset, _json_field(data, "resources") or [])
    if not _blank(data.get("state")):
        _set_state(call, dataset, _str(data, "state"))
    call.session.flush()
    call.session.refresh(dataset)
    return package_dict(call, dataset)


@action("package_update", write=True)
def package_update(call: Call, data: dict[str, Any]) -> dict[str, Any]:
    """Replace a dataset's metadata with the package dict given (`id` or `name`): absent
    tags, groups, notes and list extras are cleared; absent `resources` are kept."""
    return _update(call, data, replace=True)


@action("package_patch", write=True)
def package_patch(call: Call, data: dict[str, Any]) -> dict[str, Any]:
    """Change only the fields given of dataset `id`."""
    return _update(call, data, replace=False)


@action("package_delete", write=True)
def package_delete(call: Call, data: dict[str, Any]) -> None:
    """Delete dataset `id` (soft: the record and its versions stay for the audit trail)."""
    dataset = find_dataset(call, _ref(data))
    actions.delete_dataset(call.session, actor=call.actor, slug=dataset.slug)


# Organization writes ---------------------------------------------------------------------------

ORGANIZATION_KEYS = frozenset({"name", "title", "description"})
READ_ONLY_ORGANIZATION_KEYS = frozenset(
    {
        "id",
        "display_name",
        "type",
        "is_organization",
        "approval_status",
        "state",
        "image_url",
        "image_display_url",
        "created",
        "revision_id",
        "package_count",
        "num_followers",
        "packages",
        "users",
        "extras",
        "groups",
        "tags",
    }
)


def _organization_keys(data: dict[str, Any]) -> None:
    unknown = set(data) - ORGANIZATION_KEYS - READ_ONLY_ORGANIZATION_KEYS
    if unknown:
        raise _invalid(sorted(unknown)[0], f"unknown key(s) {sorted(unknown)}")


@action("organization_create", write=True)
def organization_create(call: Call, data: dict[str, Any]) -> dict[str, Any]:
    """Create an organization: `name` (its address), `title`, `description`."""
    call.actor.require("organizations:manage")
    _organization_keys(data)
    name = _str(data, "name").strip()
    try:
        body = OrganizationCreate(
            slug=name,
            name=_str(data, "title").strip() or name,
            description=_str(data, "description"),
        )
    except PydanticValidationError as error:
        item = error.errors()[0]
        field = {"slug": "name", "name": "title"}.get(str(item["loc"][0]), str(item["loc"][0]))
        raise _invalid(field, item["msg"]) from None
    if account_queries.organization_by_slug(call.session, body.slug) is not None:
        raise _invalid("name", "Group name already exists in database")
    organization = account_actions.create_organization(
        call.session,
        actor=call.actor,
        slug=body.slug,
        name=body.name,
        kind=body.kind,
        description=body.description,
    )
    return organization_dict(organization, package_count=0)


def update_organization(
    session: Session,
    *,
    actor: Actor,
    organization: Organization,
    name: str | None,
    description: str | None,
) -> Organization:
    """Change an organization's display name and description, audited.

    The accounts slice has no update action yet; this is the one write this adapter does
    itself, in the same shape as the slice's actions (permission, change, audit, no commit).
    """
    actor.require("organizations:manage")
    changes: dict[str, Any] = {}
    if name is not None and name != organization.name:
        changes["name"] = [organization.name, name]
        organization.name = name
    if description is not None and description != organization.description:
        changes["description"] = [organization.description, description]
        organization.description = description
    if changes:
        record(
            session,
            actor=actor,
            action="organization.update",
            object_type="organization",
            object_id=organization.id,
            changes=changes,
        )
    return organization


def _organization_update(call: Call, data: dict[str, Any], *, replace: bool) -> dict[str, Any]:
    call.actor.require("organizations:manage")
    _organization_keys(data)
    organization = find_organization(
        call.session, _ref(data) if "id" in data else _ref(data, "name")
    )
    if "name" in data and _str(data, "name").strip() not in (organization.slug, ""):
        raise _invalid("name", "renaming an organization is not supported")
    title = _str(data, "title").strip() if "title" in data else None
    if title is not None and not 1 <= len(title) <= 300:
        raise _invalid("title", "must be 1 to 300 characters")
    description = _str(data, "description") if "description" in data or replace else None
    if description is not None and len(description) > 10_000:
        raise _invalid("description", "must be at most 10000 characters")
    update_organization(
        call.session,
        actor=call.actor,
        organization=organization,
        name=title,
        description=description,
    )
    count = sum(1 for d in readable_datasets(call) if d.organization_id == organization.id)
    return organization_dict(organization, package_count=count)


@action("organization_update", write=True)
def organization_update(call: Call, data: dict[str, Any]) -> dict[str, Any]:
    """Replace organization `id`'s title and description (an absent description is cleared)."""
    return _organization_update(call, data, replace=True)


@action("organization_patch", write=True)
def organization_patch(call: Call, data: dict[str, Any]) -> dict[str, Any]:
    """Change only the fields given of organization `id`."""
    return _organization_update(call, data, replace=False)


# Resource writes -------------------------------------------------------------------------------

RESOURCE_KEYS = frozenset({"package_id", "id", "name", "description", "format", "url", "upload"})
READ_ONLY_RESOURCE_KEYS = frozenset(
    {
        "url_type",
        "mimetype",
        "mimetype_inner",
        "size",
        "hash",
        "created",
        "last_modified",
        "metadata_modified",
        "position",
        "state",
        "datastore_active",
        "resource_type",
        "cache_url",
        "cache_last_updated",
        "revision_id",
    }
)


def _resource_keys(data: dict[str, Any]) -> None:
    unknown = set(data) - RESOURCE_KEYS - READ_ONLY_RESOURCE_KEYS
    if unknown:
        raise _invalid(sorted(unknown)[0], f"unknown key(s) {sorted(unknown)}")


def _upload(data: dict[str, Any]) -> UploadFile | None:
    upload = data.get("upload")
    if upload is None or upload == "":
        return None
    if not isinstance(upload, UploadFile):
        raise _invalid("upload", "must be a file sent as multipart/form-data")
    return upload


@action("resource_create", write=True)
def resource_create(call: Call, data: dict[str, Any]) -> dict[str, Any]:
    """Add a resource to dataset `package_id`: a `url`, or an `upload` file (multipart) that
    is loaded into the datastore (CSV, TSV, JSON, NDJSON, XLSX, Parquet, GeoJSON)."""
    _resource_keys(data)
    dataset = find_dataset(call, _ref(data, "package_id"))
    upload = _upload(data)
    fields = _resource_fields(data, partial=False)
    if upload is None and not fields.get("url"):
        raise _invalid("url", "Missing value: give a url or an upload")
    if upload is not None:
        fields.pop("url", None)
        if not data.get("name"):
            fields["name"] = upload.filename or "upload"
    resource = actions.create_resource(call.session, actor=call.actor, slug=dataset.slug, **fields)
    if upload is not None:
        ingest_upload(call, dataset, resource, upload, created=True)
    call.session.flush()
    call.session.refresh(resource)
    return resource_dict(call, resource.dataset, resource)


def _resource_update(call: Call, data: dict[str, Any], *, replace: bool) -> dict[str, Any]:
    _resource_keys(data)
    resource = find_resource(call, _ref(data))
    dataset = resource.dataset
    upload = _upload(data)
    fields = _resource_fields(data, partial=True)
    if replace and "description" not in data:
        fields["description"] = ""
    actions.update_resource(call.session, actor=call.actor, resource_id=resource.id, **fields)
    if upload is not None:
        ingest_upload(call, dataset, resource, upload)
    call.session.flush()
    call.session.refresh(resource)
    return resource_dict(call, resource.dataset, resource)


@action("resource_update", write=True)
def resource_update(call: Call, data: dict[str, Any]) -> dict[str, Any]:
    """Replace resource `id`'s metadata; an `upload` publishes a new version of its table."""
    return _resource_update(call, data, replace=True)


@action("resource_patch", write=True)
def resource_patch(call: Call, data: dict[str, Any]) -> dict[str, Any]:
    """Change only the fields given of resource `id` (and its table, with an `upload`)."""
    return _resource_update(call, data, replace=False)


@action("resource_delete", write=True)
def resource_delete(call: Call, data: dict[str, Any]) -> None:
    """Delete resource `id`; its table leaves the datastore (older versions stay readable)."""
    resource = find_resource(call, _ref(data))
    _delete_resource(call, resource)


# Datastore ---------------------------------------------------------------------------------------
#
# CKAN's DataStore names a table by its resource id; here that is the resource's lake table.
# Reads go through the datastore's query layer (filters compiled by sqlglot, values bound, the
# locked read-only DuckDB, a time limit and a row cap). Writes publish a new version of the
# whole table through the datastore's ingest (one lake snapshot each), so every
# datastore_create/upsert/delete is a version that can be read back and audited.
#
# Writes commit the request's unit of work before loading: ingest runs its own units of work
# (on SQLite the request's open write transaction would otherwise block them).

DATASTORE_ROWS_MAX = 32_000  # ckan.datastore.search.rows_max
DATASTORE_ROWS_DEFAULT = 100
RECORDS_FORMATS = ("objects", "lists", "csv", "tsv")
# Our portable column types as CKAN DataStore type names.
CKAN_COLUMN_TYPES = {
    "integer": "int",
    "number": "numeric",
    "boolean": "bool",
    "date": "date",
    "datetime": "timestamp",
    "time": "time",
    "duration": "interval",
    "string": "text",
    "object": "json",
    "array": "json",
    "geometry": "json",
    "any": "text",
}
# CKAN DataStore field types (PostgreSQL names) as Table Schema types for ingest.
TABLE_SCHEMA_TYPES = {
    "text": "string",
    "varchar": "string",
    "citext": "string",
    "int": "integer",
    "int2": "integer",
    "int4": "integer",
    "int8": "integer",
    "integer": "integer",
    "bigint": "integer",
    "smallint": "integer",
    "numeric": "number",
    "float": "number",
    "float4": "number",
    "float8": "number",
    "double precision": "number",
    "real": "number",
    "bool": "boolean",
    "boolean": "boolean",
    "date": "date",
    "time": "time",
    "timestamp": "datetime",
    "timestamptz": "datetime",
    "interval": "duration",
    "json": "object",
    "jsonb": "object",
}
# Our portable types back to Table Schema, to keep a table's types across rewrites.
_KEEP_TYPES = {"geometry": "geojson", "any": "string"}


def _engine(call: Call) -> Any:
    from townhall.datastore.engine import query_engine

    return query_engine(call.request.app.state.runtime)


def _table(call: Call, data: dict[str, Any]) -> Any:
    """The published table of `resource_id` (also accepted as `id`)."""
    from townhall.datastore import query as datastore_query

    ref = _ref(data, "resource_id") if "resource_id" in data else _ref(data, "id")
    number = _numeric_id(ref)
    if number is None:
        raise NotFoundError("resource", ref)
    return datastore_query.resource_table(call.session, call.actor, number)


def _ckan_fields(fields: Iterable[dict[str, Any]]) -> list[dict[str, str]]:
    return [
        {"id": f["name"], "type": CKAN_COLUMN_TYPES.get(str(f.get("type")), "text")} for f in fields
    ]


def _filters(data: dict[str, Any], table: Any) -> list[Any]:
    from townhall.datastore.query import Filter

    raw = _json_field(data, "filters")
    if raw is None or raw == "":
        return []
    if not isinstance(raw, dict):
        raise _invalid("filters", "must be an object of {column: value or [values]}")
    filters = []
    for column, value in raw.items():
        table.column(str(column))  # a Validation Error naming an unknown column
        if value is None:
            filters.append(Filter(str(column), "isnull", "true"))
        elif isinstance(value, list):
            texts = [_filter_text(column, v) for v in value]
            if any("," in t for t in texts):
                raise _invalid("filters", f"{column}: values in a list cannot contain commas")
            if not texts:
                raise _invalid("filters", f"{column}: an empty list matches nothing")
            filters.append(Filter(str(column), "in", ",".join(texts)))
        else:
            filters.append(Filter(str(column), "eq", _filter_text(column, value)))
    return filters


def _filter_text(column: str, value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (str, int, float)):
        return str(value)
    raise _invalid("filters", f"{column}: values must be strings, numbers or booleans")


def _text_query(data: dict[str, Any], table: Any) -> tuple[str, list[Any]]:
    """`q` as words over every text column, or `{column: text}` per column (LIKE)."""
    from townhall.datastore.query import Filter

    raw = _json_field(data, "q")
    if raw is None or raw == "":
        return "", []
    if isinstance(raw, dict):
        filters = []
        for column, text in raw.items():
            table.column(str(column))
            if not isinstance(text, (str, int, float)) or isinstance(text, bool):
                raise _invalid("q", f"{column}: the text to find must be a string")
            filters.append(Filter(str(column), "like", f"%{text}%"))
        return "", filters
    if isinstance(raw, (str, int, float)) and not isinstance(raw, bool):
        return str(raw), []
    raise _invalid("q", "must be a string or an object of {column: text}")


def _datastore_sort(data: dict[str, Any], table: Any) -> list[tuple[str, bool]]:
    from townhall.datastore.query import parse_sort

    text = _str(data, "sort").strip()
    if not text:
        return []
    parts = []
    for part in text.split(","):
        name, _, direction = part.strip().strip('"').partition(" ")
        name = name.strip('"')
        direction = direction.strip().lower() or "asc"
        if direction not in ("asc", "desc"):
            raise _invalid("sort", f"{part.strip()!r}: use 'column asc' or 'column desc'")
        if name == "_id":
            continue  # natural order
        parts.append(("-" if direction == "desc" else "") + name)
    return parse_sort(",".join(parts), table)


def _records(rows_json: list[str], names: list[str], records_format: str) -> Any:
    import csv
    import io

    rows = [json.loads(row) for row in rows_json]
    if records_format == "objects":
        return rows
    lists = [[row.get(name) for name in names] for row in rows]
    if records_format == "lists":
        return lists
    out = io.StringIO()
    writer = csv.writer(out, delimiter="\t" if records_format == "tsv" else ",")
    for values in lists:
        writer.writerow(
            [
                json.dumps(v) if isinstance(v, (dict, list)) else "" if v is None else v
                for v in values
            ]
        )
    return out.getvalue()


@action("datastore_search")
def datastore_search(call: Call, data: dict[str, Any]) -> dict[str, Any]:
    """Rows of resource `resource_id`'s table: `filters` ({column: value or [values]}), `q`
    (text, or {column: text}), `fields`, `sort` ("col asc, col2 desc"), `limit` (default 100,
    at most 32000 and the portal's row cap), `offset`, `distinct`, `include_total`,
    `records_format` (objects, lists, csv, tsv)."""
    from townhall.datastore import query as datastore_query

    table = _table(call, data)
    filters = _filters(data, table)
    q, q_filters = _text_query(data, table)
    fields = _str_list(data, "fields")
    names = datastore_query.parse_fields(",".join(fields), table) if fields else None
    sort = _datastore_sort(data, table)
    limit = _int(data, "limit", DATASTORE_ROWS_DEFAULT, maximum=DATASTORE_ROWS_MAX)
    offset = _int(data, "offset", 0, maximum=10**12)
    distinct = _bool(data, "distinct", False)
    include_total = _bool(data, "include_total", True)
    records_format = _str(data, "records_format", "objects") or "objects"
    if records_format not in RECORDS_FORMATS:
        raise _invalid("records_format", f"use one of {', '.join(RECORDS_FORMATS)}")
    engine = _engine(call)
    call.session.commit()  # the query runs on DuckDB: hold no database transaction meanwhile
    request = datastore_query.RowsRequest(
        fields=names,
        filters=filters + q_filters,
        q=q,
        sort=sort,
        limit=max(limit, 1),
        offset=offset,
    )
    if distinct:
        rows_json, total, estimated = _distinct_rows(engine, table, request, include_total)
        effective = min(max(limit, 1), engine.row_cap)
    else:
        result = datastore_query.query_rows(engine, table, request)
        rows_json, total, estimated = result.rows_json, result.total, result.total_estimated
        effective = result.extra.get("limit", limit)
    if limit == 0:
        rows_json, effective = [], 0
    selected = names or [c["name"] for c in table.columns]
    by_name = {c["name"]: c for c in table.columns}
    resource_id = str(table.resource_id)
    start = f"/api/3/action/datastore_search?resource_id={resource_id}"
    answer: dict[str, Any] = {
        "resource_id": resource_id,
        "fields": _ckan_fields(by_name[n] for n in selected),
        "records": _records(rows_json, selected, records_format),
        "records_format": records_format,
        "limit": effective,
        "offset": offset,
        "include_total": include_total,
        "_links": {"start": start, "next": f"{start}&offset={offset + max(effective, 1)}"},
        "version": table.version,
    }
    if include_total:
        answer["total"] = total
        answer["total_was_estimated"] = estimated
    for key in ("filters", "q", "sort", "distinct"):
        if key in data:
            answer[key] = _json_field(data, key)
    return answer


def _distinct_rows(
    engine: Any, table: Any, request: Any, include_total: bool
) -> tuple[list[str], int | None, bool]:
    """DISTINCT rows of the chosen fields, compiled with the datastore's own pieces."""
    from sqlglot import exp

    from townhall.datastore.query import Binder, render, row_json, where_clause

    binder = Binder()
    where = where_clause(table, request.filters, request.q, binder)
    types = {c["name"]: str(c.get("db_type") or "VARCHAR") for c in table.columns}
    names = request.fields or [c["name"] for c in table.columns]

    def column(name: str) -> exp.Column:
        return exp.column(exp.to_identifier(name, quoted=True))

    inner = exp.select(*[column(n) for n in names]).distinct().from_(table.ref())
    if where is not None:
        inner = inner.where(where)
    counted = inner.copy()
    if request.sort:
        inner = inner.order_by(
            *[exp.Ordered(this=column(n), desc=d, nulls_first=False) for n, d in request.sort]
        )
    limit = min(request.limit, engine.row_cap)
    inner = inner.limit(limit).offset(request.offset)
    alias = exp.TableAlias(this=exp.to_identifier("__th_d"))
    outer = exp.select(row_json([(n, types[n]) for n in names])).from_(
        exp.Subquery(this=inner, alias=alias)
    )
    sql = render(outer)
    rows = engine.run(lambda cursor: cursor.execute(sql, binder.values or None).fetchall())
    total = None
    if include_total:
        count_sql = render(
            exp.select(exp.Count(this=exp.Star())).from_(exp.Subquery(this=counted, alias=alias))
        )
        row = engine.run(lambda cursor: cursor.execute(count_sql, binder.values or None).fetchone())
        total = int(row[0]) if row else 0
    return [r[0] for r in rows], total, False


@action("datastore_search_sql")
def datastore_search_sql(call: Call, data: dict[str, Any]) -> dict[str, Any]:
    """One read-only SELECT over published tables, named by resource id (`"12"` or `r_12`) or
    dataset name; the time limit and row cap apply (`records_truncated` says when it cut)."""
    from townhall.datastore import query as datastore_query

    sql = _str(data, "sql").strip()
    if not sql:
        raise _invalid("sql", "Missing value")
    engine = _engine(call)
    guarded = datastore_query.check_sql(call.session, call.actor, engine, sql, None)
    call.session.commit()
    result = datastore_query.run_sql(engine, guarded, version=None)
    answer: dict[str, Any] = {
        "sql": sql,
        "records": [json.loads(row) for row in result.rows_json],
        "fields": _ckan_fields(result.fields),
    }
    if result.truncated:
        answer["records_truncated"] = True
    return answer


def _editable_resource(call: Call, ref: str) -> Resource:
    resource = find_resource(call, ref)
    call.actor.require("datasets:publish")
    if not queries.can_edit(call.actor, resource.dataset):
        raise PermissionDenied(f"datasets:publish for {resource.dataset.organization.slug}")
    return resource


def _scratch(call: Call, suffix: str) -> Any:
    import uuid

    folder = call.settings.data_dir.resolve() / "tmp" / "ckan"
    folder.mkdir(parents=True, exist_ok=True)
    return folder / f"{uuid.uuid4().hex}{suffix}"


def _header_only_csv(path: Any, names: list[str]) -> None:
    import csv

    with path.open("w", newline="", encoding="utf-8") as handle:
        csv.writer(handle).writerow(names)


def _publish_file(
    call: Call,
    resource_id: int,
    path: Any,
    source_name: str,
    table_schema: dict[str, Any] | None,
    *,
    created: bool = False,
) -> Any:
    """Commit the request so far, load the file as the resource's next version, clean up.

    `created`: the resource was made by this call, so a failed load deletes it again (the
    client sees one action that either happened or did not).
    """
    from townhall.datastore.ingest import ingest_file
    from townhall.db import unit_of_work

    runtime = call.request.app.state.runtime
    call.session.commit()
    try:
        return ingest_file(
            runtime,
            actor=call.actor,
            resource_id=resource_id,
            path=path,
            source_name=source_name,
            table_schema=table_schema,
        )
    except BaseException:
        if created:
            with unit_of_work(runtime.session_factory) as session:
                actions.delete_resource(session, actor=call.actor, resource_id=resource_id)
        raise
    finally:
        path.unlink(missing_ok=True)
        call.session.expire_all()


def ingest_upload(
    call: Call,
    dataset: Dataset,
    resource: Resource,
    upload: UploadFile,
    *,
    created: bool = False,
) -> None:
    """Load an uploaded file into the resource's table (a new published version), as xloader
    does, but before answering: `datastore_search` works as soon as the call returns."""
    import shutil

    name = (upload.filename or "upload").replace("\\", "/").rsplit("/", 1)[-1] or "upload"
    path = _scratch(call, "")
    upload.file.seek(0)
    with path.open("wb") as handle:
        shutil.copyfileobj(upload.file, handle, 1024 * 1024)
    _publish_file(call, resource.id, path, name, None, created=created)


def _schema_from_fields(raw: Any) -> dict[str, Any] | None:
    if raw is None:
        return None
    if not isinstance(raw, list) or not all(isinstance(f, dict) for f in raw):
        raise _invalid("fields", "must be a list of {id, type} objects")
    fields = []
    for item in raw:
        name = item.get("id")
        if not isinstance(name, str) or not name:
            raise _invalid("fields", "each field needs a string id")
        if name == "_id":
            continue
        kind = str(item.get("type") or "text").strip().lower()
        if kind.startswith("_") or kind.endswith("[]"):
            ts_type = "array"
        elif kind in TABLE_SCHEMA_TYPES:
            ts_type = TABLE_SCHEMA_TYPES[kind]
        else:
            raise _invalid("fields", f"{name}: unknown type {kind!r}")
        fields.append({"name": name, "type": ts_type})
    return {"fields": fields} if fields else None


def _schema_of(table: Any) -> dict[str, Any]:
    return {
        "fields": [
            {
                "name": c["name"],
                "type": _KEEP_TYPES.get(str(c.get("type")), c.get("type", "string")),
            }
            for c in table.columns
        ]
    }


def _record_list(data: dict[str, Any], *, required: bool) -> list[dict[str, Any]]:
    raw = _json_field(data, "records")
    if raw is None:
        if required:
            raise _invalid("records", "Missing value")
        return []
    if not isinstance(raw, list) or not all(isinstance(r, dict) for r in raw):
        raise _invalid("records", "must be a list of objects")
    return raw


def _datastore_answer(call: Call, resource_id: int) -> dict[str, Any]:
    from townhall.datastore import query as datastore_query

    table = datastore_query.resource_table(call.session, call.actor, resource_id)
    return {
        "resource_id": str(resource_id),
        "fields": _ckan_fields(table.columns),
        "version": table.version,
        "total": table.row_count,
    }


@action("datastore_create", write=True)
def datastore_create(call: Call, data: dict[str, Any]) -> dict[str, Any]:
    """Create (or replace) resource `resource_id`'s table from `fields` ([{id, type}]) and
    `records`; with `resource` ({package_id, name, ...}) instead, a new resource is made."""
    if not _blank(data.get("aliases")):
        raise _invalid("aliases", "not supported; name tables by resource id or dataset name")
    table_schema = _schema_from_fields(_json_field(data, "fields"))
    records = _record_list(data, required=False)
    created = False
    if "resource_id" in data:
        resource = _editable_resource(call, _ref(data, "resource_id"))
    else:
        spec = _json_field(data, "resource")
        if not isinstance(spec, dict):
            raise _invalid("resource_id", "Missing value: give resource_id or resource")
        _resource_keys(spec)
        dataset = find_dataset(call, _ref(spec, "package_id"))
        fields = _resource_fields(
            {k: v for k, v in spec.items() if k != "package_id"}, partial=True
        )
        fields.setdefault("name", "Table")
        resource = actions.create_resource(
            call.session, actor=call.actor, slug=dataset.slug, **fields
        )
        created = True
    if records:
        path = _scratch(call, ".json")
        path.write_text(json.dumps(records), encoding="utf-8")
        source_name = "datastore_create.json"
    elif table_schema:
        path = _scratch(call, ".csv")
        _header_only_csv(path, [f["name"] for f in table_schema["fields"]])
        source_name = "datastore_create.csv"
    else:
        raise _invalid("fields", "give fields, records or both")
    resource_id = resource.id
    _publish_file(call, resource_id, path, source_name, table_schema, created=created)
    return _datastore_answer(call, resource_id)


@action("datastore_upsert", write=True)
def datastore_upsert(call: Call, data: dict[str, Any]) -> dict[str, Any]:
    """Add `records` to resource `resource_id`'s table with `method=insert` (a new version of
    the table: the old rows and the new). `upsert` and `update` need a primary key, which
    Townhall tables do not keep: re-create the table with datastore_create instead."""
    from townhall.datastore import export
    from townhall.datastore import query as datastore_query

    method = _str(data, "method", "upsert")
    if method != "insert":
        raise _invalid(
            "method",
            f"{method!r} needs a primary key, which Townhall tables do not keep; use "
            "method=insert to add rows, or datastore_create to replace the table",
        )
    records = _record_list(data, required=True)
    resource = _editable_resource(call, _ref(data, "resource_id"))
    table = datastore_query.resource_table(call.session, call.actor, resource.id)
    known = {c["name"] for c in table.columns}
    unknown = sorted({k for r in records for k in r} - known)
    if unknown:
        raise _invalid("records", f"unknown field(s) {unknown}; the table has {sorted(known)}")
    call.session.commit()
    current = export.export_table(_engine(call), table, datastore_query.RowsRequest(), "ndjson")
    with current.path.open("a", encoding="utf-8") as handle:
        for record in records:
            handle.write(json.dumps(record) + "\n")
    _publish_file(call, resource.id, current.path, "datastore_upsert.ndjson", _schema_of(table))
    return {**_datastore_answer(call, resource.id), "method": method}


@action("datastore_delete", write=True)
def datastore_delete(call: Call, data: dict[str, Any]) -> dict[str, Any]:
    """Delete the rows of resource `resource_id` that match `filters` (all rows without
    filters) by publishing a version without them; earlier versions keep them."""
    from sqlglot import exp

    from townhall.datastore import query as datastore_query
    from townhall.datastore.sqltext import string_literal

    resource = _editable_resource(call, _ref(data, "resource_id"))
    table = datastore_query.resource_table(call.session, call.actor, resource.id)
    filters = _filters(data, table)
    schema = _schema_of(table)
    engine = _engine(call)
    call.session.commit()
    names = [c["name"] for c in table.columns]
    path = engine.export_directory / f"ckan-delete-{resource.id}-{table.version}.ndjson"
    remaining = 0
    if filters:
        binder = datastore_query.Binder()
        where = datastore_query.where_clause(table, filters, "", binder)
        keep = exp.Not(this=exp.paren(exp.func("coalesce", where, exp.false())))
        select = exp.select(exp.Star()).from_(table.ref()).where(keep)
        sql = datastore_query.render(select)
        counted = engine.run(
            lambda cursor: cursor.execute(
                f"SELECT count(*) FROM ({sql})", binder.values or None
            ).fetchone()
        )
        remaining = int(counted[0]) if counted else 0
        if remaining:
            statement = f"COPY ({sql}) TO {string_literal(str(path))} (FORMAT json)"
            engine.run(lambda cursor: cursor.execute(statement, binder.values or None))
    if remaining:
        source_name = "datastore_delete.ndjson"
    else:
        path = path.with_suffix(".csv")
        _header_only_csv(path, names)
        source_name = "datastore_delete.csv"
    _publish_file(call, resource.id, path, source_name, schema)
    answer = _datastore_answer(call, resource.id)
    if "filters" in data:
        answer["filters"] = _json_field(data, "filters")
    return answer
