"""Energy: meters and estimates per window, attribution, carbon and cost, CodeCarbon imports (docs/design.md §3.5).

The public names are re-exported here: the energy settings (`EnergyConfig`, the `energy:` section of a run's
config), the CodeCarbon import behind `arena-eval energy import-codecarbon` and `show`
(`read_codecarbon_csv`, `summarise_runs`), and what the EcoLogits warning names (`ECOLOGITS_MODELS`, which
users extend, and `UnknownModelWarning`). They are imported on first use: loading a config (which imports
`energy.config`) must not load pandas or EcoLogits. Everything else is imported from its module (`meters`,
`zeus_meter`, `zeusd_meter`, `server_meter`, `codecarbon_meter`, `ecologits_estimate`, `aggregate`, `carbon`,
`tracking`), which are internal. The typer app lives in `arena_eval.cli.energy`.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .codecarbon_import import read_codecarbon_csv, summarise_runs
    from .config import EnergyConfig
    from .ecologits_estimate import ECOLOGITS_MODELS, UnknownModelWarning

# public name → the module that defines it
_EXPORTS = {
    "ECOLOGITS_MODELS": "ecologits_estimate",
    "EnergyConfig": "config",
    "UnknownModelWarning": "ecologits_estimate",
    "read_codecarbon_csv": "codecarbon_import",
    "summarise_runs": "codecarbon_import",
}
__all__ = [
    "ECOLOGITS_MODELS",
    "EnergyConfig",
    "UnknownModelWarning",
    "read_codecarbon_csv",
    "summarise_runs",
]
assert sorted(__all__) == sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(f"{__name__}.{_EXPORTS[name]}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])
