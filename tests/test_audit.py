"""The audit trail's hash chain: any change, deletion or reordering is found and named."""

from __future__ import annotations

import pytest
from sqlalchemy import delete, select, update

from townhall.accounts import actions
from townhall.actor import system_actor
from townhall.audit.models import AuditEntry
from townhall.audit.queries import verify_chain
from townhall.db import unit_of_work


def _write_entries(runtime, count: int = 5) -> None:
    with unit_of_work(runtime.session_factory) as session:
        for index in range(count):
            actions.create_organization(
                session, actor=system_actor("test"), slug=f"office-{index}", name=f"Office {index}"
            )


def _verify(runtime):
    with unit_of_work(runtime.session_factory) as session:
        return verify_chain(session)


def test_intact_chain_verifies(runtime):
    _write_entries(runtime)
    report = _verify(runtime)
    assert report.ok
    assert report.entries_checked == 5


def test_rolled_back_action_leaves_no_entry(runtime):
    with pytest.raises(RuntimeError), unit_of_work(runtime.session_factory) as session:
        actions.create_organization(session, actor=system_actor(), slug="ghost", name="Ghost")
        raise RuntimeError("crash before commit")
    assert _verify(runtime).entries_checked == 0


def test_changed_entry_is_named(runtime):
    _write_entries(runtime)
    with unit_of_work(runtime.session_factory) as session:
        session.execute(
            update(AuditEntry).where(AuditEntry.seq == 3).values(changes={"slug": "forged"})
        )
    report = _verify(runtime)
    assert not report.ok
    assert report.first_bad_seq == 3
    assert "altered" in report.problem


def test_changed_actor_is_named(runtime):
    _write_entries(runtime)
    with unit_of_work(runtime.session_factory) as session:
        session.execute(update(AuditEntry).where(AuditEntry.seq == 2).values(actor="user:mallory"))
    assert _verify(runtime).first_bad_seq == 2


def test_deleted_entry_is_named(runtime):
    _write_entries(runtime)
    with unit_of_work(runtime.session_factory) as session:
        session.execute(delete(AuditEntry).where(AuditEntry.seq == 2))
    report = _verify(runtime)
    assert not report.ok
    assert report.first_bad_seq == 3
    assert "missing" in report.problem


def test_reordered_entries_are_named(runtime):
    _write_entries(runtime)
    with unit_of_work(runtime.session_factory) as session:
        # Swap the positions of entries 2 and 4 (seq is unique, so go through a spare value).
        session.execute(update(AuditEntry).where(AuditEntry.seq == 2).values(seq=-2))
        session.execute(update(AuditEntry).where(AuditEntry.seq == 4).values(seq=2))
        session.execute(update(AuditEntry).where(AuditEntry.seq == -2).values(seq=4))
    report = _verify(runtime)
    assert not report.ok
    assert report.first_bad_seq == 2


def test_rehashed_forgery_breaks_the_next_link(runtime):
    """A forger who recomputes the changed entry's own hash still breaks the link after it."""
    from townhall.audit.chain import entry_hash

    _write_entries(runtime)
    with unit_of_work(runtime.session_factory) as session:
        entry = session.scalar(select(AuditEntry).where(AuditEntry.seq == 2))
        entry.changes = {"slug": "forged"}
        entry.entry_hash = entry_hash(
            seq=entry.seq,
            at=entry.at,
            actor_id=entry.actor_id,
            actor=entry.actor,
            action=entry.action,
            object_type=entry.object_type,
            object_id=entry.object_id,
            changes=entry.changes,
            request_id=entry.request_id,
            prev_hash=entry.prev_hash,
        )
    report = _verify(runtime)
    assert report.first_bad_seq == 3
    assert "link" in report.problem


def test_concurrent_writers_keep_one_chain(runtime):
    """Writers on several threads must never fork the chain (PostgreSQL lock, SQLite IMMEDIATE)."""
    from concurrent.futures import ThreadPoolExecutor

    def write(index: int) -> None:
        with unit_of_work(runtime.session_factory) as session:
            actions.create_organization(
                session, actor=system_actor(), slug=f"c-{index}", name=f"C {index}"
            )

    with ThreadPoolExecutor(max_workers=6) as pool:
        list(pool.map(write, range(30)))
    report = _verify(runtime)
    assert report.ok, report.problem
    assert report.entries_checked == 30


def test_verify_api_reports_breakage(client, admin, runtime):
    assert client.get("/api/v1/audit/verify", headers={"Authorization": admin.token}).json()["ok"]
    with unit_of_work(runtime.session_factory) as session:
        session.execute(update(AuditEntry).where(AuditEntry.seq == 1).values(object_id="999"))
    body = client.get("/api/v1/audit/verify", headers={"Authorization": admin.token}).json()
    assert body["ok"] is False
    assert body["first_bad_seq"] == 1
