"""Writes of the insights slice. Insights only read the office's records; what they change is
the triage model, a file per node, and asking for it to be retrained is audited like any
other write."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy.orm import Session

from townhall.actor import Actor
from townhall.audit.actions import record
from townhall.jobs import enqueue_after_commit

if TYPE_CHECKING:
    from townhall.jobs import JobQueue

TRAIN_TRIAGE_JOB = "insights.train_triage"


def request_triage_training(session: Session, *, actor: Actor, queue: JobQueue) -> None:
    """Queue a retraining of the triage model (after commit). Needs `insights:read`."""
    actor.require("insights:read")
    record(
        session,
        actor=actor,
        action="insights.triage_training_requested",
        object_type="triage_model",
        object_id="triage",
    )
    enqueue_after_commit(session, queue, TRAIN_TRIAGE_JOB)


def record_triage_model(session: Session, *, actor: Actor, meta: dict[str, Any]) -> None:
    """Audit a newly trained model with its measured accuracy (the job's own record)."""
    record(
        session,
        actor=actor,
        action="insights.triage_trained",
        object_type="triage_model",
        object_id="triage",
        changes={
            key: meta.get(key)
            for key in ("examples", "service_accuracy", "priority_accuracy", "trained_at")
        },
    )
