"""Answers and what belongs to them: the answers themselves, a conversation's finished turns, the answers chosen
as current, refreshed answer sets (epochs), answer errors and a local contestant's resources (docs/design.md
§2.3, §3.1)."""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import fields
from typing import Any

from ..records import Answer, AnswerError
from ..redaction import redact, redact_values
from .base import Queries
from .rows import AnswerCandidate, CurrentOverride, EpochRow, Resources, StoredAnswer, UsageStats

_ANSWER_COLUMNS = [f.name for f in fields(Answer) if f.name != "cached"]
_TEXT = _ANSWER_COLUMNS.index("text")
_CONTEXT_IDS = _ANSWER_COLUMNS.index("context_ids")
_TURNS, _REASONING = _ANSWER_COLUMNS.index("turns"), _ANSWER_COLUMNS.index("reasoning")
_INSERT_ANSWER = (f"INSERT OR IGNORE INTO answers ({','.join(_ANSWER_COLUMNS)}) "
                  f"VALUES ({','.join('?' * len(_ANSWER_COLUMNS))})")


class AnswerQueries(Queries):
    # --- answers ----------------------------------------------------------------------------------------

    def save_answer(self, answer: Answer) -> None:
        # Attribute reads, not dataclasses.asdict: asdict deep-copies every field, ~0.1 ms a record at the rate
        # the pipeline stores them (bench/bench_orchestration.py).
        values = [getattr(answer, c) for c in _ANSWER_COLUMNS]
        values[_TEXT] = redact_values(values[_TEXT])  # whole values only: an answer may rightly hold "sk-proj-"
        if answer.context_ids is not None:
            values[_CONTEXT_IDS] = json.dumps(answer.context_ids)
        if answer.turns is not None:
            values[_TURNS] = redact_values(json.dumps(answer.turns, ensure_ascii=False))
        if answer.reasoning is not None:
            values[_REASONING] = redact_values(answer.reasoning)
        # OR IGNORE: the key is unique; a duplicate can only be the same work done twice.
        self.db.execute(_INSERT_ANSWER, values)

    def get_answer(self, answer_id: str) -> Answer | None:
        row = self.db.execute("SELECT * FROM answers WHERE answer_id=?", (answer_id,)).fetchone()
        return _answer(row) if row else None

    def answers(self, contestant: str | None = None) -> Iterator[Answer]:
        query, args = "SELECT * FROM answers", ()  # type: str, tuple[str, ...]
        if contestant is not None:
            query, args = query + " WHERE contestant=?", (contestant,)
        for row in self.db.execute(query + " ORDER BY contestant, question_id", args):
            yield _answer(row)

    def answer_ids(self, config_id: str) -> dict[tuple[str, str], str]:
        """(question_id, prompt_hash) → answer_id for one contestant configuration."""
        rows = self.db.execute("SELECT question_id, prompt_hash, answer_id FROM answers WHERE config_id=?",
                               (config_id,))
        return {(r[0], r[1]): r[2] for r in rows}

    def find_answer_id(self, config_id: str, question_id: str, p_hash: str) -> str | None:
        """The answer stored under one key, through the UNIQUE (config_id, question_id, prompt_hash) index."""
        row = self.db.execute("SELECT answer_id FROM answers WHERE config_id=? AND question_id=? AND prompt_hash=?",
                              (config_id, question_id, p_hash)).fetchone()
        return row[0] if row else None

    def question_answers(self, config_id: str, question_id: str) -> list[StoredAnswer]:
        """(answer_id, question_digest, created_at, prompt_hash) of every answer one set holds for one question
        (the UNIQUE index's prefix: no table scan)."""
        rows = self.db.execute("SELECT answer_id, question_digest, created_at, prompt_hash FROM answers "
                               "WHERE config_id=? AND question_id=?", (config_id, question_id))
        return [StoredAnswer(*r) for r in rows]

    def answer_candidates(self, config_id: str) -> Iterator[AnswerCandidate]:
        """(question_id, answer_id, question_digest, created_at) of every answer in one set."""
        rows = self.db.execute("SELECT question_id, answer_id, question_digest, created_at FROM answers "
                               "WHERE config_id=?", (config_id,))
        for row in rows:
            yield AnswerCandidate(*row)

    def count_answers(self, config_id: str) -> int:
        """Answers stored for one contestant configuration, under any prompt (the index's prefix: no table scan)."""
        return self.db.execute("SELECT COUNT(*) FROM answers WHERE config_id=?", (config_id,)).fetchone()[0]

    def answer_rows(self, answer_ids: list[str], columns: tuple[str, ...]) -> list[tuple]:
        """The given columns of the given answers (order not guaranteed)."""
        return self.rows_by_key("answers", "answer_id", answer_ids, columns)

    def answer_stats(self, answer_ids: list[str]) -> UsageStats:
        """Average input/output tokens and total cost over the given answers (cost None if any is unknown)."""
        return self._stats("answers", "answer_id", answer_ids)

    # --- a conversation's finished turns -----------------------------------------------------------------

    def save_answer_turn(self, config_id: str, question_id: str, p_hash: str, turn: int, record: dict[str, Any],
                         run_id: str | None) -> None:
        """One finished turn of a conversation not yet complete: a killed run goes on from the first missing turn."""
        text = redact_values(json.dumps(record, ensure_ascii=False))
        self.db.execute("INSERT OR REPLACE INTO answer_turns VALUES (?,?,?,?,?,?,?)",
                        (config_id, question_id, p_hash, turn, text, time.time(), run_id))

    def answer_turns(self, config_id: str, question_id: str, p_hash: str) -> list[dict[str, Any]]:
        """The finished turns stored for one unfinished conversation, from the first turn up to the first gap."""
        rows = self.db.execute("SELECT turn, record FROM answer_turns WHERE config_id=? AND question_id=? AND "
                               "prompt_hash=? ORDER BY turn", (config_id, question_id, p_hash))
        out: list[dict[str, Any]] = []
        for turn, record in rows:
            if turn != len(out):
                break
            out.append(json.loads(record))
        return out

    def drop_answer_turns(self, config_id: str, question_id: str, p_hash: str) -> None:
        """Forget a conversation's partial turns once its whole answer is stored."""
        self.db.execute("DELETE FROM answer_turns WHERE config_id=? AND question_id=? AND prompt_hash=?",
                        (config_id, question_id, p_hash))

    # --- current answers and refreshed sets (docs/design.md §2.3) ------------------------------------------

    def current_overrides(self, config_id: str) -> dict[str, str | None]:
        """question_id → answer_id (None: no current answer) recorded by collection for one set (answer_sets.py)."""
        rows = self.db.execute("SELECT question_id, answer_id FROM current_answers WHERE config_id=?", (config_id,))
        return {r[0]: r[1] for r in rows}

    def current_override(self, config_id: str, question_id: str) -> CurrentOverride:
        row = self.db.execute("SELECT answer_id FROM current_answers WHERE config_id=? AND question_id=?",
                              (config_id, question_id)).fetchone()
        return CurrentOverride(True, row[0]) if row else CurrentOverride(False, None)

    def has_current_overrides(self, config_id: str) -> bool:
        row = self.db.execute("SELECT 1 FROM current_answers WHERE config_id=? LIMIT 1", (config_id,)).fetchone()
        return row is not None

    def set_current(self, config_id: str, question_id: str, answer_id: str | None) -> None:
        self.db.execute("INSERT OR REPLACE INTO current_answers VALUES (?,?,?)", (config_id, question_id, answer_id))

    def latest_epoch(self, base_config_id: str) -> EpochRow | None:
        """The newest refreshed answer set of a configuration, with the status of the run that opened it."""
        row = self.db.execute(
            "SELECT e.epoch, e.run_id, r.status FROM answer_epochs e LEFT JOIN runs r ON r.run_id = e.run_id "
            "WHERE e.base_config_id=? ORDER BY e.started_at DESC, e.epoch DESC LIMIT 1",
            (base_config_id,),
        ).fetchone()
        return EpochRow(*row) if row else None

    def open_epoch(self, base_config_id: str, epoch: str, contestant: str, run_id: str) -> None:
        self.db.execute("INSERT OR IGNORE INTO answer_epochs VALUES (?,?,?,?,?)",
                        (base_config_id, epoch, contestant, run_id, time.time()))

    # --- failures and resources ---------------------------------------------------------------------------

    def save_answer_error(self, error: AnswerError, run_id: str) -> None:
        self.db.execute(
            "INSERT INTO errors (run_id, stage, contestant, config_id, question_id, reason, attempts, created_at)"
            " VALUES (?,?,?,?,?,?,?,?)",
            (run_id, "answer", error.contestant, error.config_id, error.question_id, redact(error.reason),
             error.attempts, time.time()),
        )

    def failed_answers(self) -> set[tuple[str, str]]:
        """(answer set id, question id) of every answer that failed in some run, for good or until asked again."""
        rows = self.db.execute("SELECT DISTINCT config_id, question_id FROM errors WHERE stage='answer'")
        return {(r[0], r[1]) for r in rows}

    def save_resources(self, run_id: str, contestant: str, config_id: str, peak_memory_gb: float | None,
                       memory_source: str | None) -> None:
        """What a local contestant's collection used (docs/design.md §3.5.7)."""
        self.db.execute("INSERT INTO resources VALUES (?,?,?,?,?,?)",
                        (run_id, contestant, config_id, peak_memory_gb, memory_source, time.time()))

    def latest_resources(self, config_id: str) -> Resources:
        """(peak memory in GB, how it was read) of the latest collection of one answer set; Nones when none."""
        row = self.db.execute("SELECT peak_memory_gb, memory_source FROM resources WHERE config_id=? "
                              "ORDER BY created_at DESC LIMIT 1", (config_id,)).fetchone()
        return Resources(row[0], row[1]) if row else Resources(None, None)


def _answer(row: sqlite3.Row) -> Answer:
    values = {k: row[k] for k in _ANSWER_COLUMNS}
    values["tokens_estimated"] = bool(values["tokens_estimated"])
    values["context_ids"] = json.loads(values["context_ids"]) if values["context_ids"] else None
    values["turns"] = json.loads(values["turns"]) if values["turns"] else None
    return Answer(**values)
