"""Settings: environment variables, townhall.toml, the production secret check, derived places."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from pydantic import ValidationError
from typer.testing import CliRunner

from townhall.cli import app as cli_app
from townhall.config import Settings

LONG_SECRET = "k3Jr9-long-random-production-secret-0123456789"


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No TOWNHALL_* variable from the caller's shell, and no stray townhall.toml in the cwd."""
    for name in list(os.environ):
        if name.startswith("TOWNHALL_") and not name.startswith("TOWNHALL_TEST_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def write_toml(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


# Sources


def test_environment_variables_are_read(monkeypatch, tmp_path):
    monkeypatch.setenv("TOWNHALL_SITE_NAME", "City of Example")
    monkeypatch.setenv("TOWNHALL_DATA_DIR", str(tmp_path / "somewhere"))
    monkeypatch.setenv("TOWNHALL_SMTP_PORT", "2525")
    monkeypatch.setenv("TOWNHALL_SMTP_STARTTLS", "true")
    monkeypatch.setenv("TOWNHALL_QUERY_TIMEOUT_SECONDS", "2.5")
    monkeypatch.setenv("TOWNHALL_SECRET_KEY", LONG_SECRET)
    settings = Settings()
    assert settings.site_name == "City of Example"
    assert settings.data_dir == tmp_path / "somewhere"
    assert settings.smtp_port == 2525
    assert settings.smtp_starttls is True
    assert settings.query_timeout_seconds == 2.5
    assert settings.secret_key.get_secret_value() == LONG_SECRET


def test_environment_variable_names_are_the_field_names_upper_cased(monkeypatch):
    for name in Settings.model_fields:
        assert Settings.model_config["env_prefix"] + name.upper() == f"TOWNHALL_{name.upper()}"
    monkeypatch.setenv("TOWNHALL_MAX_BODY_BYTES", "4096")
    assert Settings().max_body_bytes == 4096


def test_bad_environment_value_is_refused_naming_the_setting(monkeypatch):
    monkeypatch.setenv("TOWNHALL_SMTP_PORT", "0")
    with pytest.raises(ValidationError, match="smtp_port"):
        Settings()


def test_config_file_named_by_townhall_config_file_is_read(monkeypatch, tmp_path):
    (tmp_path / "conf").mkdir()
    config = write_toml(
        tmp_path / "conf" / "site.toml",
        'site_name = "From the file"\nsmtp_port = 587\nbase_url = "https://data.city.example"\n',
    )
    monkeypatch.setenv("TOWNHALL_CONFIG_FILE", str(config))
    settings = Settings()
    assert settings.site_name == "From the file"
    assert settings.smtp_port == 587
    assert settings.base_url == "https://data.city.example"


def test_environment_wins_over_the_config_file(monkeypatch, tmp_path):
    config = write_toml(
        tmp_path / "elsewhere.toml", 'site_name = "From the file"\nsmtp_port = 587\n'
    )
    monkeypatch.setenv("TOWNHALL_CONFIG_FILE", str(config))
    monkeypatch.setenv("TOWNHALL_SITE_NAME", "From the environment")
    settings = Settings()
    assert settings.site_name == "From the environment"
    assert settings.smtp_port == 587  # what the environment does not set still comes from the file


def test_townhall_toml_in_the_working_folder_is_read_by_default(tmp_path):
    write_toml(tmp_path / "townhall.toml", 'site_name = "From the working folder"\n')
    assert Settings().site_name == "From the working folder"


def test_arguments_win_over_everything(monkeypatch, tmp_path):
    write_toml(tmp_path / "townhall.toml", 'site_name = "From the file"\n')
    monkeypatch.setenv("TOWNHALL_SITE_NAME", "From the environment")
    assert Settings(site_name="Given").site_name == "Given"


# The production secret


@pytest.mark.parametrize(
    "secret", ["", "changeme", "CHANGE-ME", "secret", "dev-insecure-secret-key", "short-15-chars!"]
)
def test_production_refuses_a_placeholder_or_short_secret(secret):
    with pytest.raises(ValidationError, match="TOWNHALL_SECRET_KEY"):
        Settings(env="production", secret_key=secret)


def test_production_refuses_the_default_secret(monkeypatch):
    monkeypatch.setenv("TOWNHALL_ENV", "production")
    with pytest.raises(ValidationError, match="TOWNHALL_SECRET_KEY"):
        Settings()


def test_production_accepts_a_long_random_secret(monkeypatch):
    monkeypatch.setenv("TOWNHALL_ENV", "production")
    monkeypatch.setenv("TOWNHALL_SECRET_KEY", LONG_SECRET)
    assert Settings().env == "production"


def test_development_runs_with_the_default_secret():
    assert Settings().env == "development"


def test_cli_refuses_to_start_with_a_placeholder_secret():
    result = CliRunner().invoke(
        cli_app, ["verify"], env={"TOWNHALL_ENV": "production", "TOWNHALL_SECRET_KEY": "changeme"}
    )
    assert result.exit_code == 2
    assert "TOWNHALL_SECRET_KEY" in result.output.replace("\n", "")


# Derived places


def test_default_database_is_sqlite_in_the_data_folder(tmp_path):
    settings = Settings(data_dir=tmp_path / "data")
    data = (tmp_path / "data").resolve()
    assert settings.resolved_database_url == f"sqlite:///{data / 'townhall.db'}"
    assert not settings.is_postgres
    assert settings.resolved_lake_catalog_url == f"sqlite:{data / 'lake.sqlite'}"
    assert settings.resolved_lake_data_path == data / "lake"
    assert settings.jobs_db_path == data / "jobs.db"


def test_default_data_folder_is_relative_to_the_working_folder(tmp_path):
    settings = Settings()
    assert (
        settings.resolved_database_url
        == f"sqlite:///{tmp_path.resolve()}/townhall-data/townhall.db"
    )


def test_postgresql_database_puts_the_lake_catalog_in_postgresql():
    settings = Settings(database_url="postgresql+psycopg://th:pw@db.internal:5432/townhall")
    assert settings.is_postgres
    catalog = settings.resolved_lake_catalog_url
    assert catalog.startswith("postgres:")
    fields = dict(part.split("=", 1) for part in catalog.removeprefix("postgres:").split())
    assert fields == {
        "dbname": "townhall",
        "host": "db.internal",
        "port": "5432",
        "user": "th",
        "password": "pw",
    }


def test_explicit_lake_settings_win(tmp_path):
    settings = Settings(
        database_url="postgresql+psycopg://th@db.internal/townhall",
        lake_catalog_url="postgres:dbname=lakecat host=other",
        lake_data_path=tmp_path / "shared" / "lake",
    )
    assert settings.resolved_lake_catalog_url == "postgres:dbname=lakecat host=other"
    assert settings.resolved_lake_data_path == (tmp_path / "shared" / "lake").resolve()


def test_jobs_run_in_process_unless_redis_is_configured():
    assert Settings().in_process_jobs is True
    assert Settings(redis_url="redis://cache:6379/0").in_process_jobs is False
    forced = Settings(redis_url="redis://cache:6379/0", run_jobs_in_process=True)
    assert forced.in_process_jobs is True


# Password hashing cost


def test_default_password_hashing_is_argon2id_at_64_mib_and_three_passes(tmp_path):
    from townhall.accounts import security
    from townhall.runtime import Runtime

    Runtime(Settings(data_dir=tmp_path / "data"))
    try:
        made = security.hash_password("a-long-password")
        assert made.startswith("$argon2id$v=19$m=65536,t=3,p=4$")
        assert security.verify_password("a-long-password", made)
    finally:
        security.configure_password_hashing(memory_kib=32, time_cost=1)  # tests/conftest.py's


def test_a_hash_made_at_another_cost_still_verifies():
    from townhall.accounts import security

    security.configure_password_hashing(memory_kib=64, time_cost=2)
    earlier = security.hash_password("a-long-password")
    security.configure_password_hashing(memory_kib=32, time_cost=1)
    assert "m=32,t=1" in security.hash_password("a-long-password")
    assert security.verify_password("a-long-password", earlier)
    assert not security.verify_password("another-password", earlier)
    assert not security.verify_password("a-long-password", None)  # unknown email: still hashes


def test_production_refuses_a_password_hash_cost_below_owasps_floor():
    with pytest.raises(ValidationError, match="PASSWORD_HASH_MEMORY_KIB"):
        Settings(env="production", secret_key=LONG_SECRET, password_hash_memory_kib=4096)
    with pytest.raises(ValidationError, match="PASSWORD_HASH_TIME_COST"):
        Settings(env="production", secret_key=LONG_SECRET, password_hash_time_cost=1)
    assert Settings(env="production", secret_key=LONG_SECRET).password_hash_memory_kib == 65536


def test_cache_bounds_follow_the_deployment(tmp_path) -> None:
    """Unset, the bound of kept answers is short on an embedded instance (the CLI's changes
    reach no server) and long with Redis (every process publishes its changes)."""
    embedded = Settings(data_dir=tmp_path, secret_key=LONG_SECRET)
    clustered = Settings(data_dir=tmp_path, secret_key=LONG_SECRET, redis_url="redis://127.0.0.1/0")
    assert embedded.cache_seconds(embedded.status_cache_seconds) == 10.0
    assert clustered.cache_seconds(clustered.table_cache_seconds) == 300.0
    assert clustered.cache_seconds(0.0) == 0.0  # switched off stays off
    chosen = Settings(data_dir=tmp_path, secret_key=LONG_SECRET, status_cache_seconds=42)
    assert chosen.cache_seconds(chosen.status_cache_seconds) == 42
