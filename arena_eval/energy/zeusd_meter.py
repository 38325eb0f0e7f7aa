"""Another machine's GPUs and CPU packages through its Zeus daemon (zeusd), read with Zeus's own `ZeusdClient`.

A window reads the daemon's cumulative counters at both ends (GPU energy in mJ, CPU package and DRAM in µJ); a
GPU whose counter the daemon cannot read is sampled instead (`/gpu/get_power`, 10 Hz, trapezoid rule: Zeus's
`PowerStreamingClient` keeps only the latest reading, so the snapshot endpoint gives the same samples with less
machinery). The client connects on first use and again after a failure: a daemon that cannot be reached makes
that window's energy unknown with the reason, never stops the run. The token comes from the environment variable
the config names; it is registered as a secret and never written anywhere.
"""

from __future__ import annotations

import os
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from typing import Any

from ..errors import ConfigError
from ..redaction import register_secret
from .config import EndpointEnergy
from .meters import EnergyReading, MeterUnavailable, Window, trapezoid_energy
from .zeus_meter import zeus_version


class DaemonRefused(ConfigError):
    """The daemon answered but will not let this token read it (a wrong or missing token, a missing scope)."""


def token_from(spec: EndpointEnergy) -> str | None:
    """The daemon's token from the variable `token_env` names; a named variable that is unset is an error."""
    if spec.token_env is None:
        return None
    token = os.environ.get(spec.token_env)
    if not token:
        raise DaemonRefused(f"energy.token_env names {spec.token_env}, which is not set: export {spec.token_env}=<the "
                            f"token zeusd issued> before the run (zeusd at {spec.zeusd})")
    register_secret(token)
    return token


def connect(spec: EndpointEnergy) -> Any:
    """A `ZeusdClient` for `spec.zeusd` that may read what the spec asks for; DaemonRefused when the daemon refuses
    (naming the variable, never the token), MeterUnavailable when it cannot be reached or lacks a device."""
    zeus_version()
    from zeus.utils.zeusd import ZeusdClient, ZeusdConfig

    assert spec.zeusd is not None
    token = token_from(spec)
    parts = urllib.parse.urlsplit(spec.zeusd)
    if parts.scheme == "unix":
        config = ZeusdConfig.uds(socket_path=parts.path, token=token)
    else:
        config = ZeusdConfig.tcp(parts.hostname or "", parts.port or 0, token=token)
    try:
        client = ZeusdClient(config)
    except Exception as exc:  # ZeusdConnectionError, or a reply that is not zeusd's
        raise MeterUnavailable(f"zeusd at {spec.zeusd} cannot be reached: {_short(exc)}") from None
    if client.auth_error:
        where = (f"the token in {spec.token_env}" if spec.token_env else
                 "no token (this daemon requires one: name its variable in energy.token_env)")
        raise DaemonRefused(f"zeusd at {spec.zeusd} refused {where}; give a token this daemon issued")
    wants_gpu = bool(spec.gpus) or (spec.gpus is None and bool(client.gpu_ids))
    if wants_gpu and not client.can_read_gpu:
        raise DaemonRefused(f"zeusd at {spec.zeusd} does not let {_token_words(spec)} read GPUs (scope gpu-read, "
                            "or the daemon's gpu-read API group, is missing)")
    if spec.cpus and not client.can_read_cpu:
        raise DaemonRefused(f"zeusd at {spec.zeusd} does not let {_token_words(spec)} read CPUs (scope cpu-read, "
                            "or the daemon's cpu-read API group, is missing)")
    for what, asked, served in (("GPU", spec.gpus, client.gpu_ids), ("CPU", spec.cpus, client.cpu_ids)):
        missing = sorted(set(asked or []) - set(served))
        if missing:
            raise MeterUnavailable(f"zeusd at {spec.zeusd} has no {what} {missing} (it serves {served})")
    return client


def _token_words(spec: EndpointEnergy) -> str:
    return f"the token in {spec.token_env}" if spec.token_env else "a request without a token"


def _short(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text if len(text) <= 300 else text[:300] + "…"


@dataclass
class _Plan:
    """What one daemon's windows read, fixed at the first connection."""

    gpus: list[int]
    cpus: list[int]
    polled: list[int]  # GPUs without a readable counter: sampled
    labels: dict[str, str] = field(default_factory=dict)
    dram: dict[int, bool] = field(default_factory=dict)


class ZeusdMeter:
    """Energy per window from one zeusd. `connect_with` replaces `connect` (tests)."""

    def __init__(self, spec: EndpointEnergy, poll_hz: float = 10.0, connect_with=connect):
        if spec.zeusd is None:
            raise ValueError("ZeusdMeter needs a spec with zeusd")
        self.spec = spec
        self.address = spec.zeusd
        self.tool_version = f"zeus {zeus_version()} (zeusd)"
        self._connect = connect_with
        self._poll_interval = 1.0 / poll_hz
        self._client: Any = None
        self._plan: _Plan | None = None
        self._lock = threading.Lock()
        self.method = "zeusd"  # "zeusd-power-poll" once the daemon turns out to lack a GPU's counter

    def client(self) -> tuple[Any, _Plan]:
        """The connected client and what it reads; connects (again) when there is none. Raises what `connect` raises."""
        with self._lock:
            if self._client is None:
                client = self._connect(self.spec)
                if self._plan is None:
                    self._plan = self._make_plan(client)
                    self.method = "zeusd-power-poll" if self._plan.polled else "zeusd"
                self._client = client
            assert self._plan is not None
            return self._client, self._plan

    def prepare(self) -> None:
        """Connect now if not yet connected (a failure is left for the window to report)."""
        try:
            self.client()
        except Exception:
            pass

    def forget_client(self) -> None:
        """After a failed read: the next window connects afresh (the daemon may have restarted)."""
        with self._lock:
            self._client = None

    def _make_plan(self, client: Any) -> _Plan:
        spec = self.spec
        gpus = list(client.gpu_ids) if spec.gpus is None else list(spec.gpus)
        cpus = list(spec.cpus) if spec.cpus is not None else ([] if gpus else list(client.cpu_ids))
        polled = []
        for gpu in gpus:
            try:
                client.get_gpu_energy([gpu])
            except Exception:  # the daemon's NVML has no counter for it
                polled.append(gpu)
        names = {g.id: g.name for g in client.gpus}
        labels = {f"gpu{g}": f"{self.address} gpu{g} ({names.get(g, '?')})" for g in gpus}
        labels |= {f"cpu{c}": f"{self.address} cpu{c}" for c in cpus}
        dram = dict(zip(client.cpu_ids, client.dram_available, strict=False))
        return _Plan(gpus, cpus, polled, labels, {c: bool(dram.get(c)) for c in cpus})

    def read_counters(self) -> tuple[dict[int, float], dict[int, float], dict[int, float]]:
        """(GPU J, CPU J, DRAM J) cumulative, per device with a counter."""
        client, plan = self.client()
        counted = [g for g in plan.gpus if g not in plan.polled]
        gpu = {k: v / 1e3 for k, v in client.get_gpu_energy(counted).items()} if counted else {}
        cpu: dict[int, float] = {}
        dram: dict[int, float] = {}
        if plan.cpus:
            for k, result in client.get_cpu_energy(plan.cpus, cpu=True, dram=True).items():
                if result.cpu_energy_uj is not None:
                    cpu[k] = result.cpu_energy_uj / 1e6
                if result.dram_energy_uj is not None:
                    dram[k] = result.dram_energy_uj / 1e6
        return gpu, cpu, dram

    def devices(self) -> list[str]:
        return list(self._plan.labels.values()) if self._plan is not None else [self.address]

    def start(self) -> ZeusdWindow:
        return ZeusdWindow(self)


class ZeusdWindow(Window):
    """The window's time runs from the middle of the start reading to the middle of the end one: the counters were
    read somewhere inside each request, so its watts stay the daemon's, whatever the network's delay."""

    def __init__(self, meter: ZeusdMeter):
        self._meter = meter
        self._error: str | None = None
        self._started_at = time.time()
        self._t0 = time.monotonic()
        self._start: tuple[dict[int, float], dict[int, float], dict[int, float]] | None = None
        self._samples: dict[int, tuple[list[float], list[float]]] = {}
        self._stop_event = threading.Event()
        self._thread: threading.Thread | None = None
        try:
            meter.client()  # connecting (discovery, the token) is not part of the window
            before = time.monotonic()
            self._start = meter.read_counters()
            self._t0 = (before + time.monotonic()) / 2
        except (DaemonRefused, MeterUnavailable) as exc:
            self._error = f"{exc} (at window start)"
            meter.forget_client()
        except Exception as exc:
            self._error = f"zeusd at {meter.address} unreadable at window start: {_short(exc)}"
            meter.forget_client()
        plan = meter._plan
        if self._error is None and plan is not None and plan.polled:
            self._samples = {g: ([], []) for g in plan.polled}
            self._sample()
            self._thread = threading.Thread(target=self._poll, name="zeusd-power-poll", daemon=True)
            self._thread.start()

    def _sample(self) -> None:
        client, plan = self._meter.client()
        snapshot = client.get_gpu_power(plan.polled)
        for gpu, milliwatts in snapshot.power_mw.items():
            if gpu in self._samples:
                times, watts = self._samples[gpu]
                times.append(snapshot.timestamp_ms / 1000.0)
                watts.append(milliwatts / 1000.0)

    def _poll(self) -> None:
        while not self._stop_event.wait(self._meter._poll_interval):
            try:
                self._sample()
            except Exception as exc:
                self._error = f"zeusd at {self._meter.address}: power samples stopped during the window: {_short(exc)}"
                return

    def _close(self) -> EnergyReading:
        meter = self._meter
        if self._thread is not None:
            self._stop_event.set()
            self._thread.join()
        end = None
        t1 = time.monotonic()
        if self._error is None:
            try:
                if self._samples:
                    self._sample()
                before = time.monotonic()
                end = meter.read_counters()
                t1 = (before + time.monotonic()) / 2
            except Exception as exc:
                self._error = f"zeusd at {meter.address} unreadable at window end: {_short(exc)}"
                meter.forget_client()
        gpu_j = cpu_j = ram_j = total = None
        plan = meter._plan
        if end is not None and self._start is not None and plan is not None:
            (g0, c0, d0), (g1, c1, d1) = self._start, end
            polled = sum(trapezoid_energy(*self._samples[g]) for g in plan.polled) if plan.polled else 0.0
            gpu_j = (sum(g1[g] - g0[g] for g in g0 if g in g1) + polled) if plan.gpus else None
            cpu_j = sum(c1[c] - c0[c] for c in c0 if c in c1) if plan.cpus else None
            ram_j = sum(d1[c] - d0[c] for c in d0 if c in d1) if any(plan.dram.values()) else None
            total = sum(v for v in (gpu_j, cpu_j, ram_j) if v is not None)
        return EnergyReading(
            method=meter.method,
            is_estimated=False,
            tool_version=meter.tool_version,
            devices=meter.devices(),
            started_at=self._started_at,
            ended_at=time.time(),
            duration_s=t1 - self._t0,
            energy_j=total,
            gpu_j=gpu_j,
            cpu_j=cpu_j,
            ram_j=ram_j,
            error=self._error,
        )
