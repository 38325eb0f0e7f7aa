"""`Store`: one output folder's database, opened, its tables created or migrated, and its queries, which come in
groups by table family (runs, answers, judgments, batches, energy, the plan's counts, merging)."""

from __future__ import annotations

import errno
import sqlite3
from pathlib import Path

from ..errors import ArenaError, StoreError
from .answers import AnswerQueries
from .batches import BatchQueries
from .connection import connect, store_error
from .energy import EnergyQueries
from .judgments import JudgmentQueries
from .merge import MergeQueries
from .plan import PlanQueries
from .runs import RunQueries
from .schema import create_tables


class Store(RunQueries, AnswerQueries, JudgmentQueries, BatchQueries, EnergyQueries, PlanQueries, MergeQueries):
    """SQLite (WAL) store of one output folder (docs/design.md §4). Every write is its own transaction, multi-row
    writes one each, so a killed run loses at most what was in flight; only the run holding the folder's
    `RunLock` writes. `db`, the guarded connection, is the package's own: code outside `arena_eval/store/` calls
    methods (tests may reach it to set up a damaged or an older database)."""

    def __init__(self, path: str | Path, *, verify: bool = False):
        """Open (or create) the store at `path`. With `verify` (the commands that write: run, score, import,
        merge), an existing database is checked whole (`PRAGMA quick_check`, about a second per GB) before anything
        is written to it: a damaged file is a StoreError and stays byte for byte as it was, so that `.recover` can
        still get everything out of it."""
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.db = connect(self.path, verify=verify)
            create_tables(self.db)
        except StoreError as exc:
            raise StoreError(f"cannot open the result database: {exc}") from None
        except (OSError, sqlite3.Error) as exc:
            if getattr(exc, "errno", None) == errno.ENOSPC:
                raise store_error(self, exc) from None
            raise ArenaError(
                f"cannot open the result database {self.path}: {exc}. Check that the output folder is writable."
            ) from None

    def close(self) -> None:
        try:
            self.db.close()
        except sqlite3.Error:  # closing checkpoints the WAL; a full disk only leaves it for the next open
            pass

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
