"""Jobs: named, take ids, retry, end in an explicit failure state; every queue has a consumer.

The queue tests run on both storages: SQLite (embedded mode) and Redis (production), each test
on its own Huey name (its own keys), flushed at the end. Consumers run in this process, except
in the tests that start `townhall worker` and `townhall serve` themselves.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from huey.exceptions import TaskException

from townhall.actor import system_actor
from townhall.audit.actions import record
from townhall.config import Settings
from townhall.db import unit_of_work
from townhall.jobs import (
    JobFailure,
    JobQueue,
    enqueue_after_commit,
    job,
    registered_jobs,
    task_modules,
)
from townhall.runtime import Runtime

from .conftest import REDIS_URL, SECRET

SRC = Path(__file__).resolve().parents[1] / "src" / "townhall"
TOWNHALL = str(Path(sys.executable).with_name("townhall"))

# Test jobs. Registered at import, so every queue built in this test process knows them.
ATTEMPTS: dict[str, int] = defaultdict(int)
ON_FAILURE_CALLS: list[tuple[str, JobFailure]] = []
STARTED: dict[str, threading.Event] = defaultdict(threading.Event)
RELEASE: dict[str, threading.Event] = defaultdict(threading.Event)


@job("test.flaky_twice", retries=2, retry_delay=0)
def flaky_twice(runtime: Runtime, token: str) -> str:
    ATTEMPTS[token] += 1
    if ATTEMPTS[token] < 3:
        raise RuntimeError(f"attempt {ATTEMPTS[token]} fails")
    return f"done after {ATTEMPTS[token]}"


@job("test.flaky_once_later", retries=1, retry_delay=1)
def flaky_once_later(runtime: Runtime, token: str) -> float:
    ATTEMPTS[token] += 1
    if ATTEMPTS[token] == 1:
        raise RuntimeError("first attempt fails")
    return time.monotonic()


def _mark_failed(runtime: Runtime, token: str, *, failure: JobFailure) -> None:
    ON_FAILURE_CALLS.append((token, failure))


@job("test.always_fails", retries=2, retry_delay=0, on_failure=_mark_failed)
def always_fails(runtime: Runtime, token: str) -> None:
    ATTEMPTS[token] += 1
    raise ValueError(f"bad input {token}")


@job("test.waits_for_release", retries=0)
def waits_for_release(runtime: Runtime, token: str) -> str:
    ATTEMPTS[token] += 1
    STARTED[token].set()
    RELEASE[token].wait(15)
    return "released"


def wait_until(predicate: Callable[[], Any], timeout: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"condition not met within {timeout}s")


def redis_url_with_db(db: int) -> str:
    base = REDIS_URL.rsplit("/", 1)[0] if REDIS_URL.count("/") > 2 else REDIS_URL
    return f"{base}/{db}"


def redis_available() -> bool:
    try:
        return bool(redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2).ping())
    except redis.RedisError:
        return False


@pytest.fixture(params=["sqlite", "redis"])
def queue_storage(request: pytest.FixtureRequest) -> str:
    if request.param == "redis" and not redis_available():
        pytest.skip(f"Redis is not reachable at {REDIS_URL}")
    return request.param


@pytest.fixture
def queue(queue_storage: str, tmp_path: Path) -> Iterator[JobQueue]:
    settings = Settings(
        data_dir=tmp_path / "data",
        redis_url=REDIS_URL if queue_storage == "redis" else None,
        secret_key=SECRET,
        run_jobs_in_process=False,
    )
    queue = JobQueue(Runtime(settings), name=f"townhall_test_{uuid.uuid4().hex[:12]}")
    yield queue
    queue.stop_consumer(timeout=2)
    queue.huey.storage.flush_all()
    queue.close()


def token() -> str:
    return uuid.uuid4().hex


# Registration ------------------------------------------------------------------------------


def test_every_tasks_module_is_imported_by_every_process():
    # `townhall serve` and `townhall worker` both build their queue from `registered_jobs()`,
    # which imports every slice's tasks.py found on disk: no job can lack a consumer.
    on_disk = {
        "townhall." + ".".join(path.relative_to(SRC).with_suffix("").parts)
        for path in SRC.rglob("tasks.py")
    }
    assert on_disk <= set(task_modules())
    assert "townhall.system_tasks" in task_modules()
    assert "system.ping" in registered_jobs()


def test_job_names_are_checked():
    with pytest.raises(ValueError, match=r"slice\.verb_noun"):
        job("NoDots")
    with pytest.raises(RuntimeError, match="registered twice"):
        job("test.flaky_twice")(lambda runtime, token: None)


def test_jobs_take_ids_not_objects(queue):
    with pytest.raises(TypeError, match="jobs take ids"):
        queue.enqueue("system.ping", {"token": "x"})
    with pytest.raises(KeyError, match="no job named"):
        queue.enqueue("system.no_such_job")
    assert queue.ping() == 0


# Consumers, retries and the failure state --------------------------------------------------


def test_embedded_consumer_runs_jobs_and_stops_cleanly(queue):
    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    queue.start_consumer(workers=2)
    # Huey's consumer would install its own handlers; inside uvicorn that breaks SIGTERM.
    assert {sig: signal.getsignal(sig) for sig in handlers} == handlers
    assert queue.enqueue("system.ping", "abc").get(blocking=True, timeout=10) == "pong:abc"

    consumer = queue._consumer
    threads = [thread for _, thread in consumer.worker_threads] + [consumer.scheduler]
    queue.stop_consumer()
    assert not any(thread.is_alive() for thread in threads)
    assert not queue.consumer_running
    queue.stop_consumer()  # idempotent


def test_consumer_can_start_off_the_main_thread(queue):
    # TestClient (and any embedding host) runs the app's startup in another thread.
    errors: list[BaseException] = []

    def start() -> None:
        try:
            queue.start_consumer(workers=1)
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=start)
    thread.start()
    thread.join()
    assert errors == []
    assert queue.enqueue("system.ping", "t").get(blocking=True, timeout=10) == "pong:t"


def test_a_failing_job_is_retried_until_it_succeeds(queue):
    queue.start_consumer()
    key = token()
    result = queue.enqueue("test.flaky_twice", key)
    assert result.get(blocking=True, timeout=10) == "done after 3"
    assert ATTEMPTS[key] == 3
    assert queue.failures(name="test.flaky_twice") == []


def test_retries_wait_their_delay(queue):
    queue.start_consumer()
    key = token()
    enqueued = time.monotonic()
    finished = queue.enqueue("test.flaky_once_later", key).get(blocking=True, timeout=15)
    assert ATTEMPTS[key] == 2
    assert finished - enqueued >= 1.0


def test_a_job_that_uses_up_its_retries_ends_in_an_explicit_failure(queue):
    queue.start_consumer()
    key = token()
    result = queue.enqueue("test.always_fails", key)

    # The result store holds the final error only (never an intermediate one).
    with pytest.raises(TaskException) as raised:
        result.get(blocking=True, timeout=10)
    assert "bad input" in raised.value.metadata["error"]
    assert ATTEMPTS[key] == 3

    failure = wait_until(lambda: queue.failure(result.id))
    assert failure.name == "test.always_fails"
    assert failure.args == [key]
    assert failure.attempts == 3
    assert failure.error == f"ValueError: bad input {key}"
    assert "Traceback" in failure.traceback
    assert failure.failed_at.tzinfo is not None
    assert [f.task_id for f in queue.failures(name="test.always_fails")] == [result.id]

    # The slice's own failure state: on_failure ran once, with the ids and the failure.
    calls = wait_until(lambda: [call for call in ON_FAILURE_CALLS if call[0] == key])
    assert len(calls) == 1
    assert calls[0][1].task_id == result.id


def test_a_failed_job_can_be_retried_or_discarded(queue):
    queue.start_consumer()
    key = token()
    first = queue.enqueue("test.always_fails", key)
    wait_until(lambda: queue.failure(first.id))

    again = queue.retry_failed(first.id)
    assert again.id != first.id
    assert queue.failure(first.id) is None
    wait_until(lambda: queue.failure(again.id))
    assert ATTEMPTS[key] == 6

    assert queue.discard_failure(again.id) is True
    assert queue.discard_failure(again.id) is False
    assert queue.failures(name="test.always_fails") == []
    with pytest.raises(KeyError):
        queue.retry_failed(again.id)


def test_a_job_cut_short_by_shutdown_is_queued_again(queue):
    # No scheduler: a scheduled job queued on a minute tick would be counted by ping().
    queue.start_consumer(workers=1, periodic=False)
    key = token()
    result = queue.enqueue("test.waits_for_release", key)
    assert STARTED[key].wait(10)

    queue.stop_consumer(timeout=0.2)
    assert queue.ping() == 1  # back in the queue, not lost

    RELEASE[key].set()
    queue.start_consumer(workers=1, periodic=False)
    assert result.get(blocking=True, timeout=10) == "released"
    wait_until(lambda: ATTEMPTS[key] == 2)
    wait_until(lambda: queue.ping() == 0)


def test_delayed_jobs_run_later(queue):
    queue.start_consumer()
    started = time.monotonic()
    assert queue.enqueue("system.ping", "later", delay=1).get(blocking=True, timeout=10)
    assert time.monotonic() - started >= 1.0


def test_jobs_are_queued_only_after_commit(runtime):
    # A database test (both backends), with the embedded SQLite queue and no consumer.
    queue = runtime.jobs
    with unit_of_work(runtime.session_factory) as session:
        record(
            session, actor=system_actor("test"), action="test.write", object_type="t", object_id=1
        )
        enqueue_after_commit(session, queue, "system.ping", "committed")
        assert queue.ping() == 0
    assert queue.ping() == 1

    with pytest.raises(RuntimeError), unit_of_work(runtime.session_factory) as session:
        enqueue_after_commit(session, queue, "system.ping", "rolled-back")
        raise RuntimeError("the change fails")
    assert queue.ping() == 1
    with pytest.raises(TypeError):
        enqueue_after_commit(session, queue, "system.ping", object())


# Every queue has a consumer: the real processes ---------------------------------------------


def _env(**values: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TOWNHALL_")}
    env.update(values)
    return env


def _wait_for_text(path: Path, text: str, process: subprocess.Popen, timeout: float = 30) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        content = path.read_text(errors="replace") if path.exists() else ""
        if text in content:
            return content
        if process.poll() is not None:
            raise AssertionError(f"process exited ({process.returncode}):\n{content}")
        time.sleep(0.1)
    raise AssertionError(f"{text!r} not seen in {path.name}:\n{path.read_text(errors='replace')}")


def _stop(process: subprocess.Popen, sig: int = signal.SIGTERM, timeout: float = 30) -> int:
    if process.poll() is None:
        process.send_signal(sig)
    try:
        return process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        raise


def test_townhall_worker_consumes_every_job_and_stops_on_sigterm(tmp_path):
    if not redis_available():
        pytest.skip(f"Redis is not reachable at {REDIS_URL}")
    # A database of its own: the worker uses the production queue name, "townhall".
    url = redis_url_with_db(14)
    settings = Settings(data_dir=tmp_path / "data", redis_url=url, secret_key=SECRET)
    producer = JobQueue(Runtime(settings))
    producer.huey.storage.flush_all()
    log_path = tmp_path / "worker.log"
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [TOWNHALL, "worker", "--threads", "2"],
            env=_env(
                TOWNHALL_REDIS_URL=url,
                TOWNHALL_DATA_DIR=str(tmp_path / "worker-data"),
                TOWNHALL_SECRET_KEY=SECRET,
                COLUMNS="1000",
            ),
            cwd=tmp_path,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        startup = _wait_for_text(log_path, "Huey consumer started", process)
        _wait_for_text(log_path, "+ townhall.jobs.system.ping", process)
        startup = log_path.read_text()
        known = {
            line.strip()[len("+ townhall.jobs.") :]
            for line in startup.splitlines()
            if line.strip().startswith("+ townhall.jobs.")
        }
        ours = {
            name
            for name, spec in registered_jobs().items()
            if spec.function.__module__.startswith("townhall.")
        }
        assert ours <= known, f"jobs without a consumer: {ours - known}"

        result = producer.enqueue("system.ping", "from-the-web-node")
        assert result.get(blocking=True, timeout=15) == "pong:from-the-web-node"
        assert _stop(process) == 0
        assert "Shutting down gracefully" in log_path.read_text()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        producer.huey.storage.flush_all()
        producer.close()


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_townhall_serve_runs_the_embedded_consumer_and_stops_on_sigterm(tmp_path):
    data_dir = tmp_path / "data"
    port = _free_port()
    log_path = tmp_path / "serve.log"
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [TOWNHALL, "serve", "--host", "127.0.0.1", "--port", str(port)],
            env=_env(TOWNHALL_DATA_DIR=str(data_dir), TOWNHALL_SECRET_KEY=SECRET),
            cwd=tmp_path,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_until(lambda: _healthy(port, process), timeout=60)
        assert "in-process job consumer started" in log_path.read_text()
        # Another process queues into the same SQLite queue; the server's consumer runs it.
        producer = JobQueue(Runtime(Settings(data_dir=data_dir, secret_key=SECRET)))
        try:
            result = producer.enqueue("system.ping", "embedded")
            assert result.get(blocking=True, timeout=15) == "pong:embedded"
        finally:
            producer.close()
        started = time.monotonic()
        # uvicorn shuts down, then re-raises the signal it caught: -SIGTERM is a clean exit.
        assert _stop(process, timeout=20) in (0, -signal.SIGTERM)
        assert time.monotonic() - started < 15
        log_text = log_path.read_text()
        assert "in-process job consumer stopped" in log_text
        assert "Application shutdown complete" in log_text
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def _healthy(port: int, process: subprocess.Popen) -> bool:
    if process.poll() is not None:
        raise AssertionError(f"townhall serve exited with {process.returncode}")
    try:
        return httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False
