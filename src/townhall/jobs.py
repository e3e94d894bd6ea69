"""Background jobs on Huey: SQLite storage in embedded mode, Redis in production.

Jobs are named, take ids (never ORM objects), retry, and are registered with `@job` in each
slice's `tasks.py`. Huey instances are built per process by `JobQueue(runtime)`; nothing is
built at import time.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from huey import RedisHuey, SqliteHuey
from huey.api import Huey, Result
from huey.consumer import Consumer

if TYPE_CHECKING:
    from townhall.runtime import Runtime

log = logging.getLogger(__name__)

# Slices whose `tasks` module registers jobs; imported by every process that runs or queues jobs.
TASK_MODULES: list[str] = ["townhall.system_tasks"]


@dataclass(frozen=True)
class JobSpec:
    name: str
    function: Callable[..., Any]
    retries: int
    retry_delay: int


_REGISTRY: dict[str, JobSpec] = {}


def job(
    name: str, *, retries: int = 3, retry_delay: int = 10
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register `function(runtime, *ids)` as the job `name`."""

    def decorator(function: Callable[..., Any]) -> Callable[..., Any]:
        if name in _REGISTRY and _REGISTRY[name].function is not function:
            raise RuntimeError(f"job name {name!r} registered twice")
        _REGISTRY[name] = JobSpec(name, function, retries, retry_delay)
        return function

    return decorator


def registered_jobs() -> dict[str, JobSpec]:
    for module in TASK_MODULES:
        importlib.import_module(module)
    return dict(_REGISTRY)


class JobQueue:
    def __init__(self, runtime: Runtime) -> None:
        settings = runtime.settings
        self.runtime = runtime
        if settings.redis_url:
            self.huey: Huey = RedisHuey("townhall", url=settings.redis_url, utc=True)
            self.backend = "redis"
        else:
            settings.data_dir.mkdir(parents=True, exist_ok=True)
            self.huey = SqliteHuey("townhall", filename=str(settings.jobs_db_path), utc=True)
            self.backend = "sqlite"
        self._tasks: dict[str, Any] = {}
        for spec in registered_jobs().values():
            self._tasks[spec.name] = self.huey.task(
                retries=spec.retries, retry_delay=spec.retry_delay, name=spec.name
            )(self._bind(spec.function))
        self._consumer: Consumer | None = None

    def _bind(self, function: Callable[..., Any]) -> Callable[..., Any]:
        runtime = self.runtime

        def run(*args: Any, **kwargs: Any) -> Any:
            return function(runtime, *args, **kwargs)

        run.__name__ = function.__name__
        return run

    def enqueue(self, name: str, *args: Any, delay: float | None = None) -> Result:
        task = self._tasks.get(name)
        if task is None:
            raise KeyError(f"no job named {name!r}")
        if delay:
            return task.schedule(args=args, delay=delay)
        return task(*args)

    def ping(self) -> int:
        """Raises if the queue's storage cannot be reached; returns the pending count."""
        return int(self.huey.pending_count())

    def start_consumer(self, workers: int = 2) -> None:
        """Run a consumer inside this process (embedded mode); no signal handlers."""
        if self._consumer is not None:
            return
        self._consumer = self.huey.create_consumer(
            workers=workers, worker_type="thread", periodic=True, check_worker_health=False
        )
        self._consumer.start()
        log.info("in-process job consumer started (%s)", self.backend)

    def stop_consumer(self) -> None:
        if self._consumer is not None:
            self._consumer.stop(graceful=True)
            self._consumer = None

    def run_worker(self, workers: int) -> None:
        """`townhall worker`: a foreground consumer with Huey's signal handling."""
        consumer = self.huey.create_consumer(workers=workers, worker_type="thread", periodic=True)
        consumer.run()
