"""The `energy:` section of the run config (keys are a contract: add freely, rename none)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from ..errors import ConfigError
from .carbon import grid_intensity, grid_table


class EnergyConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    # auto: NVML > RAPL > CodeCarbon's estimate > none (energy unknown). Local contestants only;
    # API contestants get EcoLogits' per-request estimate when estimate_api is on.
    meter: Literal["auto", "nvml", "rapl", "codecarbon", "none"] = "auto"
    gpus: list[int] | None = None  # NVML device indices to meter; default: all
    idle_seconds: float = Field(5.0, ge=0)  # idle power measured before the first window; 0 skips it
    estimate_api: bool = True
    # Carbon: country (ISO 3166-1 alpha-3) for the offline grid table, or a fixed g_co2_per_kwh.
    country: str = "WOR"
    g_co2_per_kwh: float | None = Field(None, ge=0)
    pue: float = Field(1.0, ge=1.0)
    price_per_kwh: float | None = Field(None, ge=0)

    @field_validator("country")
    @classmethod
    def _known_country(cls, value: str) -> str:
        try:
            grid_intensity(value)
        except ConfigError as exc:
            raise ValueError(str(exc)) from None
        return value.strip().upper()

    def carbon_intensity(self) -> tuple[float, str]:
        """(g CO2eq/kWh, where it comes from)."""
        if self.g_co2_per_kwh is not None:
            return self.g_co2_per_kwh, "energy.g_co2_per_kwh"
        return grid_intensity(self.country), f"{grid_table()[1]}, {self.country}"
