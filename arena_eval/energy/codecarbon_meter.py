"""CodeCarbon's offline tracker as a meter, for machines where no sensor can be read.

Without RAPL or a GPU CodeCarbon estimates from CPU load and a guessed TDP, so its readings are always flagged
`is_estimated`. It runs offline (ISO country code, no network), writes no file (no output method; any output
directory is a private temporary one) and logs only warnings. Its PUE is pinned to 1.0: PUE is applied once,
by arena-eval's carbon maths.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import tempfile
import time
from importlib import metadata
from typing import Any

from .meters import J_PER_KWH, EnergyReading, MeterUnavailable, Window


def _codecarbon_version() -> str:
    try:
        return metadata.version("codecarbon")
    except metadata.PackageNotFoundError:
        raise MeterUnavailable("codecarbon is not installed (pip install codecarbon)") from None


class CodeCarbonMeter:
    method = "codecarbon"

    def __init__(self, country_iso_code: str = "USA", measure_power_secs: float = 15.0,
                 log_level: str | None = None, tracking_mode: str = "machine"):
        self.tool_version = f"codecarbon {_codecarbon_version()}"
        self.country_iso_code = country_iso_code.upper()
        self.measure_power_secs = measure_power_secs
        # Quiet unless the CLI's --verbose asked for the libraries' own log lines (cli.common.quiet_third_party_logs).
        self.log_level = log_level or ("info" if os.environ.get("ARENA_EVAL_VERBOSE") == "1" else "error")
        self.tracking_mode = tracking_mode

    def start(self) -> CodeCarbonWindow:
        return CodeCarbonWindow(self)


def _kwh_to_j(value: Any) -> float | None:
    return None if value is None else float(value) * J_PER_KWH


class CodeCarbonWindow(Window):
    def __init__(self, meter: CodeCarbonMeter):
        self._meter = meter
        self._workdir = tempfile.TemporaryDirectory(prefix="arena-eval-codecarbon-")
        self._started_at = time.time()
        self._t0 = time.monotonic()
        self._error: str | None = None
        self._tracker = None
        try:
            # amdsmi (which Zeus brings in) prints its missing-library notice on stdout when codecarbon imports it:
            # stdout is for the commands' output (tables, JSON), so it goes to stderr with the other log lines.
            with contextlib.redirect_stdout(sys.stderr):
                from codecarbon import OfflineEmissionsTracker

            # Its logger speaks at INFO before the tracker's own log_level applies, and importing codecarbon sets
            # that level: set ours after the import.
            logging.getLogger("codecarbon").setLevel(logging.getLevelName(meter.log_level.upper()))

            self._tracker = OfflineEmissionsTracker(
                country_iso_code=meter.country_iso_code,
                project_name="arena-eval",
                output_methods=[],
                output_dir=self._workdir.name,
                log_level=meter.log_level,
                measure_power_secs=meter.measure_power_secs,
                tracking_mode=meter.tracking_mode,
                pue=1.0,
                allow_multiple_runs=True,
            )
            self._tracker.start()
        except Exception as exc:  # a third-party estimator must not stop the run
            self._error = f"codecarbon could not start: {exc}"

    def _close(self) -> EnergyReading:
        data = None
        if self._tracker is not None and self._error is None:
            try:
                self._tracker.stop()
                data = getattr(self._tracker, "final_emissions_data", None)
                if data is None:
                    self._error = "codecarbon returned no measurement"
            except Exception as exc:
                self._error = f"codecarbon failed when stopping: {exc}"
        t1 = time.monotonic()
        self._workdir.cleanup()
        devices = []
        if data is not None:
            devices = [f"cpu ({data.cpu_model})" if data.cpu_model else "cpu"]
            if data.gpu_count:
                devices.append(f"{data.gpu_count:g} gpu ({data.gpu_model})")
        return EnergyReading(
            method="codecarbon",
            is_estimated=True,
            tool_version=self._meter.tool_version,
            devices=devices,
            started_at=self._started_at,
            ended_at=time.time(),
            duration_s=t1 - self._t0,
            energy_j=_kwh_to_j(data.energy_consumed) if data is not None else None,
            gpu_j=_kwh_to_j(data.gpu_energy) if data is not None and data.gpu_count else None,
            cpu_j=_kwh_to_j(data.cpu_energy) if data is not None else None,
            ram_j=_kwh_to_j(data.ram_energy) if data is not None else None,
            error=self._error,
        )

