"""Energy attribution and aggregation (pure: no I/O).

Every ratio is a ratio of sums — SUM(energy) / SUM(tokens) over a contestant's windows — never a mean of
per-answer or per-window ratios, which would weight a 10-token answer like a 1000-token one.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from .meters import J_PER_KWH, J_PER_WH

# Methods whose figure already includes the data centre's overhead (EcoLogits applies the provider's PUE).
PUE_INCLUDED_METHODS = frozenset({"ecologits"})


def attribute_by_output_tokens(window_energy_j: float | None, output_tokens: Sequence[int]) -> list[float | None]:
    """Split one window's energy over its answers by output-token share (equal shares if no answer has tokens)."""
    for i, tokens in enumerate(output_tokens):
        if tokens is None or tokens < 0:
            raise ValueError(f"answer {i}: output token count must be a number ≥ 0, got {tokens!r}")
    n = len(output_tokens)
    if window_energy_j is None:
        return [None] * n
    if n == 0:
        return []
    total = sum(output_tokens)
    if total == 0:
        return [window_energy_j / n] * n
    return [window_energy_j * tokens / total for tokens in output_tokens]


def _frame(rows: pd.DataFrame | Iterable[Mapping[str, Any]]) -> pd.DataFrame:
    return rows.copy() if isinstance(rows, pd.DataFrame) else pd.DataFrame(list(rows))


def energy_summary(rows: pd.DataFrame | Iterable[Mapping[str, Any]], *, by: Sequence[str] = ("contestant",),
                   questions: int | None = None, g_co2_per_kwh: float | None = None, pue: float = 1.0,
                   price_per_kwh: float | None = None) -> pd.DataFrame:
    """One row per group of energy windows (or per-request estimates).

    `rows` need `energy_j` (None/NaN = unknown), `output_tokens`, and optionally `requests` (answers made in the
    window, default 1 per row), `duration_s`, `method`, `is_estimated`. Ratios use only windows whose energy is
    known, numerator and denominator alike; `energy_wh` (the total) is NaN as soon as one window is unknown.
    `questions` (size of the question set) scales energy per request to one pass: Wh per pass.
    """
    df = _frame(rows)
    by = list(by)
    missing = [c for c in [*by, "energy_j", "output_tokens"] if c not in df.columns]
    if missing:
        raise ValueError(f"energy rows lack column(s) {', '.join(missing)}")
    if pue < 1.0:
        raise ValueError(f"PUE cannot be below 1 (got {pue})")
    df["requests"] = df["requests"] if "requests" in df.columns else 1
    df["duration_s"] = df["duration_s"] if "duration_s" in df.columns else np.nan
    df["method"] = df["method"] if "method" in df.columns else "unknown"
    df["is_estimated"] = df["is_estimated"] if "is_estimated" in df.columns else True
    energy = pd.to_numeric(df["energy_j"], errors="coerce")
    known = energy.notna()
    facility_factor = np.where(df["method"].isin(PUE_INCLUDED_METHODS), 1.0, pue)
    df = df.assign(
        _known=known.astype(int),
        _unknown=(~known).astype(int),
        _e=energy.where(known, 0.0),
        _e_facility=energy.where(known, 0.0) * facility_factor,
        _tokens=pd.to_numeric(df["output_tokens"], errors="coerce").fillna(0).where(known, 0),
        _requests=pd.to_numeric(df["requests"], errors="coerce").fillna(0).where(known, 0),
        _duration=pd.to_numeric(df["duration_s"], errors="coerce").where(known, np.nan),
        _all_tokens=pd.to_numeric(df["output_tokens"], errors="coerce"),
        _all_requests=pd.to_numeric(df["requests"], errors="coerce"),
    )
    grouped = df.groupby(by, sort=True, dropna=False)
    out = grouped.agg(
        windows=("_known", "size"),
        windows_unknown=("_unknown", "sum"),
        requests=("_all_requests", "sum"),
        output_tokens=("_all_tokens", "sum"),
        _e=("_e", "sum"),
        _e_facility=("_e_facility", "sum"),
        _tokens=("_tokens", "sum"),
        _requests=("_requests", "sum"),
        _duration=("_duration", lambda s: s.sum(min_count=1)),
        is_estimated=("is_estimated", "any"),
        method=("method", lambda s: ",".join(sorted({str(m) for m in s if pd.notna(m)}))),
    ).reset_index()
    any_known = out["windows"] > out["windows_unknown"]
    e = out["_e"].where(any_known)
    ef = out["_e_facility"].where(any_known)
    per_request_j = e / out["_requests"].where(out["_requests"] > 0)
    out["energy_wh"] = (e / J_PER_WH).where(out["windows_unknown"] == 0)
    out["duration_s"] = out["_duration"]
    out["wh_per_pass"] = per_request_j * questions / J_PER_WH if questions else np.nan
    out["wh_per_1k_tokens"] = e / J_PER_WH / out["_tokens"].where(out["_tokens"] > 0) * 1000
    out["tokens_per_j"] = out["_tokens"] / e.where(e > 0)
    out["avg_power_w"] = e / out["_duration"].where(out["_duration"] > 0)
    facility_kwh_per_pass = ef / out["_requests"].where(out["_requests"] > 0) * questions / J_PER_KWH if questions else np.nan
    out["co2_g_per_pass"] = facility_kwh_per_pass * g_co2_per_kwh if g_co2_per_kwh is not None else np.nan
    out["cost_per_pass"] = facility_kwh_per_pass * price_per_kwh if price_per_kwh is not None else np.nan
    columns = [*by, "windows", "windows_unknown", "requests", "output_tokens", "duration_s", "energy_wh",
               "wh_per_pass", "wh_per_1k_tokens", "tokens_per_j", "avg_power_w", "co2_g_per_pass", "cost_per_pass",
               "method", "is_estimated"]
    return out[columns]


def pareto_front(df: pd.DataFrame, score: str = "score", cost: str = "energy_wh") -> pd.Series:
    """True for rows that no other row beats on both counts (a higher score and a lower cost).

    A row with an unknown score or cost is neither on the front nor counted against others.
    """
    scores = pd.to_numeric(df[score], errors="coerce").to_numpy(dtype=float)
    costs = pd.to_numeric(df[cost], errors="coerce").to_numpy(dtype=float)
    valid = ~(np.isnan(scores) | np.isnan(costs))
    on_front = np.zeros(len(df), dtype=bool)
    for i in np.flatnonzero(valid):
        dominated = valid & (scores > scores[i]) & (costs < costs[i])
        on_front[i] = not dominated.any()
    return pd.Series(on_front, index=df.index, name="pareto")


def join_leaderboard(board: pd.DataFrame, energy: pd.DataFrame, *, model_column: str = "model",
                     contestant_column: str = "contestant", score: str = "score",
                     cost: str = "wh_per_pass") -> pd.DataFrame:
    """The leaderboard with energy columns; a contestant with several energy configurations gets one row each.

    Contestants without energy rows keep one row with NaN energy (never on the Pareto front).
    """
    energy = energy.rename(columns={contestant_column: model_column})
    overlap = [c for c in energy.columns if c in board.columns and c != model_column]
    joined = board.merge(energy.drop(columns=overlap), on=model_column, how="left")
    joined["pareto"] = pareto_front(joined, score=score, cost=cost) if cost in joined.columns else False
    return joined


def overlapping_windows(windows: pd.DataFrame | Iterable[Mapping[str, Any]],
                        device_column: str = "devices") -> list[tuple[Any, Any]]:
    """Pairs of window ids (`id` column, else the row index) that share a device and overlap in time.

    `device_column` holds a list of devices (a reading's `devices`) or one name (the configured `device`);
    rows also need `started_at` and `ended_at`. Windows that merely touch do not overlap. The device lock
    should keep this list empty.
    """
    df = _frame(windows)
    ids = df["id"].tolist() if "id" in df.columns else df.index.tolist()
    devices = [{d} if isinstance(d, str) else set(d or ()) for d in df[device_column]]
    spans = list(zip(ids, devices, df["started_at"], df["ended_at"]))
    pairs = []
    for i, (id_a, dev_a, start_a, end_a) in enumerate(spans):
        for id_b, dev_b, start_b, end_b in spans[i + 1:]:
            if dev_a & dev_b and start_a < end_b and start_b < end_a:
                pairs.append((id_a, id_b))
    return pairs
