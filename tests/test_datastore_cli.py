"""`townhall datasets ingest`: the operator's way to load a file, with a progress bar."""

from __future__ import annotations

from typer.testing import CliRunner

from townhall.cli import app

from .test_datastore_support import csv_bytes, make_dataset, make_publisher


def _env(settings) -> dict[str, str]:
    return {
        "TOWNHALL_DATABASE_URL": settings.resolved_database_url,
        "TOWNHALL_DATA_DIR": str(settings.data_dir),
        "TOWNHALL_LAKE_CATALOG_URL": settings.resolved_lake_catalog_url,
        "TOWNHALL_SECRET_KEY": settings.secret_key.get_secret_value(),
    }


def test_ingest_command(runtime, client, admin, tmp_path):
    publisher = make_publisher(client, admin, runtime)
    make_dataset(client, publisher, "benches", resource="benches")
    good = tmp_path / "benches.csv"
    good.write_bytes(csv_bytes(["id", "street"], [[1, "Main"], [2, "High"]]))
    runner = CliRunner()
    env = _env(runtime.settings)
    done = runner.invoke(app, ["datasets", "ingest", str(good), "--dataset", "benches"], env=env)
    assert done.exit_code == 0, done.output
    assert "version 1: 2 rows" in done.output
    page = client.get("/api/v1/datasets/benches/rows").json()
    assert page["rows"] == [{"id": 1, "street": "Main"}, {"id": 2, "street": "High"}]

    bad = tmp_path / "bad.csv"
    bad.write_bytes(b"id,street\n" + b"1,Main\n" * 30 + b"2,High,extra\n")
    refused = runner.invoke(app, ["datasets", "ingest", str(bad), "--dataset", "benches"], env=env)
    assert refused.exit_code == 1
    assert "Row 32" in refused.output
    assert client.get("/api/v1/datasets/benches/rows").json()["version"] == 1

    other = runner.invoke(
        app,
        ["datasets", "ingest", str(good), "--dataset", "benches", "--resource", "copy"],
        env=env,
    )
    assert other.exit_code == 0, other.output
    copy = client.get("/api/v1/datasets/benches/rows", params={"resource": "copy"}).json()
    assert copy["total"] == 2

    missing = runner.invoke(app, ["datasets", "ingest", str(good), "--dataset", "nope"], env=env)
    assert missing.exit_code == 1
