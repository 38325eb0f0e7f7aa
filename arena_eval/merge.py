"""Merge the stores of several output folders into one (`arena-eval merge SRC… --into DIR`, docs/scale.md).

Answers and judgments are keyed by content hashes (docs/design.md §2.2), so the same work done in two folders has
the same key: a row whose key DIR already holds with the same content is a **duplicate** and skipped; with other
content it is a **conflict**, reported, and DIR's row (which may have come from an earlier source) is kept. Rows
with no key of their own (errors, energy windows, imported energy, resources) are told apart by their whole
content, so merging a source twice adds nothing the second time. Each table's rule, and why, is `RULES` (in
store/merge.py, with the SQL that applies it) and docs/design.md §4.8.

DIR's run lock is held throughout, and each source is merged in one transaction: a failure or a kill leaves DIR
as it was before that source. Sources are only read (attached read-only) and must not be in use by a run.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .errors import ArenaError, StoreError
from .lines import shown
from .providers.base import REPLY_BASE_BYTES, REPLY_BYTES_PER_TOKEN
from .store import SCHEMA_VERSION, RunLock, Store, lock_holder
from .store.merge import OCCASION, RULES, AttachedSource, TableRule, our_schema, source_row, source_schema

__all__ = ["MERGE_REPLY_BYTES", "OCCASION", "RULES", "Conflict", "MergeResult", "Refused", "TableCount", "TableRule",
           "merge_stores", "store_path"]

# The reply cap of a merge that is not told one: that of an endpoint with max_tokens 32,768 (docs/design.md §6.2).
MERGE_REPLY_BYTES = REPLY_BASE_BYTES + REPLY_BYTES_PER_TOKEN * 32_768


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
    schema = our_schema()
    for source, db in zip(sources, dbs):
        if db.resolve() == target.resolve():
            raise ArenaError(f"{source} is the store merged into ({into}); merge it into another folder")
        _check_source(source, db, schema)
        _check_not_in_use(source, db)
    result = MergeResult(into, reply_cap=int(max_response_bytes))
    with RunLock(into), Store(target, verify=True) as store:
        version = store.schema_version()
        if int(version) > SCHEMA_VERSION:
            raise ArenaError(f"{target} was written by a newer arena-eval (schema {version}, this one reads "
                             f"{SCHEMA_VERSION}); merge with that version")
        merged: list[tuple[str, Path]] = []
        for source, db in zip(sources, dbs):
            _check_not_in_use(source, db)  # again: a run may have started on it since
            _merge_one(store, str(source), db, schema, merged, result)
            merged.append((str(source), db))
    return result


def _check_source(source: Path, db: Path, schema: dict[str, list[str]]) -> None:
    """A source must be an arena-eval store of this schema or an older one (fewer columns are fine)."""
    tables, version = source_schema(str(source), db)
    if version is None:
        raise ArenaError(f"{source}: {db} is not an arena-eval store (no schema version in it)")
    try:
        newer = int(version) > SCHEMA_VERSION
    except ValueError:
        raise ArenaError(f"{source}: {db} is not an arena-eval store (schema version {version!r})") from None
    unknown = [t for t in tables if t not in schema] + [f"{t}.{c}" for t, cols in tables.items() if t in schema
                                                        for c in cols if c not in schema[t]]
    if newer or unknown:
        what = f"schema {version}" if newer else f"{', '.join(unknown[:5])} unknown here"
        raise ArenaError(f"{source}: {db} was written by a newer arena-eval ({what}; this one reads schema "
                         f"{SCHEMA_VERSION}); merge with that version, or upgrade arena-eval")


def _check_not_in_use(source: Path, db: Path) -> None:
    """A source some run is writing would be merged half done: refuse it while its folder's run lock is held."""
    holder = lock_holder(db.parent)
    if holder is not None:
        raise ArenaError(f"{source}: a run ({holder}) is using it; merge it once that run has finished")


def _merge_one(store: Store, label: str, db: Path, schema: dict[str, list[str]], merged: list[tuple[str, Path]],
               result: MergeResult) -> None:
    with store.attached(db) as source:
        source_tables = source.tables()
        epochs_before = {(e.base_config_id, e.epoch) for e in store.answer_epoch_keys()}
        counts: list[TableCount] = []
        conflicts: list[Conflict] = []
        refused: list[Refused] = []
        try:
            with source.transaction():
                for rule in RULES:
                    if rule.table not in source_tables:  # an older store, without this table: nothing to bring
                        continue
                    count = TableCount(label, rule.table)
                    conflicts += _merge_table(source, rule, schema[rule.table], source.columns(rule.table), count,
                                              result.reply_cap, refused)
                    counts.append(count)
        except StoreError as exc:
            raise StoreError(f"merging {label} stopped, and nothing of it was merged (each source is one "
                             f"transaction; sources merged before it are kept): {exc}") from None
        result.counts += counts
        result.refused += refused
        result.conflicts += [_with_origin(c, source, store.path, merged) for c in conflicts]
        result.notes += _epoch_notes(store, label, epochs_before)


def _merge_table(source: AttachedSource, rule: TableRule, columns: list[str], present: set[str],
                 count: TableCount, cap: int, refused: list[Refused]) -> list[Conflict]:
    """Merge the source's table into DIR's, counting into `count` and adding the rows refused for their size to
    `refused`; returns the conflicts (origin not yet known)."""
    merged = source.merge_table(rule, columns, present, cap)
    count.duplicates += merged.duplicates
    count.added = merged.added
    count.refused += len(merged.refused)
    refused += [Refused(rule.table, key, count.source, size) for key, size in merged.refused]
    if rule.keys:
        count.conflicts = len(merged.conflicts)
    return [Conflict(rule.table, key, count.source, "", changed) for key, changed in merged.conflicts]


def _with_origin(conflict: Conflict, source: AttachedSource, target: Path,
                 merged: list[tuple[str, Path]]) -> Conflict:
    """The conflict naming where DIR's row came from: the first earlier source of this merge that holds the same
    row, else DIR itself. Looked up only for conflicts, which are rare, so nothing is tracked per row."""
    kept = source.kept_row(conflict.table, conflict.key, conflict.columns)
    for label, db in merged:
        row = source_row(db, conflict.table, conflict.key, conflict.columns)
        if row is not None and kept is not None and row == kept:
            return Conflict(conflict.table, conflict.key, conflict.source, label, conflict.columns)
    return Conflict(conflict.table, conflict.key, conflict.source, str(target.parent), conflict.columns)


def _epoch_notes(store: Store, label: str, before: set[tuple[str, str]]) -> list[str]:
    """A source that brought a refreshed answer set for a configuration DIR already had one of: only the newest
    set is used, so shards that each refreshed their answers no longer add up."""
    notes = []
    had = {base for base, _ in before}
    for base, epoch, contestant in store.answer_epoch_keys():
        if (base, epoch) not in before and base in had:
            notes.append(f"{label} brought another refreshed answer set (epoch {epoch}) of {contestant}'s "
                         "configuration: scoring uses only the newest set, so answers in the older ones no longer "
                         "count. Shards of one evaluation should not refresh answers (docs/scale.md)")
    return notes
