"""Loading the demo city's offices, opening hours and services into the directory.

Called by the demo seeding (`townhall serve --demo`, `townhall demo seed`) with a `DemoCity` from
`townhall.demo.city`. Goes through the directory's actions, so every row is audited like a
staff edit. Idempotent: offices and services already present (by slug) are left alone.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from sqlalchemy.orm import Session

from townhall.accounts import actions as account_actions
from townhall.accounts import queries as account_queries
from townhall.actor import Actor
from townhall.demo.city import DemoCity, PublicService
from townhall.directory import actions, queries

CHANNEL_STEPS = {
    "online": "Apply online",
    "in_person": "Visit an office below (take a ticket at the kiosk)",
    "phone": "Call the office",
    "mail": "Send the application by mail",
    "app": "Use the city app",
}
# Minutes a counter visit takes, by category; the live estimate replaces it once visits happen.
VISIT_MINUTES = {"Civil Records": 7, "Permits & Licenses": 15, "Taxes & Payments": 5, "Pets": 6}


def _steps(service: PublicService) -> list[str]:
    steps = []
    if service.documents:
        steps.append("Gather what to bring: " + "; ".join(service.documents))
    ways = [CHANNEL_STEPS[c] for c in service.channels if c in CHANNEL_STEPS]
    if ways:
        steps.append(" or ".join(ways[:1] + [w.lower() for w in ways[1:]]))
    if service.fee_cents:
        steps.append(f"Pay the fee ({service.fee_note or _money(service.fee_cents)})")
    if service.processing_days:
        steps.append(f"Expect an answer within {service.processing_days} working day(s)")
    elif service.target_days:
        steps.append(f"We aim to resolve it within {service.target_days} day(s)")
    return steps


def _money(cents: int) -> str:
    return f"${cents / 100:,.2f}"


def seed_directory(session: Session, *, actor: Actor, city: DemoCity) -> dict[str, int]:
    """Create the city's offices (with hours) and services; returns how many were created."""
    created = {"offices": 0, "services": 0}
    districts = {d.code: d for d in city.districts}
    for office in city.offices:
        if account_queries.organization_by_slug(session, office.slug) is None:
            account_actions.create_organization(
                session, actor=actor, slug=office.slug, name=office.name, kind="office"
            )
        actions.ensure_directory_organization(
            session, actor=actor, organization_slug=office.slug, email=office.email
        )
        if queries.location_by_slug(session, office.slug) is not None:
            continue
        district = districts.get(office.district_code)
        actions.create_location(
            session,
            actor=actor,
            slug=office.slug,
            name=office.name,
            organization_slug=office.slug,
            weekly_hours=[
                (h.weekday, h.opens, h.closes)
                for h in city.opening_hours
                if h.office_slug == office.slug
            ],
            phone=office.phone,
            description=f"{office.name}, {district.name if district else ''} district.".replace(
                ", district", ""
            ),
            latitude=office.lat,
            longitude=office.lon,
            address_1=office.address,
            city=city.name,
            state_province=city.state,
            postal_code=office.postal_code,
            country="US",
            timezone=office.timezone,
            holiday_country="US",
            holiday_subdivision=city.state,
            desks=office.counters,
            wheelchair_accessible=office.wheelchair_accessible,
            district_code=office.district_code,
            email=office.email,
            accessibility=(
                [{"id": _uuid(f"access:{office.slug}"), "description": "Step-free entrance"}]
                if office.wheelchair_accessible
                else []
            ),
        )
        created["offices"] += 1
    for service in city.services:
        if queries.service_by_slug(session, service.slug) is not None:
            continue
        fields: dict[str, Any] = {
            "code": service.code,
            "description": service.description,
            "channels": list(service.channels),
            "keywords": list(service.keywords),
            "processing_days": service.processing_days,
            "target_days": service.target_days,
            "accepts_requests": service.accepts_requests,
            "fees_description": service.fee_note or None,
            "steps": _steps(service),
            "typical_visit_minutes": VISIT_MINUTES.get(service.category, 8),
            "languages": [{"id": _uuid("language:en"), "code": "en", "name": "English"}],
        }
        actions.create_service(
            session,
            actor=actor,
            slug=service.slug,
            name=service.name,
            organization_slug=service.office_slug,
            documents=list(service.documents),
            cost_options=(
                [
                    {
                        "option": service.fee_note or None,
                        "amount": Decimal(service.fee_cents) / 100,
                        "currency": "USD",
                    }
                ]
                if service.fee_cents
                else []
            ),
            categories=[service.category],
            life_events=[e[:1].upper() + e[1:] for e in service.life_events],
            locations=list(service.available_at),
            phone=None,
            **{k: v for k, v in fields.items() if v is not None},
        )
        created["services"] += 1
    return created


def _uuid(name: str) -> str:
    import uuid

    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"townhall:{name}"))
