"""Energy tables in the output folder's SQLite database: measured windows and imported CodeCarbon runs.

Functions take a `sqlite3.Connection` (e.g. `Store.db`). Every write is its own transaction. Unknown energy is
stored as NULL, never 0.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pandas as pd

from ..errors import ArenaError
from .codecarbon_import import RUN_COLUMNS
from .meters import EnergyReading

ROLES = ("contestant", "judge", "idle")

ENERGY_SCHEMA = """
CREATE TABLE IF NOT EXISTS energy_windows (
    id INTEGER PRIMARY KEY AUTOINCREMENT, run_id TEXT, contestant TEXT, config_id TEXT, device TEXT,
    role TEXT NOT NULL CHECK (role IN ('contestant', 'judge', 'idle')),
    method TEXT NOT NULL, is_estimated INTEGER NOT NULL, tool_version TEXT, devices TEXT NOT NULL,
    started_at REAL, ended_at REAL, duration_s REAL, energy_j REAL, gpu_j REAL, cpu_j REAL, ram_j REAL,
    output_tokens INTEGER, requests INTEGER, error TEXT
);
CREATE INDEX IF NOT EXISTS energy_windows_by_run ON energy_windows (run_id, contestant);
CREATE TABLE IF NOT EXISTS energy_imports (
    id INTEGER PRIMARY KEY AUTOINCREMENT, source TEXT NOT NULL, imported_at REAL NOT NULL, line INTEGER,
    contestant TEXT NOT NULL, tags TEXT NOT NULL, energy_wh REAL, cpu_wh REAL, gpu_wh REAL, ram_wh REAL,
    duration_s REAL, co2_g REAL, source_run_id TEXT, source_timestamp TEXT
);
CREATE INDEX IF NOT EXISTS energy_imports_by_source ON energy_imports (source);
"""

_WINDOW_COLUMNS = ["run_id", "contestant", "config_id", "device", "role", "method", "is_estimated", "tool_version", "devices",
                   "started_at", "ended_at", "duration_s", "energy_j", "gpu_j", "cpu_j", "ram_j", "output_tokens",
                   "requests", "error"]
_IMPORT_COLUMNS = ["source", "imported_at", "line", "contestant", "tags", *RUN_COLUMNS, "source_run_id",
                   "source_timestamp"]


def create_energy_tables(db: sqlite3.Connection) -> None:
    db.executescript(ENERGY_SCHEMA)


@contextmanager
def _transaction(db: sqlite3.Connection) -> Iterator[None]:
    if db.in_transaction:
        raise ArenaError("energy tables: a transaction is already open on this connection; commit it first")
    db.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")


def _nullable(value: float | None) -> float | None:
    return None if value is None or pd.isna(value) else float(value)


def save_window(db: sqlite3.Connection, reading: EnergyReading, *, role: str, run_id: str | None = None,
                contestant: str | None = None, config_id: str | None = None, device: str | None = None,
                output_tokens: int | None = None, requests: int | None = None) -> int:
    """Store one closed window (or one summed estimate); returns its row id. `device` is the contestant's
    configured device (the lock it ran under), kept to check that windows on one device never overlap."""
    if role not in ROLES:
        raise ValueError(f"role must be one of {', '.join(ROLES)}, got {role!r}")
    row = {
        "run_id": run_id, "contestant": contestant, "config_id": config_id, "device": device, "role": role,
        "method": reading.method, "is_estimated": int(reading.is_estimated), "tool_version": reading.tool_version,
        "devices": json.dumps(reading.devices), "started_at": reading.started_at, "ended_at": reading.ended_at,
        "duration_s": reading.duration_s, "energy_j": _nullable(reading.energy_j), "gpu_j": _nullable(reading.gpu_j),
        "cpu_j": _nullable(reading.cpu_j), "ram_j": _nullable(reading.ram_j), "output_tokens": output_tokens,
        "requests": requests, "error": reading.error,
    }
    with _transaction(db):
        cursor = db.execute(
            f"INSERT INTO energy_windows ({','.join(_WINDOW_COLUMNS)}) VALUES ({','.join('?' * len(_WINDOW_COLUMNS))})",
            [row[c] for c in _WINDOW_COLUMNS],
        )
    return int(cursor.lastrowid)


def load_windows(db: sqlite3.Connection, run_id: str | None = None, role: str | None = None) -> pd.DataFrame:
    """Stored windows in time order; `devices` as a list, `is_estimated` as bool."""
    query, args = "SELECT * FROM energy_windows WHERE 1=1", []
    if run_id is not None:
        query, args = query + " AND run_id=?", [*args, run_id]
    if role is not None:
        query, args = query + " AND role=?", [*args, role]
    frame = pd.read_sql_query(query + " ORDER BY started_at, id", db, params=args)
    frame["devices"] = [json.loads(d) for d in frame["devices"]]
    frame["is_estimated"] = frame["is_estimated"].astype(bool)
    return frame


def save_imports(db: sqlite3.Connection, runs: pd.DataFrame, source: str | Path,
                 imported_at: float | None = None) -> tuple[int, int]:
    """Store the runs read from one CodeCarbon file, replacing an earlier import of the same file
    (CodeCarbon appends to its CSV, so the latest import holds every run). Returns (stored, replaced)."""
    source = str(Path(source).resolve())
    imported_at = time.time() if imported_at is None else imported_at
    rows = []
    for record in runs.to_dict("records"):
        row = {"source": source, "imported_at": imported_at, "line": record.get("line"),
               "contestant": record["contestant"], "tags": json.dumps(record.get("tags") or {}, sort_keys=True),
               "source_run_id": record.get("source_run_id"), "source_timestamp": record.get("source_timestamp")}
        row.update({c: _nullable(record.get(c)) for c in RUN_COLUMNS})
        rows.append([row[c] for c in _IMPORT_COLUMNS])
    with _transaction(db):
        replaced = db.execute("DELETE FROM energy_imports WHERE source=?", (source,)).rowcount
        db.executemany(
            f"INSERT INTO energy_imports ({','.join(_IMPORT_COLUMNS)}) VALUES ({','.join('?' * len(_IMPORT_COLUMNS))})",
            rows,
        )
    return len(rows), max(replaced, 0)


def load_imports(db: sqlite3.Connection) -> pd.DataFrame:
    """Every imported run; `tags` as a dict."""
    frame = pd.read_sql_query("SELECT * FROM energy_imports ORDER BY contestant, source, line", db)
    frame["tags"] = [json.loads(t) for t in frame["tags"]]
    return frame
