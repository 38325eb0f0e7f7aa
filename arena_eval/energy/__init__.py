"""Energy: meters and estimates per window, attribution, carbon and cost, CodeCarbon imports (docs/design.md §3.5).

The public names are re-exported here: the energy settings (`EnergyConfig`, the `energy:` section of a run's
config), the CodeCarbon import behind `arena-eval energy import-codecarbon` and `show`
(`read_codecarbon_csv`, `summarise_runs`), and what the EcoLogits warning names (`ECOLOGITS_MODELS`, which
users extend, and `UnknownModelWarning`). Everything else is imported from its module (`meters`, `nvml`,
`rapl`, `codecarbon_meter`, `ecologits_estimate`, `aggregate`, `carbon`, `tracking`), which
are internal. The typer app lives in `arena_eval.energy.cli` (imported on demand, not here).
"""

from .codecarbon_import import read_codecarbon_csv, summarise_runs
from .config import EnergyConfig
from .ecologits_estimate import ECOLOGITS_MODELS, UnknownModelWarning

__all__ = [
    "ECOLOGITS_MODELS",
    "EnergyConfig",
    "UnknownModelWarning",
    "read_codecarbon_csv",
    "summarise_runs",
]
