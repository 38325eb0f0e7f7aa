"""The meter interface: a meter opens a window, the window closes into an `EnergyReading`.

Every concrete meter (Zeus for this machine's GPUs and CPUs, zeusd for another machine's, a server's own
figures, CodeCarbon) lives in its own module and speaks this vocabulary. Meters are
cheap to hold: nothing happens per request, only at the edges of a window (one window per contestant batch).
Unknown energy is `None`, never 0.
"""

from __future__ import annotations

import re
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

from ..errors import ArenaError

# What measured a window (EnergyReading.method). A window over GPUs and CPU packages together joins its parts with
# "+" ("nvml+rapl"). zeusd: another machine's counters read through its Zeus daemon; server: the inference server's
# own cumulative figure (TensorRT-LLM's /energy_metrics).
METHODS = ("nvml", "nvml-power-poll", "amdsmi", "rapl", "zeusd", "zeusd-power-poll", "server", "codecarbon",
           "ecologits", "none")
# nvml and rapl are Zeus restricted to the GPUs or to the CPU packages (the names of the readers Zeus replaced).
MeterKind = Literal["auto", "zeus", "nvml", "rapl", "codecarbon", "none"]

J_PER_WH = 3600.0
J_PER_KWH = 3.6e6


class MeterUnavailable(ArenaError):
    """The requested meter cannot read anything on this machine; the message says why."""


def trapezoid_energy(times_s: Sequence[float], watts: Sequence[float]) -> float:
    """Joules under a sampled power curve (trapezoid rule); 0 for fewer than two samples."""
    if len(times_s) != len(watts):
        raise ValueError(f"{len(times_s)} sample times but {len(watts)} power values")
    total = 0.0
    for i in range(1, len(times_s)):
        total += (times_s[i] - times_s[i - 1]) * (watts[i] + watts[i - 1]) / 2.0
    return total


_GPU_LIST = re.compile(r"(?:cuda:|gpu:?)?(\d+(?:,\d+)*)")


def gpu_indices(device: str | None) -> list[int] | None:
    """GPU indices named by a contestant's `device` ("cuda:0", "gpu1", "cuda:0,1", "2"); None for anything else
    (e.g. "local"), meaning "meter every GPU"."""
    if device is None:
        return None
    match = _GPU_LIST.fullmatch(device.strip().lower())
    return [int(i) for i in match.group(1).split(",")] if match else None


@dataclass
class EnergyReading:
    """What one window (or one estimate) found. Joules; `None` means unknown, never 0."""

    method: str
    is_estimated: bool
    tool_version: str | None = None
    devices: list[str] = field(default_factory=list)
    started_at: float | None = None  # epoch seconds
    ended_at: float | None = None
    duration_s: float | None = None
    energy_j: float | None = None
    gpu_j: float | None = None
    cpu_j: float | None = None
    ram_j: float | None = None
    error: str | None = None

    @property
    def energy_wh(self) -> float | None:
        return None if self.energy_j is None else self.energy_j / J_PER_WH

    @property
    def avg_power_w(self) -> float | None:
        if self.energy_j is None or not self.duration_s:
            return None
        return self.energy_j / self.duration_s

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class Window(ABC):
    """An open measurement. `stop()` closes it once (later calls return the same reading); also a context manager."""

    reading: EnergyReading | None = None

    def stop(self) -> EnergyReading:
        if self.reading is None:
            self.reading = self._close()
        return self.reading

    @abstractmethod
    def _close(self) -> EnergyReading:
        """Read the end of the window. Must not raise for a sensor failure: report it in `error`."""

    def __enter__(self) -> Window:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


@runtime_checkable
class Meter(Protocol):
    method: str

    def start(self) -> Window: ...


class _NullWindow(Window):
    def __init__(self, clock: Callable[[], float]):
        self._clock = clock
        self._t0 = clock()
        self._started_at = time.time()

    def _close(self) -> EnergyReading:
        return EnergyReading(method="none", is_estimated=True, started_at=self._started_at, ended_at=time.time(),
                             duration_s=self._clock() - self._t0)


class NullMeter:
    """No sensor and no estimator: windows keep their timing, energy stays unknown (None)."""

    method = "none"

    def __init__(self, reason: str = "no energy meter available", clock: Callable[[], float] = time.monotonic):
        self.reason = reason
        self._clock = clock

    def start(self) -> Window:
        return _NullWindow(self._clock)


def measure_idle_power(meter: Meter, seconds: float, sleep: Callable[[float], None] = time.sleep) -> float | None:
    """Average power (W) over `seconds` of doing nothing; None when the meter cannot tell."""
    if seconds <= 0:
        raise ValueError(f"idle measurement needs a positive duration, got {seconds} s")
    with meter.start() as window:
        sleep(seconds)
    return window.stop().avg_power_w


class _SumWindow(Window):
    def __init__(self, meters: Sequence[Meter]):
        for meter in meters:  # connect every part first, so that their windows open back to back
            prepare = getattr(meter, "prepare", None)
            if prepare is not None:
                prepare()
        self._windows = [m.start() for m in meters]

    def _close(self) -> EnergyReading:
        readings = [w.stop() for w in self._windows]

        def total(field_name: str) -> float | None:
            values = [getattr(r, field_name) for r in readings]
            if all(v is None for v in values):
                return None
            # A part that one reading has and another lacks is unknown for the sum, never counted as 0.
            return None if any(v is None for v in values) else sum(values)

        errors = [r.error for r in readings if r.error]
        starts = [r.started_at for r in readings if r.started_at is not None]
        ends = [r.ended_at for r in readings if r.ended_at is not None]
        durations = [r.duration_s for r in readings if r.duration_s is not None]
        return EnergyReading(
            method=readings[0].method, is_estimated=any(r.is_estimated for r in readings),
            tool_version=readings[0].tool_version, devices=[d for r in readings for d in r.devices],
            started_at=min(starts) if starts else None, ended_at=max(ends) if ends else None,
            duration_s=max(durations) if durations else None,
            energy_j=None if any(r.energy_j is None for r in readings) else sum(r.energy_j or 0.0 for r in readings),
            gpu_j=total("gpu_j"), cpu_j=total("cpu_j"), ram_j=total("ram_j"),
            error="; ".join(errors) if errors else None,
        )


class SumMeter:
    """Several meters read as one (the replicas of one endpoint): a window opens one on each and closes into their
    sum. The energy is unknown as soon as one part is; every part's error is kept."""

    def __init__(self, meters: Sequence[Meter]):
        if not meters:
            raise ValueError("SumMeter needs at least one meter")
        self.meters = list(meters)
        self.method = self.meters[0].method

    def start(self) -> Window:
        return _SumWindow(self.meters)
