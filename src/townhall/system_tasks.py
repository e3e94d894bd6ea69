"""Jobs that belong to no slice: a ping that proves a consumer is listening."""

from __future__ import annotations

from typing import TYPE_CHECKING

from townhall.jobs import job

if TYPE_CHECKING:
    from townhall.runtime import Runtime


@job("system.ping", retries=0)
def ping_job(runtime: Runtime, token: str) -> str:
    return f"pong:{token}"
