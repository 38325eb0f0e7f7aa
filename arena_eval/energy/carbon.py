"""Grid carbon intensity per country, CO2 and electricity cost: gCO2 = kWh × PUE × grid intensity.

The intensity table is the one CodeCarbon ships (read from its installed data file, without importing
codecarbon) and, when codecarbon is absent, the copy below.
"""

from __future__ import annotations

import functools
import importlib.util
import json
from importlib import metadata
from pathlib import Path

from ..errors import ConfigError
from .meters import J_PER_KWH

# g CO2eq/kWh, copied from CodeCarbon 3.3.2, codecarbon/data/private_infra/global_energy_mix.json
# ("carbon_intensity", data year 2023, compiled there from Ember); WOR is its world average
# (carbon_intensity_per_source.json "world_average", IEA). Update together with TABLE_SOURCE.
GRID_INTENSITY_G_PER_KWH: dict[str, float] = {
    "AUS": 548.692, "BRA": 98.348, "CAN": 170.043, "CHE": 34.843, "CHN": 582.317, "DEU": 380.95,
    "ESP": 174.05, "FIN": 79.158, "FRA": 56.039, "GBR": 237.589, "IND": 713.441, "IRL": 290.805,
    "ITA": 330.718, "JPN": 485.392, "KOR": 430.567, "NLD": 267.622, "NOR": 30.08, "POL": 661.926,
    "SGP": 470.783, "SWE": 40.695, "USA": 369.473, "WOR": 475.0,
}
TABLE_SOURCE = "arena-eval copy of CodeCarbon 3.3.2 global_energy_mix.json (2023 data)"

_CODECARBON_FILES = ("data/private_infra/global_energy_mix.json", "data/private_infra/carbon_intensity_per_source.json")


def intensity_from_mix(mix: dict, per_source: dict) -> float | None:
    """A country's g/kWh: its own figure, else its generation mix weighted by each source's intensity."""
    if mix.get("carbon_intensity") is not None:
        return float(mix["carbon_intensity"])
    total = mix.get("total_TWh")
    if not total:
        return None
    weighted = covered = 0.0
    for key, twh in mix.items():
        if key.endswith("_TWh") and key != "total_TWh" and isinstance(per_source.get(key[:-4]), (int, float)):
            weighted += twh * per_source[key[:-4]]
            covered += twh
    return weighted / covered if covered else None


@functools.lru_cache(maxsize=1)
def grid_table() -> tuple[dict[str, float], str]:
    """(country ISO3 → g CO2/kWh, where the numbers come from): CodeCarbon's table if installed, else the copy."""
    spec = importlib.util.find_spec("codecarbon")
    if spec is not None and spec.submodule_search_locations:
        folder = Path(next(iter(spec.submodule_search_locations)))
        try:
            mixes = json.loads((folder / _CODECARBON_FILES[0]).read_text(encoding="utf-8"))
            per_source = json.loads((folder / _CODECARBON_FILES[1]).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            pass  # an unusual install: fall back to the copy
        else:
            table = {code: g for code, mix in mixes.items() if (g := intensity_from_mix(mix, per_source)) is not None}
            table["WOR"] = float(per_source["world_average"])
            return table, f"CodeCarbon {metadata.version('codecarbon')} {_CODECARBON_FILES[0]}"
    return dict(GRID_INTENSITY_G_PER_KWH), TABLE_SOURCE


def grid_intensity(country_iso3: str) -> float:
    """g CO2eq per kWh for a country (ISO 3166-1 alpha-3, e.g. "FRA"; "WOR" is the world average)."""
    table, source = grid_table()
    code = country_iso3.strip().upper()
    if code not in table:
        raise ConfigError(
            f"no grid carbon intensity for country {country_iso3!r} in {source}; use an ISO 3166-1 alpha-3 code "
            "(e.g. USA, FRA, DEU), \"WOR\" for the world average, or set energy.g_co2_per_kwh"
        )
    return table[code]


def co2_grams(energy_j: float | None, g_per_kwh: float, pue: float = 1.0) -> float | None:
    """Grams CO2eq for energy measured at the device: kWh × PUE × grid intensity. None stays None."""
    if pue < 1.0:
        raise ValueError(f"PUE is facility energy over IT energy and cannot be below 1 (got {pue})")
    if energy_j is None:
        return None
    return energy_j / J_PER_KWH * pue * g_per_kwh


def energy_cost(energy_j: float | None, price_per_kwh: float, pue: float = 1.0) -> float | None:
    """Electricity cost (currency of `price_per_kwh`) for energy measured at the device, facility overhead included."""
    if pue < 1.0:
        raise ValueError(f"PUE is facility energy over IT energy and cannot be below 1 (got {pue})")
    if energy_j is None:
        return None
    return energy_j / J_PER_KWH * pue * price_per_kwh
