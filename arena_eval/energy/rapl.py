"""CPU package and DRAM energy from RAPL counters under /sys/class/powercap (Linux powercap, Intel and AMD).

Layout read here: `<root>/intel-rapl:N/` is a package domain (`name` = "package-N") with subdomains
`intel-rapl:N:M/` of which the one named "dram" is memory. Each domain has `energy_uj` (a counter that wraps at
`max_energy_range_uj`). Since 2020 kernels make `energy_uj` readable by root only; then RAPL is unavailable.

A counter can wrap within minutes under load (the range is often 2^32 µJ ≈ 4.3 kJ), more than once in a long
window, so a window samples the counters in a background thread at an interval short enough to see every wrap.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .meters import EnergyReading, MeterUnavailable, Window

_PACKAGE_DIR = re.compile(r"intel-rapl:(\d+)")
_SUBDOMAIN_DIR = re.compile(r"intel-rapl:(\d+):(\d+)")
# Highest power assumed for one domain when choosing the sampling interval: a sample every
# range / (2 × this) seconds cannot miss a wrap.
_MAX_DOMAIN_POWER_W = 1000.0


def counter_delta(start_uj: int, end_uj: int, max_range_uj: int) -> int:
    """Microjoules between two readings of a counter that wraps at `max_range_uj` (at most one wrap)."""
    if end_uj >= start_uj:
        return end_uj - start_uj
    return end_uj + max_range_uj - start_uj


@dataclass(frozen=True)
class RAPLDomain:
    label: str  # "package-0" or "package-0/dram"
    kind: str  # "package" | "dram"
    energy_file: Path
    max_range_uj: int


def _read_int(path: Path) -> int:
    return int(path.read_text().strip())


def find_domains(root: Path) -> list[RAPLDomain]:
    """Readable package and DRAM domains under `root`; raises MeterUnavailable saying why none is usable."""
    if not root.is_dir():
        raise MeterUnavailable(f"{root} does not exist (no powercap/RAPL support on this machine)")
    domains: list[RAPLDomain] = []
    problems: list[str] = []
    for package_dir in sorted(p for p in root.iterdir() if _PACKAGE_DIR.fullmatch(p.name)):
        try:
            package_name = (package_dir / "name").read_text().strip()
        except OSError as exc:
            problems.append(f"{package_dir / 'name'}: {exc.strerror or exc}")
            continue
        if not package_name.startswith("package"):
            continue  # e.g. "psys", the whole platform: would double-count the packages
        candidates = [(package_dir, package_name, "package")]
        for sub in sorted(p for p in package_dir.iterdir() if _SUBDOMAIN_DIR.fullmatch(p.name)):
            try:
                if (sub / "name").read_text().strip() == "dram":
                    candidates.append((sub, f"{package_name}/dram", "dram"))
            except OSError as exc:
                problems.append(f"{sub / 'name'}: {exc.strerror or exc}")
        for folder, label, kind in candidates:
            try:
                _read_int(folder / "energy_uj")
                max_range = _read_int(folder / "max_energy_range_uj")
            except (OSError, ValueError) as exc:
                problems.append(f"{folder / 'energy_uj'}: {getattr(exc, 'strerror', None) or exc}")
                continue
            domains.append(RAPLDomain(label, kind, folder / "energy_uj", max_range))
    if not any(d.kind == "package" for d in domains):
        detail = "; ".join(problems) if problems else "no intel-rapl:N package domain"
        raise MeterUnavailable(f"no readable RAPL package counter under {root} ({detail})")
    return domains


class RAPLMeter:
    method = "rapl"

    def __init__(self, root: str | Path = "/sys/class/powercap", poll_interval_s: float | None = None,
                 clock: Callable[[], float] = time.monotonic):
        self.root = Path(root)
        self.domains = find_domains(self.root)
        if poll_interval_s is None:
            smallest = min(d.max_range_uj for d in self.domains) / 1e6
            poll_interval_s = min(60.0, max(0.5, smallest / (2 * _MAX_DOMAIN_POWER_W)))
        self.poll_interval_s = poll_interval_s
        self._clock = clock

    def start(self) -> RAPLWindow:
        return RAPLWindow(self)


class RAPLWindow(Window):
    def __init__(self, meter: RAPLMeter):
        self._meter = meter
        self._lock = threading.Lock()
        self._last: dict[RAPLDomain, int] = {}
        self._total_uj: dict[RAPLDomain, int] = {d: 0 for d in meter.domains}
        self._errors: dict[RAPLDomain, str] = {}
        self._started_at = time.time()
        self._t0 = meter._clock()
        self.sample()
        self._stop_event = threading.Event()
        self._thread = threading.Thread(target=self._poll, name="rapl-sampler", daemon=True)
        self._thread.start()

    def sample(self) -> None:
        """Read every counter now and add what it moved since the last reading (the sampler calls this)."""
        with self._lock:
            for domain in self._meter.domains:
                if domain in self._errors:
                    continue
                try:
                    value = _read_int(domain.energy_file)
                except (OSError, ValueError) as exc:
                    self._errors[domain] = f"{domain.label}: {domain.energy_file} unreadable: {exc}"
                    continue
                if domain in self._last:
                    self._total_uj[domain] += counter_delta(self._last[domain], value, domain.max_range_uj)
                self._last[domain] = value

    def _poll(self) -> None:
        while not self._stop_event.wait(self._meter.poll_interval_s):
            self.sample()

    def _close(self) -> EnergyReading:
        self._stop_event.set()
        self._thread.join()
        self.sample()
        t1 = self._meter._clock()

        def joules(kind: str) -> float | None:
            chosen = [d for d in self._meter.domains if d.kind == kind]
            if not chosen or any(d in self._errors for d in chosen):
                return None
            return sum(self._total_uj[d] for d in chosen) / 1e6

        cpu_j, ram_j = joules("package"), joules("dram")
        has_dram = any(d.kind == "dram" for d in self._meter.domains)
        total = None if cpu_j is None or (has_dram and ram_j is None) else cpu_j + (ram_j or 0.0)
        return EnergyReading(
            method="rapl",
            is_estimated=False,
            tool_version="linux powercap",
            devices=[d.label for d in self._meter.domains],
            started_at=self._started_at,
            ended_at=time.time(),
            duration_s=t1 - self._t0,
            energy_j=total,
            cpu_j=cpu_j,
            ram_j=ram_j,
            error="; ".join(self._errors.values()) or None,
        )
