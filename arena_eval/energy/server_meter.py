"""An inference server's own energy figure, read at both ends of a window (method `server`).

TensorRT-LLM's `trtllm-serve` (with `enable_energy_metrics: true`) answers `GET /energy_metrics` with
`{"total_energy_j": J, "query_time": …}`: the cumulative energy of the GPUs it serves on, from NVML. A window is
the difference of two readings. A reply without the figure (503 while its monitor is off, another server's
format) makes that window unknown with the reason; nothing is raised into the run.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.parse
import urllib.request

from .meters import EnergyReading, MeterUnavailable, Window

TIMEOUT_S = 10.0
MAX_REPLY_BYTES = 64 * 1024


def figure_url(base_url: str, server: str) -> str:
    """Where the figure is: `server` as a path on `base_url`'s host, or `server` itself when it is a URL."""
    if not server.startswith("/"):
        return server
    parts = urllib.parse.urlsplit(base_url)
    return urllib.parse.urlunsplit((parts.scheme, parts.netloc.rpartition("@")[2], server, "", ""))


def read_total_j(url: str, timeout_s: float = TIMEOUT_S) -> float:
    """The server's cumulative energy now, in joules; MeterUnavailable saying why when it has none."""
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as reply:  # noqa: S310 (an http(s) URL from the config)
            body = reply.read(MAX_REPLY_BYTES)
    except urllib.error.HTTPError as exc:
        raise MeterUnavailable(f"{url} answered HTTP {exc.code} (a TensorRT-LLM server needs "
                               "enable_energy_metrics: true)") from None
    except (OSError, ValueError) as exc:
        raise MeterUnavailable(f"{url} cannot be read: {exc}") from None
    try:
        value = json.loads(body)["total_energy_j"]
        return float(value)
    except (ValueError, KeyError, TypeError):
        raise MeterUnavailable(f"{url} sent no total_energy_j (expected TensorRT-LLM's "
                               '{"total_energy_j": …})') from None


class ServerMeter:
    method = "server"

    def __init__(self, url: str):
        self.url = url
        self.tool_version = "server /energy_metrics"

    def start(self) -> ServerWindow:
        return ServerWindow(self)


class ServerWindow(Window):
    def __init__(self, meter: ServerMeter):
        self._meter = meter
        self._started_at = time.time()
        self._t0 = time.monotonic()
        self._error: str | None = None
        self._start_j: float | None = None
        try:
            before = time.monotonic()
            self._start_j = read_total_j(meter.url)
            self._t0 = (before + time.monotonic()) / 2  # the figure was taken inside the request
        except MeterUnavailable as exc:
            self._error = f"at window start: {exc}"

    def _close(self) -> EnergyReading:
        energy = None
        t1 = time.monotonic()
        if self._start_j is not None:
            try:
                before = time.monotonic()
                energy = read_total_j(self._meter.url) - self._start_j
                t1 = (before + time.monotonic()) / 2
            except MeterUnavailable as exc:
                self._error = f"at window end: {exc}"
        if energy is not None and energy < 0:  # the server restarted: its counter began again
            self._error, energy = f"{self._meter.url}: the figure went down during the window (server restarted?)", None
        return EnergyReading(method="server", is_estimated=False, tool_version=self._meter.tool_version,
                             devices=[self._meter.url], started_at=self._started_at, ended_at=time.time(),
                             duration_s=t1 - self._t0, energy_j=energy, gpu_j=energy, error=self._error)
