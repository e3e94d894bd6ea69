"""Insights jobs: train the triage model.

`insights.train_triage` is scheduled every `insights_triage_every_hours` (see `SCHEDULE`). It
is idempotent: a retry trains again on the same data and replaces the file atomically. Too
little data is not a failure (nothing to retry): it logs and leaves any previous model.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from townhall.actor import system_actor
from townhall.db import unit_of_work
from townhall.insights import actions, triage
from townhall.jobs import job
from townhall.service_requests import queries as request_queries

if TYPE_CHECKING:
    from townhall.config import Settings
    from townhall.runtime import Runtime

log = logging.getLogger(__name__)


@job(actions.TRAIN_TRIAGE_JOB, retries=1, retry_delay=600)
def train_triage(runtime: Runtime) -> dict[str, Any] | None:
    """Train on the latest requests and store the model; returns its metadata, or None when
    there were too few requests to learn from."""
    with unit_of_work(runtime.read_session_factory) as session:
        examples = request_queries.triage_examples(session, limit=triage.MAX_EXAMPLES)
    try:
        model, result = triage.train(examples)
    except triage.NotEnoughExamples as reason:
        log.info("triage model not trained: %s", reason)
        return None
    triage.save(model, triage.model_dir(runtime.settings.data_dir))
    with unit_of_work(runtime.session_factory) as session:
        actions.record_triage_model(
            session, actor=system_actor(f"job:{actions.TRAIN_TRIAGE_JOB}"), meta=result.as_dict()
        )
    log.info(
        "triage model trained on %d requests: service accuracy %.3f",
        result.examples,
        result.service_accuracy,
    )
    return result.as_dict()


def triage_every(settings: Settings) -> timedelta | None:
    hours = settings.insights_triage_every_hours
    return timedelta(hours=hours) if hours else None


SCHEDULE = {actions.TRAIN_TRIAGE_JOB: triage_every}
"""Job name -> function of the settings giving its interval (None: not scheduled)."""
