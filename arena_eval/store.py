"""SQLite store (WAL) for one output folder: questions, contestants, answers, errors, judgments, runs, leaderboards.

Every write is its own transaction, so a killed run loses at most what was in flight. One run at a time may
write to a store: `RunLock` holds an exclusive lock on a file beside the database.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import shutil
import sqlite3
import time
from collections.abc import Iterable, Iterator
from dataclasses import fields
from pathlib import Path
from typing import Any

from .config import redact_secrets
from .energy.energy_store import create_energy_tables
from .errors import ArenaError, StoreError, StoreLockedError
from .questions import Question
from .records import Answer, AnswerError, GameError, Judgment, LeaderboardRow
from .redaction import redact, redact_tree, redact_values

SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY, name TEXT NOT NULL, command TEXT NOT NULL, started_at REAL NOT NULL,
    finished_at REAL, status TEXT NOT NULL, config_json TEXT NOT NULL, summary_json TEXT
);
CREATE TABLE IF NOT EXISTS questions (
    question_id TEXT PRIMARY KEY, prompt TEXT NOT NULL, category TEXT, cluster TEXT, reference TEXT,
    follow_ups TEXT, subcategory TEXT
);
CREATE TABLE IF NOT EXISTS contestants (
    name TEXT PRIMARY KEY, config_id TEXT NOT NULL, provider TEXT NOT NULL, model TEXT,
    config_json TEXT NOT NULL, updated_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS answers (
    answer_id TEXT PRIMARY KEY, contestant TEXT NOT NULL, config_id TEXT NOT NULL, question_id TEXT NOT NULL,
    prompt_hash TEXT NOT NULL, text TEXT NOT NULL, input_tokens INTEGER, output_tokens INTEGER,
    tokens_estimated INTEGER NOT NULL DEFAULT 0, finish_reason TEXT, latency_s REAL, ttft_s REAL, cost REAL,
    created_at REAL NOT NULL, run_id TEXT, context_ids TEXT, question_digest TEXT, turns TEXT, reasoning TEXT,
    reasoning_tokens INTEGER, source_id TEXT,
    UNIQUE (config_id, question_id, prompt_hash)
);
CREATE TABLE IF NOT EXISTS answer_turns (
    config_id TEXT NOT NULL, question_id TEXT NOT NULL, prompt_hash TEXT NOT NULL, turn INTEGER NOT NULL,
    record TEXT NOT NULL, created_at REAL NOT NULL, run_id TEXT,
    PRIMARY KEY (config_id, question_id, prompt_hash, turn)
);
CREATE TABLE IF NOT EXISTS adaptive_plans (
    plan_key TEXT PRIMARY KEY, previous_run_id TEXT, started_run_id TEXT NOT NULL, created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS current_answers (
    config_id TEXT NOT NULL, question_id TEXT NOT NULL, answer_id TEXT, PRIMARY KEY (config_id, question_id)
);
CREATE TABLE IF NOT EXISTS guidance (
    question_id TEXT NOT NULL, guide_config_id TEXT NOT NULL, reference TEXT NOT NULL, guidance TEXT NOT NULL,
    input_tokens INTEGER, output_tokens INTEGER, created_at REAL NOT NULL, run_id TEXT,
    PRIMARY KEY (question_id, guide_config_id)
);
CREATE TABLE IF NOT EXISTS errors (
    id INTEGER PRIMARY KEY AUTOINCREMENT, run_id TEXT, stage TEXT NOT NULL, contestant TEXT NOT NULL,
    config_id TEXT, question_id TEXT NOT NULL, game_id TEXT, reason TEXT NOT NULL, attempts INTEGER NOT NULL,
    created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS judgments (
    game_id TEXT PRIMARY KEY, judge_config_id TEXT NOT NULL, question_id TEXT NOT NULL, contestant TEXT NOT NULL,
    baseline TEXT NOT NULL, game INTEGER NOT NULL, answer_a_id TEXT NOT NULL, answer_b_id TEXT NOT NULL,
    verdict TEXT, judge_text TEXT NOT NULL, attempts INTEGER NOT NULL, input_tokens INTEGER, output_tokens INTEGER,
    latency_s REAL, created_at REAL NOT NULL, run_id TEXT, cost REAL, flags TEXT
);
CREATE TABLE IF NOT EXISTS leaderboards (
    run_id TEXT NOT NULL, model TEXT NOT NULL, created_at REAL NOT NULL, row_json TEXT NOT NULL, judges TEXT,
    PRIMARY KEY (run_id, model)
);
CREATE TABLE IF NOT EXISTS answer_epochs (
    base_config_id TEXT NOT NULL, epoch TEXT NOT NULL, contestant TEXT NOT NULL, run_id TEXT NOT NULL,
    started_at REAL NOT NULL, PRIMARY KEY (base_config_id, epoch)
);
CREATE TABLE IF NOT EXISTS resources (
    run_id TEXT NOT NULL, contestant TEXT NOT NULL, config_id TEXT NOT NULL, peak_memory_gb REAL,
    memory_source TEXT, created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS batch_jobs (
    batch_id TEXT PRIMARY KEY, kind TEXT NOT NULL, provider TEXT NOT NULL, endpoint TEXT NOT NULL, name TEXT NOT NULL,
    config_id TEXT NOT NULL, status TEXT NOT NULL, provider_status TEXT, done INTEGER NOT NULL DEFAULT 0,
    total INTEGER NOT NULL, created_at REAL NOT NULL, updated_at REAL NOT NULL, run_id TEXT, collected_run_id TEXT
);
CREATE TABLE IF NOT EXISTS batch_items (
    batch_id TEXT NOT NULL, custom_id TEXT NOT NULL, question_id TEXT NOT NULL, item TEXT NOT NULL,
    PRIMARY KEY (batch_id, custom_id)
);
CREATE INDEX IF NOT EXISTS errors_by_run ON errors (run_id, stage);
"""

# Columns added after a table was first created: (table, column, type). Applied to older databases on open.
_ADDED_COLUMNS = [("answers", "context_ids", "TEXT"), ("judgments", "cost", "REAL"), ("judgments", "flags", "TEXT"),
                  ("answers", "question_digest", "TEXT"), ("leaderboards", "judges", "TEXT"),
                  ("questions", "follow_ups", "TEXT"), ("questions", "subcategory", "TEXT"), ("answers", "turns", "TEXT"),
                  ("answers", "reasoning", "TEXT"), ("answers", "reasoning_tokens", "INTEGER"),
                  ("answers", "source_id", "TEXT")]

_ANSWER_COLUMNS = [f.name for f in fields(Answer) if f.name != "cached"]
_JUDGMENT_COLUMNS = [f.name for f in fields(Judgment) if f.name != "cached"]
_TEXT = _ANSWER_COLUMNS.index("text")
_JUDGE_TEXT = _JUDGMENT_COLUMNS.index("judge_text")
_TURNS, _REASONING = _ANSWER_COLUMNS.index("turns"), _ANSWER_COLUMNS.index("reasoning")
_INSERT_ANSWER = (f"INSERT OR IGNORE INTO answers ({','.join(_ANSWER_COLUMNS)}) "
                  f"VALUES ({','.join('?' * len(_ANSWER_COLUMNS))})")
_INSERT_JUDGMENT = (f"INSERT OR IGNORE INTO judgments ({','.join(_JUDGMENT_COLUMNS)},created_at) "
                    f"VALUES ({','.join('?' * (len(_JUDGMENT_COLUMNS) + 1))})")


# --- SQLite failures as messages ------------------------------------------------------------------------


class _GuardedCursor(sqlite3.Cursor):
    """A cursor whose SQLite failures (also those that surface while rows are fetched) become StoreError."""

    def execute(self, *args: Any) -> "_GuardedCursor":
        try:
            return super().execute(*args)
        except sqlite3.Error as exc:
            raise store_error(self.connection, exc) from None

    def executemany(self, *args: Any) -> "_GuardedCursor":
        try:
            return super().executemany(*args)
        except sqlite3.Error as exc:
            raise store_error(self.connection, exc) from None

    def executescript(self, *args: Any) -> "_GuardedCursor":
        try:
            return super().executescript(*args)
        except sqlite3.Error as exc:
            raise store_error(self.connection, exc) from None

    def __next__(self) -> Any:
        try:
            return super().__next__()
        except sqlite3.Error as exc:
            raise store_error(self.connection, exc) from None

    def fetchone(self) -> Any:
        try:
            return super().fetchone()
        except sqlite3.Error as exc:
            raise store_error(self.connection, exc) from None

    def fetchall(self) -> list[Any]:
        try:
            return super().fetchall()
        except sqlite3.Error as exc:
            raise store_error(self.connection, exc) from None

    def fetchmany(self, *args: Any) -> list[Any]:
        try:
            return super().fetchmany(*args)
        except sqlite3.Error as exc:
            raise store_error(self.connection, exc) from None


class _GuardedConnection(sqlite3.Connection):
    """The store's connection: every statement runs on a _GuardedCursor, commits too, so that a full disk or a
    damaged file reaches the user as a message that names the file and what to do, never as a traceback.
    (Connection.execute builds a plain cursor in C, so the shortcuts are overridden here.)"""

    path: Path = Path("arena.db")

    def cursor(self, factory: Any = _GuardedCursor) -> Any:  # noqa: D102
        return super().cursor(factory)

    def execute(self, *args: Any) -> Any:
        return self.cursor().execute(*args)

    def executemany(self, *args: Any) -> Any:
        return self.cursor().executemany(*args)

    def executescript(self, *args: Any) -> Any:
        return self.cursor().executescript(*args)

    def commit(self) -> None:
        try:
            super().commit()
        except sqlite3.Error as exc:
            raise store_error(self, exc) from None

    def __exit__(self, kind: Any, value: Any, traceback: Any) -> Any:
        try:
            return super().__exit__(kind, value, traceback)
        except sqlite3.Error as exc:
            raise store_error(self, exc) from None


def store_error(db: Any, exc: BaseException) -> StoreError:
    """A message for a failure of the database at `db.path`: which kind, and what the user can do about it."""
    path = getattr(db, "path", None) or Path("arena.db")
    code = (getattr(exc, "sqlite_errorcode", None) or 0) & 0xFF  # the primary result code
    text = str(exc)
    if code == sqlite3.SQLITE_FULL or "disk is full" in text or getattr(exc, "errno", None) == errno.ENOSPC:
        return StoreError(
            f"the disk holding {path} is full{_free_space(path)} (SQLite: {text}). The run stopped; everything stored "
            "before is kept. Free some space there, then run the same command again to finish the missing work"
        )
    if code in (sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB) or "disk image is malformed" in text \
            or "not a database" in text:
        return StoreError(
            f"the result database {path} is damaged (SQLite: {text}). Stop other programs writing to it, then "
            f"recover what it holds with `sqlite3 {path} .recover | sqlite3 recovered.db` and put recovered.db in its "
            "place, or move it away to start this output folder afresh"
        )
    if code in (sqlite3.SQLITE_READONLY, sqlite3.SQLITE_CANTOPEN, sqlite3.SQLITE_PERM, sqlite3.SQLITE_AUTH) \
            or "readonly" in text or "unable to open" in text:
        return StoreError(f"cannot write the result database {path} (SQLite: {text}). Make the output folder and "
                          "the database writable, or set `output` to a folder you can write to")
    if code in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED):
        return StoreError(f"the result database {path} is held by another program (SQLite: {text}); close it and "
                          "run again")
    if code == sqlite3.SQLITE_IOERR or "disk I/O error" in text:
        return StoreError(f"reading or writing {path} failed (SQLite: {text}): check the disk and the file system, "
                          "then run again; what was stored before is kept")
    return StoreError(f"the result database {path} failed (SQLite: {text})")


def _free_space(path: Path) -> str:
    try:
        free = shutil.disk_usage(path.parent).free
    except OSError:
        return ""
    return f" ({free / 2**20:.1f} MiB free)"


class RunLock:
    """Exclusive, non-blocking lock on `<output>/.arena.lock`; a second run stops at once."""

    def __init__(self, folder: Path):
        self.path = folder / ".arena.lock"
        self._handle = None

    def acquire(self) -> "RunLock":
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            handle = open(self.path, "a+")
        except OSError as exc:  # e.g. a path below a regular file, a read-only mount, no permission
            raise ArenaError(
                f"cannot write to the output folder {self.path.parent}: {exc.strerror or exc} ({exc.filename}). "
                "Set `output` in the config to a folder you can write to."
            ) from None
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "unknown"
            handle.close()
            raise StoreLockedError(
                f"another arena-eval run ({holder}) is using {self.path.parent}; "
                "wait for it to finish, or give this run another name or --output"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()}, started {time.strftime('%Y-%m-%d %H:%M:%S')}")
        handle.flush()
        self._handle = handle
        return self

    def release(self) -> None:
        if self._handle is not None:
            fcntl.flock(self._handle, fcntl.LOCK_UN)
            self._handle.close()
            self._handle = None

    def __enter__(self) -> "RunLock":
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


class Store:
    def __init__(self, path: str | Path, *, verify: bool = False):
        """Open (or create) the store at `path`. With `verify` (the commands that write: run, score, import,
        merge), an existing database is checked whole (`PRAGMA quick_check`, about a second per GB) before anything
        is written to it: a damaged file is a StoreError and stays byte for byte as it was, so that `.recover` can
        still get everything out of it."""
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            existed = verify and self.path.is_file() and self.path.stat().st_size > 0
            self.db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False,
                                      factory=_GuardedConnection)
            self.db.path = self.path
            self.db.row_factory = sqlite3.Row
            if existed:
                self._verify()
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=NORMAL")
            self.db.execute("PRAGMA busy_timeout=5000")
            self.db.executescript(_SCHEMA)
            self._migrate()
            create_energy_tables(self.db)
            self.db.execute("INSERT OR IGNORE INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
        except StoreError as exc:
            raise StoreError(f"cannot open the result database: {exc}") from None
        except (OSError, sqlite3.Error) as exc:
            if getattr(exc, "errno", None) == errno.ENOSPC:
                raise store_error(self, exc) from None
            raise ArenaError(
                f"cannot open the result database {self.path}: {exc}. Check that the output folder is writable."
            ) from None

    def _verify(self) -> None:
        """Raise StoreError (through _GuardedCursor) when the database is damaged; reads only."""
        try:
            problems = [row[0] for row in self.db.execute("PRAGMA quick_check(3)")]
        except StoreError:
            self.db.close()
            raise
        if problems != ["ok"]:
            self.db.close()
            raise store_error(self, sqlite3.DatabaseError(f"database disk image is malformed: {'; '.join(problems)}"))

    def _migrate(self) -> None:
        for table, column, kind in _ADDED_COLUMNS:
            present = {row[1] for row in self.db.execute(f"PRAGMA table_info({table})")}
            if column not in present:
                self.db.execute(f"ALTER TABLE {table} ADD COLUMN {column} {kind}")

    def close(self) -> None:
        try:
            self.db.close()
        except sqlite3.Error:  # closing checkpoints the WAL; a full disk only leaves it for the next open
            pass

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- runs -------------------------------------------------------------------------------------------

    def start_run(self, run_id: str, name: str, command: str, config: dict[str, Any]) -> None:
        self.db.execute(
            "INSERT INTO runs (run_id, name, command, started_at, status, config_json) VALUES (?,?,?,?,?,?)",
            (run_id, name, command, time.time(), "running", json.dumps(redact_tree(redact_secrets(config)), sort_keys=True)),
        )

    def finish_run(self, run_id: str, status: str, summary: dict[str, Any]) -> None:
        self.db.execute(
            "UPDATE runs SET finished_at=?, status=?, summary_json=? WHERE run_id=?",
            (time.time(), status, json.dumps(redact_tree(summary), default=str), run_id),
        )

    def mark_unfinished_runs(self) -> list[dict[str, Any]]:
        """Mark runs that are still 'running' as 'interrupted' and return them. Call it only while holding the
        folder's RunLock: then no such run is alive, it was killed (SIGKILL, a crash, a power cut)."""
        rows = [dict(r) for r in self.db.execute(
            "SELECT run_id, command, started_at FROM runs WHERE status='running' ORDER BY started_at")]
        if rows:
            self.db.execute("UPDATE runs SET status='interrupted' WHERE status='running'")
        return rows

    def runs(self) -> list[dict[str, Any]]:
        return [dict(r) for r in self.db.execute("SELECT * FROM runs ORDER BY started_at")]

    # --- questions and contestants ----------------------------------------------------------------------

    def save_questions(self, questions: Iterable[Question]) -> None:
        with self.db:
            self.db.execute("BEGIN")
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

    def adaptive_previous(self, plan_key: str) -> tuple[bool, str | None]:
        """(whether an adaptive plan was started, the scored run it compares with) for one plan (adaptive.py)."""
        row = self.db.execute("SELECT previous_run_id FROM adaptive_plans WHERE plan_key=?", (plan_key,)).fetchone()
        return (True, row[0]) if row else (False, None)

    def start_adaptive_plan(self, plan_key: str, previous_run_id: str | None, run_id: str) -> None:
        """Record, once, which scored run a plan compares with: scoring later replays it against the same one."""
        self.db.execute("INSERT OR IGNORE INTO adaptive_plans VALUES (?,?,?,?)",
                        (plan_key, previous_run_id, run_id, time.time()))

    def question_reference(self, question_id: str) -> str | None:
        """One question's reference answer, if it has one (a judge with `reference: question` reads it)."""
        row = self.db.execute("SELECT reference FROM questions WHERE question_id=?", (question_id,)).fetchone()
        return row[0] if row else None

    def save_contestant(self, name: str, config_id: str, provider: str, model: str | None, config: dict) -> None:
        self.db.execute(
            "INSERT OR REPLACE INTO contestants VALUES (?,?,?,?,?,?)",
            # Redacted here, where every caller's config meets the database (docs/design.md §4.7: no secrets stored).
            (name, config_id, provider, model, json.dumps(redact_tree(redact_secrets(config)), sort_keys=True), time.time()),
        )

    def stored_contestants(self) -> dict[str, str]:
        """name → config_id of every contestant a run of this folder saved (the last configuration under each name)."""
        return {r[0]: r[1] for r in self.db.execute("SELECT name, config_id FROM contestants")}

    def rename_contestant(self, old: str, new: str) -> None:
        """Carry everything stored under contestant `old` over to `new`, in one transaction: answers, verdicts (as
        contestant and as baseline), errors, answer sets, energy, and the leaderboard history."""
        with self.db:
            self.db.execute("BEGIN")
            for table, column in (("answers", "contestant"), ("judgments", "contestant"), ("judgments", "baseline"),
                                  ("errors", "contestant"), ("answer_epochs", "contestant"),
                                  ("energy_windows", "contestant"), ("energy_imports", "contestant")):
                self.db.execute(f"UPDATE {table} SET {column}=? WHERE {column}=?", (new, old))
            history = self.db.execute("SELECT run_id, row_json FROM leaderboards WHERE model=?", (old,)).fetchall()
            for run_id, row_json in history:  # Python's json: stored rows may hold NaN, which SQLite's json_set refuses
                self.db.execute("UPDATE leaderboards SET model=?, row_json=? WHERE run_id=? AND model=?",
                                (new, json.dumps({**json.loads(row_json), "model": new}), run_id, old))
            self.db.execute("DELETE FROM contestants WHERE name=?", (old,))

    # --- answers ----------------------------------------------------------------------------------------

    def save_answer(self, answer: Answer) -> None:
        # Attribute reads, not dataclasses.asdict: asdict deep-copies every field, ~0.1 ms a record at the rate
        # the pipeline stores them (bench/bench_orchestration.py).
        values = [getattr(answer, c) for c in _ANSWER_COLUMNS]
        values[_TEXT] = redact_values(values[_TEXT])  # whole values only: an answer may rightly hold "sk-proj-"
        if answer.context_ids is not None:
            values[_ANSWER_COLUMNS.index("context_ids")] = json.dumps(answer.context_ids)
        if answer.turns is not None:
            values[_TURNS] = redact_values(json.dumps(answer.turns, ensure_ascii=False))
        if answer.reasoning is not None:
            values[_REASONING] = redact_values(answer.reasoning)
        # OR IGNORE: the key is unique; a duplicate can only be the same work done twice.
        self.db.execute(_INSERT_ANSWER, values)

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
        out = []
        for turn, record in rows:
            if turn != len(out):
                break
            out.append(json.loads(record))
        return out

    def drop_answer_turns(self, config_id: str, question_id: str, p_hash: str) -> None:
        """Forget a conversation's partial turns once its whole answer is stored."""
        self.db.execute("DELETE FROM answer_turns WHERE config_id=? AND question_id=? AND prompt_hash=?",
                        (config_id, question_id, p_hash))

    def save_resources(self, run_id: str, contestant: str, config_id: str, peak_memory_gb: float | None,
                       memory_source: str | None) -> None:
        """What a local contestant's collection used (docs/design.md §3.5.7)."""
        self.db.execute("INSERT INTO resources VALUES (?,?,?,?,?,?)",
                        (run_id, contestant, config_id, peak_memory_gb, memory_source, time.time()))

    def latest_resources(self, config_id: str) -> tuple[float | None, str | None]:
        """(peak memory in GB, how it was read) of the latest collection of one answer set; Nones when none."""
        row = self.db.execute("SELECT peak_memory_gb, memory_source FROM resources WHERE config_id=? "
                              "ORDER BY created_at DESC LIMIT 1", (config_id,)).fetchone()
        return (row[0], row[1]) if row else (None, None)

    def answer_ids(self, config_id: str) -> dict[tuple[str, str], str]:
        """(question_id, prompt_hash) → answer_id for one contestant configuration."""
        rows = self.db.execute("SELECT question_id, prompt_hash, answer_id FROM answers WHERE config_id=?", (config_id,))
        return {(r[0], r[1]): r[2] for r in rows}

    def find_answer_id(self, config_id: str, question_id: str, p_hash: str) -> str | None:
        """The answer stored under one key, through the UNIQUE (config_id, question_id, prompt_hash) index."""
        row = self.db.execute("SELECT answer_id FROM answers WHERE config_id=? AND question_id=? AND prompt_hash=?",
                              (config_id, question_id, p_hash)).fetchone()
        return row[0] if row else None

    def question_answers(self, config_id: str, question_id: str) -> list[tuple[str, str | None, float, str]]:
        """(answer_id, question_digest, created_at, prompt_hash) of every answer one set holds for one question
        (the UNIQUE index's prefix: no table scan)."""
        rows = self.db.execute("SELECT answer_id, question_digest, created_at, prompt_hash FROM answers "
                               "WHERE config_id=? AND question_id=?", (config_id, question_id))
        return [tuple(r) for r in rows]

    def answer_candidates(self, config_id: str) -> Iterator[tuple[str, str, str | None, float]]:
        """(question_id, answer_id, question_digest, created_at) of every answer in one set."""
        rows = self.db.execute("SELECT question_id, answer_id, question_digest, created_at FROM answers "
                               "WHERE config_id=?", (config_id,))
        for row in rows:
            yield tuple(row)

    def current_overrides(self, config_id: str) -> dict[str, str | None]:
        """question_id → answer_id (None: no current answer) recorded by collection for one set (answer_sets.py)."""
        rows = self.db.execute("SELECT question_id, answer_id FROM current_answers WHERE config_id=?", (config_id,))
        return {r[0]: r[1] for r in rows}

    def current_override(self, config_id: str, question_id: str) -> tuple[bool, str | None]:
        row = self.db.execute("SELECT answer_id FROM current_answers WHERE config_id=? AND question_id=?",
                              (config_id, question_id)).fetchone()
        return (True, row[0]) if row else (False, None)

    def has_current_overrides(self, config_id: str) -> bool:
        return self.db.execute("SELECT 1 FROM current_answers WHERE config_id=? LIMIT 1", (config_id,)).fetchone() is not None

    def set_current(self, config_id: str, question_id: str, answer_id: str | None) -> None:
        self.db.execute("INSERT OR REPLACE INTO current_answers VALUES (?,?,?)", (config_id, question_id, answer_id))

    def count_answers(self, config_id: str) -> int:
        """Answers stored for one contestant configuration, under any prompt (the index's prefix: no table scan)."""
        return self.db.execute("SELECT COUNT(*) FROM answers WHERE config_id=?", (config_id,)).fetchone()[0]

    def get_answer(self, answer_id: str) -> Answer | None:
        row = self.db.execute("SELECT * FROM answers WHERE answer_id=?", (answer_id,)).fetchone()
        return _answer(row) if row else None

    def answers(self, contestant: str | None = None) -> Iterator[Answer]:
        query, args = "SELECT * FROM answers", ()
        if contestant is not None:
            query, args = query + " WHERE contestant=?", (contestant,)
        for row in self.db.execute(query + " ORDER BY contestant, question_id", args):
            yield _answer(row)

    def answer_rows(self, answer_ids: list[str], columns: tuple[str, ...]) -> list[tuple]:
        """The given columns of the given answers (order not guaranteed)."""
        return self.rows_by_key("answers", "answer_id", answer_ids, columns)

    def rows_by_key(self, table: str, key: str, ids: list[str], columns: tuple[str, ...]) -> list[tuple]:
        """The given columns of the rows of `table` whose `key` is one of `ids` (order not guaranteed)."""
        out: list[tuple] = []
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            out += [tuple(r) for r in self.db.execute(
                f"SELECT {','.join(columns)} FROM {table} WHERE {key} IN ({','.join('?' * len(chunk))})", chunk)]
        return out

    def answer_stats(self, answer_ids: list[str]) -> dict[str, float | None]:
        """Average input/output tokens and total cost over the given answers (cost None if any is unknown)."""
        return self._stats("answers", "answer_id", answer_ids)

    def judgment_stats(self, game_ids: list[str]) -> dict[str, float | None]:
        return self._stats("judgments", "game_id", game_ids)

    def _stats(self, table: str, key: str, ids: list[str]) -> dict[str, float | None]:
        n = n_in = n_out = n_cost = 0
        sum_in = sum_out = cost = 0.0
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            row = self.db.execute(
                f"SELECT COUNT(*), COUNT(input_tokens), SUM(input_tokens), COUNT(output_tokens), SUM(output_tokens),"
                f" COUNT(cost), SUM(cost) FROM {table} WHERE {key} IN ({','.join('?' * len(chunk))})",
                chunk,
            ).fetchone()
            n += row[0]
            n_in, sum_in = n_in + row[1], sum_in + (row[2] or 0)
            n_out, sum_out = n_out + row[3], sum_out + (row[4] or 0)
            n_cost, cost = n_cost + row[5], cost + (row[6] or 0)
        return {
            "avg_input_tokens": sum_in / n_in if n_in else None,
            "avg_output_tokens": sum_out / n_out if n_out else None,
            "cost": cost if n and n_cost == n else None,
        }

    # --- errors -----------------------------------------------------------------------------------------

    def save_answer_error(self, error: AnswerError, run_id: str) -> None:
        self.db.execute(
            "INSERT INTO errors (run_id, stage, contestant, config_id, question_id, reason, attempts, created_at)"
            " VALUES (?,?,?,?,?,?,?,?)",
            (run_id, "answer", error.contestant, error.config_id, error.question_id, redact(error.reason), error.attempts,
             time.time()),
        )

    def save_game_error(self, error: GameError, run_id: str) -> None:
        self.db.execute(
            "INSERT INTO errors (run_id, stage, contestant, question_id, game_id, reason, attempts, created_at)"
            " VALUES (?,?,?,?,?,?,?,?)",
            (run_id, "judge", error.contestant, error.question_id, error.game_id, redact(error.reason), error.attempts,
             time.time()),
        )

    def failed_answers(self) -> set[tuple[str, str]]:
        """(answer set id, question id) of every answer that failed in some run, for good or until asked again."""
        rows = self.db.execute("SELECT DISTINCT config_id, question_id FROM errors WHERE stage='answer'")
        return {(r[0], r[1]) for r in rows}

    def failed_games(self) -> set[str]:
        """Game ids whose judging failed in some run (for good, or until a later run judges them)."""
        return {r[0] for r in self.db.execute("SELECT DISTINCT game_id FROM errors WHERE stage='judge'")}

    def errors(self, run_id: str | None = None) -> list[dict[str, Any]]:
        query, args = "SELECT * FROM errors", ()
        if run_id is not None:
            query, args = query + " WHERE run_id=?", (run_id,)
        return [dict(r) for r in self.db.execute(query + " ORDER BY id", args)]

    def save_batch_error(self, name: str, config_id: str, reason: str, run_id: str) -> None:
        """A batch result that matches no request of its batch (stage `batch`): kept for the record, not an item's
        error, so nothing is retried because of it."""
        self.db.execute(
            "INSERT INTO errors (run_id, stage, contestant, config_id, question_id, reason, attempts, created_at)"
            " VALUES (?,?,?,?,?,?,?,?)", (run_id, "batch", name, config_id, "", redact(reason), 0, time.time()))

    # --- batches at a provider (docs/design.md §3.9) -------------------------------------------------------

    def save_batch_job(self, batch_id: str, kind: str, provider: str, endpoint: str, name: str, config_id: str,
                       items: list[tuple[str, str, dict[str, Any]]], run_id: str) -> None:
        """A batch the provider just accepted, with what each custom id in it stands for ((custom_id, question_id,
        item)), in one transaction: from now on a killed run resumes it instead of submitting its work again."""
        now = time.time()
        with self.db:
            self.db.execute("BEGIN")
            self.db.execute("INSERT INTO batch_jobs (batch_id, kind, provider, endpoint, name, config_id, status, "
                            "total, created_at, updated_at, run_id) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                            (batch_id, kind, provider, redact(endpoint), name, config_id, "pending", len(items), now,
                             now, run_id))
            self.db.executemany("INSERT INTO batch_items VALUES (?,?,?,?)",
                                ((batch_id, custom_id, question_id, json.dumps(item))
                                 for custom_id, question_id, item in items))

    def update_batch_job(self, batch_id: str, provider_status: str, done: int, collected_run_id: str | None = None) -> None:
        """The provider's latest word on a batch; with `collected_run_id`, its results are all stored."""
        if collected_run_id is None:
            self.db.execute("UPDATE batch_jobs SET provider_status=?, done=?, updated_at=? WHERE batch_id=?",
                            (provider_status, done, time.time(), batch_id))
        else:
            self.db.execute("UPDATE batch_jobs SET status='collected', provider_status=?, done=?, updated_at=?, "
                            "collected_run_id=? WHERE batch_id=?",
                            (provider_status, done, time.time(), collected_run_id, batch_id))

    def batch_jobs(self, pending_only: bool = False) -> list[dict[str, Any]]:
        query = "SELECT * FROM batch_jobs" + (" WHERE status='pending'" if pending_only else "")
        return [dict(r) for r in self.db.execute(query + " ORDER BY created_at, batch_id")]

    def forget_batch(self, batch_id: str) -> bool:
        """Stop waiting for a pending batch (its work is submitted again by the next run); False when no pending
        batch has that id."""
        done = self.db.execute("UPDATE batch_jobs SET status='forgotten', updated_at=? WHERE batch_id=? AND "
                               "status='pending'", (time.time(), batch_id))
        return done.rowcount == 1

    def batch_job(self, batch_id: str) -> dict[str, Any]:
        return dict(self.db.execute("SELECT * FROM batch_jobs WHERE batch_id=?", (batch_id,)).fetchone())

    def batch_items(self, batch_id: str) -> dict[str, tuple[str, dict[str, Any]]]:
        """custom_id → (question_id, what it stands for) of one batch."""
        rows = self.db.execute("SELECT custom_id, question_id, item FROM batch_items WHERE batch_id=?", (batch_id,))
        return {r[0]: (r[1], json.loads(r[2])) for r in rows}

    def pending_custom_ids(self, kind: str, config_id: str) -> set[str]:
        """The custom ids of one answer set's (or one judge's) batches still at the provider: work not to submit
        again."""
        rows = self.db.execute("SELECT i.custom_id FROM batch_items i JOIN batch_jobs j ON j.batch_id = i.batch_id "
                               "WHERE j.status='pending' AND j.kind=? AND j.config_id=?", (kind, config_id))
        return {r[0] for r in rows}

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
        query, args = "SELECT * FROM judgments", ()
        if judge_config_id is not None:
            query, args = query + " WHERE judge_config_id=?", (judge_config_id,)
        for row in self.db.execute(query + " ORDER BY contestant, question_id, game", args):
            values = {k: row[k] for k in _JUDGMENT_COLUMNS}
            yield Judgment(**values)

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
            (question_id, guide_config_id, redact_values(reference), redact_values(guidance), input_tokens, output_tokens,
             created_at, run_id),
        )

    # --- refreshed answer sets ------------------------------------------------------------------------

    def latest_epoch(self, base_config_id: str) -> dict[str, Any] | None:
        """The newest refreshed answer set of a configuration, with the status of the run that opened it."""
        row = self.db.execute(
            "SELECT e.epoch, e.run_id, r.status FROM answer_epochs e LEFT JOIN runs r ON r.run_id = e.run_id "
            "WHERE e.base_config_id=? ORDER BY e.started_at DESC, e.epoch DESC LIMIT 1",
            (base_config_id,),
        ).fetchone()
        return dict(row) if row else None

    def open_epoch(self, base_config_id: str, epoch: str, contestant: str, run_id: str) -> None:
        self.db.execute("INSERT OR IGNORE INTO answer_epochs VALUES (?,?,?,?,?)",
                        (base_config_id, epoch, contestant, run_id, time.time()))

    # --- leaderboards -----------------------------------------------------------------------------------

    def save_leaderboard(self, run_id: str, rows: list[LeaderboardRow | dict[str, Any]],
                         columns: list[str] | None = None, judges: str | None = None) -> None:
        """A run's leaderboard, kept for `history` and regression checks: each row's `columns` (a dict row: its
        own keys, each a LeaderboardRow column) as JSON, and `judges`: which judges' verdicts were rated (their
        config ids), since scores from different judges do not compare."""
        records = []
        for row in rows:
            typed = row if isinstance(row, LeaderboardRow) else LeaderboardRow.from_record(row)
            records.append((typed.model, typed.to_record(columns if columns is not None else list(row))))
        now = time.time()
        with self.db:
            self.db.execute("BEGIN")
            self.db.execute("DELETE FROM leaderboards WHERE run_id=?", (run_id,))
            self.db.executemany("INSERT INTO leaderboards (run_id, model, created_at, row_json, judges) VALUES (?,?,?,?,?)",
                                ((run_id, model, now, json.dumps(record, default=_json_default), judges)
                                 for model, record in records))

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


def _answer(row: sqlite3.Row) -> Answer:
    values = {k: row[k] for k in _ANSWER_COLUMNS}
    values["tokens_estimated"] = bool(values["tokens_estimated"])
    values["context_ids"] = json.loads(values["context_ids"]) if values["context_ids"] else None
    values["turns"] = json.loads(values["turns"]) if values["turns"] else None
    return Answer(**values)


def _question(row: sqlite3.Row) -> Question:
    values = dict(row)
    values["follow_ups"] = tuple(json.loads(values["follow_ups"])) if values.get("follow_ups") else ()
    return Question(**values)


def _json_default(value: Any) -> Any:
    if hasattr(value, "item"):
        return value.item()
    return str(value)
