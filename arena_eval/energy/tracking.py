"""Energy windows during a run: one per metered contestant's batch, one for a metered judge, idle power first.

An endpoint is metered when its model runs on this machine (`is_local`) or its config says where its power is
measured (`energy:`, a remote daemon or the server's own figures). Each metered endpoint holds lock keys: the
devices its windows read. Endpoints that share a key take turns, so their windows never overlap and nothing is
counted twice. Meters that see a whole machine (RAPL, CodeCarbon, none) cannot tell two devices apart, so every
local contestant then shares one key ("machine"); a daemon's devices are keys of their own, or the whole daemon
when some endpoint on it does not name its devices.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .available import available_meter, remote_meter
from .config import EndpointEnergy, EnergyConfig
from .meters import Meter, MeterUnavailable, gpu_indices

if TYPE_CHECKING:
    from ..config import EndpointConfig

log = logging.getLogger(__name__)


@dataclass
class WindowCounts:
    output_tokens: int = 0
    requests: int = 0

    def add(self, output_tokens: int | None) -> None:
        self.output_tokens += output_tokens or 0
        self.requests += 1


def remote_keys(spec: EndpointEnergy, whole_daemons: set[str], base_url: str | None) -> list[str]:
    """The devices a remote source reads, as lock keys."""
    if spec.server is not None:
        from .server_meter import figure_url

        return [f"server {figure_url(base_url or '', spec.server)}"]
    assert spec.zeusd is not None
    if spec.zeusd in whole_daemons:
        return [f"zeusd {spec.zeusd}"]
    return ([f"zeusd {spec.zeusd} gpu{g}" for g in spec.gpus or []]
            + [f"zeusd {spec.zeusd} cpu{c}" for c in spec.cpus or []])


def whole_daemons(endpoints: Sequence[EndpointConfig]) -> set[str]:
    """Daemons that some endpoint reads without naming its GPUs: every endpoint on them takes turns."""
    return {spec.zeusd for e in endpoints for spec, _ in e.energy_sources()
            if spec.zeusd is not None and spec.gpus is None}


class EnergyTracker:
    def __init__(self, config: EnergyConfig, store, run_id: str, endpoints: Sequence[EndpointConfig] = ()):
        self.config = config
        self.store = store  # the run's Store: windows are saved through it
        self.run_id = run_id
        self._meters: dict[str, Meter] = {}
        self._remote: dict[tuple[str, ...], Meter] = {}
        self._idle_measured: set[tuple[str, ...]] = set()
        self._whole_daemons = whole_daemons(endpoints)

    # --- this machine --------------------------------------------------------------------------------------

    def meter(self, device: str) -> Meter:
        if device not in self._meters:
            # CodeCarbon needs a real country for its own bookkeeping; our carbon maths uses energy.country.
            country = self.config.country if self.config.country != "WOR" else "USA"
            self._meters[device] = available_meter(self.config.meter, devices=gpu_indices(device) or self.config.gpus,
                                                   cpus=self.config.cpus, country_iso_code=country)
        return self._meters[device]

    def lock_key(self, device: str) -> str:
        method = self.meter(device).method
        return device if method.startswith(("nvml", "amdsmi")) and "rapl" not in method else "machine"

    def memory_gb(self, device: str) -> tuple[float, str] | None:
        """(GB, what it is) of accelerator memory in use on `device` when its meter can tell (NVML), else None."""
        meter = self.meter(device)
        used = meter.memory_used_gb() if hasattr(meter, "memory_used_gb") else None
        return (used, "nvml: accelerator memory in use at the end of collection") if used is not None else None

    # --- any metered endpoint ------------------------------------------------------------------------------

    @staticmethod
    def metered(endpoint: EndpointConfig) -> bool:
        return endpoint.is_local or endpoint.energy is not None

    def lock_keys(self, endpoint: EndpointConfig) -> tuple[str, ...]:
        """The keys an endpoint's windows hold (sorted: locks are taken in this order, so two never deadlock)."""
        sources = endpoint.energy_sources()
        if not sources:
            return (self.lock_key(endpoint.device),)
        return tuple(sorted({k for spec, url in sources for k in remote_keys(spec, self._whole_daemons, url)}))

    def endpoint_meter(self, endpoint: EndpointConfig) -> Meter:
        sources = endpoint.energy_sources()
        if not sources:
            return self.meter(endpoint.device)
        key = self.lock_keys(endpoint)
        if key not in self._remote:
            self._remote[key] = remote_meter([s for s, _ in sources], [u for _, u in sources])
        return self._remote[key]

    def check_remote(self, endpoints: Sequence[EndpointConfig]) -> None:
        """Before any request: every daemon's token variable is set and accepted (DaemonRefused otherwise, naming
        the variable). A daemon that cannot be reached now is only a warning: its windows say why they are
        unknown, and it is asked again at every window."""
        from .zeusd_meter import connect

        seen = set()
        for endpoint in endpoints:
            for spec, _ in endpoint.energy_sources():
                if spec.zeusd is None or spec.zeusd in seen:
                    continue
                seen.add(spec.zeusd)
                try:
                    connect(spec)
                except MeterUnavailable as exc:
                    log.warning("%s; its windows will be unknown until it answers", exc)

    @classmethod
    def endpoint_keys(cls, config: EnergyConfig, endpoints: Sequence[EndpointConfig]) -> list[tuple[str, ...]]:
        """Each endpoint's lock keys (lock_keys), without a run."""
        tracker = cls(config, None, "", endpoints)
        return [tracker.lock_keys(e) for e in endpoints]

    async def measure_idle(self, endpoint: EndpointConfig) -> None:
        """Idle power before the first window on an endpoint's devices (stored as role 'idle', reported
        separately)."""
        keys = self.lock_keys(endpoint)
        if self.config.idle_seconds <= 0 or keys in self._idle_measured:
            return
        self._idle_measured.add(keys)
        window = await asyncio.to_thread(self.endpoint_meter(endpoint).start)
        await asyncio.sleep(self.config.idle_seconds)
        reading = await asyncio.to_thread(window.stop)
        self.store.save_energy_window(reading, role="idle", run_id=self.run_id, device="+".join(keys), requests=0,
                                      output_tokens=0)

    @contextlib.asynccontextmanager
    async def window(self, role: str, name: str, config_id: str | None,
                     endpoint: EndpointConfig) -> AsyncIterator[WindowCounts]:
        """Meter the block; count what it produced through the yielded WindowCounts. Stored when it made requests."""
        counts = WindowCounts()
        window = await asyncio.to_thread(self.endpoint_meter(endpoint).start)
        try:
            yield counts
        finally:
            reading = await asyncio.to_thread(window.stop)
            if counts.requests:
                self.store.save_energy_window(reading, role=role, run_id=self.run_id, contestant=name,
                                              config_id=config_id, device="+".join(self.lock_keys(endpoint)),
                                              output_tokens=counts.output_tokens, requests=counts.requests)
