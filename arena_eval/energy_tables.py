"""The leaderboard's energy table and efficiency columns (docs/design.md §3.5, §3.5.7): energy per contestant
configuration (measured windows, API estimates, CodeCarbon imports) with the judges' lines, and per contestant its
speed, memory, size and FLOP utilisation.
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING, Any

import pandas as pd

from .answer_sets import AnswerSets
from .config import ContestantConfig
from .context import RunScope, judge_energy_lines
from .efficiency import (
    PEAK_TFLOPS,
    GGUFError,
    GGUFWarning,
    efficiency_of,
    model_flops_utilisation,
    read_gguf_parameters,
    request_rows,
)
from .energy import summarise_runs
from .energy.aggregate import energy_summary
from .energy.ecologits_estimate import estimate_api_batch
from .errors import ArenaError
from .records import EnergyOverview
from .tally import Tally

if TYPE_CHECKING:
    from .store import Store


def efficiency_table(scope: RunScope, store: Store, sets: AnswerSets, tally: Tally) -> pd.DataFrame:
    """One row per contestant: the efficiency columns (records.LeaderboardRow, group "efficiency"; §3.5.7)."""
    windows = store.energy_windows(role="contestant")
    rows, sizes = [], {}
    for c in scope.contestants:
        set_id = sets.set_id(c)
        ids = list(tally.answer_ids[c.name].values())
        answers = store.answer_rows(ids, ("latency_s", "ttft_s", "output_tokens", "tokens_estimated", "turns",
                                          "created_at", "run_id"))
        window_s, window_tokens = _collection_window(c, set_id, windows, answers)
        figures = efficiency_of(request_rows(a[:5] for a in answers), window_s, window_tokens)
        params, size, peak = _model_facts(c, scope.config.base_dir)
        if c.is_local:
            figures.peak_memory_gb, figures.memory_source = store.latest_resources(set_id)
            figures.mfu = model_flops_utilisation(params, figures.throughput_tokens_per_s, peak)
        figures.model_size_gb, sizes[c.name] = size, size
        rows.append({"model": c.name, **vars(figures), "params_b": params / 1e9 if params else None,
                     "peak_tflops": peak})
    frame = pd.DataFrame(rows)
    reference = scope.config.efficiency.reference
    base = sizes.get(reference) if reference else None
    frame["compression_ratio"] = frame.model_size_gb.map(lambda s: s / base if s and base else None)
    return frame


def _collection_window(c: ContestantConfig, set_id: str, windows: pd.DataFrame,
                       answers: list[tuple]) -> tuple[float | None, int | None]:
    """(seconds, output tokens) of the contestant's collection: its energy windows where it is metered (local, or
    measured elsewhere through its `energy:`: the time it held its devices), else the span of its latest collecting run, from the first request sent to the last
    answer stored."""
    if (c.is_local or c.energy is not None) and not windows.empty:
        own = windows[windows.config_id == set_id]
        if not own.empty and own.duration_s.notna().all():
            return float(own.duration_s.sum()), int(own.output_tokens.fillna(0).sum())
    latest: dict[str, float] = {}
    for *_, created, run in answers:
        if run is not None and created is not None:
            latest[run] = max(latest.get(run, 0.0), created)
    if not latest:
        return None, None
    run = max(latest, key=latest.get)
    batch = [a for a in answers if a[6] == run]
    started = min(a[5] - (a[0] or 0.0) for a in batch)
    span = max(a[5] for a in batch) - started
    tokens = [a[2] for a in batch]
    return (span, sum(tokens)) if span > 0 and None not in tokens else (None, None)


def _model_facts(c: ContestantConfig, base_dir: str) -> tuple[float | None, float | None, float | None]:
    """(parameters, weights' size in GB, peak TFLOP/s) of a contestant: configured, else read from its GGUF model
    file; None where neither tells."""
    params = c.params_b * 1e9 if c.params_b else None
    size = c.model_size_gb
    if c.model_path and (params is None or size is None):
        from .providers.llama_cpp import resolve_model_path

        try:
            path = resolve_model_path(c.model_path, base_dir)
        except ArenaError:
            path = None
        if path is not None and params is None:
            try:
                params = float(read_gguf_parameters(path))
            except (GGUFError, OSError) as exc:  # a damaged or crafted header: empty columns, a warning naming the file
                warnings.warn(GGUFWarning(f"contestant {c.name!r}: {exc}; its parameter count and MFU are left empty "
                                          "(set params_b in its config to give them)"), stacklevel=2)
        if path is not None and size is None:
            try:
                size = path.stat().st_size / 1e9
            except OSError:
                size = None
    peak = c.peak_tflops or (PEAK_TFLOPS.get(c.accelerator) if c.accelerator else None)
    return params, size, peak


def energy_table(scope: RunScope, store: Store, sets: AnswerSets, tally: Tally) -> tuple[pd.DataFrame, EnergyOverview]:
    """Energy per contestant configuration (measured windows, API estimates, CodeCarbon imports) and the
    judge's own line, aggregated as sums over sums; and the overview (methods, idle power, judge, carbon).
    Idle power goes to the overview, not into any row."""
    cfg = scope.config.energy
    by_set = {sets.set_id(c): c.name for c in scope.contestants}  # a window records the answer set it measured
    judge_lines = judge_energy_lines(scope)
    windows = store.energy_windows()
    rows: list[dict] = []
    for w in windows.to_dict("records"):
        if w["role"] == "contestant" and w["config_id"] in by_set:
            rows.append({**w, "contestant": by_set[w["config_id"]]})
        elif w["role"] == "judge" and w["config_id"] in judge_lines:
            rows.append({**w, "contestant": judge_lines[w["config_id"]]})
    for c in scope.contestants:
        if (cfg.estimate_api and not c.is_local and c.energy is None
                and (c.base_url is None or c.provider == "litellm")):
            answers = store.answer_rows(list(tally.answer_ids[c.name].values()), ("output_tokens", "latency_s"))
            if answers:
                reading = estimate_api_batch(c.model or "", [a[0] or 0 for a in answers], [a[1] for a in answers], c.provider)
                rows.append({**reading.to_dict(), "role": "contestant", "contestant": c.name,
                             "output_tokens": sum(a[0] or 0 for a in answers), "requests": len(answers)})
    intensity, intensity_source = cfg.carbon_intensity()
    columns = ["role", "contestant", "energy_source", "tags", "method", "is_estimated", "energy_wh", "wh_per_pass"]
    if rows:
        frame = energy_summary(pd.DataFrame(rows), by=("role", "contestant"), questions=len(scope.questions),
                               g_co2_per_kwh=intensity, pue=cfg.pue, price_per_kwh=cfg.price_per_kwh)
        frame["energy_source"], frame["tags"] = "measured", None
    else:
        frame = pd.DataFrame(columns=columns)
    imported = summarise_runs(store.energy_imports())
    imported = imported[imported.contestant.isin(set(by_set.values()))]
    if not imported.empty:
        # One imported CodeCarbon run is one pass over the question set on that configuration.
        extra = imported.rename(columns={"energy_wh": "wh_per_pass", "co2_g": "co2_g_per_pass"})
        extra["role"], extra["energy_source"], extra["method"] = "contestant", "codecarbon-import", "codecarbon"
        frame = pd.concat([frame, extra], ignore_index=True)
    idle = windows[windows.role == "idle"]
    idle_w = (idle.energy_j.sum() / idle.duration_s.sum()) if len(idle) and idle.energy_j.notna().all() else None
    judge = frame[frame.contestant.isin(set(judge_lines.values()))]
    overview = EnergyOverview(
        methods=sorted({m for m in frame.get("method", pd.Series(dtype=str)).dropna() if m}),
        idle_power_w=number_or_none(idle_w),
        # Every judge's energy together; unknown as soon as one judge's is.
        judge_wh=float(judge.energy_wh.sum()) if len(judge) and judge.energy_wh.notna().all() else None,
        carbon=f"{intensity:g} g CO2/kWh ({intensity_source}), PUE {cfg.pue:g}",
    )
    return frame.reset_index(drop=True), overview


def number_or_none(value: Any) -> float | None:
    """A figure as a float, None where it is missing or NaN."""
    if value is None:
        return None
    value = float(value)
    return None if value != value else value
