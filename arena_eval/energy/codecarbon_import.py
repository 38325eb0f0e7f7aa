"""Import CodeCarbon's emissions.csv: one row per run, contestant and tags taken from a column by a regex.

The regular expression must match the whole cell (e.g. `project_name`). Its named group `contestant` names the
contestant; every other named group becomes a tag (e.g. `gpus`). CodeCarbon's energies are kWh and its
emissions kg; here they become Wh and grams. Rows that do not match are counted and reported.
"""

from __future__ import annotations

import logging
import math
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import ConfigError

log = logging.getLogger(__name__)

# CodeCarbon column → (our column, factor)
_ENERGY_COLUMNS = {
    "energy_consumed": ("energy_wh", 1000.0),
    "cpu_energy": ("cpu_wh", 1000.0),
    "gpu_energy": ("gpu_wh", 1000.0),
    "ram_energy": ("ram_wh", 1000.0),
    "duration": ("duration_s", 1.0),
    "emissions": ("co2_g", 1000.0),
}
RUN_COLUMNS = ["energy_wh", "cpu_wh", "gpu_wh", "ram_wh", "duration_s", "co2_g"]
REQUIRED = "energy_consumed"


@dataclass(frozen=True)
class UnmatchedRow:
    line: int  # line in the CSV file (the header is line 1)
    value: str


def compile_pattern(pattern: str) -> re.Pattern[str]:
    try:
        regex = re.compile(pattern)
    except re.error as exc:
        raise ConfigError(f"--pattern {pattern!r} is not a valid regular expression: {exc}") from None
    if "contestant" not in regex.groupindex:
        raise ConfigError(
            f"--pattern {pattern!r} has no named group `contestant`; write it as e.g. "
            r"'(?P<contestant>.+)-(?P<gpus>\d+)gpu-run\d+'"
        )
    return regex


def _number(value: str, path: Path, line: int, column: str) -> float:
    text = value.strip()
    if text == "":
        return math.nan  # unknown, never 0
    try:
        return float(text)
    except ValueError:
        raise ConfigError(f"{path}:{line}: column {column!r} should be a number, got {value!r}") from None


def read_codecarbon_csv(path: str | Path, pattern: str, column: str = "project_name") -> pd.DataFrame:
    """One row per matching run: contestant, tags (dict), one column per tag, the energies in Wh, co2_g, line.

    `df.attrs["unmatched"]` lists the rows the pattern did not match (`UnmatchedRow`), `df.attrs["source"]`
    the file.
    """
    path = Path(path)
    regex = compile_pattern(pattern)
    try:
        # utf-8-sig: a CSV saved by a spreadsheet program starts with a byte-order mark, which must not become part
        # of the first column's name (`\ufeffproject_name`).
        raw = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8-sig")
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise ConfigError(f"{path}: cannot be read as a CodeCarbon CSV: {exc}") from None
    for needed in (column, REQUIRED):
        if needed not in raw.columns:
            raise ConfigError(
                f"{path}: no column {needed!r} (columns: {', '.join(raw.columns)})"
                + ("; choose the column to match with --column" if needed == column else "")
            )
    tag_names = [g for g in regex.groupindex if g != "contestant"]
    records, unmatched = [], []
    for offset, row in enumerate(raw.to_dict("records")):
        line = offset + 2  # header is line 1
        match = regex.fullmatch(row[column])
        if match is None:
            unmatched.append(UnmatchedRow(line, row[column]))
            continue
        record: dict = {"contestant": match["contestant"], "tags": {t: match[t] for t in tag_names}}
        record.update(record["tags"])
        for source, (target, factor) in _ENERGY_COLUMNS.items():
            value = _number(row[source], path, line, source) if source in row else math.nan
            record[target] = value * factor
        for extra in ("run_id", "timestamp"):
            record[f"source_{extra}"] = row.get(extra) or None
        record["line"] = line
        records.append(record)
    columns = ["contestant", "tags", *tag_names, *RUN_COLUMNS, "source_run_id", "source_timestamp", "line"]
    frame = pd.DataFrame(records, columns=columns)
    frame.attrs["unmatched"] = unmatched
    frame.attrs["source"] = str(path)
    if unmatched:
        log.info("%s: %d row(s) did not match %r in column %r (first: line %d, %r)", path, len(unmatched),
                    pattern, column, unmatched[0].line, unmatched[0].value)
    return frame


def tags_key(tags: dict) -> tuple:
    return tuple(sorted((k, "" if v is None else str(v)) for k, v in tags.items()))


def summarise_runs(df: pd.DataFrame) -> pd.DataFrame:
    """One row per contestant+tags: runs, mean energy per run (Wh) and its sample standard deviation, the mean
    of the components, duration and CO2. A mean skips runs that do not report that column; std is NaN for 1 run."""
    columns = ["contestant", "tags", "runs", "energy_wh", "energy_wh_std", "gpu_wh", "cpu_wh", "ram_wh",
               "duration_s", "co2_g"]
    if df.empty:
        return pd.DataFrame(columns=columns)
    work = df.assign(_key=[tags_key(t) for t in df["tags"]])
    rows = []
    for (contestant, _), group in work.groupby(["contestant", "_key"], sort=True):
        energy = group["energy_wh"].astype(float)
        rows.append({
            "contestant": contestant,
            "tags": dict(group["tags"].iloc[0]),
            "runs": len(group),
            "energy_wh": energy.mean(),
            "energy_wh_std": energy.std(ddof=1) if energy.notna().sum() > 1 else np.nan,
            **{c: group[c].astype(float).mean() for c in ("gpu_wh", "cpu_wh", "ram_wh", "duration_s", "co2_g")},
        })
    return pd.DataFrame(rows, columns=columns)
