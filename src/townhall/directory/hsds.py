"""Open Referral HSDS 3.0: the directory as HSDS objects, and HSDS documents into the directory.

Output follows the published JSON schemas (`../shared/standards/hsds-3.0/schema/`, checked by
tests): fields without a value are left out rather than sent as null, since the schemas type
them as plain strings and numbers.

Import takes any HSDS document: a full object (service, organization, location,
service_at_location, taxonomy, taxonomy_term), a page of them (`contents`), a list, or the
tabular form (`{"services.csv": [rows] | "csv text", ...}`, as in `examples/tabular.json` and
`examples/csv/`). Everything is first flattened into tabular rows, then upserted by id in
dependency order. References to objects that are not in the import nor in the directory are
dropped with a warning instead of failing the whole import (the official examples have some).
"""

from __future__ import annotations

import csv
import io
import uuid
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, time
from decimal import Decimal, InvalidOperation
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from townhall.accounts import queries as account_queries
from townhall.actor import Actor
from townhall.audit.actions import record
from townhall.db import utcnow
from townhall.directory import actions, queries
from townhall.directory.models import (
    Contact,
    CostOption,
    DirectoryOrganization,
    Location,
    Phone,
    RequiredDocument,
    Schedule,
    Service,
    ServiceAtLocation,
    ServiceTerm,
    Taxonomy,
    TaxonomyTerm,
)
from townhall.errors import PermissionDenied, TownhallError

HSDS_VERSION = "3.0"
HSDS_PROFILE = "https://docs.openreferral.org/en/latest/hsds/schema_reference.html"


def _clean(doc: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in doc.items() if v is not None and v != ""}


def _iso(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat().replace("+00:00", "Z")
    if isinstance(value, (date, time)):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    return value


# --- output -------------------------------------------------------------------------------------


def organization_doc(
    profile: DirectoryOrganization, *, full: bool = False, session: Session | None = None
) -> dict[str, Any]:
    org = profile.organization
    doc = _clean(
        {
            "id": profile.id,
            "name": org.name,
            "alternate_name": profile.alternate_name,
            "description": org.description or org.name,
            "email": profile.email,
            "website": profile.website,
            "tax_status": profile.tax_status,
            "tax_id": profile.tax_id,
            "year_incorporated": profile.year_incorporated,
            "legal_status": profile.legal_status,
            "logo": profile.logo,
            "uri": profile.uri,
            "parent_organization_id": profile.parent_organization_id,
        }
    )
    if full and session is not None:
        doc["phones"] = [phone_doc(p) for p in _phones(session, organization_id=profile.id)]
        doc["contacts"] = [
            contact_doc(session, c) for c in _contacts(session, organization_id=profile.id)
        ]
        doc["locations"] = [
            location_doc(session, loc)
            for loc in session.scalars(
                select(Location)
                .where(Location.organization_id == profile.id)
                .order_by(Location.name)
            )
        ]
        doc["funding"] = []
        doc["programs"] = []
        doc["organization_identifiers"] = []
        doc["attributes"] = []
        doc["metadata"] = []
    return doc


def phone_doc(phone: Phone) -> dict[str, Any]:
    return _clean(
        {
            "id": phone.id,
            "number": phone.number,
            "extension": phone.extension,
            "type": phone.type,
            "description": phone.description,
            "languages": phone.languages or [],
        }
    )


def contact_doc(session: Session, contact: Contact) -> dict[str, Any]:
    doc = _clean(
        {
            "id": contact.id,
            "name": contact.name,
            "title": contact.title,
            "department": contact.department,
            "email": contact.email,
        }
    )
    doc["phones"] = [phone_doc(p) for p in _phones(session, contact_id=contact.id)]
    return doc


def schedule_doc(schedule: Schedule, timezone_name: str | None = None) -> dict[str, Any]:
    notes = schedule.notes
    if schedule.is_exception:
        kind = "Closed" if schedule.closed else "Special hours"
        notes = f"{kind}. {notes}" if notes else kind
    if timezone_name and not schedule.is_exception and not notes:
        notes = f"Times are local to {timezone_name}."
    return _clean(
        {
            "id": schedule.id,
            "service_id": schedule.service_id,
            "location_id": schedule.location_id,
            "service_at_location_id": schedule.service_at_location_id,
            "valid_from": _iso(schedule.valid_from),
            "valid_to": _iso(schedule.valid_to),
            "dtstart": schedule.dtstart,
            "timezone": schedule.timezone_offset,
            "until": schedule.until,
            "count": schedule.count,
            "wkst": schedule.wkst,
            "freq": schedule.freq,
            "interval": schedule.interval,
            "byday": schedule.byday,
            "byweekno": schedule.byweekno,
            "bymonthday": schedule.bymonthday,
            "byyearday": schedule.byyearday,
            "description": schedule.description,
            "opens_at": _iso(schedule.opens_at),
            "closes_at": _iso(schedule.closes_at),
            "schedule_link": schedule.schedule_link,
            "attending_type": schedule.attending_type,
            "notes": notes,
        }
    )


def _phones(session: Session, **where: str) -> list[Phone]:
    column, value = next(iter(where.items()))
    return list(
        session.scalars(select(Phone).where(getattr(Phone, column) == value).order_by(Phone.id))
    )


def _contacts(session: Session, **where: str) -> list[Contact]:
    column, value = next(iter(where.items()))
    return list(
        session.scalars(
            select(Contact).where(getattr(Contact, column) == value).order_by(Contact.id)
        )
    )


def _schedules(session: Session, **where: str) -> list[Schedule]:
    column, value = next(iter(where.items()))
    return list(
        session.scalars(
            select(Schedule)
            .where(getattr(Schedule, column) == value)
            .order_by(Schedule.is_exception, Schedule.valid_from, Schedule.byday, Schedule.id)
        )
    )


def location_doc(session: Session, location: Location) -> dict[str, Any]:
    doc = _clean(
        {
            "id": location.id,
            "location_type": location.location_type,
            "url": location.url,
            "organization_id": location.organization_id,
            "name": location.name,
            "alternate_name": location.alternate_name,
            "description": location.description,
            "transportation": location.transportation,
            "latitude": location.latitude,
            "longitude": location.longitude,
            "external_identifier": location.external_identifier,
            "external_identifier_type": location.external_identifier_type,
        }
    )
    doc["languages"] = location.languages or []
    doc["addresses"] = []
    if location.address_1:
        doc["addresses"].append(
            _clean(
                {
                    "id": location.address_id or str(uuid.uuid5(uuid.NAMESPACE_URL, location.id)),
                    "location_id": location.id,
                    "attention": (location.extras or {}).get("attention"),
                    "address_1": location.address_1,
                    "address_2": location.address_2,
                    "city": location.city or "",
                    "region": location.region,
                    "state_province": location.state_province or "",
                    "postal_code": location.postal_code or "",
                    "country": location.country or "",
                    "address_type": location.address_type or "physical",
                }
            )
            | {
                # Required by the schema even when unknown: sent as empty strings.
                k: getattr(location, k) or ""
                for k in ("city", "state_province", "postal_code", "country")
            }
        )
    doc["contacts"] = [contact_doc(session, c) for c in _contacts(session, location_id=location.id)]
    doc["accessibility"] = list(location.accessibility or [])
    doc["phones"] = [phone_doc(p) for p in _phones(session, location_id=location.id)]
    doc["schedules"] = [
        schedule_doc(s, location.timezone) for s in _schedules(session, location_id=location.id)
    ]
    doc["attributes"] = []
    doc["metadata"] = []
    return doc


def term_doc(term: TaxonomyTerm) -> dict[str, Any]:
    doc = _clean(
        {
            "id": term.id,
            "code": term.code,
            "name": term.name,
            "description": term.description or term.name,
            "parent_id": term.parent_id,
            "taxonomy": term.taxonomy,
            "language": term.language,
            "taxonomy_id": term.taxonomy_id,
            "term_uri": term.term_uri,
        }
    )
    if term.taxonomy_detail is not None:
        doc["taxonomy_detail"] = taxonomy_doc(term.taxonomy_detail)
    return doc


def taxonomy_doc(taxonomy: Taxonomy) -> dict[str, Any]:
    return _clean(
        {
            "id": taxonomy.id,
            "name": taxonomy.name,
            "description": taxonomy.description or taxonomy.name,
            "uri": taxonomy.uri,
            "version": taxonomy.version,
        }
    )


def _service_fields(service: Service) -> dict[str, Any]:
    extras = service.extras or {}
    return _clean(
        {
            "id": service.id,
            "organization_id": service.organization_id,
            "program_id": extras.get("program", {}).get("id") if extras.get("program") else None,
            "name": service.name,
            "alternate_name": service.alternate_name,
            "description": service.description,
            "url": service.url or service.online_form_url,
            "email": service.email,
            "status": service.status,
            "interpretation_services": service.interpretation_services,
            "application_process": service.application_process or _steps_text(service),
            "fees_description": service.fees_description,
            "wait_time": service.wait_time,
            "accreditations": service.accreditations,
            "eligibility_description": service.eligibility_description,
            "minimum_age": service.minimum_age,
            "maximum_age": service.maximum_age,
            "assured_date": _iso(service.assured_date),
            "assurer_email": service.assurer_email,
            "licenses": service.licenses,
            "alert": service.alert,
            "last_modified": _iso(service.updated_at),
        }
    )


def _steps_text(service: Service) -> str | None:
    if not service.steps:
        return None
    return " ".join(f"{n}. {step}" for n, step in enumerate(service.steps, 1))


def service_list_item(service: Service) -> dict[str, Any]:
    doc = _service_fields(service)
    if service.organization is not None:
        doc["organization"] = organization_doc(service.organization)
    program = (service.extras or {}).get("program")
    if program:
        doc["program"] = program
    return doc


def service_at_location_doc(
    session: Session, link: ServiceAtLocation, *, with_service: bool = False
) -> dict[str, Any]:
    doc = _clean(
        {
            "id": link.id,
            "service_id": link.service_id,
            "location_id": link.location_id,
            "description": link.description,
        }
    )
    doc["contacts"] = [
        contact_doc(session, c) for c in _contacts(session, service_at_location_id=link.id)
    ]
    doc["phones"] = [phone_doc(p) for p in _phones(session, service_at_location_id=link.id)]
    doc["schedules"] = [
        schedule_doc(s) for s in _schedules(session, service_at_location_id=link.id)
    ]
    doc["location"] = location_doc(session, link.location)
    doc["attributes"] = []
    doc["metadata"] = []
    if with_service:
        doc["service"] = service_list_item(link.service)
    return doc


def service_doc(session: Session, service: Service) -> dict[str, Any]:
    """The fully nested service (`/services/{id}`)."""
    doc = service_list_item(service)
    extras = service.extras or {}
    doc["phones"] = [phone_doc(p) for p in _phones(session, service_id=service.id)]
    doc["schedules"] = [schedule_doc(s) for s in _schedules(session, service_id=service.id)]
    doc["service_areas"] = list(service.service_areas or [])
    doc["service_at_locations"] = [
        service_at_location_doc(session, link) for link in service.service_at_locations
    ]
    doc["languages"] = list(service.languages or [])
    doc["funding"] = list(extras.get("funding", []))
    doc["cost_options"] = [
        _clean(
            {
                "id": c.id,
                "service_id": service.id,
                "valid_from": _iso(c.valid_from),
                "valid_to": _iso(c.valid_to),
                "option": c.option,
                "currency": c.currency,
                "amount": _iso(c.amount),
                "amount_description": c.amount_description,
            }
        )
        for c in service.cost_options
    ]
    doc["required_documents"] = [
        _clean({"id": d.id, "service_id": service.id, "document": d.document, "uri": d.uri})
        for d in service.required_documents
    ]
    doc["contacts"] = [contact_doc(session, c) for c in _contacts(session, service_id=service.id)]
    doc["attributes"] = [
        _clean(
            {
                "id": link.id,
                "link_id": service.id,
                "taxonomy_term_id": link.taxonomy_term_id,
                "link_type": "service",
                "link_entity": "service",
                "value": link.value,
            }
        )
        | {"taxonomy_term": term_doc(link.term)}
        for link in service.terms
    ]
    doc["metadata"] = list(extras.get("metadata", []))
    return doc


def page(
    items: list[dict[str, Any]], *, total: int, page_number: int, per_page: int
) -> dict[str, Any]:
    total_pages = max(1, -(-total // per_page)) if total else 0
    return {
        "total_items": total,
        "total_pages": total_pages,
        "page_number": page_number,
        "size": len(items),
        "first_page": page_number == 1,
        "last_page": page_number >= total_pages,
        "empty": not items,
        "contents": items,
    }


# --- import -------------------------------------------------------------------------------------

TABLES = (
    "taxonomies",
    "taxonomy_terms",
    "organizations",
    "programs",
    "locations",
    "addresses",
    "accessibility",
    "services",
    "service_at_locations",
    "contacts",
    "phones",
    "schedules",
    "required_documents",
    "cost_options",
    "languages",
    "service_areas",
    "funding",
    "attributes",
    "metadata",
    "organization_identifiers",
    "meta_table_descriptions",
)
# File names of the tabular form that differ from the table names above.
_TABLE_ALIASES = {
    "service_at_location": "service_at_locations",
    "accessibility_for_disabilities": "accessibility",
}
# Nested arrays (key in a parent object) -> table, and the parent's foreign key column.
_CHILDREN = {
    "organization": {
        "funding": ("funding", "organization_id"),
        "contacts": ("contacts", "organization_id"),
        "phones": ("phones", "organization_id"),
        "locations": ("locations", "organization_id"),
        "programs": ("programs", "organization_id"),
        "organization_identifiers": ("organization_identifiers", "organization_id"),
        "services": ("services", "organization_id"),
        "metadata": ("metadata", "resource_id"),
    },
    "service": {
        "phones": ("phones", "service_id"),
        "schedules": ("schedules", "service_id"),
        "service_areas": ("service_areas", "service_id"),
        "service_at_locations": ("service_at_locations", "service_id"),
        "languages": ("languages", "service_id"),
        "funding": ("funding", "service_id"),
        "cost_options": ("cost_options", "service_id"),
        "required_documents": ("required_documents", "service_id"),
        "contacts": ("contacts", "service_id"),
        "attributes": ("attributes", "link_id"),
        "metadata": ("metadata", "resource_id"),
    },
    "location": {
        "languages": ("languages", "location_id"),
        "addresses": ("addresses", "location_id"),
        "contacts": ("contacts", "location_id"),
        "accessibility": ("accessibility", "location_id"),
        "phones": ("phones", "location_id"),
        "schedules": ("schedules", "location_id"),
        "attributes": ("attributes", "link_id"),
        "metadata": ("metadata", "resource_id"),
    },
    "service_at_location": {
        "contacts": ("contacts", "service_at_location_id"),
        "phones": ("phones", "service_at_location_id"),
        "schedules": ("schedules", "service_at_location_id"),
        "attributes": ("attributes", "link_id"),
        "metadata": ("metadata", "resource_id"),
    },
    "contact": {"phones": ("phones", "contact_id")},
    "phone": {"languages": ("languages", "phone_id")},
}
_KIND_TABLE = {
    "organization": "organizations",
    "service": "services",
    "location": "locations",
    "service_at_location": "service_at_locations",
    "contact": "contacts",
    "phone": "phones",
    "taxonomy": "taxonomies",
    "taxonomy_term": "taxonomy_terms",
}


@dataclass
class ImportReport:
    created: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    updated: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    warnings: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "created": dict(self.created),
            "updated": dict(self.updated),
            "warnings": self.warnings,
        }


def _bad(message: str) -> TownhallError:
    return TownhallError(422, "invalid_request", f"HSDS import: {message}")


def _guess_kind(doc: dict[str, Any]) -> str:
    if "location_type" in doc:
        return "location"
    if "service" in doc or "location" in doc:
        return "service_at_location"
    if "status" in doc:
        return "service"
    if "services" in doc or "locations" in doc or "website" in doc or "legal_status" in doc:
        return "organization"
    if "taxonomy_detail" in doc or "taxonomy_id" in doc or "code" in doc or "parent_id" in doc:
        return "taxonomy_term"
    if "version" in doc or "uri" in doc:
        return "taxonomy"
    if "name" in doc and "description" in doc:
        return "organization"
    raise _bad(f"cannot tell what kind of HSDS object has the fields {sorted(doc)[:8]}")


def tabular_from_documents(payload: Any) -> dict[str, list[dict[str, Any]]]:
    """Flatten any accepted HSDS document into tabular rows keyed by table name."""
    tables: dict[str, list[dict[str, Any]]] = defaultdict(list)
    if isinstance(payload, dict) and any(str(k).endswith(".csv") for k in payload):
        for name, rows in payload.items():
            table = str(name).removesuffix(".csv")
            table = _TABLE_ALIASES.get(table, table)
            if table not in TABLES:
                raise _bad(f"unknown table {name!r}")
            if isinstance(rows, str):
                rows = list(csv.DictReader(io.StringIO(rows)))
            if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
                raise _bad(f"{name} must be a list of rows or CSV text")
            tables[table].extend({k: v for k, v in r.items() if v not in ("", None)} for r in rows)
        return tables
    if isinstance(payload, dict) and isinstance(payload.get("contents"), list):
        payload = payload["contents"]
    documents = payload if isinstance(payload, list) else [payload]
    for doc in documents:
        if not isinstance(doc, dict):
            raise _bad("every document must be a JSON object")
        _flatten(doc, _guess_kind(doc), tables, None)
    return tables


def _flatten(
    doc: dict[str, Any],
    kind: str,
    tables: dict[str, list[dict[str, Any]]],
    parent: tuple[str, str] | None,
) -> None:
    if not isinstance(doc.get("id"), str):
        raise _bad(f"a {kind} has no string id")
    row = {k: v for k, v in doc.items() if not isinstance(v, (list, dict))}
    if parent is not None and parent[0] not in row:
        row[parent[0]] = parent[1]
    for key, value in doc.items():
        if key in _CHILDREN.get(kind, {}) and isinstance(value, list):
            table, column = _CHILDREN[kind][key]
            child_kind = next((k for k, t in _KIND_TABLE.items() if t == table), None)
            for child in value:
                if not isinstance(child, dict):
                    raise _bad(f"{kind}.{key} must hold objects")
                if child_kind:
                    _flatten(child, child_kind, tables, (column, doc["id"]))
                else:
                    child_row = {k: v for k, v in child.items() if not isinstance(v, (list, dict))}
                    child_row.setdefault(column, doc["id"])
                    if key == "attributes" and isinstance(child.get("taxonomy_term"), dict):
                        term = child["taxonomy_term"]
                        _flatten(term, "taxonomy_term", tables, None)
                        child_row.setdefault("taxonomy_term_id", term["id"])
                        child_row.setdefault("link_entity", kind)
                    if key == "attributes":
                        child_row["_parent_kind"] = kind
                    tables[table].append(child_row)
        elif isinstance(value, dict):
            if key == "organization" and kind == "service":
                _flatten(value, "organization", tables, None)
                row.setdefault("organization_id", value["id"])
            elif key == "program":
                tables["programs"].append(
                    {k: v for k, v in value.items() if not isinstance(v, (list, dict))}
                )
                row.setdefault("program_id", value["id"])
            elif key == "location" and kind == "service_at_location":
                _flatten(value, "location", tables, None)
                row.setdefault("location_id", value["id"])
            elif key == "service" and kind == "service_at_location":
                _flatten(value, "service", tables, None)
                row.setdefault("service_id", value["id"])
            elif key == "taxonomy_detail" and kind == "taxonomy_term":
                _flatten(value, "taxonomy", tables, None)
                row.setdefault("taxonomy_id", value["id"])
    tables[_KIND_TABLE[kind]].append(row)


def _merge_rows(rows: Iterable[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Rows of one table by id; the same id seen twice (shared phones) is merged."""
    merged: dict[str, dict[str, Any]] = {}
    for row in rows:
        key = str(row.get("id") or uuid.uuid4())
        merged.setdefault(key, {}).update({k: v for k, v in row.items() if v is not None})
    return merged


def _to_int(value: Any) -> int | None:
    if value in (None, ""):
        return None
    try:
        return int(float(value))
    except (TypeError, ValueError):
        return None


def _to_float(value: Any) -> float | None:
    if value in (None, ""):
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _to_date(value: Any) -> date | None:
    if not value:
        return None
    try:
        return date.fromisoformat(str(value)[:10])
    except ValueError:
        return None


def _to_time(value: Any) -> time | None:
    if not value:
        return None
    try:
        return time.fromisoformat(str(value))
    except ValueError:
        return None


def _to_decimal(value: Any) -> Decimal | None:
    if value in (None, ""):
        return None
    try:
        return Decimal(str(value))
    except InvalidOperation:
        return None


class _Importer:
    def __init__(
        self, session: Session, actor: Actor, tables: dict[str, list[dict[str, Any]]]
    ) -> None:
        self.session = session
        self.actor = actor
        self.rows = {name: _merge_rows(tables.get(name, [])) for name in TABLES}
        self.report = ImportReport()

    def _exists(self, model: type, key: Any) -> bool:
        return key is not None and self.session.get(model, key) is not None

    def _ref(self, model: type, key: Any, what: str, owner: str) -> str | None:
        if key is None:
            return None
        if self._exists(model, key):
            return str(key)
        self.report.warnings.append(f"{owner}: {what} {key} is not in the directory; link dropped")
        return None

    def _upsert(self, model: type, table: str, key: str, values: dict[str, Any]) -> Any:
        obj = self.session.get(model, key)
        if obj is None:
            obj = model(id=key, **values)
            self.session.add(obj)
            self.report.created[table] += 1
        else:
            for name, value in values.items():
                setattr(obj, name, value)
            self.report.updated[table] += 1
        self.session.flush()
        return obj

    def run(self) -> ImportReport:
        self.taxonomies()
        self.organizations()
        self.locations()
        self.services()
        self.service_at_locations()
        self.contacts()
        self.phones()
        self.schedules()
        self.service_children()
        self.attributes()
        for table in ("organization_identifiers", "meta_table_descriptions"):
            if self.rows[table]:
                self.report.warnings.append(f"{table}: {len(self.rows[table])} row(s) not kept")
        return self.report

    def taxonomies(self) -> None:
        for key, row in self.rows["taxonomies"].items():
            clash = self.session.scalar(
                select(Taxonomy).where(Taxonomy.name == row.get("name"), Taxonomy.id != key)
            )
            name = row.get("name") or key
            if clash is not None:
                name = f"{name} ({key[:8]})"
            self._upsert(
                Taxonomy,
                "taxonomies",
                key,
                {
                    "name": name,
                    "description": row.get("description") or "",
                    "uri": row.get("uri"),
                    "version": row.get("version"),
                },
            )
        for key, row in self.rows["taxonomy_terms"].items():
            taxonomy_id = self._ref(
                Taxonomy, row.get("taxonomy_id"), "taxonomy", f"taxonomy term {key}"
            )
            taxonomy = self.session.get(Taxonomy, taxonomy_id) if taxonomy_id else None
            code = row.get("code")
            if (
                taxonomy_id
                and code
                and self.session.scalar(
                    select(TaxonomyTerm).where(
                        TaxonomyTerm.taxonomy_id == taxonomy_id,
                        TaxonomyTerm.code == code,
                        TaxonomyTerm.id != key,
                    )
                )
            ):
                code = f"{code}-{key[:8]}"
            self._upsert(
                TaxonomyTerm,
                "taxonomy_terms",
                key,
                {
                    "taxonomy_id": taxonomy_id,
                    "code": code,
                    "slug": actions.slugify(row.get("name") or key, 120),
                    "name": row.get("name") or key,
                    "description": row.get("description") or "",
                    "parent_id": row.get("parent_id"),
                    "taxonomy": row.get("taxonomy") or (taxonomy.name if taxonomy else None),
                    "language": row.get("language"),
                    "term_uri": row.get("term_uri"),
                },
            )

    def organizations(self) -> None:
        for key, row in self.rows["organizations"].items():
            profile = self.session.get(DirectoryOrganization, key)
            fields = {
                "alternate_name": row.get("alternate_name"),
                "email": row.get("email"),
                "website": row.get("website"),
                "tax_status": row.get("tax_status"),
                "tax_id": row.get("tax_id"),
                "year_incorporated": _to_int(row.get("year_incorporated")),
                "legal_status": row.get("legal_status"),
                "logo": row.get("logo"),
                "uri": row.get("uri"),
                "parent_organization_id": row.get("parent_organization_id"),
            }
            if profile is None:
                name = str(row.get("name") or key)
                slug = actions.slugify(name)
                existing = account_queries.organization_by_slug(self.session, slug)
                if existing is not None and queries.directory_organization(
                    self.session, existing.id
                ):
                    slug = actions.slugify(f"{name}-{key[:8]}")
                profile = actions.ensure_directory_organization(
                    self.session,
                    actor=self.actor,
                    organization_slug=slug,
                    create_name=name,
                    hsds_id=key,
                    **fields,
                )
                self.report.created["organizations"] += 1
            else:
                if not queries.can_manage(self.actor, "directory:edit", profile):
                    raise PermissionDenied(f"directory:edit for organization {key}")
                for name, value in fields.items():
                    setattr(profile, name, value)
                profile.updated_at = utcnow()
                self.report.updated["organizations"] += 1
        self.session.flush()

    def _owner_check(self, organization_id: str | None, what: str) -> None:
        owner = (
            self.session.get(DirectoryOrganization, organization_id) if organization_id else None
        )
        if not queries.can_manage(self.actor, "directory:edit", owner):
            raise PermissionDenied(f"directory:edit for {what}")

    def _unique_slug(self, model: type, name: str, key: str) -> str:
        existing = self.session.get(model, key)
        if existing is not None:
            return existing.slug
        base = actions.slugify(name)
        slug, n = base, 2
        while self.session.scalar(select(model).where(model.slug == slug)) is not None:
            slug = f"{base[:95]}-{n}"
            n += 1
        return slug

    def locations(self) -> None:
        addresses: dict[str, dict[str, Any]] = {}
        for row in self.rows["addresses"].values():
            location_id = row.get("location_id")
            current = addresses.get(location_id)
            # Prefer the physical address; keep the first otherwise.
            if current is None or (
                row.get("address_type") == "physical" and current.get("address_type") != "physical"
            ):
                addresses[location_id] = row
        accessibility: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for row in self.rows["accessibility"].values():
            accessibility[row.get("location_id")].append(
                {k: v for k, v in row.items() if k != "location_id"}
            )
        languages: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for row in self.rows["languages"].values():
            if row.get("location_id"):
                languages[row["location_id"]].append(_language(row))
        for key, row in self.rows["locations"].items():
            organization_id = self._ref(
                DirectoryOrganization, row.get("organization_id"), "organization", f"location {key}"
            )
            self._owner_check(organization_id, f"location {key}")
            lat, lon = _to_float(row.get("latitude")), _to_float(row.get("longitude"))
            if lat is not None and not (-90 <= lat <= 90 and -180 <= (lon or 0) <= 180):
                self.report.warnings.append(
                    f"location {key}: coordinates {lat},{lon} are not on Earth; dropped"
                )
                lat = lon = None
            address = addresses.get(key, {})
            location_type = (
                row.get("location_type")
                if row.get("location_type") in ("physical", "postal", "virtual")
                else "physical"
            )
            values = {
                "slug": self._unique_slug(Location, str(row.get("name") or key), key),
                "organization_id": organization_id,
                "location_type": location_type,
                "name": row.get("name") or key,
                "alternate_name": row.get("alternate_name"),
                "description": row.get("description") or "",
                "transportation": row.get("transportation"),
                "url": row.get("url"),
                "latitude": lat,
                "longitude": lon,
                "external_identifier": row.get("external_identifier"),
                "external_identifier_type": row.get("external_identifier_type"),
                "address_id": address.get("id"),
                "address_1": address.get("address_1"),
                "address_2": address.get("address_2"),
                "city": address.get("city"),
                "region": address.get("region"),
                "state_province": address.get("state_province"),
                "postal_code": address.get("postal_code"),
                "country": (address.get("country") or "")[:2].upper() or None,
                "address_type": address.get("address_type") or "physical",
                "accessibility": accessibility.get(key, []),
                "languages": languages.get(key, []),
                "extras": {"attention": address["attention"]} if address.get("attention") else {},
                "updated_at": utcnow(),
            }
            self._upsert(Location, "locations", key, values)

    def services(self) -> None:
        languages: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for row in self.rows["languages"].values():
            if row.get("service_id"):
                languages[row["service_id"]].append(_language(row))
        areas: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for row in self.rows["service_areas"].values():
            areas[row.get("service_id")].append({k: v for k, v in row.items() if k != "service_id"})
        funding: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for row in self.rows["funding"].values():
            if row.get("service_id"):
                funding[row["service_id"]].append(
                    {k: v for k, v in row.items() if k not in ("service_id", "organization_id")}
                )
        metadata: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for row in self.rows["metadata"].values():
            metadata[row.get("resource_id")].append(row)
        for key, row in self.rows["services"].items():
            organization_id = self._ref(
                DirectoryOrganization, row.get("organization_id"), "organization", f"service {key}"
            )
            self._owner_check(organization_id, f"service {key}")
            status = (
                row.get("status")
                if row.get("status") in ("active", "inactive", "defunct", "temporarily closed")
                else "active"
            )
            program = self.rows["programs"].get(row.get("program_id") or "")
            extras: dict[str, Any] = {}
            if program:
                extras["program"] = {
                    k: v
                    for k, v in program.items()
                    if k in ("id", "name", "alternate_name", "description")
                }
            if funding.get(key):
                extras["funding"] = funding[key]
            if metadata.get(key):
                extras["metadata"] = metadata[key]
            values = {
                "slug": self._unique_slug(Service, str(row.get("name") or key), key),
                "organization_id": organization_id,
                "name": row.get("name") or key,
                "alternate_name": row.get("alternate_name"),
                "description": row.get("description") or "",
                "url": row.get("url"),
                "email": row.get("email"),
                "status": status,
                "interpretation_services": row.get("interpretation_services"),
                "application_process": row.get("application_process"),
                "fees_description": row.get("fees_description") or row.get("fees"),
                "wait_time": row.get("wait_time"),
                "accreditations": row.get("accreditations"),
                "eligibility_description": row.get("eligibility_description"),
                "minimum_age": _to_int(row.get("minimum_age")),
                "maximum_age": _to_int(row.get("maximum_age")),
                "assured_date": _to_date(row.get("assured_date")),
                "assurer_email": row.get("assurer_email"),
                "licenses": row.get("licenses"),
                "alert": row.get("alert"),
                "languages": languages.get(key, []),
                "service_areas": areas.get(key, []),
                "extras": extras,
                "updated_at": utcnow(),
            }
            self._upsert(Service, "services", key, values)

    def service_at_locations(self) -> None:
        for key, row in self.rows["service_at_locations"].items():
            service_id = self._ref(
                Service, row.get("service_id"), "service", f"service_at_location {key}"
            )
            location_id = self._ref(
                Location, row.get("location_id"), "location", f"service_at_location {key}"
            )
            if service_id is None or location_id is None:
                continue
            other = self.session.scalar(
                select(ServiceAtLocation).where(
                    ServiceAtLocation.service_id == service_id,
                    ServiceAtLocation.location_id == location_id,
                    ServiceAtLocation.id != key,
                )
            )
            if other is not None:
                self.report.warnings.append(
                    f"service_at_location {key}: the pair is already linked as {other.id}"
                )
                continue
            self._upsert(
                ServiceAtLocation,
                "service_at_locations",
                key,
                {
                    "service_id": service_id,
                    "location_id": location_id,
                    "description": row.get("description"),
                    "updated_at": utcnow(),
                },
            )

    def _parents(self, row: dict[str, Any], owner: str) -> dict[str, Any]:
        return {
            "service_id": self._ref(Service, row.get("service_id"), "service", owner),
            "location_id": self._ref(Location, row.get("location_id"), "location", owner),
            "service_at_location_id": self._ref(
                ServiceAtLocation, row.get("service_at_location_id"), "service_at_location", owner
            ),
        }

    def contacts(self) -> None:
        for key, row in self.rows["contacts"].items():
            values = self._parents(row, f"contact {key}") | {
                "organization_id": self._ref(
                    DirectoryOrganization,
                    row.get("organization_id"),
                    "organization",
                    f"contact {key}",
                ),
                "name": row.get("name"),
                "title": row.get("title"),
                "department": row.get("department"),
                "email": row.get("email"),
            }
            self._upsert(Contact, "contacts", key, values)

    def phones(self) -> None:
        languages: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for row in self.rows["languages"].values():
            if row.get("phone_id"):
                languages[row["phone_id"]].append(_language(row))
        for key, row in self.rows["phones"].items():
            values = self._parents(row, f"phone {key}") | {
                "organization_id": self._ref(
                    DirectoryOrganization,
                    row.get("organization_id"),
                    "organization",
                    f"phone {key}",
                ),
                "contact_id": self._ref(Contact, row.get("contact_id"), "contact", f"phone {key}"),
                "number": str(row.get("number") or ""),
                "extension": _to_int(row.get("extension")),
                "type": row.get("type"),
                "description": row.get("description"),
                "languages": languages.get(key, []),
            }
            self._upsert(Phone, "phones", key, values)

    def schedules(self) -> None:
        for key, row in self.rows["schedules"].items():
            values = self._parents(row, f"schedule {key}") | {
                "valid_from": _to_date(row.get("valid_from")),
                "valid_to": _to_date(row.get("valid_to")),
                "dtstart": row.get("dtstart"),
                "timezone_offset": _to_float(row.get("timezone")),
                "until": row.get("until"),
                "count": _to_int(row.get("count")),
                "wkst": row.get("wkst")
                if row.get("wkst") in ("MO", "TU", "WE", "TH", "FR", "SA", "SU")
                else None,
                "freq": row.get("freq") if row.get("freq") in ("WEEKLY", "MONTHLY") else None,
                "interval": _to_int(row.get("interval")),
                "byday": row.get("byday"),
                "byweekno": row.get("byweekno"),
                "bymonthday": row.get("bymonthday"),
                "byyearday": row.get("byyearday"),
                "description": row.get("description"),
                "opens_at": _to_time(row.get("opens_at")),
                "closes_at": _to_time(row.get("closes_at")),
                "schedule_link": row.get("schedule_link"),
                "attending_type": row.get("attending_type"),
                "notes": row.get("notes"),
            }
            if values["freq"] not in (None, "WEEKLY"):
                self.report.warnings.append(
                    f"schedule {key}: {values['freq']} rules are shown but not used for open-now"
                )
            self._upsert(Schedule, "schedules", key, values)

    def service_children(self) -> None:
        for table, model in (
            ("required_documents", RequiredDocument),
            ("cost_options", CostOption),
        ):
            for n, (key, row) in enumerate(self.rows[table].items()):
                service_id = self._ref(Service, row.get("service_id"), "service", f"{table} {key}")
                if service_id is None:
                    continue
                if model is RequiredDocument:
                    values = {
                        "service_id": service_id,
                        "document": row.get("document") or "",
                        "uri": row.get("uri"),
                        "position": n,
                    }
                else:
                    values = {
                        "service_id": service_id,
                        "option": row.get("option"),
                        "amount": _to_decimal(row.get("amount")),
                        "currency": (row.get("currency") or "")[:3].upper() or None,
                        "amount_description": row.get("amount_description"),
                        "valid_from": _to_date(row.get("valid_from")),
                        "valid_to": _to_date(row.get("valid_to")),
                        "position": n,
                    }
                self._upsert(model, table, key, values)

    def attributes(self) -> None:
        for key, row in self.rows["attributes"].items():
            term_id = self._ref(
                TaxonomyTerm, row.get("taxonomy_term_id"), "taxonomy term", f"attribute {key}"
            )
            link_id = row.get("link_id")
            if term_id is None:
                continue
            if not self._exists(Service, link_id):
                self.report.warnings.append(
                    f"attribute {key}: only attributes of services are kept"
                )
                continue
            clash = self.session.scalar(
                select(ServiceTerm).where(
                    ServiceTerm.service_id == link_id,
                    ServiceTerm.taxonomy_term_id == term_id,
                    ServiceTerm.id != key,
                )
            )
            if clash is not None:
                continue
            self._upsert(
                ServiceTerm,
                "attributes",
                key,
                {"service_id": link_id, "taxonomy_term_id": term_id, "value": row.get("value")},
            )


def _language(row: dict[str, Any]) -> dict[str, Any]:
    return {k: row[k] for k in ("id", "name", "code", "note") if row.get(k) is not None}


def import_hsds(session: Session, *, actor: Actor, payload: Any) -> ImportReport:
    """Import HSDS documents (see the module docstring). An action: checks `directory:edit`
    (and `organizations:manage` when new organizations come in), audits one entry with the
    counts, never commits. Re-importing the same documents updates in place."""
    actor.require("directory:edit")
    tables = tabular_from_documents(payload)
    if not any(tables.values()):
        raise _bad("nothing to import")
    report = _Importer(session, actor, tables).run()
    record(
        session,
        actor=actor,
        action="directory.import.hsds",
        object_type="directory",
        object_id="hsds",
        changes=report.as_dict(),
    )
    return report
