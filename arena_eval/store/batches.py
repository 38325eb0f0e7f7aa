"""Batches at a provider (batch mode, docs/design.md §3.9): each batch the provider accepted, stored before it is
polled, with what each of its custom ids stands for; and a result that matches no request of its batch."""

from __future__ import annotations

import json
import time
from typing import Any

from ..redaction import redact
from .base import Queries
from .connection import transaction
from .rows import BatchItem, BatchJob


class BatchQueries(Queries):
    def save_batch_job(self, batch_id: str, kind: str, provider: str, endpoint: str, name: str, config_id: str,
                       items: list[tuple[str, str, dict[str, Any]]], run_id: str) -> None:
        """A batch the provider just accepted, with what each custom id in it stands for ((custom_id, question_id,
        item)), in one transaction: from now on a killed run resumes it instead of submitting its work again."""
        now = time.time()
        with transaction(self.db):
            self.db.execute("INSERT INTO batch_jobs (batch_id, kind, provider, endpoint, name, config_id, status, "
                            "total, created_at, updated_at, run_id) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                            (batch_id, kind, provider, redact(endpoint), name, config_id, "pending", len(items), now,
                             now, run_id))
            self.db.executemany("INSERT INTO batch_items VALUES (?,?,?,?)",
                                ((batch_id, custom_id, question_id, json.dumps(item))
                                 for custom_id, question_id, item in items))

    def update_batch_job(self, batch_id: str, provider_status: str, done: int,
                         collected_run_id: str | None = None) -> None:
        """The provider's latest word on a batch; with `collected_run_id`, its results are all stored."""
        if collected_run_id is None:
            self.db.execute("UPDATE batch_jobs SET provider_status=?, done=?, updated_at=? WHERE batch_id=?",
                            (provider_status, done, time.time(), batch_id))
        else:
            self.db.execute("UPDATE batch_jobs SET status='collected', provider_status=?, done=?, updated_at=?, "
                            "collected_run_id=? WHERE batch_id=?",
                            (provider_status, done, time.time(), collected_run_id, batch_id))

    def batch_jobs(self, pending_only: bool = False) -> list[BatchJob]:
        query = "SELECT * FROM batch_jobs" + (" WHERE status='pending'" if pending_only else "")
        return [BatchJob(**r) for r in self.db.execute(query + " ORDER BY created_at, batch_id")]

    def forget_batch(self, batch_id: str) -> bool:
        """Stop waiting for a pending batch (its work is submitted again by the next run); False when no pending
        batch has that id."""
        done = self.db.execute("UPDATE batch_jobs SET status='forgotten', updated_at=? WHERE batch_id=? AND "
                               "status='pending'", (time.time(), batch_id))
        return done.rowcount == 1

    def batch_job(self, batch_id: str) -> BatchJob:
        return BatchJob(**self.db.execute("SELECT * FROM batch_jobs WHERE batch_id=?", (batch_id,)).fetchone())

    def batch_items(self, batch_id: str) -> dict[str, BatchItem]:
        """custom_id → (question_id, what it stands for) of one batch."""
        rows = self.db.execute("SELECT custom_id, question_id, item FROM batch_items WHERE batch_id=?", (batch_id,))
        return {r[0]: BatchItem(r[1], json.loads(r[2])) for r in rows}

    def pending_custom_ids(self, kind: str, config_id: str) -> set[str]:
        """The custom ids of one answer set's (or one judge's) batches still at the provider: work not to submit
        again."""
        rows = self.db.execute("SELECT i.custom_id FROM batch_items i JOIN batch_jobs j ON j.batch_id = i.batch_id "
                               "WHERE j.status='pending' AND j.kind=? AND j.config_id=?", (kind, config_id))
        return {r[0] for r in rows}

    def save_batch_error(self, name: str, config_id: str, reason: str, run_id: str) -> None:
        """A batch result that matches no request of its batch (stage `batch`): kept for the record, not an item's
        error, so nothing is retried because of it."""
        self.db.execute(
            "INSERT INTO errors (run_id, stage, contestant, config_id, question_id, reason, attempts, created_at)"
            " VALUES (?,?,?,?,?,?,?,?)", (run_id, "batch", name, config_id, "", redact(reason), 0, time.time()))
