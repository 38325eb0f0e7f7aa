"""NVIDIA GPUs through NVML (the `pynvml` module of nvidia-ml-py).

Per device the total-energy counter (mJ since the driver loaded, 64-bit: it does not wrap in practice) is read
at both ends of a window. Devices without that counter (older than Volta, some virtual GPUs) are polled for
power by one sampler thread and the samples are integrated with the trapezoid rule. A device that stops
answering closes the window with `error` naming it and energy unknown; nothing is raised into the run.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from types import ModuleType
from typing import Any

from .meters import EnergyReading, MeterUnavailable, Window


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
    """NVML indices named by a contestant's `device` ("cuda:0", "gpu1", "cuda:0,1", "2"); None for anything else
    (e.g. "local"), meaning "meter every GPU"."""
    if device is None:
        return None
    match = _GPU_LIST.fullmatch(device.strip().lower())
    return [int(i) for i in match.group(1).split(",")] if match else None


def _import_pynvml() -> ModuleType:
    try:
        import pynvml
    except ImportError:
        raise MeterUnavailable("nvidia-ml-py is not installed (pip install nvidia-ml-py)") from None
    return pynvml


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


@dataclass
class _Device:
    index: int
    handle: Any
    label: str  # "gpu0 (NVIDIA H100 80GB HBM3)"
    has_counter: bool


class NVMLMeter:
    """GPU energy per window from NVML; `nvml` is any object with the pynvml functions (tests pass a fake)."""

    method = "nvml"

    def __init__(self, devices: Sequence[int] | None = None, nvml: Any = None, poll_hz: float = 10.0,
                 clock: Callable[[], float] = time.monotonic):
        if poll_hz <= 0:
            raise ValueError(f"poll_hz must be positive, got {poll_hz}")
        self._nvml = nvml if nvml is not None else _import_pynvml()
        self._error = self._nvml.NVMLError
        self._poll_interval = 1.0 / poll_hz
        self._clock = clock
        try:
            self._nvml.nvmlInit()
            count = self._nvml.nvmlDeviceGetCount()
        except self._error as exc:
            raise MeterUnavailable(f"NVML cannot start: {exc}") from None
        if count < 1:
            raise MeterUnavailable("NVML found no GPU")
        indices = list(range(count)) if devices is None else list(devices)
        unknown = [i for i in indices if not 0 <= i < count]
        if unknown:
            raise MeterUnavailable(f"no GPU with index {unknown} (NVML sees {count}: 0..{count - 1})")
        self.devices = [self._open(i) for i in indices]
        self.tool_version = self._version(nvml is None)

    def _open(self, index: int) -> _Device:
        nvml = self._nvml
        try:
            handle = nvml.nvmlDeviceGetHandleByIndex(index)
            label = f"gpu{index} ({_text(nvml.nvmlDeviceGetName(handle))})"
        except self._error as exc:
            raise MeterUnavailable(f"NVML cannot open gpu{index}: {exc}") from None
        try:
            nvml.nvmlDeviceGetTotalEnergyConsumption(handle)
            has_counter = True
        except self._error:  # NotSupported on pre-Volta parts and some vGPUs: poll power instead
            has_counter = False
        return _Device(index, handle, label, has_counter)

    def _version(self, real_module: bool) -> str | None:
        parts = []
        if real_module:
            try:
                parts.append(f"nvidia-ml-py {metadata.version('nvidia-ml-py')}")
            except metadata.PackageNotFoundError:
                pass
        try:
            parts.append(f"driver {_text(self._nvml.nvmlSystemGetDriverVersion())}")
        except (AttributeError, self._error):
            pass
        return ", ".join(parts) or None

    @property
    def polls_power(self) -> bool:
        return any(not d.has_counter for d in self.devices)

    def start(self) -> NVMLWindow:
        return NVMLWindow(self)

    def memory_used_gb(self) -> float | None:
        """Accelerator memory in use now on the metered GPUs, in GB (None when NVML cannot tell)."""
        try:
            return sum(self._nvml.nvmlDeviceGetMemoryInfo(d.handle).used for d in self.devices) / 1e9
        except (AttributeError, self._error):
            return None

    def close(self) -> None:
        try:
            self._nvml.nvmlShutdown()
        except (AttributeError, self._error):
            pass


@dataclass
class _DeviceWindow:
    device: _Device
    start_mj: int | None = None
    times: list[float] = field(default_factory=list)
    watts: list[float] = field(default_factory=list)
    error: str | None = None


class NVMLWindow(Window):
    def __init__(self, meter: NVMLMeter):
        self._meter = meter
        self._nvml = meter._nvml
        self._lock = threading.Lock()
        self._states = [_DeviceWindow(d) for d in meter.devices]
        self._started_at = time.time()
        self._t0 = meter._clock()
        for state in self._states:
            if state.device.has_counter:
                state.start_mj = self._read_counter(state, "start")
        self._sample(self._t0)
        self._stop_event = threading.Event()
        self._thread = None
        if meter.polls_power:
            self._thread = threading.Thread(target=self._poll, name="nvml-power-poll", daemon=True)
            self._thread.start()

    def _read_counter(self, state: _DeviceWindow, when: str) -> int | None:
        try:
            return self._nvml.nvmlDeviceGetTotalEnergyConsumption(state.device.handle)
        except self._meter._error as exc:
            state.error = f"{state.device.label}: energy counter unreadable at window {when}: {exc}"
            return None

    def _sample(self, now: float | None = None) -> None:
        """One power sample for every polled device still answering; the clock is read under the lock so
        that samples from the thread and from start/stop stay in time order."""
        with self._lock:
            t = self._meter._clock() if now is None else now
            for state in self._states:
                if state.device.has_counter or state.error is not None:
                    continue
                try:
                    milliwatts = self._nvml.nvmlDeviceGetPowerUsage(state.device.handle)
                except self._meter._error as exc:
                    state.error = f"{state.device.label}: power reading failed during the window: {exc}"
                    continue
                state.times.append(t)
                state.watts.append(milliwatts / 1000.0)

    def _poll(self) -> None:
        while not self._stop_event.wait(self._meter._poll_interval):
            self._sample()

    def _close(self) -> EnergyReading:
        if self._thread is not None:
            self._stop_event.set()
            self._thread.join()
        t1 = self._meter._clock()
        self._sample(t1)
        energies: list[float | None] = []
        for state in self._states:
            if state.error is not None:
                energies.append(None)
            elif state.device.has_counter:
                end = self._read_counter(state, "end")
                energies.append(None if end is None or state.start_mj is None else (end - state.start_mj) / 1000.0)
            else:
                energies.append(trapezoid_energy(state.times, state.watts))
        errors = [s.error for s in self._states if s.error is not None]
        total = None if any(e is None for e in energies) else sum(energies)  # type: ignore[arg-type]
        return EnergyReading(
            method="nvml-power-poll" if self._meter.polls_power else "nvml",
            is_estimated=False,
            tool_version=self._meter.tool_version,
            devices=[s.device.label for s in self._states],
            started_at=self._started_at,
            ended_at=time.time(),
            duration_s=t1 - self._t0,
            energy_j=total,
            gpu_j=total,
            error="; ".join(errors) if errors else None,
        )
