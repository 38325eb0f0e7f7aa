"""Runs and what a run records about its setting: the runs themselves (docs/design.md §4.4), the questions, the
contestants (and renaming one), adaptive plans, and each scored run's leaderboard (`history`)."""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterable
from typing import Any

from ..config import redact_secrets
from ..questions import Question
from ..records import LeaderboardRow
from ..redaction import redact_tree
from .base import Queries
from .connection import transaction
from .rows import AdaptiveStart, RunRow


class RunQueries(Queries):
    # --- runs -------------------------------------------------------------------------------------------

    def start_run(self, run_id: str, name: str, command: str, config: dict[str, Any]) -> None:
        self.db.execute(
            "INSERT INTO runs (run_id, name, command, started_at, status, config_json) VALUES (?,?,?,?,?,?)",
            (run_id, name, command, time.time(), "running",
             json.dumps(redact_tree(redact_secrets(config)), sort_keys=True)),
        )

    def finish_run(self, run_id: str, status: str, summary: dict[str, Any]) -> None:
        self.db.execute(
            "UPDATE runs SET finished_at=?, status=?, summary_json=? WHERE run_id=?",
            (time.time(), status, json.dumps(redact_tree(summary), default=str), run_id),
        )

    def mark_unfinished_runs(self) -> list[RunRow]:
        """Mark runs that are still 'running' as 'interrupted' and return them. Call it only while holding the
        folder's RunLock: then no such run is alive, it was killed (SIGKILL, a crash, a power cut)."""
        rows = [RunRow(**r) for r in self.db.execute(
            "SELECT * FROM runs WHERE status='running' ORDER BY started_at")]
        if rows:
            self.db.execute("UPDATE runs SET status='interrupted' WHERE status='running'")
        return rows

    def runs(self) -> list[RunRow]:
        return [RunRow(**r) for r in self.db.execute("SELECT * FROM runs ORDER BY started_at")]

    # --- questions and contestants ----------------------------------------------------------------------

    def save_questions(self, questions: Iterable[Question]) -> None:
        with transaction(self.db):
            self.db.executemany(
                "INSERT OR REPLACE INTO questions (question_id, prompt, category, cluster, reference, follow_ups, "
                "subcategory) VALUES (?,?,?,?,?,?,?)",
                ((q.question_id, q.prompt, q.category, q.cluster, q.reference,
                  json.dumps(q.follow_ups) if q.follow_ups else None, q.subcategory) for q in questions),
            )

    def questions(self) -> dict[str, Question]:
        return {r["question_id"]: _question(r) for r in self.db.execute("SELECT * FROM questions")}

    def question(self, question_id: str) -> Question | None:
        """One stored question, by primary key (the judge's look-up: no per-question index in memory)."""
        row = self.db.execute("SELECT * FROM questions WHERE question_id=?", (question_id,)).fetchone()
        return _question(row) if row else None

    def question_prompt(self, question_id: str) -> str | None:
        """One question's prompt, by primary key (the judge's look-up: no per-question index in memory)."""
        row = self.db.execute("SELECT prompt FROM questions WHERE question_id=?", (question_id,)).fetchone()
        return row[0] if row else None

    def question_reference(self, question_id: str) -> str | None:
        """One question's reference answer, if it has one (a judge with `reference: question` reads it)."""
        row = self.db.execute("SELECT reference FROM questions WHERE question_id=?", (question_id,)).fetchone()
        return row[0] if row else None

    def save_contestant(self, name: str, config_id: str, provider: str, model: str | None, config: dict) -> None:
        self.db.execute(
            "INSERT OR REPLACE INTO contestants VALUES (?,?,?,?,?,?)",
            # Redacted here, where every caller's config meets the database (docs/design.md §4.7: no secrets stored).
            (name, config_id, provider, model, json.dumps(redact_tree(redact_secrets(config)), sort_keys=True),
             time.time()),
        )

    def stored_contestants(self) -> dict[str, str]:
        """name → config_id of every contestant a run of this folder saved (the last configuration under each name)."""
        return {r[0]: r[1] for r in self.db.execute("SELECT name, config_id FROM contestants")}

    def rename_contestant(self, old: str, new: str) -> None:
        """Carry everything stored under contestant `old` over to `new`, in one transaction: answers, verdicts (as
        contestant and as baseline), errors, answer sets, energy, and the leaderboard history."""
        with transaction(self.db):
            for table, column in (("answers", "contestant"), ("judgments", "contestant"), ("judgments", "baseline"),
                                  ("errors", "contestant"), ("answer_epochs", "contestant"),
                                  ("energy_windows", "contestant"), ("energy_imports", "contestant"),
                                  ("question_points", "model"), ("regression_checks", "model")):
                self.db.execute(f"UPDATE {table} SET {column}=? WHERE {column}=?", (new, old))
            history = self.db.execute("SELECT run_id, row_json FROM leaderboards WHERE model=?", (old,)).fetchall()
            for run_id, row_json in history:  # Python's json: stored rows may hold NaN, which SQLite's json_set refuses
                self.db.execute("UPDATE leaderboards SET model=?, row_json=? WHERE run_id=? AND model=?",
                                (new, json.dumps({**json.loads(row_json), "model": new}), run_id, old))
            self.db.execute("DELETE FROM contestants WHERE name=?", (old,))

    # --- adaptive plans and leaderboards ---------------------------------------------------------------

    def adaptive_previous(self, plan_key: str) -> AdaptiveStart:
        """(whether an adaptive plan was started, the scored run it compares with) for one plan (adaptive.py)."""
        row = self.db.execute("SELECT previous_run_id FROM adaptive_plans WHERE plan_key=?", (plan_key,)).fetchone()
        return AdaptiveStart(True, row[0]) if row else AdaptiveStart(False, None)

    def start_adaptive_plan(self, plan_key: str, previous_run_id: str | None, run_id: str) -> None:
        """Record, once, which scored run a plan compares with: scoring later replays it against the same one."""
        self.db.execute("INSERT OR IGNORE INTO adaptive_plans VALUES (?,?,?,?)",
                        (plan_key, previous_run_id, run_id, time.time()))

    def save_leaderboard(self, run_id: str, rows: list[LeaderboardRow | dict[str, Any]],
                         columns: list[str] | None = None, judges: str | None = None,
                         question_points: Iterable[tuple[str, str, float, float]] = ()) -> None:
        """A run's leaderboard, kept for `history` and regression checks: each row's `columns` (a dict row: its
        own keys, each a LeaderboardRow column) as JSON, and `judges`: which judges' verdicts were rated (their
        config ids), since scores from different judges do not compare. `question_points` are (model, question,
        points, weight) against the baseline, what the next run's paired regression test pairs with (§3.6)."""
        records = []
        for row in rows:
            typed = row if isinstance(row, LeaderboardRow) else LeaderboardRow.from_record(row)
            records.append((typed.model, typed.to_record(columns if columns is not None else list(row))))
        now = time.time()
        with transaction(self.db):
            self.db.execute("DELETE FROM leaderboards WHERE run_id=?", (run_id,))
            self.db.executemany(
                "INSERT INTO leaderboards (run_id, model, created_at, row_json, judges) VALUES (?,?,?,?,?)",
                ((run_id, model, now, json.dumps(record, default=_json_default), judges) for model, record in records))
            self.db.execute("DELETE FROM question_points WHERE run_id=?", (run_id,))
            self.db.executemany("INSERT INTO question_points VALUES (?,?,?,?,?)",
                                ((run_id, m, q, float(p), float(w)) for m, q, p, w in question_points))

    def question_points(self, run_id: str, model: str) -> dict[str, tuple[float, float]]:
        """question → (points, weight) of `model` against the baseline in a scored run; empty for runs scored
        before these were kept."""
        return {r[0]: (r[1], r[2]) for r in self.db.execute(
            "SELECT question_id, points, weight FROM question_points WHERE run_id=? AND model=?", (run_id, model))}

    def save_regression_checks(self, run_id: str, checks: Iterable[dict[str, Any]]) -> None:
        """What a scored run's regression rule found for each contestant it could compare (§3.6), for `history`."""
        keys = ("model", "previous_run_id", "test", "difference", "ci_low", "ci_high", "p_value", "p_holm",
                "questions", "regressed", "reason")
        with transaction(self.db):
            self.db.execute("DELETE FROM regression_checks WHERE run_id=?", (run_id,))
            self.db.executemany(f"INSERT INTO regression_checks (run_id, {', '.join(keys)}) VALUES "
                                f"(?{', ?' * len(keys)})", ((run_id, *(_plain(c.get(k)) for k in keys)) for c in checks))

    def regression_checks(self) -> list[dict[str, Any]]:
        """Every stored regression check (one per scored run and contestant that had a previous run)."""
        return [dict(r) for r in self.db.execute("SELECT * FROM regression_checks")]

    def leaderboard_history(self, contestant: str | None = None) -> list[dict[str, Any]]:
        """Every stored leaderboard row, oldest run first, with the run's name, command, status and times."""
        sql = ("SELECT l.run_id, l.model, l.created_at, l.row_json, l.judges, r.name, r.command, r.status, "
               "r.started_at, json_extract(r.config_json, '$.category_baselines') AS category_baselines "
               "FROM leaderboards l JOIN runs r ON r.run_id = l.run_id")
        args: tuple = ()
        if contestant is not None:
            sql += " WHERE l.model = ?"
            args = (contestant,)
        rows = []
        for r in self.db.execute(sql + " ORDER BY r.started_at, l.run_id", args):
            row = json.loads(r["row_json"])
            row.update(run_id=r["run_id"], run_name=r["name"], command=r["command"], status=r["status"],
                       started_at=r["started_at"], scored_at=r["created_at"], judges=r["judges"],
                       category_baselines=json.loads(r["category_baselines"]) if r["category_baselines"] else None)
            rows.append(row)
        return rows


def _question(row: sqlite3.Row) -> Question:
    values = dict(row)
    values["follow_ups"] = tuple(json.loads(values["follow_ups"])) if values.get("follow_ups") else ()
    return Question(**values)


def _plain(value: Any) -> Any:
    """A numpy scalar as its Python value, NaN as NULL."""
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and value != value:
        return None
    return value


def _json_default(value: Any) -> Any:
    if hasattr(value, "item"):
        return value.item()
    return str(value)
