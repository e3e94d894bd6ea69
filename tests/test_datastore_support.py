"""Shared steps for the datastore tests (no tests here): publisher, dataset, uploads."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .conftest import SHARED_DIR, auth, make_account

DATA_DIR = SHARED_DIR / "data"


def make_publisher(client, admin, runtime, org: str = "parks"):
    response = client.post(
        "/api/v1/organizations", headers=auth(admin), json={"slug": org, "name": org.title()}
    )
    assert response.status_code in (201, 409), response.text
    return make_account(runtime, "publisher", orgs=[org])


def make_dataset(
    client,
    account,
    slug: str,
    *,
    org: str = "parks",
    visibility: str = "public",
    publish: bool = True,
    resource: str = "table",
) -> int:
    """Create (and publish) a dataset with one resource; return the resource id."""
    response = client.post(
        "/api/v1/datasets",
        headers=auth(account),
        json={
            "slug": slug,
            "title": slug.replace("-", " ").title(),
            "organization": org,
            "license_id": "CC-BY-4.0",
            "visibility": visibility,
        },
    )
    assert response.status_code == 201, response.text
    created = client.post(
        f"/api/v1/datasets/{slug}/resources",
        headers=auth(account),
        json={"name": resource, "format": "CSV"},
    )
    assert created.status_code == 201, created.text
    if publish:
        published = client.post(f"/api/v1/datasets/{slug}/publish", headers=auth(account))
        assert published.status_code == 200, published.text
    return created.json()["id"]


def upload(
    client,
    account,
    slug: str,
    resource_id: int,
    content: bytes | Path,
    filename: str = "data.csv",
    *,
    schema: dict[str, Any] | None = None,
):
    body = content.read_bytes() if isinstance(content, Path) else content
    data = {"schema": json.dumps(schema)} if schema is not None else None
    return client.post(
        f"/api/v1/datasets/{slug}/resources/{resource_id}/upload",
        headers=auth(account),
        files={"file": (filename, body, "application/octet-stream")},
        data=data,
    )


def upload_ok(client, account, slug, resource_id, content, filename="data.csv", **kwargs):
    response = upload(client, account, slug, resource_id, content, filename, **kwargs)
    assert response.status_code == 201, response.text
    return response.json()


def csv_bytes(header: list[str], rows: list[list[object]], delimiter: str = ",") -> bytes:
    lines = [delimiter.join(header)]
    lines += [delimiter.join("" if v is None else str(v) for v in row) for row in rows]
    return ("\n".join(lines) + "\n").encode()
