"""Dependencies shared by every slice: the unit of work and the settings."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.orm import Session

from townhall.config import Settings
from townhall.db import unit_of_work

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def _db_session(request: Request) -> Iterator[Session]:
    runtime = request.app.state.runtime
    if (
        request.method in SAFE_METHODS
        and runtime.read_session_factory is not runtime.session_factory
    ):
        with unit_of_work(
            runtime.read_session_factory, write_factory=runtime.session_factory
        ) as session:
            yield session
        return
    with unit_of_work(runtime.session_factory) as session:
        yield session


def _settings(request: Request) -> Settings:
    return request.app.state.settings


# scope="function": commit before the response is sent, so a client that gets 201 can read it back.
DbSession = Annotated[Session, Depends(_db_session, scope="function")]
AppSettings = Annotated[Settings, Depends(_settings)]
