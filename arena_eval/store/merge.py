"""The SQL of merging other folders' stores into this one (docs/design.md §4.8): each table's rule, reading a
source's schema, attaching a source read-only, its one transaction, and a table's merge counted as duplicates,
conflicts and rows added. What to merge, the checks and the messages are merge.py's.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ArenaError
from .base import Queries
from .connection import GuardedConnection, read_only_uri
from .rows import EpochKey
from .schema import create_tables, table_columns

# When and in which run a piece of work was done, how long it took and what it was billed: they describe one
# occasion of doing the work, not the work, so the same answer collected twice differs only in them.
OCCASION = ("created_at", "run_id", "latency_s", "ttft_s", "cost")


@dataclass(frozen=True)
class TableRule:
    """How one table merges. `keys`: its unique keys, the primary one first; none means a row is known only by its
    content. `ignored`: columns left out of the comparison (and of a content key). `source_values`: a column as it
    is read from the source (an SQL expression over the source's columns). `covered`: an SQL condition on a source
    row `s` under which DIR already holds what the row stands for (counted as a duplicate)."""

    table: str
    keys: tuple[tuple[str, ...], ...] = ()
    ignored: tuple[str, ...] = ()
    source_values: tuple[tuple[str, str], ...] = ()
    covered: str | None = None
    size: str | None = None  # SQL: the bytes of the largest model reply in source row `s` (held to the reply cap)
    answer: str | None = None  # a column naming an answer: the row is refused with that answer


def _reply_bytes(text: str, reasoning: str) -> str:
    """SQL: the bytes of a reply's text and thinking (what max_response_bytes bounds, docs/design.md §6.2)."""
    return f"coalesce(length(CAST({text} AS BLOB)), 0) + coalesce(length(CAST({reasoning} AS BLOB)), 0)"


def _field(document: str, name: str) -> str:
    return f"json_extract({document}, '$.{name}')"


# An answer: its text and thinking, and each turn of a conversation (a JSON list of {text, reasoning?}).
_ANSWER_BYTES = (f"max({_reply_bytes('s.text', 's.reasoning')}, coalesce((SELECT "
                 f"max({_reply_bytes(_field('t.value', 'text'), _field('t.value', 'reasoning'))}) FROM "
                 "json_each(CASE WHEN json_valid(s.turns) THEN s.turns ELSE '[]' END) t), 0))")
# One finished turn of an unfinished conversation: a JSON record {text, reasoning?, …}.
_TURN_BYTES = (f"CASE WHEN json_valid(s.record) THEN "
               f"{_reply_bytes(_field('s.record', 'text'), _field('s.record', 'reasoning'))}"
               " ELSE length(CAST(s.record AS BLOB)) END")


RULES = (
    TableRule("questions", (("question_id",),)),
    # config_json and updated_at hold settings that do not change answers (concurrency, timeouts), which may rightly
    # differ per machine; the identity is the configuration id.
    TableRule("contestants", (("name",),), ignored=("config_json", "updated_at")),
    # A run still marked running in a source that no run holds was killed: what the next run on DIR would mark it.
    TableRule("runs", (("run_id",),),
              source_values=(("status", "CASE WHEN status = 'running' THEN 'interrupted' ELSE status END"),)),
    TableRule("answer_epochs", (("base_config_id", "epoch"),)),
    TableRule("adaptive_plans", (("plan_key",),), ignored=("started_run_id", "created_at")),
    TableRule("answers", (("answer_id",), ("config_id", "question_id", "prompt_hash")), ignored=OCCASION,
              size=_ANSWER_BYTES),
    # The finished turns of an unfinished conversation: worthless once DIR holds the whole answer.
    TableRule("answer_turns", (("config_id", "question_id", "prompt_hash", "turn"),), ignored=("created_at", "run_id"),
              covered="EXISTS (SELECT 1 FROM main.answers a WHERE a.config_id = s.config_id "
                      "AND a.question_id = s.question_id AND a.prompt_hash = s.prompt_hash)", size=_TURN_BYTES),
    TableRule("current_answers", (("config_id", "question_id"),), answer="answer_id"),
    TableRule("guidance", (("question_id", "guide_config_id"),), ignored=OCCASION,
              size="max(length(CAST(s.reference AS BLOB)), length(CAST(s.guidance AS BLOB)))"),
    TableRule("judgments", (("game_id",),), ignored=OCCASION, size="length(CAST(s.judge_text AS BLOB))"),
    TableRule("leaderboards", (("run_id", "model"),)),
    TableRule("question_points", (("run_id", "model", "question_id"),)),
    TableRule("regression_checks", (("run_id", "model"),)),
    TableRule("errors", ignored=("id",)),
    TableRule("resources"),
    TableRule("energy_windows", ignored=("id",)),
    # An import is replaced by re-importing its file in the source; the re-imported rows differ from the merged
    # ones only in imported_at, so they are not added a second time.
    TableRule("energy_imports", ignored=("id", "imported_at")),
    # A batch at a provider (batch mode) is one batch wherever it was recorded; how far a folder got in collecting
    # it (its status and counts) is that folder's progress, not a different batch: DIR's row is kept.
    TableRule("batch_jobs", (("batch_id",),),
              ignored=("status", "provider_status", "done", "created_at", "updated_at", "run_id", "collected_run_id")),
    TableRule("batch_items", (("batch_id", "custom_id"),)),
)


@dataclass
class TableMerge:
    """What merging one table did: source rows skipped as duplicates, rows added, the conflicts as (the key's
    (column, value) pairs, the compared columns that differ), and the rows refused as (the key's pairs, the bytes
    of the reply over the cap, or None for a row naming a refused answer)."""

    duplicates: int = 0
    added: int = 0
    conflicts: list[tuple[tuple[tuple[str, Any], ...], tuple[str, ...]]] = field(default_factory=list)
    refused: list[tuple[tuple[tuple[str, Any], ...], int | None]] = field(default_factory=list)


def our_schema() -> dict[str, list[str]]:
    """table → columns of the store this version writes."""
    con = sqlite3.connect(":memory:")
    try:
        create_tables(con)
        return table_columns(con)
    finally:
        con.close()


def source_schema(source: str, db: Path) -> tuple[dict[str, list[str]], str | None]:
    """table → columns of another folder's store, and its schema version (None when it records none), read
    read-only; a file SQLite cannot read as a database is refused, naming `source`."""
    try:
        con = sqlite3.connect(read_only_uri(db), uri=True)
    except sqlite3.Error as exc:
        raise ArenaError(f"{source}: cannot open {db} ({exc})") from None
    try:
        tables = {r[0]: [c[1] for c in con.execute(f"PRAGMA table_info({r[0]})")] for r in con.execute(
            "SELECT name FROM sqlite_master WHERE type='table' AND name NOT LIKE 'sqlite_%'").fetchall()}
        version = None
        if "meta" in tables:
            version = con.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
    except sqlite3.DatabaseError as exc:
        raise ArenaError(f"{source}: {db} is not an arena-eval store (SQLite: {exc})") from None
    finally:
        con.close()
    return tables, None if version is None else version[0]


def source_row(db: Path, table: str, key: tuple[tuple[str, Any], ...], columns: tuple[str, ...]) -> tuple | None:
    """Some columns of the row under `key` in another folder's store (read-only); None when it holds none or
    cannot be read."""
    where = " AND ".join(f"{name} = ?" for name, _ in key)
    other = sqlite3.connect(read_only_uri(db), uri=True)
    try:
        row = other.execute(f"SELECT {', '.join(columns)} FROM {table} WHERE {where}",
                            [value for _, value in key]).fetchone()
    except sqlite3.Error:
        row = None
    finally:
        other.close()
    return None if row is None else tuple(row)


class AttachedSource:
    """Another folder's store, attached read-only to this one as `src` (see MergeQueries.attached)."""

    def __init__(self, con: GuardedConnection):
        self._con = con

    def tables(self) -> set[str]:
        return {r[0] for r in self._con.execute("SELECT name FROM src.sqlite_master WHERE type='table'")}

    def columns(self, table: str) -> set[str]:
        return {r[1] for r in self._con.execute(f"PRAGMA src.table_info({table})")}

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """The source's one transaction: committed when the block ends, rolled back on any exception (Ctrl-C
        too), so a failure or a kill leaves this store as it was before the source."""
        self._con.execute("BEGIN IMMEDIATE")
        try:
            yield
            self._con.execute("COMMIT")
        except BaseException:
            self._con.execute("ROLLBACK")
            raise

    def merge_table(self, rule: TableRule, columns: list[str], present: set[str], cap: int) -> TableMerge:
        """Merge src.<table> into main.<table> by `rule`: `columns` are this version's, `present` the source's;
        rows holding a model reply over `cap` bytes (or naming an answer refused for that) are left out."""
        con, table, out = self._con, rule.table, TableMerge()
        copied = [c for c in columns if c != "id" or rule.keys]  # an autoincrement id is DIR's own
        compared = [c for c in copied if c not in rule.ignored]
        exprs = dict(rule.source_values)
        select = ", ".join(f"{exprs.get(c, c) if c in present else 'NULL'} AS {c}" for c in copied)
        rows = f"(SELECT {select} FROM src.{table})"
        if rule.covered is not None:
            out.duplicates += con.execute(f"SELECT COUNT(*) FROM {rows} s WHERE {rule.covered}").fetchone()[0]
            rows = f"(SELECT * FROM {rows} s WHERE NOT ({rule.covered}))"
        rows = self._without_refused(rule, rows, present, cap, out)
        names = ", ".join(copied)
        if not rule.keys:
            held = f"EXISTS (SELECT 1 FROM main.{table} m WHERE {' AND '.join(f'm.{c} IS s.{c}' for c in compared)})"
            out.duplicates += con.execute(f"SELECT COUNT(*) FROM {rows} s WHERE {held}").fetchone()[0]
            out.added = con.execute(f"INSERT INTO main.{table} ({names}) SELECT {names} FROM {rows} s "
                                    f"WHERE NOT {held}").rowcount
            return out
        flags = ", ".join(f"m.{c} IS NOT s.{c}" for c in compared)
        differs = " OR ".join(f"m.{c} IS NOT s.{c}" for c in compared)
        unmatched = "TRUE"  # not matched by an earlier key
        for key in rule.keys:
            on = " AND ".join(f"m.{c} = s.{c}" for c in key)
            joined = f"FROM {rows} s JOIN main.{table} m ON {on} WHERE {unmatched}"
            # Counted, not fetched: merging a copy of a large store is millions of duplicates.
            out.duplicates += con.execute(f"SELECT COUNT(*) {joined} AND NOT ({differs})").fetchone()[0]
            for row in con.execute(f"SELECT {', '.join(f's.{c}' for c in key)}, {flags} {joined} AND ({differs})"):
                changed = tuple(c for c, flag in zip(compared, row[len(key):]) if flag)
                out.conflicts.append((tuple(zip(key, row[:len(key)])), changed))
            unmatched += f" AND NOT EXISTS (SELECT 1 FROM main.{table} m WHERE {on})"
        out.added = con.execute(f"INSERT INTO main.{table} ({names}) SELECT {names} FROM {rows} s "
                                f"WHERE {unmatched}").rowcount
        return out

    def _without_refused(self, rule: TableRule, rows: str, present: set[str], cap: int, out: TableMerge) -> str:
        """`rows` less those over the reply cap (and those naming a refused answer), each recorded in `out.refused`.
        Sizes are measured by SQLite straight on the source table, once per row: a 50 MB reply never enters Python,
        and the rows left out are then matched by key alone, so their text is not read again."""
        if rule.size is None and rule.answer is None:
            return rows
        con, key = self._con, rule.keys[0]
        found: list[tuple] = []
        if rule.size is not None:
            size = re.sub(r"\bs\.(\w+)", lambda m: m.group(0) if m.group(1) in present else "NULL", rule.size)
            # MATERIALIZED: measured once a row (a flattened subquery would measure, and load, it twice).
            found += con.execute(f"WITH sized AS MATERIALIZED (SELECT {', '.join(f's.{c}' for c in key)}, {size} "
                                 f"AS size FROM src.{rule.table} s) SELECT * FROM sized "
                                 f"WHERE coalesce(size, 0) > {int(cap)}").fetchall()
        if rule.answer is not None:
            found += con.execute(f"SELECT {', '.join(f's.{c}' for c in key)}, NULL FROM {rows} s WHERE "
                                 f"s.{rule.answer} IN (SELECT answer_id FROM temp.merge_refused_answers)").fetchall()
        if not found:
            return rows
        out.refused += [(tuple(zip(key, row[:len(key)])), row[-1]) for row in found]
        con.execute("DROP TABLE IF EXISTS temp.merge_refused_keys")
        con.execute(f"CREATE TEMP TABLE merge_refused_keys ({', '.join(key)})")
        con.executemany(f"INSERT INTO temp.merge_refused_keys VALUES ({', '.join('?' * len(key))})",
                        [row[:len(key)] for row in found])
        if rule.table == "answers":
            con.executemany("INSERT OR IGNORE INTO temp.merge_refused_answers VALUES (?)", [(r[0],) for r in found])
        matches = " AND ".join(f"r.{c} IS s.{c}" for c in key)
        return f"(SELECT * FROM {rows} s WHERE NOT EXISTS (SELECT 1 FROM temp.merge_refused_keys r WHERE {matches}))"

    def kept_row(self, table: str, key: tuple[tuple[str, Any], ...], columns: tuple[str, ...]) -> tuple | None:
        """Some columns of the row this store kept under `key`."""
        where = " AND ".join(f"{name} = ?" for name, _ in key)
        row = self._con.execute(f"SELECT {', '.join(columns)} FROM main.{table} WHERE {where}",
                               [value for _, value in key]).fetchone()
        return None if row is None else tuple(row)


class MergeQueries(Queries):
    def schema_version(self) -> str:
        """The schema version this store was written with (meta.schema_version, as stored)."""
        return self.db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()[0]

    def answer_epoch_keys(self) -> list[EpochKey]:
        """Every refreshed answer set: configuration, epoch, the contestant that opened it."""
        rows = self.db.execute("SELECT base_config_id, epoch, contestant FROM main.answer_epochs")
        return [EpochKey(*r) for r in rows]

    @contextmanager
    def attached(self, db: Path) -> Iterator[AttachedSource]:
        """Another folder's store attached read-only for the block, detached after it whatever happens."""
        self.db.execute("ATTACH DATABASE ? AS src", (read_only_uri(db),))
        try:
            # The answers of this source refused for their size: rows naming them are refused with them.
            self.db.execute("CREATE TEMP TABLE IF NOT EXISTS merge_refused_answers (answer_id TEXT PRIMARY KEY)")
            self.db.execute("DELETE FROM temp.merge_refused_answers")
            yield AttachedSource(self.db)
        finally:
            self.db.execute("DETACH DATABASE src")
