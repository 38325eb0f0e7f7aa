"""The meter interface: a meter opens a window, the window closes into an `EnergyReading`.

Every concrete meter (NVML, RAPL, CodeCarbon) lives in its own module and speaks this vocabulary. Meters are
cheap to hold: nothing happens per request, only at the edges of a window (one window per contestant batch).
Unknown energy is `None`, never 0.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

from ..errors import ArenaError

METHODS = ("nvml", "nvml-power-poll", "rapl", "codecarbon", "ecologits", "none")
MeterKind = Literal["auto", "nvml", "rapl", "codecarbon", "none"]

J_PER_WH = 3600.0
J_PER_KWH = 3.6e6


class MeterUnavailable(ArenaError):
    """The requested meter cannot read anything on this machine; the message says why."""


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
