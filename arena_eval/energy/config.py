"""The `energy:` section of the run config (keys are a contract: add freely, rename none)."""

from __future__ import annotations

import urllib.parse
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from ..errors import ConfigError
from .carbon import grid_intensity, grid_table


class EndpointEnergy(BaseModel):
    """Where an endpoint's power is measured when its model runs on another machine (docs/design.md §3.5.1): the
    machine's Zeus daemon (`zeusd`), or the inference server's own cumulative figure (`server`). One per endpoint,
    or one per replica of a `base_url` list."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    # "http://HOST:PORT" (zeusd's TCP mode) or "unix:///PATH/zeusd.sock" (its Unix socket, on this machine).
    zeusd: str | None = None
    gpus: list[int] | None = None  # the daemon's GPU indices; default: all it serves
    cpus: list[int] | None = None  # its CPU packages (RAPL); default: none, or all when it has no GPU
    # The NAME of the environment variable holding the daemon's token (zeusd with --auth), never the token.
    token_env: str | None = None
    # The server's own energy figure: a path on the endpoint's host ("/energy_metrics") or a full http(s) URL.
    server: str | None = None

    @field_validator("zeusd")
    @classmethod
    def _daemon_address(cls, value: str | None) -> str | None:
        if value is None:
            return None
        parts = urllib.parse.urlsplit(value)
        if parts.scheme == "unix" and parts.path and not parts.netloc:
            return value
        if parts.scheme == "http" and parts.hostname and parts.port and parts.path in ("", "/"):
            return value.rstrip("/")
        hint = (" (zeusd speaks plain HTTP; put it behind a TLS tunnel and give the tunnel's local end)"
                if parts.scheme == "https" else "")
        raise ValueError(f"zeusd {value!r} is not a daemon address; give http://HOST:PORT (e.g. "
                         f"http://gpu-box:4938) or unix:///PATH (e.g. unix:///var/run/zeusd.sock){hint}")

    @field_validator("token_env")
    @classmethod
    def _a_name(cls, value: str | None) -> str | None:
        if value is not None and not (value.replace("_", "").isalnum() and not value[0].isdigit()):
            raise ValueError("token_env takes the NAME of an environment variable (e.g. ZEUSD_TOKEN), never the "
                             "token itself")
        return value

    @field_validator("server")
    @classmethod
    def _server_path(cls, value: str | None) -> str | None:
        if value is None or value.startswith("/"):
            return value
        parts = urllib.parse.urlsplit(value)
        if parts.scheme in ("http", "https") and parts.hostname:
            return value
        raise ValueError(f"server {value!r} is neither a path on the endpoint's host (/energy_metrics) nor an "
                         "http(s) URL")

    @model_validator(mode="after")
    def _one_source(self) -> EndpointEnergy:
        if (self.zeusd is None) == (self.server is None):
            raise ValueError("say where this endpoint's power is measured: zeusd (its machine's Zeus daemon) or "
                             "server (the server's own /energy_metrics), one of the two")
        if self.server is not None and (self.gpus is not None or self.cpus is not None or self.token_env):
            raise ValueError("gpus, cpus and token_env are the daemon's; a server's own figure takes none of them")
        return self


class EnergyConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    # auto: Zeus (this machine's GPUs, else its CPU packages) > CodeCarbon's estimate > none (energy unknown).
    # nvml and rapl: Zeus restricted to the GPUs or to the CPU packages. Local contestants, and endpoints with an
    # `energy:` of their own (a remote daemon, a server's figures); API contestants get EcoLogits' per-request
    # estimate when estimate_api is on.
    meter: Literal["auto", "zeus", "nvml", "rapl", "codecarbon", "none"] = "auto"
    gpus: list[int] | None = None  # GPU indices to meter; default: all
    # CPU packages (RAPL) to meter beside the GPUs; default: none when a GPU is metered, else all
    cpus: list[int] | None = None
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
