"""What every group of queries stands on: the store's guarded connection, and the keyed look-ups that several
tables share (some columns of the rows whose key is in a list; token and cost figures over such rows)."""

from __future__ import annotations

from pathlib import Path

from .connection import GuardedConnection
from .rows import UsageStats

# Keys per statement in an IN (...) list: well under SQLite's limit on bound parameters.
_CHUNK = 500


class Queries:
    """Base of the query groups `Store` is made of; each group reads and writes only its own tables."""

    path: Path
    db: GuardedConnection

    def rows_by_key(self, table: str, key: str, ids: list[str], columns: tuple[str, ...]) -> list[tuple]:
        """The given columns of the rows of `table` whose `key` is one of `ids` (order not guaranteed)."""
        out: list[tuple] = []
        for start in range(0, len(ids), _CHUNK):
            chunk = ids[start : start + _CHUNK]
            out += [tuple(r) for r in self.db.execute(
                f"SELECT {','.join(columns)} FROM {table} WHERE {key} IN ({','.join('?' * len(chunk))})", chunk)]
        return out

    def _stats(self, table: str, key: str, ids: list[str]) -> UsageStats:
        n = n_in = n_out = n_cost = 0
        sum_in = sum_out = cost = 0.0
        for start in range(0, len(ids), _CHUNK):
            chunk = ids[start : start + _CHUNK]
            row = self.db.execute(
                f"SELECT COUNT(*), COUNT(input_tokens), SUM(input_tokens), COUNT(output_tokens), SUM(output_tokens),"
                f" COUNT(cost), SUM(cost) FROM {table} WHERE {key} IN ({','.join('?' * len(chunk))})",
                chunk,
            ).fetchone()
            n += row[0]
            n_in, sum_in = n_in + row[1], sum_in + (row[2] or 0)
            n_out, sum_out = n_out + row[3], sum_out + (row[4] or 0)
            n_cost, cost = n_cost + row[5], cost + (row[6] or 0)
        return UsageStats(avg_input_tokens=sum_in / n_in if n_in else None,
                          avg_output_tokens=sum_out / n_out if n_out else None,
                          cost=cost if n and n_cost == n else None)
