"""The store: one SQLite database per output folder, and the only home of SQL (docs/design.md §4).

- `schema`: the tables and their migrations (§4.2, §4.6);
- `connection`: the guarded connection (failures as messages, §4.5), transactions, `RunLock` (one writer, §4.3);
- `database`: `Store`, made of one group of queries per table family: `runs` (runs, questions, contestants,
  adaptive plans, leaderboards), `answers`, `judgments` (verdicts, errors, guidance), `batches`, `energy`
  (windows and imports), `plan` (what the run plan counts) and `merge` (other folders' stores, §4.8);
- `rows`: the typed rows the queries return.

No connection leaves the package: everything else calls `Store` methods.
"""

from .connection import RunLock, lock_holder, store_error
from .database import Store
from .rows import (
    AdaptiveStart,
    AnswerCandidate,
    BatchItem,
    BatchJob,
    CurrentOverride,
    EnergyTotals,
    EpochKey,
    EpochRow,
    ErrorRow,
    Resources,
    RunRow,
    StoredAnswer,
    UsageStats,
)
from .schema import SCHEMA_VERSION

__all__ = [
    "SCHEMA_VERSION",
    "AdaptiveStart",
    "AnswerCandidate",
    "BatchItem",
    "BatchJob",
    "CurrentOverride",
    "EnergyTotals",
    "EpochKey",
    "EpochRow",
    "ErrorRow",
    "Resources",
    "RunLock",
    "RunRow",
    "Store",
    "StoredAnswer",
    "UsageStats",
    "lock_holder",
    "store_error",
]
