"""The one table renderer of the command line, and the cell formats of its tables.

Every terminal table (the leaderboard, history, plan, judges, agreement, quality, batches, merge, energy) is drawn
by `render_table` at the width `terminal_width` gives: the terminal's, else $COLUMNS, else 200 characters. JSON
and CSV carry every column unformatted; `write_frame` writes them.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ..console import err
from ..records import COLUMNS, terminal_columns
from .common import Format

if TYPE_CHECKING:
    import pandas as pd

DEFAULT_WIDTH = 200  # characters, when the output is not a terminal and $COLUMNS does not say
ALWAYS_SHOWN = ("model", "score", "ci_low", "ci_high", "rank")  # the leaderboard's columns never left out
Cell = Callable[[str, Any], str]  # (column, value) → the text of its cell


def terminal_width() -> int:
    """The width of every table: the terminal's; DEFAULT_WIDTH when the output is not a terminal (a file, a pipe)
    and COLUMNS does not say."""
    if sys.stdout.isatty():
        return shutil.get_terminal_size((DEFAULT_WIDTH, 24)).columns
    try:
        return int(os.environ["COLUMNS"])
    except (KeyError, ValueError):
        return DEFAULT_WIDTH


def missing(value: Any) -> bool:
    """None, NaN, or pandas' missing value."""
    if value is None:
        return True
    try:
        return bool(value != value)  # NaN, pd.NA (whose comparison raises), NaT
    except (TypeError, ValueError):
        return True


def plain(column: str, value: Any) -> str:
    """A cell as it is: text, or "-" when missing."""
    return "-" if missing(value) else str(value)


def figure(column: str, value: Any, percent: Collection[str] = ()) -> str:
    """A figure of a diagnostics table: integers as they are, rates (`percent` columns) in %, others to 2 places."""
    if isinstance(value, str):
        return value
    if missing(value):
        return "-"
    if isinstance(value, int) or type(value).__name__.startswith(("int", "uint")):
        return str(value)
    if value in (float("inf"), float("-inf")):
        return "+inf" if value > 0 else "-inf"
    return f"{100 * value:.0f}%" if column in percent else f"{value:.2f}"


def figures(percent: Collection[str] = ()) -> Cell:
    return lambda column, value: figure(column, value, percent)


def leaderboard_cell(column: str, value: Any) -> str:
    """A leaderboard (or history) cell in the format records.LeaderboardRow gives its column."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        if column == "category_scores":
            return " · ".join(f"{k} {v:.1f}" for k, v in value.items()) or "-"
        return ",".join(f"{k}={v}" for k, v in value.items()) or "-"
    if missing(value):
        return "-"
    if isinstance(value, bool) or type(value).__name__ == "bool_":
        return "yes" if value else "no"
    fmt = COLUMNS[column].metadata["format"] if column in COLUMNS else ".2f"
    return f"{100 * value:.1f}%" if fmt == "%" else f"{value:{fmt}}"


def header(column: str) -> str:
    """A leaderboard column's header (its label), else the column's name."""
    return (COLUMNS[column].metadata["label"] if column in COLUMNS else None) or column


def render_table(rows: Sequence[Mapping[str, Any]], columns: Sequence[str], title: str, *, cell: Cell = plain,
                 left: Collection[str] = (), headers: Mapping[str, str] | None = None,
                 no_wrap: Collection[str] = (), min_width: Mapping[str, int] | None = None) -> None:
    """Print `rows` (mappings column → value) as a table on stdout, `terminal_width()` wide: `columns` in order,
    the `left` ones left-aligned (figures right), each cell written by `cell(column, value)`. A table wider than
    that folds its cells onto more lines: no text is cut (the `no_wrap` columns are never folded). Every text is
    printed as written (never read as rich markup) and inert (console.for_terminal: no secret, no control
    character a terminal would obey)."""
    from rich.console import Console

    from ..console import Table  # title, headers and cells as plain text through console.for_terminal

    table = Table(title=title)
    for column in columns:
        table.add_column((headers or {}).get(column, column), justify="left" if column in left else "right",
                         no_wrap=column in no_wrap, overflow="ellipsis" if column in no_wrap else "fold",
                         min_width=(min_width or {}).get(column))
    for row in rows:
        table.add_row(*(cell(column, row[column]) for column in columns))
    Console(width=terminal_width()).print(table)


def json_records(frame: pd.DataFrame) -> list[dict]:
    """JSON-ready rows: NaN is null; an infinite figure (a judge whose verdicts follow length completely) is
    written as the string "inf" or "-inf", since JSON has no number for it."""
    def cell(value):
        if isinstance(value, float):
            if value != value:
                return None
            if value in (float("inf"), float("-inf")):
                return "inf" if value > 0 else "-inf"
        return value.item() if hasattr(value, "item") else value

    return [{k: cell(v) for k, v in row.items()} for row in frame.to_dict("records")]


def write_json(data: Any) -> None:
    """`data` as indented JSON on stdout; what JSON has no type for (a path, a timestamp) as its text."""
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")


def write_frame(frame: pd.DataFrame, fmt: Format, records: Callable[[pd.DataFrame], Any] = json_records) -> bool:
    """JSON (`records(frame)`) or CSV of every column on stdout; False (nothing written) for Format.table."""
    if fmt is Format.json:
        write_json(records(frame))
        return True
    if fmt is Format.csv:
        frame.to_csv(sys.stdout, index=False)
        return True
    return False


def print_frame(frame: pd.DataFrame, fmt: Format, title: str, percent: Collection[str] = (),
                cell: Cell | None = None, left: Collection[str] | None = None) -> None:
    """A table of figures (judges, agreement, quality, batches): text columns left, `percent` columns in %."""
    if write_frame(frame, fmt):
        return
    if left is None:
        left = [c for c in frame.columns if frame[c].dtype == object]
    render_table(frame.to_dict("records"), list(frame.columns), title, cell=cell or figures(percent), left=left)


def print_leaderboard(board: pd.DataFrame, fmt: Format, title: str = "Leaderboard",
                      columns: list[str] | None = None) -> None:
    """A leaderboard (or history) frame: JSON and CSV carry every column; the terminal table shows the columns
    records.LeaderboardRow marks for it, as many as fit the terminal by priority (records.TERMINAL_PRIORITY), or
    `columns` (the contestant's name first in any case), with their headers and number formats."""
    from ..leaderboard_files import leaderboard_records

    if write_frame(board, fmt, leaderboard_records):
        return
    if "rank" in board.columns:
        board = board.assign(rank=[rank_text(*r) for r in board.reindex(columns=["rank", "rank_low", "rank_high"])
                                   .itertuples(index=False)])
    width = terminal_width()
    available = [c for c in terminal_columns() if c in board.columns and board[c].map(_known).any()
                 or c in ALWAYS_SHOWN and c in board.columns]
    if columns:
        absent = [c for c in columns if c not in board.columns]
        if absent:
            err.print(f"no figures for column{'s' if len(absent) > 1 else ''} {', '.join(absent)} in this run",
                      highlight=False)
        shown = ["model", *[c for c in columns if c != "model" and c in board.columns]]
    else:
        shown = fit_columns(board, available, width)
    render_table(board.to_dict("records"), shown, title, cell=leaderboard_cell, left=("model", "method", "memory_source"),
                 headers={c: header(c) for c in shown}, no_wrap=("model",),
                 min_width={c: len(header(c)) for c in shown} | {"model": max(map(len, board.model.astype(str)))})
    hidden = [c for c in available if c not in shown]
    if hidden and not columns:
        err.print(f"{len(hidden)} more column{'s' if len(hidden) > 1 else ''} did not fit in {width} characters "
                  f"({', '.join(hidden)}): choose with --columns {','.join(shown[1:4] + hidden[:2])}, or see them all "
                  "with --format json or csv, and in the report", highlight=False)


def rank_text(rank: Any, low: Any, high: Any) -> str:
    """A rank with its 95% interval, "2 (1–3)"; the rank alone without rounds, "-" without a rating."""
    if missing(rank):
        return "-"
    if missing(low) or missing(high):
        return f"{rank:g}"
    return f"{rank:g} ({low:g}–{high:g})"


def _known(value) -> bool:
    if isinstance(value, dict):
        return bool(value)
    return not missing(value)


def fit_columns(board: pd.DataFrame, available: list[str], width: int) -> list[str]:
    """The columns that fit in `width` characters, by priority: the contestant's full name, its score and
    interval always (a name is never cut), then each next column while it fits (docs/design.md §5.3)."""
    def column_width(column: str) -> int:
        cells = [leaderboard_cell(column, value) for value in board[column]] if column in board.columns else []
        return max([len(header(column)), *map(len, cells)]) + 3  # the cell's padding and its border
    shown, used = [], 1
    for column in available:
        needed = column_width(column)
        if column in ALWAYS_SHOWN or used + needed <= width:
            shown.append(column)
            used += needed
    return shown
