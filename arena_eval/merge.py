"""Merge the stores of several output folders into one (`arena-eval merge SRC… --into DIR`, docs/scale.md).

Answers and judgments are keyed by content hashes (docs/design.md §2.2), so the same work done in two folders has
the same key: a row whose key DIR already holds with the same content is a **duplicate** and skipped; with other
content it is a **conflict**, reported, and DIR's row (which may have come from an earlier source) is kept. Rows
with no key of their own (errors, energy windows, imported energy, resources) are told apart by their whole
content, so merging a source twice adds nothing the second time. Each table's rule, and why, is `RULES` below and
docs/design.md §4.8.

DIR's run lock is held throughout, and each source is merged in one transaction: a failure or a kill leaves DIR
as it was before that source. Sources are only read (attached read-only) and must not be in use by a run.
"""

from __future__ import annotations

import fcntl
import re
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

from .errors import ArenaError, StoreError
from .lines import shown
from .providers.base import REPLY_BASE_BYTES, REPLY_BYTES_PER_TOKEN
from .store import SCHEMA_VERSION, RunLock, Store

# The reply cap of a merge that is not told one: that of an endpoint with max_tokens 32,768 (docs/design.md §6.2).
MERGE_REPLY_BYTES = REPLY_BASE_BYTES + REPLY_BYTES_PER_TOKEN * 32_768

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
_TURN_BYTES = (f"CASE WHEN json_valid(s.record) THEN {_reply_bytes(_field('s.record', 'text'), _field('s.record', 'reasoning'))}"
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
class TableCount:
    source: str
    table: str
    added: int = 0
    duplicates: int = 0
    conflicts: int = 0
    refused: int = 0  # over the reply cap (or naming an answer that was), not merged


@dataclass(frozen=True)
class Conflict:
    """A source row whose key DIR holds with other content: `kept_from` is where DIR's row came from (DIR itself,
    or an earlier source of the same merge), `columns` the columns that differ."""

    table: str
    key: tuple[tuple[str, object], ...]
    source: str
    kept_from: str
    columns: tuple[str, ...]

    def describe(self) -> str:
        key = ", ".join(f"{name}={value}" for name, value in self.key)
        return (f"{self.table} [{key}]: {self.source} differs in {', '.join(self.columns)} from the row kept "
                f"(from {self.kept_from})")


@dataclass(frozen=True)
class Refused:
    """A source row not merged because a model reply in it is over the reply cap (`size` its bytes), or because it
    names an answer that was refused (`size` None)."""

    table: str
    key: tuple[tuple[str, object], ...]
    source: str
    size: int | None

    def describe(self, cap: int) -> str:
        key = ", ".join(f"{name}={shown(value, 100) if not isinstance(value, str) else value[:100]}"
                        for name, value in self.key)
        why = (f"a reply of {self.size:,} bytes, over the cap of {cap:,} (max_response_bytes)" if self.size is not None
               else "it names an answer refused for its size")
        return f"{self.table} [{key}] from {self.source}: {why}; not merged"


@dataclass
class MergeResult:
    into: Path
    counts: list[TableCount] = field(default_factory=list)
    conflicts: list[Conflict] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    refused: list[Refused] = field(default_factory=list)
    reply_cap: int = 0

    @property
    def exit_code(self) -> int:
        """0: every row added or a duplicate; 2: some rows conflicted (DIR's were kept) or were refused for their
        size, as a run that finished with items still to look at (docs/design.md §5.4)."""
        return 2 if self.conflicts or self.refused else 0


def store_path(path: Path) -> Path:
    """The arena.db a SRC argument names: an output folder holding one, or the file itself."""
    if not path.exists():
        raise ArenaError(f"{path}: no such file or folder")
    db = path / "arena.db" if path.is_dir() else path
    if not db.is_file():
        raise ArenaError(f"{path}: not an arena-eval output folder (it holds no arena.db)")
    return db


def merge_stores(sources: Sequence[Path], into: Path, max_response_bytes: int = MERGE_REPLY_BYTES) -> MergeResult:
    """Merge each source's store into the output folder `into` (created if new), one transaction per source.

    Every model reply brought in (an answer's text and thinking, each turn of a conversation, a verdict's text,
    guidance) is held to `max_response_bytes`, as a reply is when it arrives from a provider: a row over it is
    refused (reported, not merged), and so is a chosen current answer that names a refused answer."""
    if max_response_bytes < 1:
        raise ArenaError(f"max_response_bytes must be at least 1, not {max_response_bytes}")
    if into.exists() and not into.is_dir():
        raise ArenaError(f"--into {into}: not a folder; give the output folder to merge into")
    target = into / "arena.db"
    dbs = [store_path(source) for source in sources]
    schema = _our_schema()
    for source, db in zip(sources, dbs):
        if db.resolve() == target.resolve():
            raise ArenaError(f"{source} is the store merged into ({into}); merge it into another folder")
        _check_source(source, db, schema)
        _check_not_in_use(source, db)
    result = MergeResult(into, reply_cap=int(max_response_bytes))
    with RunLock(into), Store(target, verify=True) as store:
        version = store.db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()[0]
        if int(version) > SCHEMA_VERSION:
            raise ArenaError(f"{target} was written by a newer arena-eval (schema {version}, this one reads "
                             f"{SCHEMA_VERSION}); merge with that version")
        merged: list[tuple[str, Path]] = []
        for source, db in zip(sources, dbs):
            _check_not_in_use(source, db)  # again: a run may have started on it since
            _merge_one(store, str(source), db, schema, merged, result)
            merged.append((str(source), db))
    return result


def _our_schema() -> dict[str, list[str]]:
    """table → columns of the store this version writes."""
    with Store(":memory:") as store:
        tables = [r[0] for r in store.db.execute(
            "SELECT name FROM sqlite_master WHERE type='table' AND name NOT LIKE 'sqlite_%'")]
        return {t: [r[1] for r in store.db.execute(f"PRAGMA table_info({t})")] for t in tables}


def _check_source(source: Path, db: Path, schema: dict[str, list[str]]) -> None:
    """A source must be an arena-eval store of this schema or an older one (fewer columns are fine)."""
    try:
        con = sqlite3.connect(f"file:{quote(str(db.resolve()))}?mode=ro", uri=True)
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
    if version is None:
        raise ArenaError(f"{source}: {db} is not an arena-eval store (no schema version in it)")
    try:
        newer = int(version[0]) > SCHEMA_VERSION
    except ValueError:
        raise ArenaError(f"{source}: {db} is not an arena-eval store (schema version {version[0]!r})") from None
    unknown = [t for t in tables if t not in schema] + [f"{t}.{c}" for t, cols in tables.items() if t in schema
                                                        for c in cols if c not in schema[t]]
    if newer or unknown:
        what = f"schema {version[0]}" if newer else f"{', '.join(unknown[:5])} unknown here"
        raise ArenaError(f"{source}: {db} was written by a newer arena-eval ({what}; this one reads schema "
                         f"{SCHEMA_VERSION}); merge with that version, or upgrade arena-eval")


def _check_not_in_use(source: Path, db: Path) -> None:
    """A source some run is writing would be merged half done: refuse it while its folder's run lock is held."""
    try:
        handle = open(db.parent / ".arena.lock")
    except OSError:
        return  # never locked, or not readable: nothing can be learnt, and reading the store is safe anyway
    with handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = handle.read().strip() or "unknown"
            raise ArenaError(f"{source}: a run ({holder}) is using it; merge it once that run has finished") from None
        fcntl.flock(handle, fcntl.LOCK_UN)


def _merge_one(store: Store, label: str, db: Path, schema: dict[str, list[str]], merged: list[tuple[str, Path]],
               result: MergeResult) -> None:
    con = store.db
    con.execute("ATTACH DATABASE ? AS src", (f"file:{quote(str(db.resolve()))}?mode=ro",))
    try:
        source_tables = {r[0] for r in con.execute("SELECT name FROM src.sqlite_master WHERE type='table'")}
        epochs_before = set(map(tuple, con.execute("SELECT base_config_id, epoch FROM main.answer_epochs")))
        counts, conflicts, refused = [], [], []
        con.execute("CREATE TEMP TABLE IF NOT EXISTS merge_refused_answers (answer_id TEXT PRIMARY KEY)")
        con.execute("DELETE FROM temp.merge_refused_answers")
        try:
            con.execute("BEGIN IMMEDIATE")
            try:
                for rule in RULES:
                    if rule.table not in source_tables:  # an older store, without this table: nothing to bring
                        continue
                    present = {r[1] for r in con.execute(f"PRAGMA src.table_info({rule.table})")}
                    count = TableCount(label, rule.table)
                    conflicts += _merge_table(con, rule, schema[rule.table], present, count, result.reply_cap,
                                              refused)
                    counts.append(count)
                con.execute("COMMIT")
            except BaseException:
                con.execute("ROLLBACK")
                raise
        except StoreError as exc:
            raise StoreError(f"merging {label} stopped, and nothing of it was merged (each source is one "
                             f"transaction; sources merged before it are kept): {exc}") from None
        result.counts += counts
        result.refused += refused
        result.conflicts += [_with_origin(c, con, store.path, merged) for c in conflicts]
        result.notes += _epoch_notes(con, label, epochs_before)
    finally:
        con.execute("DETACH DATABASE src")


def _merge_table(con: sqlite3.Connection, rule: TableRule, columns: list[str], present: set[str],
                 count: TableCount, cap: int, refused: list[Refused]) -> list[Conflict]:
    """Merge src.<table> into main.<table>, counting into `count` and adding the rows refused for their size to
    `refused`; returns the conflicts (origin not yet known)."""
    table = rule.table
    copied = [c for c in columns if c != "id" or rule.keys]  # an autoincrement id is DIR's own
    compared = [c for c in copied if c not in rule.ignored]
    exprs = dict(rule.source_values)
    select = ", ".join(f"{exprs.get(c, c) if c in present else 'NULL'} AS {c}" for c in copied)
    rows = f"(SELECT {select} FROM src.{table})"
    if rule.covered is not None:
        count.duplicates += con.execute(f"SELECT COUNT(*) FROM {rows} s WHERE {rule.covered}").fetchone()[0]
        rows = f"(SELECT * FROM {rows} s WHERE NOT ({rule.covered}))"
    rows = _without_refused(con, rule, rows, present, count, cap, refused)
    names = ", ".join(copied)
    if not rule.keys:
        held = f"EXISTS (SELECT 1 FROM main.{table} m WHERE {' AND '.join(f'm.{c} IS s.{c}' for c in compared)})"
        count.duplicates += con.execute(f"SELECT COUNT(*) FROM {rows} s WHERE {held}").fetchone()[0]
        count.added = con.execute(f"INSERT INTO main.{table} ({names}) SELECT {names} FROM {rows} s "
                                  f"WHERE NOT {held}").rowcount
        return []
    conflicts: list[Conflict] = []
    flags = ", ".join(f"m.{c} IS NOT s.{c}" for c in compared)
    differs = " OR ".join(f"m.{c} IS NOT s.{c}" for c in compared)
    unmatched = "TRUE"  # not matched by an earlier key
    for key in rule.keys:
        on = " AND ".join(f"m.{c} = s.{c}" for c in key)
        joined = f"FROM {rows} s JOIN main.{table} m ON {on} WHERE {unmatched}"
        # Counted, not fetched: merging a copy of a large store is millions of duplicates.
        count.duplicates += con.execute(f"SELECT COUNT(*) {joined} AND NOT ({differs})").fetchone()[0]
        for row in con.execute(f"SELECT {', '.join(f's.{c}' for c in key)}, {flags} {joined} AND ({differs})"):
            changed = tuple(c for c, flag in zip(compared, row[len(key):]) if flag)
            conflicts.append(Conflict(table, tuple(zip(key, row[:len(key)])), count.source, "", changed))
        unmatched += f" AND NOT EXISTS (SELECT 1 FROM main.{table} m WHERE {on})"
    count.conflicts = len(conflicts)
    count.added = con.execute(f"INSERT INTO main.{table} ({names}) SELECT {names} FROM {rows} s "
                              f"WHERE {unmatched}").rowcount
    return conflicts


def _without_refused(con: sqlite3.Connection, rule: TableRule, rows: str, present: set[str], count: TableCount,
                     cap: int, refused: list[Refused]) -> str:
    """`rows` less those over the reply cap (and those naming a refused answer), each recorded in `refused`.
    Sizes are measured by SQLite straight on the source table, once per row: a 50 MB reply never enters Python,
    and the rows left out are then matched by key alone, so their text is not read again."""
    if rule.size is None and rule.answer is None:
        return rows
    key = rule.keys[0]
    found: list[tuple] = []
    if rule.size is not None:
        size = re.sub(r"\bs\.(\w+)", lambda m: m.group(0) if m.group(1) in present else "NULL", rule.size)
        # MATERIALIZED: measured once a row (a flattened subquery would measure, and load, it twice).
        found += con.execute(f"WITH sized AS MATERIALIZED (SELECT {', '.join(f's.{c}' for c in key)}, {size} AS size "
                             f"FROM src.{rule.table} s) SELECT * FROM sized WHERE coalesce(size, 0) > {int(cap)}"
                             ).fetchall()
    if rule.answer is not None:
        found += con.execute(f"SELECT {', '.join(f's.{c}' for c in key)}, NULL FROM {rows} s WHERE s.{rule.answer} "
                             "IN (SELECT answer_id FROM temp.merge_refused_answers)").fetchall()
    if not found:
        return rows
    for row in found:
        refused.append(Refused(rule.table, tuple(zip(key, row[:len(key)])), count.source, row[-1]))
    count.refused += len(found)
    con.execute("DROP TABLE IF EXISTS temp.merge_refused_keys")
    con.execute(f"CREATE TEMP TABLE merge_refused_keys ({', '.join(key)})")
    con.executemany(f"INSERT INTO temp.merge_refused_keys VALUES ({', '.join('?' * len(key))})",
                    [row[:len(key)] for row in found])
    if rule.table == "answers":
        con.executemany("INSERT OR IGNORE INTO temp.merge_refused_answers VALUES (?)", [(r[0],) for r in found])
    matches = " AND ".join(f"r.{c} IS s.{c}" for c in key)
    return f"(SELECT * FROM {rows} s WHERE NOT EXISTS (SELECT 1 FROM temp.merge_refused_keys r WHERE {matches}))"


def _with_origin(conflict: Conflict, con: sqlite3.Connection, target: Path,
                 merged: list[tuple[str, Path]]) -> Conflict:
    """The conflict naming where DIR's row came from: the first earlier source of this merge that holds the same
    row, else DIR itself. Looked up only for conflicts, which are rare, so nothing is tracked per row."""
    where = " AND ".join(f"{name} = ?" for name, _ in conflict.key)
    values = [value for _, value in conflict.key]
    columns = ", ".join(conflict.columns)
    kept = con.execute(f"SELECT {columns} FROM main.{conflict.table} WHERE {where}", values).fetchone()
    for label, db in merged:
        other = sqlite3.connect(f"file:{quote(str(db.resolve()))}?mode=ro", uri=True)
        try:
            row = other.execute(f"SELECT {columns} FROM {conflict.table} WHERE {where}", values).fetchone()
        except sqlite3.Error:
            row = None
        finally:
            other.close()
        if row is not None and kept is not None and tuple(row) == tuple(kept):
            return Conflict(conflict.table, conflict.key, conflict.source, label, conflict.columns)
    return Conflict(conflict.table, conflict.key, conflict.source, str(target.parent), conflict.columns)


def _epoch_notes(con: sqlite3.Connection, label: str, before: set[tuple]) -> list[str]:
    """A source that brought a refreshed answer set for a configuration DIR already had one of: only the newest
    set is used, so shards that each refreshed their answers no longer add up."""
    notes = []
    rows = con.execute("SELECT base_config_id, epoch, contestant FROM main.answer_epochs").fetchall()
    had = {base for base, _ in before}
    for base, epoch, contestant in rows:
        if (base, epoch) not in before and base in had:
            notes.append(f"{label} brought another refreshed answer set (epoch {epoch}) of {contestant}'s "
                         "configuration: scoring uses only the newest set, so answers in the older ones no longer "
                         "count. Shards of one evaluation should not refresh answers (docs/scale.md)")
    return notes
