"""Typed settings from `TOWNHALL_*` environment variables and an optional `townhall.toml`.

Nothing here is built at import time: `Settings()` is created by the CLI or by tests and passed
to `create_app(settings)`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

PLACEHOLDER_SECRETS = frozenset({"", "changeme", "change-me", "secret", "dev-insecure-secret-key"})
DEVELOPMENT_SECRET = "dev-insecure-secret-key"  # noqa: S105 - refused in production
# OWASP's minimum Argon2id parameters (19 MiB, 2 passes); the defaults are above them.
MIN_PRODUCTION_HASH_MEMORY_KIB = 19456
MIN_PRODUCTION_HASH_TIME_COST = 2
# A rate limit setting: requests per period (townhall.ratelimit reads it).
RATE_PATTERN = r"^[1-9][0-9]*/(second|minute|hour|day)$"


CACHE_SECONDS_EMBEDDED = 10.0
CACHE_SECONDS_WITH_REDIS = 300.0


class Settings(BaseSettings):
    """Every setting Townhall reads. Each one is documented in docs/configuration.md."""

    model_config = SettingsConfigDict(
        env_prefix="TOWNHALL_",
        extra="ignore",
        toml_file=os.environ.get("TOWNHALL_CONFIG_FILE", "townhall.toml"),
    )

    env: Literal["development", "production"] = Field(
        "development", description="`production` refuses placeholder secrets."
    )
    data_dir: Path = Field(
        Path("townhall-data"),
        description="Folder for the embedded SQLite database, lake, job queue and keys.",
    )
    database_url: str | None = Field(
        None,
        description="SQLAlchemy URL. Default: SQLite `townhall.db` in the data folder. "
        "Production: `postgresql+psycopg://user:pass@host/db`.",
    )
    lake_catalog_url: str | None = Field(
        None,
        description="DuckLake catalog. Default: SQLite `lake.sqlite` in the data folder, or the "
        "main PostgreSQL database (schema `lake`) when the main database is PostgreSQL.",
    )
    lake_data_path: Path | None = Field(
        None, description="Where the lake's Parquet files live. Default: `<data_dir>/lake/`."
    )
    redis_url: str | None = Field(
        None,
        description="Redis for jobs, events and rate limits across nodes. Unset: in process.",
    )
    secret_key: SecretStr = Field(
        SecretStr(DEVELOPMENT_SECRET),
        description="Signs sessions and CSRF tokens. Must be set in production.",
    )
    base_url: str = Field(
        "http://127.0.0.1:8000", description="Public address, used in links in emails and feeds."
    )
    site_name: str = Field("Townhall", description="The office's name shown in the page header.")
    opentelemetry: bool = Field(
        False,
        description="FastAPI's native OpenTelemetry (traces, metrics, logs) to the providers the "
        "`OTEL_*` environment configures. Off: Townhall's own metrics are at `/metrics`, and no "
        "request pays FastAPI's check for a configured provider (2.5 us each).",
    )
    smtp_host: str | None = Field(None, description="SMTP server for email notifications.")
    smtp_port: int = Field(25, ge=1, le=65535, description="SMTP port.")
    smtp_username: str | None = Field(None, description="SMTP user, if the server wants one.")
    smtp_password: SecretStr | None = Field(None, description="SMTP password.")
    smtp_starttls: bool = Field(False, description="Upgrade the SMTP connection with STARTTLS.")
    mail_from: str = Field("townhall@localhost", description="Sender address of emails.")
    max_body_bytes: int = Field(
        10 * 1024 * 1024,
        ge=1024,
        description="Largest request body accepted by the JSON API, in bytes; uploads excepted.",
    )
    max_upload_bytes: int = Field(
        2 * 1024**3, ge=1024, description="Largest uploaded file, in bytes."
    )
    session_max_age_seconds: int = Field(
        8 * 3600, ge=60, description="How long a web login lasts without activity."
    )
    login_max_failures: int = Field(
        5, ge=1, description="Failed logins per email and address before a pause."
    )
    login_lockout_seconds: int = Field(
        900, ge=1, description="How long login is paused after too many failures."
    )
    password_hash_memory_kib: int = Field(
        65536,
        ge=32,
        description="Argon2id memory per password hash, in KiB (at least 19456 in production, "
        "OWASP's floor). Each hash records its own parameters, so changing this never locks "
        "anyone out.",
    )
    password_hash_time_cost: int = Field(
        3, ge=1, description="Argon2id passes per password hash (at least 2 in production)."
    )
    run_jobs_in_process: bool | None = Field(
        None,
        description="Run a job consumer thread inside `townhall serve`. Default: yes without "
        "Redis, no with Redis (run `townhall worker`).",
    )
    query_timeout_seconds: float = Field(10.0, gt=0, description="Time limit of one data query.")
    query_row_cap: int = Field(10_000, ge=1, description="Most rows one data query returns.")
    duckdb_memory_limit: str = Field("2GB", description="DuckDB memory limit per connection.")
    duckdb_query_memory_limit: str = Field(
        "96MB",
        description="Memory limit of the DuckDB instance that answers data queries; it bounds "
        "the blocks it keeps cached between queries. Beyond it a big sort or group-by spills "
        "to disk.",
    )
    duckdb_threads: int = Field(
        os.cpu_count() or 2, ge=1, description="DuckDB threads per connection."
    )
    serving_copies: bool = Field(
        True,
        description="Keep a per-node DuckDB file of each published table version under "
        "`<data_dir>/serving/` and answer queries from it (the lake stays the record).",
    )
    serving_copy_min_rows: int = Field(
        100_000, ge=0, description="Smallest table (rows) that gets a serving copy."
    )
    signing_key_path: Path | None = Field(
        None,
        description="Ed25519 private key (PEM) that signs audit checkpoints, dataset version "
        "manifests and backups. Default: `<data_dir>/keys/signing-key.pem`, made on first use "
        "(mode 0600). With several nodes, point every node at the same file.",
    )
    checkpoint_interval_minutes: int = Field(
        60,
        ge=0,
        description="How often the job `integrity.checkpoint_audit` signs the audit trail's "
        "head (only when it moved). 0: no scheduled checkpoints (`townhall checkpoint` still "
        "works).",
    )
    backup_dir: Path | None = Field(
        None,
        description="Folder for scheduled backups (job `recovery.scheduled_backup`). Unset: no "
        "scheduled backups.",
    )
    backup_interval_hours: int = Field(
        24, ge=1, description="Hours between scheduled backups (with `backup_dir` set)."
    )
    backup_keep: int = Field(
        7, ge=1, description="Scheduled backups kept in `backup_dir`; older ones are deleted."
    )
    backup_passphrase: SecretStr | None = Field(
        None,
        description="Passphrase that encrypts the signing key inside scheduled backups. "
        "Required for scheduled backups; `townhall backup` asks for its own.",
    )
    insights_timezone: str = Field(
        "UTC",
        description="Time zone in which insights count days, weeks and hours of the week "
        "(an IANA name such as `America/New_York`).",
    )
    insights_population_dataset: str = Field(
        "district-population",
        description="Slug of the published dataset giving each district's residents "
        "(columns `district_code` and `population`); area indicators per 1,000 residents use it.",
    )
    insights_service_level_seconds: int = Field(
        600, ge=1, description="Staffing target: the wait most visitors should not exceed."
    )
    insights_service_level_target: float = Field(
        0.8,
        gt=0,
        lt=1,
        description="Staffing target: the share of visitors served within "
        "`insights_service_level_seconds`.",
    )
    insights_triage_every_hours: int = Field(
        24, ge=0, description="How often the triage model is retrained; 0 turns the schedule off."
    )
    rate_limits_enabled: bool = Field(
        True,
        description="Count requests per API token or client address and answer 429 with "
        "`Retry-After` past the `rate_limit_*` limits. Memory per process by default; shared "
        "through Redis when `redis_url` is set.",
    )
    rate_limit_sql: str = Field(
        "30/minute",
        pattern=RATE_PATTERN,
        description="User SQL queries (`/api/v1/sql`, `/api/v1/datasets/{slug}/sql`, CKAN "
        "`datastore_search_sql`), as `N/second|minute|hour|day`.",
    )
    rate_limit_reads: str = Field(
        "1200/minute",
        pattern=RATE_PATTERN,
        description="Reads of the data and service APIs (GET under `/api/`, `/open311/`, "
        "`/hsds/`, CKAN read actions).",
    )
    rate_limit_login: str = Field(
        "10/minute",
        pattern=RATE_PATTERN,
        description="Login form posts per address (on top of `login_max_failures`).",
    )
    rate_limit_submissions: str = Field(
        "20/minute",
        pattern=RATE_PATTERN,
        description="Resident submissions (web form, `POST /api/v1/requests`, Open311 POST); "
        "the hourly limit kept in the database still applies.",
    )
    rate_limit_messages: str = Field(
        "20/minute", pattern=RATE_PATTERN, description="Messages posted on a request."
    )
    rate_limit_writes: str = Field(
        "120/minute",
        pattern=RATE_PATTERN,
        description="Every other write (POST, PUT, PATCH, DELETE, CKAN write actions).",
    )
    rate_limit_exempt_permission: str | None = Field(
        "requests:work",
        description="Callers with this permission (staff, managers, admins) are not rate "
        "limited, so office work and load tests with a staff token are never cut off. Empty: "
        "nobody is exempt.",
    )
    rate_limit_redis_prefix: str = Field(
        "townhall:ratelimit:",
        description="Prefix of the rate limit counters in Redis (several installations can "
        "share one Redis with different prefixes).",
    )
    outbound_allow_private: bool = Field(
        False,
        description="Let webhooks and dataset URL fetches reach private, loopback and "
        "link-local addresses (off: such destinations are refused, against SSRF).",
    )
    outbound_allowed_hosts: list[str] = Field(
        default_factory=list,
        description="Host names and CIDR networks outbound requests may reach even though "
        "they are private (a city's internal systems), as a JSON list.",
    )
    district_boundaries_dataset: str | None = Field(
        "district-boundaries",
        description="Slug of the published dataset (polygons) that gives a request located "
        "by lat/long its district; empty to switch district lookup off.",
    )
    district_code_field: str = Field(
        "code", description="Column of the boundaries dataset that holds the district code."
    )
    status_cache_seconds: float | None = Field(
        None,
        ge=0,
        le=3600,
        description="How long a process keeps a request's public status answer at most (the "
        "lookups residents and Open311 clients poll). Every change made through Townhall drops "
        "it at once on every node; this bounds what no node hears of: SQL run by hand, and on "
        "an embedded instance (no Redis) the CLI's changes while it serves. Unset: 10 s "
        "without Redis, 300 s with it (every Townhall process then publishes its changes). "
        "0 switches the cache off.",
    )
    table_cache_seconds: float | None = Field(
        None,
        ge=0,
        le=3600,
        description="The same bound for which table and version an anonymous data read of a "
        "dataset goes to (`/rows`, `/aggregate`). Unset: 10 s without Redis, 300 s with it; 0 "
        "looks it up in the database on every request.",
    )
    status_cache_entries: int = Field(
        20_000,
        ge=1,
        le=10_000_000,
        description="Most status answers one process keeps (least recently asked out first).",
    )
    office_wait_alert_minutes: list[int] = Field(
        default_factory=lambda: [30, 60],
        description="Estimated waits, in minutes, whose crossing is announced to the "
        "followers of an office's live status, as a JSON list.",
    )

    def cache_seconds(self, given: float | None) -> float:
        """The time bound of a cache of answers (`status_cache_seconds`,
        `table_cache_seconds`): as given, else by deployment. With Redis every process's
        changes reach every node, so the bound only covers SQL run by hand; without it, the
        CLI's changes to a running embedded instance are not heard either."""
        if given is not None:
            return given
        return CACHE_SECONDS_WITH_REDIS if self.redis_url else CACHE_SECONDS_EMBEDDED

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Environment wins over the file, so an operator can override one value at start-up.
        toml_file = os.environ.get("TOWNHALL_CONFIG_FILE", "townhall.toml")
        return (init_settings, env_settings, TomlConfigSettingsSource(settings_cls, toml_file))

    @field_validator("insights_timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as error:
            raise ValueError(f"unknown time zone {value!r}") from error
        return value

    @model_validator(mode="after")
    def _refuse_placeholder_secret(self) -> Settings:
        if self.env == "production" and (
            self.secret_key.get_secret_value().strip().lower() in PLACEHOLDER_SECRETS
            or len(self.secret_key.get_secret_value()) < 16
        ):
            raise ValueError(
                "TOWNHALL_SECRET_KEY is a placeholder or shorter than 16 characters; "
                "set a long random value in production (python -c 'import secrets; "
                "print(secrets.token_urlsafe(48))')"
            )
        if self.env == "production" and (
            self.password_hash_memory_kib < MIN_PRODUCTION_HASH_MEMORY_KIB
            or self.password_hash_time_cost < MIN_PRODUCTION_HASH_TIME_COST
        ):
            raise ValueError(
                "TOWNHALL_PASSWORD_HASH_MEMORY_KIB must be at least "
                f"{MIN_PRODUCTION_HASH_MEMORY_KIB} and TOWNHALL_PASSWORD_HASH_TIME_COST at "
                f"least {MIN_PRODUCTION_HASH_TIME_COST} in production (OWASP's Argon2id floor)"
            )
        return self

    # Derived locations: one place decides where every file lives.

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'townhall.db').resolve()}"

    @property
    def is_postgres(self) -> bool:
        return self.resolved_database_url.startswith("postgresql")

    @property
    def resolved_lake_data_path(self) -> Path:
        return (self.lake_data_path or self.data_dir / "lake").resolve()

    @property
    def resolved_lake_catalog_url(self) -> str:
        """DuckLake catalog location: `sqlite:<file>` or a libpq `postgres:` connection string."""
        if self.lake_catalog_url:
            return self.lake_catalog_url
        if self.is_postgres:
            return "postgres:" + _libpq_dsn(self.resolved_database_url)
        return f"sqlite:{(self.data_dir / 'lake.sqlite').resolve()}"

    @property
    def jobs_db_path(self) -> Path:
        return (self.data_dir / "jobs.db").resolve()

    @property
    def in_process_jobs(self) -> bool:
        if self.run_jobs_in_process is not None:
            return self.run_jobs_in_process
        return self.redis_url is None


def _libpq_dsn(sqlalchemy_url: str) -> str:
    """Turn `postgresql+psycopg://u:p@h:5432/db` into `dbname=db host=h port=5432 user=u ...`."""
    from sqlalchemy.engine import make_url

    url = make_url(sqlalchemy_url)
    parts = {
        "dbname": url.database,
        "host": url.host,
        "port": url.port,
        "user": url.username,
        "password": url.password,
    }
    return " ".join(
        f"{key}={_libpq_quote(str(value))}" for key, value in parts.items() if value is not None
    )


def _libpq_quote(value: str) -> str:
    """libpq keyword values with spaces or quotes must be single-quoted, backslash-escaped."""
    if value and not any(ch in value for ch in " '\\"):
        return value
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
