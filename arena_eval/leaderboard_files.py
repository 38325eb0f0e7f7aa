"""The leaderboard's files: leaderboard.csv, .json and .parquet (docs/design.md §5.6)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from .errors import ArenaError


def write_leaderboard(board: pd.DataFrame, folder: Path) -> list[Path]:
    """leaderboard.csv, .json and .parquet in `folder` (each written to a temporary name, then renamed)."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / "leaderboard.csv", folder / "leaderboard.json", folder / "leaderboard.parquet"]
    writers = [
        lambda tmp: board.to_csv(tmp, index=False),
        lambda tmp: tmp.write_text(json.dumps(leaderboard_records(board), indent=2) + "\n", encoding="utf-8"),
        lambda tmp: _parquet_ready(board).to_parquet(tmp, index=False),
    ]
    for path, write in zip(paths, writers):
        tmp = path.with_name(path.name + ".tmp")
        try:
            write(tmp)
            tmp.replace(path)
        except OSError as exc:
            raise ArenaError(
                f"cannot write {path}: {exc.strerror or exc}. Answers and verdicts are stored in {folder / 'arena.db'}; "
                "make that path writable and run `arena-eval score` to write the leaderboard"
            ) from None
    return paths


def _parquet_ready(board: pd.DataFrame) -> pd.DataFrame:
    """Parquet needs one type per column: mappings (tags) become JSON text, mixed objects become text."""
    out = board.copy()
    for column in out.columns:
        if out[column].dtype == object:
            kinds = {type(v) for v in out[column].dropna()}
            if len(kinds) > 1 or kinds & {dict, list, tuple}:
                out[column] = out[column].map(lambda v: None if v is None or (isinstance(v, float) and v != v)
                                              else (v if isinstance(v, str) else json.dumps(v, default=str)))
    return out


def leaderboard_records(board: pd.DataFrame) -> list[dict]:
    """JSON-ready rows: NaN becomes null, numpy scalars become plain numbers."""
    return json.loads(board.to_json(orient="records"))
