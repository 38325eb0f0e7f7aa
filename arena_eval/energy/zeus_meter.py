"""This machine's GPUs and CPU packages through Zeus (`zeus` on PyPI): one `ZeusMonitor` window per energy window.

Zeus reads NVIDIA GPUs' total-energy counters through NVML (AMD's through amdsmi), polls the power of GPUs that
have no counter in a process of its own and integrates it, and reads the CPU packages' and DRAM's RAPL counters
with a process that counts their wrap-arounds. What Zeus does not do, and is done here: choosing which devices
a window covers (the contestant's GPUs, CPU packages only when no GPU is metered, never RAPL's `psys` zone, which
would count the packages twice), naming the device that failed when a window cannot be read, and the memory in
use on the metered GPUs (Zeus has no reading of it: NVML's, through the handle Zeus opened).
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Sequence
from importlib import metadata
from typing import Any

from .meters import EnergyReading, MeterUnavailable, Window

_window_keys = itertools.count()


def zeus_version() -> str:
    try:
        return metadata.version("zeus")
    except metadata.PackageNotFoundError:
        raise MeterUnavailable("zeus is not installed (pip install 'arena-eval[zeus]')") from None


def _found(getter) -> tuple[Any, str | None]:
    """(Zeus's device manager, None) or (None, why Zeus found none)."""
    try:
        return getter(), None
    except Exception as exc:  # Zeus's init errors, and a RAPL tree only root may read
        return None, f"{type(exc).__name__}: {exc}"


def zeus_devices() -> dict[str, Any]:
    """What Zeus finds on this machine: its GPU and CPU managers, or why there are none (`energy check`)."""
    zeus_version()
    from zeus.device import get_cpus, get_gpus

    gpus, gpu_problem = _found(get_gpus)
    cpus, cpu_problem = _found(get_cpus)
    return {"gpus": gpus if gpus is not None and len(gpus) else None,
            "gpu_problem": gpu_problem or (None if gpus is not None and len(gpus) else "no GPU"),
            "cpus": cpus if cpus is not None and len(cpus) else None,
            "cpu_problem": cpu_problem or (None if cpus is not None and len(cpus) else "no CPU package")}


def _gpu_vendor(gpus: Any) -> str:
    return "amdsmi" if type(gpus).__name__.startswith("AMD") else "nvml"


def _cpu_name(cpus: Any, index: int) -> str:
    """RAPL's name of a zone ("package-0", "psys"), when Zeus keeps it."""
    try:
        return str(cpus.cpus[index].rapl_file.name)
    except (AttributeError, IndexError):
        return f"package-{index}"


class ZeusMeter:
    """GPU and CPU energy per window from Zeus. `gpus`: indices (after CUDA_VISIBLE_DEVICES), None for all;
    `cpus`: RAPL packages, None for all of them when no GPU is metered and none otherwise; `want` limits the
    meter to "gpu" or "cpu" (the `nvml` and `rapl` meter kinds)."""

    def __init__(self, gpus: Sequence[int] | None = None, cpus: Sequence[int] | None = None, want: str | None = None):
        self.tool_version = f"zeus {zeus_version()}"
        found = zeus_devices()
        self._gpus, self._cpus = found["gpus"], found["cpus"]
        gpu_indices: list[int] = []
        if want != "cpu" and self._gpus is not None:
            count = len(self._gpus)
            gpu_indices = list(range(count)) if gpus is None else list(gpus)
            unknown = [i for i in gpu_indices if not 0 <= i < count]
            if unknown:
                raise MeterUnavailable(f"no GPU with index {unknown} (Zeus sees {count}: 0..{count - 1})")
        cpu_indices: list[int] = []
        if want != "gpu" and self._cpus is not None and (cpus is not None or not gpu_indices):
            count = len(self._cpus)
            packages = [i for i in range(count) if _cpu_name(self._cpus, i).startswith("package")]
            cpu_indices = packages if cpus is None else list(cpus)
            unknown = [i for i in cpu_indices if i not in packages]
            if unknown:
                raise MeterUnavailable(f"no CPU package with index {unknown} (Zeus sees {packages})")
        if not gpu_indices and not cpu_indices:
            what = {"gpu": "no GPU", "cpu": "no CPU package"}.get(want or "", "nothing")
            raise MeterUnavailable(f"Zeus found {what} to measure (GPUs: {found['gpu_problem'] or 'not asked for'}; "
                                   f"CPUs: {found['cpu_problem'] or 'not asked for'})")
        self.gpu_indices, self.cpu_indices = gpu_indices, cpu_indices
        self.gpu_labels = {i: self._gpu_label(i) for i in gpu_indices}
        self.cpu_labels = {i: _cpu_name(self._cpus, i) for i in cpu_indices}
        self.dram = {i: bool(self._cpus.supports_get_dram_energy_consumption(i)) for i in cpu_indices}
        self.polled = [i for i in gpu_indices if not self._gpus.supports_get_total_energy_consumption(i)]
        parts = []
        if gpu_indices:
            parts.append(_gpu_vendor(self._gpus) + ("-power-poll" if self.polled else ""))
        if cpu_indices:
            parts.append("rapl")
        self.method = "+".join(parts)
        from zeus.monitor import ZeusMonitor

        self._monitor = ZeusMonitor(gpu_indices=gpu_indices, cpu_indices=cpu_indices)
        self._lock = threading.Lock()  # ZeusMonitor keeps its open windows in a plain dict

    def _gpu_label(self, index: int) -> str:
        try:
            return f"gpu{index} ({self._gpus.gpus[index].get_name()})"
        except Exception:
            return f"gpu{index}"

    @property
    def devices(self) -> list[str]:
        labels = [self.gpu_labels[i] for i in self.gpu_indices]
        for i in self.cpu_indices:
            labels += [self.cpu_labels[i]] + ([f"{self.cpu_labels[i]}/dram"] if self.dram[i] else [])
        return labels

    def start(self) -> ZeusWindow:
        return ZeusWindow(self)

    def failing_devices(self, exc: BaseException, when: str) -> str:
        """The window's error: which device does not answer now (each one asked in turn), else Zeus's own."""
        problems = []
        for i in self.gpu_indices:
            if i in self.polled:
                continue
            try:
                self._gpus.get_total_energy_consumption(i)
            except Exception as device_exc:
                problems.append(f"{self.gpu_labels[i]}: energy counter unreadable at window {when}: {device_exc}")
        for i in self.cpu_indices:
            try:
                self._cpus.get_total_energy_consumption(i)
            except Exception as device_exc:
                problems.append(f"{self.cpu_labels[i]}: RAPL counter unreadable at window {when}: {device_exc}")
        return "; ".join(problems) or f"zeus could not read the window's {when}: {type(exc).__name__}: {exc}"

    def memory_used_gb(self) -> float | None:
        """Accelerator memory in use now on the metered NVIDIA GPUs, in GB (None when it cannot be told)."""
        if not self.gpu_indices or _gpu_vendor(self._gpus) != "nvml":
            return None
        try:
            import pynvml

            return sum(pynvml.nvmlDeviceGetMemoryInfo(self._gpus.gpus[i].handle).used
                       for i in self.gpu_indices) / 1e9
        except Exception:
            return None


class ZeusWindow(Window):
    def __init__(self, meter: ZeusMeter):
        self._meter = meter
        self._key = f"arena-eval-{next(_window_keys)}"
        self._error: str | None = None
        self._started_at = time.time()
        self._t0 = time.monotonic()
        try:
            with meter._lock:
                # sync_execution: the model runs in another process; there is no framework here to wait for.
                meter._monitor.begin_window(self._key, sync_execution=False)
        except Exception as exc:
            self._error = meter.failing_devices(exc, "start")

    def _close(self) -> EnergyReading:
        meter = self._meter
        measurement = None
        if self._error is None:
            try:
                with meter._lock:
                    measurement = meter._monitor.end_window(self._key, sync_execution=False)
            except Exception as exc:
                self._error = meter.failing_devices(exc, "end")
        t1 = time.monotonic()
        gpu_j = cpu_j = ram_j = None
        if measurement is not None:
            if meter.gpu_indices:
                gpu_j = sum(measurement.gpu_energy.get(i, 0.0) for i in meter.gpu_indices)
            if meter.cpu_indices:
                cpu_j = sum((measurement.cpu_energy or {}).get(i, 0.0) for i in meter.cpu_indices)
                if any(meter.dram.values()):
                    ram_j = sum((measurement.dram_energy or {}).get(i, 0.0) for i in meter.cpu_indices)
        total = None if measurement is None else sum(v for v in (gpu_j, cpu_j, ram_j) if v is not None)
        return EnergyReading(
            method=meter.method,
            is_estimated=False,
            tool_version=meter.tool_version,
            devices=meter.devices,
            started_at=self._started_at,
            ended_at=time.time(),
            duration_s=t1 - self._t0,
            energy_j=total,
            gpu_j=gpu_j,
            cpu_j=cpu_j,
            ram_j=ram_j,
            error=self._error,
        )
