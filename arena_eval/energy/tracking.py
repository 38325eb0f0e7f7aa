"""Energy windows during a run: one per local contestant's batch, one for a local judge, idle power first.

Meters that see a whole machine (RAPL, CodeCarbon, none) cannot tell two devices apart, so every local
contestant then shares one device lock ("machine") and windows never overlap.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

from .available import available_meter
from .config import EnergyConfig
from .meters import Meter
from .nvml import gpu_indices


@dataclass
class WindowCounts:
    output_tokens: int = 0
    requests: int = 0

    def add(self, output_tokens: int | None) -> None:
        self.output_tokens += output_tokens or 0
        self.requests += 1


class EnergyTracker:
    def __init__(self, config: EnergyConfig, store, run_id: str):
        self.config = config
        self.store = store  # the run's Store: windows are saved through it
        self.run_id = run_id
        self._meters: dict[str, Meter] = {}
        self._idle_measured: set[str] = set()

    def meter(self, device: str) -> Meter:
        if device not in self._meters:
            # CodeCarbon needs a real country for its own bookkeeping; our carbon maths uses energy.country.
            country = self.config.country if self.config.country != "WOR" else "USA"
            self._meters[device] = available_meter(
                self.config.meter, devices=gpu_indices(device) or self.config.gpus, country_iso_code=country
            )
        return self._meters[device]

    def lock_key(self, device: str) -> str:
        return device if self.meter(device).method.startswith("nvml") else "machine"

    def memory_gb(self, device: str) -> tuple[float, str] | None:
        """(GB, what it is) of accelerator memory in use on `device` when its meter can tell (NVML), else None."""
        meter = self.meter(device)
        used = meter.memory_used_gb() if hasattr(meter, "memory_used_gb") else None
        return (used, "nvml: accelerator memory in use at the end of collection") if used is not None else None

    @classmethod
    def device_keys(cls, config: EnergyConfig, devices: list[str]) -> dict[str, str]:
        """device → the lock key its windows are metered under (lock_key), without a run."""
        tracker = cls(config, None, "")
        return {device: tracker.lock_key(device) for device in devices}

    async def measure_idle(self, device: str) -> None:
        """Idle power before the first window on a device (stored as role 'idle', reported separately)."""
        key = self.lock_key(device)
        if self.config.idle_seconds <= 0 or key in self._idle_measured:
            return
        self._idle_measured.add(key)
        window = await asyncio.to_thread(self.meter(device).start)
        await asyncio.sleep(self.config.idle_seconds)
        reading = await asyncio.to_thread(window.stop)
        self.store.save_energy_window(reading, role="idle", run_id=self.run_id, device=key, requests=0,
                                      output_tokens=0)

    @contextlib.asynccontextmanager
    async def window(self, role: str, name: str, config_id: str | None, device: str) -> AsyncIterator[WindowCounts]:
        """Meter the block; count what it produced through the yielded WindowCounts. Stored when it made requests."""
        counts = WindowCounts()
        window = await asyncio.to_thread(self.meter(device).start)
        try:
            yield counts
        finally:
            reading = await asyncio.to_thread(window.stop)
            if counts.requests:
                self.store.save_energy_window(reading, role=role, run_id=self.run_id, contestant=name,
                                              config_id=config_id, device=self.lock_key(device),
                                              output_tokens=counts.output_tokens, requests=counts.requests)


