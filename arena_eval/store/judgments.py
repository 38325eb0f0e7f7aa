"""Judgments and what belongs to them: the verdicts, the games whose judging failed, the guidance a guide model
wrote for a question (docs/design.md §3.2.1, §3.3), and the list of every stored error."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import fields

from ..records import GameError, Judgment
from ..redaction import redact, redact_values
from .base import Queries
from .rows import ErrorRow, UsageStats

_JUDGMENT_COLUMNS = [f.name for f in fields(Judgment) if f.name != "cached"]
_JUDGE_TEXT = _JUDGMENT_COLUMNS.index("judge_text")
_INSERT_JUDGMENT = (f"INSERT OR IGNORE INTO judgments ({','.join(_JUDGMENT_COLUMNS)},created_at) "
                    f"VALUES ({','.join('?' * (len(_JUDGMENT_COLUMNS) + 1))})")


class JudgmentQueries(Queries):
    # --- judgments --------------------------------------------------------------------------------------

    def save_judgment(self, judgment: Judgment) -> None:
        values = [getattr(judgment, c) for c in _JUDGMENT_COLUMNS]
        values[_JUDGE_TEXT] = redact_values(values[_JUDGE_TEXT])
        self.db.execute(_INSERT_JUDGMENT, values + [time.time()])

    def has_judgment(self, game_id: str) -> bool:
        return self.db.execute("SELECT 1 FROM judgments WHERE game_id=?", (game_id,)).fetchone() is not None

    def verdicts(self, judge_config_id: str) -> dict[str, str | None]:
        rows = self.db.execute("SELECT game_id, verdict FROM judgments WHERE judge_config_id=?", (judge_config_id,))
        return {r[0]: r[1] for r in rows}

    def judgments(self, judge_config_id: str | None = None) -> Iterator[Judgment]:
        query, args = "SELECT * FROM judgments", ()  # type: str, tuple[str, ...]
        if judge_config_id is not None:
            query, args = query + " WHERE judge_config_id=?", (judge_config_id,)
        for row in self.db.execute(query + " ORDER BY contestant, question_id, game", args):
            values = {k: row[k] for k in _JUDGMENT_COLUMNS}
            yield Judgment(**values)

    def judgment_stats(self, game_ids: list[str]) -> UsageStats:
        return self._stats("judgments", "game_id", game_ids)

    # --- errors ---------------------------------------------------------------------------------------------

    def save_game_error(self, error: GameError, run_id: str) -> None:
        self.db.execute(
            "INSERT INTO errors (run_id, stage, contestant, question_id, game_id, reason, attempts, created_at)"
            " VALUES (?,?,?,?,?,?,?,?)",
            (run_id, "judge", error.contestant, error.question_id, error.game_id, redact(error.reason), error.attempts,
             time.time()),
        )

    def failed_games(self) -> set[str]:
        """Game ids whose judging failed in some run (for good, or until a later run judges them)."""
        return {r[0] for r in self.db.execute("SELECT DISTINCT game_id FROM errors WHERE stage='judge'")}

    def errors(self, run_id: str | None = None) -> list[ErrorRow]:
        query, args = "SELECT * FROM errors", ()  # type: str, tuple[str, ...]
        if run_id is not None:
            query, args = query + " WHERE run_id=?", (run_id,)
        return [ErrorRow(**r) for r in self.db.execute(query + " ORDER BY id", args)]

    # --- guidance ---------------------------------------------------------------------------------------

    def get_guidance(self, question_id: str, guide_config_id: str) -> str | None:
        row = self.db.execute(
            "SELECT guidance FROM guidance WHERE question_id=? AND guide_config_id=?", (question_id, guide_config_id)
        ).fetchone()
        return row[0] if row else None

    def save_guidance(self, question_id: str, guide_config_id: str, reference: str, guidance: str,
                      input_tokens: int, output_tokens: int, created_at: float, run_id: str | None) -> None:
        self.db.execute(
            "INSERT OR REPLACE INTO guidance VALUES (?,?,?,?,?,?,?,?)",
            (question_id, guide_config_id, redact_values(reference), redact_values(guidance), input_tokens,
             output_tokens, created_at, run_id),
        )
