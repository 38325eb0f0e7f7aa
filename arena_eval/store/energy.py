"""Energy windows and imported CodeCarbon runs (docs/design.md §3.5, §4.2): the functions over a connection,
and `EnergyQueries`, the store's methods that call them. Every write is its own transaction (BEGIN IMMEDIATE,
refused while another is open). Unknown energy is stored as NULL, never 0. pandas is imported only when a frame
is built or a value checked, so opening the store does not load it.
"""

from __future__ import annotations

import json
import math
import sqlite3
import time
from pathlib import Path
from typing import TYPE_CHECKING

from .base import Queries
from .connection import immediate_transaction
from .schema import create_energy_tables

if TYPE_CHECKING:
    import pandas as pd

    from ..energy.meters import EnergyReading

__all__ = ["ROLES", "EnergyQueries", "create_energy_tables", "load_imports", "load_windows", "save_imports",
           "save_window"]

ROLES = ("contestant", "judge", "idle")
# The figures of an imported run, columns of energy_imports: energy/codecarbon_import.py reads the same ones
# (RUN_COLUMNS there; tests/test_store_package.py checks that they agree).
RUN_COLUMNS = ["energy_wh", "cpu_wh", "gpu_wh", "ram_wh", "duration_s", "co2_g"]

_WINDOW_COLUMNS = ["run_id", "contestant", "config_id", "device", "role", "method", "is_estimated", "tool_version",
                   "devices", "started_at", "ended_at", "duration_s", "energy_j", "gpu_j", "cpu_j", "ram_j",
                   "output_tokens", "requests", "error"]


def _nullable(value: float | None) -> float | None:
    if value is None or isinstance(value, float):  # what meters report: no need to load pandas for it
        return None if value is None or math.isnan(value) else float(value)
    import pandas as pd

    return None if pd.isna(value) else float(value)


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
    with immediate_transaction(db, "energy tables"):
        cursor = db.execute(
            f"INSERT INTO energy_windows ({','.join(_WINDOW_COLUMNS)}) VALUES ({','.join('?' * len(_WINDOW_COLUMNS))})",
            [row[c] for c in _WINDOW_COLUMNS],
        )
    return int(cursor.lastrowid or 0)  # an INSERT always sets it


def load_windows(db: sqlite3.Connection, run_id: str | None = None, role: str | None = None) -> pd.DataFrame:
    """Stored windows in time order; `devices` as a list, `is_estimated` as bool."""
    query, args = "SELECT * FROM energy_windows WHERE 1=1", []  # type: str, list[str]
    if run_id is not None:
        query, args = query + " AND run_id=?", [*args, run_id]
    if role is not None:
        query, args = query + " AND role=?", [*args, role]
    import pandas as pd

    frame = pd.read_sql_query(query + " ORDER BY started_at, id", db, params=args)
    frame["devices"] = [json.loads(d) for d in frame["devices"]]
    frame["is_estimated"] = frame["is_estimated"].astype(bool)
    return frame


def save_imports(db: sqlite3.Connection, runs: pd.DataFrame, source: str | Path,
                 imported_at: float | None = None) -> tuple[int, int]:
    """Store the runs read from one CodeCarbon file, replacing an earlier import of the same file
    (CodeCarbon appends to its CSV, so the latest import holds every run). Returns (stored, replaced)."""
    columns = ["source", "imported_at", "line", "contestant", "tags", *RUN_COLUMNS, "source_run_id", "source_timestamp"]
    source = str(Path(source).resolve())
    imported_at = time.time() if imported_at is None else imported_at
    rows = []
    for record in runs.to_dict("records"):
        row = {"source": source, "imported_at": imported_at, "line": record.get("line"),
               "contestant": record["contestant"], "tags": json.dumps(record.get("tags") or {}, sort_keys=True),
               "source_run_id": record.get("source_run_id"), "source_timestamp": record.get("source_timestamp")}
        row.update({c: _nullable(record.get(c)) for c in RUN_COLUMNS})
        rows.append([row[c] for c in columns])
    with immediate_transaction(db, "energy tables"):
        replaced = db.execute("DELETE FROM energy_imports WHERE source=?", (source,)).rowcount
        db.executemany(
            f"INSERT INTO energy_imports ({','.join(columns)}) VALUES ({','.join('?' * len(columns))})",
            rows,
        )
    return len(rows), max(replaced, 0)


def load_imports(db: sqlite3.Connection) -> pd.DataFrame:
    """Every imported run; `tags` as a dict."""
    import pandas as pd

    frame = pd.read_sql_query("SELECT * FROM energy_imports ORDER BY contestant, source, line", db)
    frame["tags"] = [json.loads(t) for t in frame["tags"]]
    return frame


class EnergyQueries(Queries):
    """The store's energy methods: the functions above on its connection."""

    def save_energy_window(self, reading: EnergyReading, *, role: str, run_id: str | None = None,
                           contestant: str | None = None, config_id: str | None = None, device: str | None = None,
                           output_tokens: int | None = None, requests: int | None = None) -> int:
        """One closed window (see save_window); returns its row id."""
        return save_window(self.db, reading, role=role, run_id=run_id, contestant=contestant, config_id=config_id,
                           device=device, output_tokens=output_tokens, requests=requests)

    def energy_windows(self, run_id: str | None = None, role: str | None = None) -> pd.DataFrame:
        """Stored windows in time order, of one run and one role when given (see load_windows)."""
        return load_windows(self.db, run_id=run_id, role=role)

    def save_energy_imports(self, runs: pd.DataFrame, source: str | Path,
                            imported_at: float | None = None) -> tuple[int, int]:
        """The runs read from one CodeCarbon file, replacing its earlier import: (stored, replaced)."""
        return save_imports(self.db, runs, source, imported_at)

    def energy_imports(self) -> pd.DataFrame:
        """Every imported CodeCarbon run; `tags` as a dict."""
        return load_imports(self.db)
