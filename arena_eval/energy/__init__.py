"""Energy: meters and estimates per window, attribution, carbon and cost, CodeCarbon imports (DESIGN §3.5).

Public names are re-exported here; the modules behind them are internal. The typer app lives in
`arena_eval.energy.cli` (imported on demand, not here).
"""

from .aggregate import (attribute_by_output_tokens, energy_summary, join_leaderboard, overlapping_windows,
                        pareto_front)
from .carbon import GRID_INTENSITY_G_PER_KWH, co2_grams, energy_cost, grid_intensity, grid_table
from .codecarbon_import import UnmatchedRow, read_codecarbon_csv, summarise_runs
from .codecarbon_meter import CodeCarbonMeter
from .config import EnergyConfig
from .ecologits_estimate import ECOLOGITS_MODELS, UnknownModelWarning, estimate_api_batch, estimate_api_energy
from .energy_store import create_energy_tables, load_imports, load_windows, save_imports, save_window
from .meters import EnergyReading, Meter, MeterUnavailable, NullMeter, Window, available_meter, measure_idle_power
from .nvml import NVMLMeter, gpu_indices, trapezoid_energy
from .rapl import RAPLMeter, counter_delta

__all__ = [
    "CodeCarbonMeter",
    "ECOLOGITS_MODELS",
    "EnergyConfig",
    "EnergyReading",
    "GRID_INTENSITY_G_PER_KWH",
    "Meter",
    "MeterUnavailable",
    "NVMLMeter",
    "NullMeter",
    "RAPLMeter",
    "UnknownModelWarning",
    "UnmatchedRow",
    "Window",
    "attribute_by_output_tokens",
    "available_meter",
    "co2_grams",
    "counter_delta",
    "create_energy_tables",
    "energy_cost",
    "energy_summary",
    "estimate_api_batch",
    "estimate_api_energy",
    "gpu_indices",
    "grid_intensity",
    "grid_table",
    "join_leaderboard",
    "load_imports",
    "load_windows",
    "measure_idle_power",
    "overlapping_windows",
    "pareto_front",
    "read_codecarbon_csv",
    "save_imports",
    "save_window",
    "summarise_runs",
    "trapezoid_energy",
]
