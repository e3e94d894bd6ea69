"""JSON routes for accounts under /api/v1."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query

from townhall.accounts import actions, queries
from townhall.accounts.auth import PublicActor, requires
from townhall.accounts.models import ApiToken, User
from townhall.accounts.schemas import (
    MePublic,
    OrganizationCreate,
    OrganizationPublic,
    TokenCreate,
    TokenCreated,
    TokenPublic,
    UserCreate,
    UserPublic,
    UserUpdate,
)
from townhall.actor import Actor
from townhall.deps import DbSession
from townhall.errors import NotFoundError
from townhall.schemas import MAX_ID, Page

router = APIRouter(prefix="/api/v1", tags=["accounts"])


def user_public(user: User) -> UserPublic:
    return UserPublic(
        id=user.id,
        email=user.email,
        display_name=user.display_name,
        role=user.role,
        is_active=user.is_active,
        organizations=sorted(m.organization.slug for m in user.memberships),
        created_at=user.created_at,
    )


def token_public(token: ApiToken) -> TokenPublic:
    return TokenPublic.model_validate(token)


@router.get("/me", response_model=MePublic, summary="The calling account")
def read_me(db: DbSession, actor: Annotated[Actor, Depends(requires("account:read"))]) -> MePublic:
    user = queries.user_by_id(db, actor.user_id or 0)
    if user is None:
        raise NotFoundError("user", actor.user_id)
    return MePublic(
        **user_public(user).model_dump(), permissions=sorted(actor.permissions), via=actor.via
    )


@router.get("/users", response_model=Page[UserPublic], summary="List users")
def list_users(
    db: DbSession,
    _actor: Annotated[Actor, Depends(requires("users:read"))],
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> Page[UserPublic]:
    users, total = queries.list_users(db, limit=limit, offset=offset)
    return Page(total=total, limit=limit, offset=offset, items=[user_public(u) for u in users])


@router.post("/users", response_model=UserPublic, status_code=201, summary="Create a user")
def create_user(
    body: UserCreate,
    db: DbSession,
    actor: Annotated[Actor, Depends(requires("users:manage"))],
) -> UserPublic:
    user = actions.create_user(
        db,
        actor=actor,
        email=body.email,
        password=body.password,
        role=body.role,
        display_name=body.display_name,
        organization_slugs=body.organizations,
    )
    return user_public(user)


@router.patch("/users/{user_id}", response_model=UserPublic, summary="Change a user")
def update_user(
    user_id: Annotated[int, Path(ge=1, le=MAX_ID)],
    body: UserUpdate,
    db: DbSession,
    actor: Annotated[Actor, Depends(requires("users:manage"))],
) -> UserPublic:
    user = actions.update_user(
        db,
        actor=actor,
        user_id=user_id,
        role=body.role,
        is_active=body.is_active,
        display_name=body.display_name,
    )
    return user_public(user)


@router.get("/tokens", response_model=list[TokenPublic], summary="List API tokens")
def list_tokens(
    db: DbSession,
    actor: Annotated[Actor, Depends(requires("tokens:manage-own"))],
    all_users: Annotated[bool, Query(alias="all")] = False,
) -> list[TokenPublic]:
    if all_users:
        actor.require("tokens:manage-any")
    tokens = queries.list_tokens(db, user_id=None if all_users else actor.user_id)
    return [token_public(t) for t in tokens]


@router.post("/tokens", response_model=TokenCreated, status_code=201, summary="Create a token")
def create_token(
    body: TokenCreate,
    db: DbSession,
    actor: Annotated[Actor, Depends(requires("tokens:manage-own"))],
) -> TokenCreated:
    token, raw = actions.create_api_token(
        db,
        actor=actor,
        user_id=actor.user_id or 0,
        name=body.name,
        scopes=body.scopes,
        expires_in_days=body.expires_in_days,
    )
    return TokenCreated(**token_public(token).model_dump(), token=raw)


@router.delete("/tokens/{token_id}", response_model=TokenPublic, summary="Revoke a token")
def revoke_token(
    token_id: Annotated[int, Path(ge=1, le=MAX_ID)],
    db: DbSession,
    actor: Annotated[Actor, Depends(requires("tokens:manage-own"))],
) -> TokenPublic:
    return token_public(actions.revoke_api_token(db, actor=actor, token_id=token_id))


@router.get("/organizations", response_model=list[OrganizationPublic], summary="List organizations")
def list_organizations(db: DbSession, _actor: PublicActor) -> list[OrganizationPublic]:
    return [OrganizationPublic.model_validate(o) for o in queries.list_organizations(db)]


@router.post(
    "/organizations",
    response_model=OrganizationPublic,
    status_code=201,
    summary="Create an organization",
)
def create_organization(
    body: OrganizationCreate,
    db: DbSession,
    actor: Annotated[Actor, Depends(requires("organizations:manage"))],
) -> OrganizationPublic:
    organization = actions.create_organization(
        db,
        actor=actor,
        slug=body.slug,
        name=body.name,
        kind=body.kind,
        description=body.description,
    )
    return OrganizationPublic.model_validate(organization)
