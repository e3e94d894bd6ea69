"""Background jobs on Huey: SQLite storage in embedded mode, Redis in production.

A job is a named function `function(runtime, *ids)` registered with `@job` in a slice's
`tasks.py`. Jobs take ids (never ORM objects: the row may have changed by the time the job
runs), retry, and end in an explicit failure state: when the last attempt fails, a
`JobFailure` record is kept in the queue's storage (listed by `JobQueue.failures()`, retried by
`JobQueue.retry_failed()`) and the job's `on_failure` callback runs, so the slice can mark its
own row failed (as GOV.UK Notify marks a notification `technical-failure`).

Delivery is at least once: a retried or interrupted job runs again, so every job must be
idempotent. Huey instances are built per process by `JobQueue(runtime)`; nothing is built at
import time.
"""

from __future__ import annotations

import importlib
import json
import logging
import pkgutil
import re
import traceback
import zlib
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import redis
from huey import RedisHuey, SqliteHuey
from huey import signals as huey_signals
from huey.api import Huey, Result, Task
from huey.consumer import Consumer
from sqlalchemy.orm import Session

from townhall.db import after_commit, utcnow

if TYPE_CHECKING:
    from townhall.config import Settings
    from townhall.runtime import Runtime

log = logging.getLogger(__name__)

SYSTEM_TASK_MODULE = "townhall.system_tasks"
JOB_NAME = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$")
# What a job argument may be: ids and small scalars, never rows or dicts of state.
ID_TYPES = (str, int, float, type(None))
FAILURE_PREFIX = "townhall.failed:"
# How long a stopping consumer lets running jobs finish before it gives up on them (they are
# then queued again, see `_requeue_interrupted`).
SHUTDOWN_TIMEOUT_SECONDS = 20.0


@dataclass(frozen=True)
class JobFailure:
    """A job that used up its retries. Kept until retried or discarded."""

    task_id: str
    name: str
    args: list[Any]
    error: str
    traceback: str
    attempts: int
    failed_at: datetime
    on_failure_error: str | None = None

    def to_json(self) -> bytes:
        doc = asdict(self)
        doc["failed_at"] = self.failed_at.isoformat()
        return json.dumps(doc).encode()

    @classmethod
    def from_json(cls, raw: bytes | memoryview | str) -> JobFailure:
        doc = json.loads(bytes(raw) if not isinstance(raw, str) else raw)
        doc["failed_at"] = datetime.fromisoformat(doc["failed_at"])
        return cls(**doc)


OnFailure = Callable[..., None]


@dataclass(frozen=True)
class JobSpec:
    name: str
    function: Callable[..., Any]
    retries: int
    retry_delay: float
    on_failure: OnFailure | None = None


_REGISTRY: dict[str, JobSpec] = {}


def job(
    name: str,
    *,
    retries: int = 3,
    retry_delay: float = 10,
    on_failure: OnFailure | None = None,
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register `function(runtime, *ids)` as the job `name` (`slice.verb_noun`).

    `retries` more attempts follow a failure, `retry_delay` seconds apart. When the last one
    fails, `on_failure(runtime, *ids, failure=JobFailure)` runs in the worker: the place to put
    the slice's own row into its failed state. Raises `ValueError` for a malformed name and
    `RuntimeError` when two functions claim one name.
    """
    if not JOB_NAME.match(name):
        raise ValueError(f"job name {name!r} must look like 'slice.verb_noun'")
    if retries < 0 or retry_delay < 0:
        raise ValueError("retries and retry_delay must not be negative")

    def decorator(function: Callable[..., Any]) -> Callable[..., Any]:
        if name in _REGISTRY and _REGISTRY[name].function is not function:
            raise RuntimeError(f"job name {name!r} registered twice")
        _REGISTRY[name] = JobSpec(name, function, retries, retry_delay, on_failure)
        return function

    return decorator


def task_modules() -> list[str]:
    """The system jobs and every slice's `tasks` module.

    Found on disk rather than listed by hand, so a slice that adds `tasks.py` can never have
    jobs that `townhall serve` queues but `townhall worker` does not know.
    """
    import townhall

    modules = [SYSTEM_TASK_MODULE]
    for package in pkgutil.iter_modules(townhall.__path__):
        if not package.ispkg:
            continue
        path = [f"{base}/{package.name}" for base in townhall.__path__]
        if any(module.name == "tasks" for module in pkgutil.iter_modules(path)):
            modules.append(f"townhall.{package.name}.tasks")
    return modules


def registered_jobs() -> dict[str, JobSpec]:
    for module in task_modules():
        importlib.import_module(module)
    return dict(_REGISTRY)


def scheduled_jobs(settings: Settings) -> dict[str, timedelta]:
    """Every job a `tasks` module lists in its `SCHEDULE` ({job name: function of the settings
    giving its interval, or None when the job is off}), with the interval in force."""
    found: dict[str, timedelta] = {}
    for module in task_modules():
        schedule = getattr(importlib.import_module(module), "SCHEDULE", {})
        for name, every in schedule.items():
            interval = every(settings)
            if interval is not None and interval > timedelta(0):
                found[name] = interval
    return found


def schedule_matcher(name: str, interval: timedelta) -> Callable[[datetime], bool]:
    """When Huey's scheduler (which looks once a minute) should queue job `name`.

    The job runs when the minutes since the epoch, shifted by an offset that comes from the
    name, are a multiple of the interval: runs are evenly spaced on every node alike, and two
    daily jobs do not all fire at midnight. Scheduled jobs must be idempotent: with several
    workers each one queues the job.
    """
    minutes = max(1, int(interval.total_seconds() // 60))
    offset = zlib.crc32(name.encode()) % minutes

    def matches(now: datetime) -> bool:
        aware = now.replace(tzinfo=UTC) if now.tzinfo is None else now
        return (int(aware.timestamp() // 60) - offset) % minutes == 0

    return matches


def enqueue_after_commit(session: Session, queue: JobQueue, name: str, *ids: Any) -> None:
    """Queue job `name` once the session's transaction commits; nothing on rollback."""
    _check_ids(name, ids)
    after_commit(session, lambda: queue.enqueue(name, *ids))


def _check_ids(name: str, args: tuple[Any, ...]) -> None:
    for arg in args:
        if not isinstance(arg, ID_TYPES):
            raise TypeError(
                f"job {name!r} got a {type(arg).__name__}; jobs take ids (str or int): "
                "pass the row's id and load the row inside the job"
            )


class EmbeddedConsumer(Consumer):
    """A Huey consumer that lives inside another program (`townhall serve`, a test).

    Huey's `Consumer.start()` installs its own SIGINT/SIGTERM/SIGHUP handlers. Inside uvicorn
    that silently replaces uvicorn's handlers (SIGTERM no longer stops the server), and off the
    main thread it raises ValueError. The host program owns the signals and calls `stop()`.
    """

    def _set_signal_handlers(self) -> None:
        return None


class JobQueue:
    """The process's job queue: enqueue, run a consumer, inspect failures.

    `name` namespaces the queue in its storage (Huey's name; tests use a unique one).
    """

    def __init__(self, runtime: Runtime, *, name: str = "townhall") -> None:
        settings = runtime.settings
        self.runtime = runtime
        self.name = name
        if settings.redis_url:
            pool = redis.ConnectionPool.from_url(
                settings.redis_url,
                socket_connect_timeout=5,
                # Longer than Huey's 1 s blocking read, so an idle worker is not a timeout.
                socket_timeout=30,
                socket_keepalive=True,
                health_check_interval=30,
            )
            self.huey: Huey = RedisHuey(
                name, connection_pool=pool, utc=True, store_intermediate_errors=False
            )
            self.backend = "redis"
        else:
            settings.data_dir.mkdir(parents=True, exist_ok=True)
            self.huey = SqliteHuey(
                name,
                filename=str(settings.jobs_db_path),
                utc=True,
                timeout=30,
                # Only the final error reaches the result store: a reader never mistakes a
                # failure that will be retried for the job's outcome.
                store_intermediate_errors=False,
            )
            self.backend = "sqlite"
        self._specs = registered_jobs()
        self._tasks: dict[str, Any] = {}
        for spec in self._specs.values():
            self._tasks[spec.name] = self.huey.task(
                retries=spec.retries, retry_delay=spec.retry_delay, name=spec.name
            )(self._bind(spec.function))
        self.schedule = scheduled_jobs(settings)
        for job_name, interval in self.schedule.items():
            if job_name not in self._tasks:
                raise RuntimeError(f"SCHEDULE names {job_name!r}, which no @job registers")
            self.huey.periodic_task(
                schedule_matcher(job_name, interval), name=f"schedule.{job_name}"
            )(self._enqueuer(job_name))
        self.huey.post_execute("townhall.record_failure")(self._record_final_failure)
        self.huey.signal(huey_signals.SIGNAL_INTERRUPTED)(self._requeue_interrupted)
        self._consumer: Consumer | None = None

    def _bind(self, function: Callable[..., Any]) -> Callable[..., Any]:
        runtime = self.runtime

        def run(*args: Any, **kwargs: Any) -> Any:
            return function(runtime, *args, **kwargs)

        # Huey names the task `<this module>.<job name>`: a job's identity in the queue is its
        # name alone, so moving its function to another module strands no queued message.
        run.__name__ = function.__name__
        run.__doc__ = function.__doc__
        return run

    def _enqueuer(self, name: str) -> Callable[[], None]:
        # The periodic task only queues the named job, which keeps its own retries and
        # failure state.
        def enqueue_scheduled() -> None:
            self.enqueue(name)

        enqueue_scheduled.__name__ = f"schedule_{name.replace('.', '_')}"
        return enqueue_scheduled

    @property
    def job_names(self) -> list[str]:
        return sorted(self._tasks)

    def enqueue(self, name: str, *ids: Any, delay: float | None = None) -> Result:
        """Queue job `name` now (or after `delay` seconds). Raises KeyError for an unknown
        name and TypeError for an argument that is not an id."""
        task = self._tasks.get(name)
        if task is None:
            raise KeyError(f"no job named {name!r}")
        _check_ids(name, ids)
        if delay:
            return task.schedule(args=ids, delay=delay)
        return task(*ids)

    def ping(self) -> int:
        """Raises if the queue's storage cannot be reached; returns the pending count."""
        return int(self.huey.pending_count())

    # Failure state -------------------------------------------------------------------------

    def _record_final_failure(self, task: Task, _value: Any, exception: Exception | None) -> None:
        # Runs after every execution; `task.retries` still holds the retries left, so zero
        # with an exception means this was the last attempt.
        if exception is None or task.retries:
            return
        spec = self._specs.get(task.name)
        configured = spec.retries if spec else 0
        failure = JobFailure(
            task_id=task.id,
            name=task.name,
            args=list(task.args),
            error=f"{type(exception).__name__}: {exception}"[:2000],
            traceback="".join(
                traceback.format_exception(type(exception), exception, exception.__traceback__)
            )[-8000:],
            attempts=configured + 1,
            failed_at=utcnow(),
        )
        self._store_failure(failure)
        log.error(
            "job %s %s failed for good after %d attempts: %s",
            failure.name,
            failure.task_id,
            failure.attempts,
            failure.error,
        )
        if spec is not None and spec.on_failure is not None:
            try:
                spec.on_failure(self.runtime, *task.args, failure=failure)
            except Exception as callback_error:
                log.exception("on_failure of job %s failed", failure.name)
                failure = JobFailure(
                    **{
                        **asdict(failure),
                        "on_failure_error": f"{type(callback_error).__name__}: {callback_error}",
                    }
                )
                self._store_failure(failure)

    def _store_failure(self, failure: JobFailure) -> None:
        self.huey.storage.put_data(FAILURE_PREFIX + failure.task_id, failure.to_json())

    def failures(self, *, name: str | None = None) -> list[JobFailure]:
        """Jobs that used up their retries, newest first (optionally only job `name`)."""
        found = [
            JobFailure.from_json(value)
            for key, value in self.huey.storage.result_items().items()
            if key.startswith(FAILURE_PREFIX)
        ]
        if name is not None:
            found = [failure for failure in found if failure.name == name]
        return sorted(found, key=lambda failure: failure.failed_at, reverse=True)

    def failure(self, task_id: str) -> JobFailure | None:
        raw = self.huey.storage.peek_data(FAILURE_PREFIX + task_id)
        if not isinstance(raw, bytes | memoryview | str):  # Huey's EmptyData sentinel
            return None
        return JobFailure.from_json(raw)

    def retry_failed(self, task_id: str) -> Result:
        """Queue a failed job again (a new task id, full retries) and drop its failure record.
        Raises KeyError when there is no such failure."""
        failure = self.failure(task_id)
        if failure is None:
            raise KeyError(f"no failed job {task_id!r}")
        result = self.enqueue(failure.name, *failure.args)
        self.discard_failure(task_id)
        return result

    def discard_failure(self, task_id: str) -> bool:
        """Forget a failure (and the error left in the result store); idempotent."""
        self.huey.storage.delete_data(task_id)
        return bool(self.huey.storage.delete_data(FAILURE_PREFIX + task_id))

    # Consumers -----------------------------------------------------------------------------

    def _requeue_interrupted(self, _signal: str, task: Task, *_args: Any) -> None:
        # A consumer stopped while this job ran (shutdown timeout, Ctrl-C): the job never
        # finished, so queue it again rather than lose it; jobs are idempotent.
        log.warning("job %s %s interrupted by shutdown; queued again", task.name, task.id)
        try:
            self.huey.enqueue(task)
        except Exception:
            log.exception("could not queue interrupted job %s %s again", task.name, task.id)

    @property
    def consumer_running(self) -> bool:
        return self._consumer is not None

    def start_consumer(self, workers: int = 2, *, periodic: bool = True) -> None:
        """Run a consumer inside this process (embedded mode); it leaves signals alone.

        `periodic=False` runs queued jobs only, without queueing the scheduled ones.
        """
        if self._consumer is not None:
            return
        consumer = EmbeddedConsumer(
            self.huey,
            workers=workers,
            worker_type="thread",
            periodic=periodic,
            check_worker_health=False,
            shutdown_timeout=SHUTDOWN_TIMEOUT_SECONDS,
        )
        consumer.start()
        self._consumer = consumer
        log.info("in-process job consumer started (%s queue %s)", self.backend, self.name)

    def stop_consumer(self, timeout: float | None = None) -> None:
        """Stop the in-process consumer: running jobs get `timeout` seconds to finish, then
        are queued again. Idempotent."""
        consumer, self._consumer = self._consumer, None
        if consumer is None:
            return
        if timeout is not None:
            consumer.shutdown_timeout = timeout
        consumer.stop(graceful=True)
        self.huey.notify_interrupted_tasks()
        log.info("in-process job consumer stopped")

    def run_worker(self, workers: int) -> None:
        """`townhall worker`: a foreground consumer with Huey's signal handling.

        SIGTERM (what systemd, Docker and Kubernetes send) stops gracefully: running jobs get
        SHUTDOWN_TIMEOUT_SECONDS to finish. SIGINT stops at once. Either way, a job still
        running is queued again.
        """
        consumer = self.huey.create_consumer(
            workers=workers,
            worker_type="thread",
            periodic=True,
            graceful_signal="TERM",
            shutdown_timeout=SHUTDOWN_TIMEOUT_SECONDS,
        )
        consumer.run()

    def close(self) -> None:
        """Stop the consumer and release the storage's connections."""
        self.stop_consumer()
        if self.backend == "redis":
            self.huey.storage.pool.disconnect()
        else:
            self.huey.storage.close()
