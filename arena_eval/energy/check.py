"""`arena-eval energy check`: for every endpoint of a config, which meter will measure it, what that meter sees
(devices, counters, idle watts over a few seconds), or why nothing can (docs/design.md §3.5.1).

A contestant counts as measured when its model runs on this machine and a sensor reads it (not CodeCarbon's
estimate), or runs elsewhere and its `energy:` source answers. API models (no base_url, or litellm) are
estimated per request by EcoLogits and count neither way.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .available import available_meter
from .meters import Meter, MeterUnavailable
from .tracking import EnergyTracker

if TYPE_CHECKING:
    from ..config import EndpointConfig, RunConfig

ESTIMATES = ("codecarbon", "none")


@dataclass
class EndpointCheck:
    role: str  # "contestant" | "judge"
    name: str
    where: str  # "this machine", "another machine", "an API"
    meter: str | None = None  # the method that will measure it; None when nothing will
    lines: list[str] = field(default_factory=list)  # what the meter sees, or why nothing can
    idle_w: float | None = None

    @property
    def measured(self) -> bool:
        return self.meter is not None and self.meter not in ESTIMATES


def _is_api(endpoint: EndpointConfig) -> bool:
    return not endpoint.is_local and endpoint.energy is None and (endpoint.base_url is None
                                                                   or endpoint.provider == "litellm")


def _idle(meter: Meter, seconds: float, check: EndpointCheck) -> None:
    try:
        with meter.start() as window:
            time.sleep(seconds)
        reading = window.stop()
    except Exception as exc:  # a meter that cannot open a window at all
        check.lines.append(f"idle power: cannot be read: {exc}")
        return
    if reading.error:
        check.lines.append(f"idle power: unknown ({reading.error})")
        check.meter = None
        return
    check.idle_w = reading.avg_power_w
    watts = f"{check.idle_w:.1f} W" if check.idle_w is not None else "unknown"
    joules = f"{reading.energy_j:.1f} J" if reading.energy_j is not None else "? J"
    check.lines.append(f"idle power: {watts} over {reading.duration_s or seconds:.1f} s ({joules})")


def _local(config: RunConfig, endpoint: EndpointConfig, check: EndpointCheck, seconds: float,
           meters: dict[str, tuple[Meter | None, str | None]]) -> None:
    from .meters import gpu_indices

    energy = config.energy
    if endpoint.device not in meters:
        try:
            country = energy.country if energy.country != "WOR" else "USA"
            found: Meter | None = available_meter(energy.meter, devices=gpu_indices(endpoint.device) or energy.gpus,
                                                  cpus=energy.cpus, country_iso_code=country)
            meters[endpoint.device] = (found, None)
        except MeterUnavailable as exc:
            meters[endpoint.device] = (None, str(exc))
    meter, problem = meters[endpoint.device]
    if meter is None:
        check.lines.append(f"energy.meter {energy.meter}: {problem}")
        return
    check.meter = meter.method
    if meter.method == "none":
        check.lines.append(getattr(meter, "reason", "no meter"))
        return
    devices = getattr(meter, "devices", None)
    if devices:
        check.lines.append(f"devices: {', '.join(devices)}")
    if meter.method == "codecarbon":
        check.lines.append("CodeCarbon estimates from CPU load and a default power per core: no sensor is read")
    elif meter.method.startswith(("nvml", "amdsmi", "rapl")):
        check.lines.append(f"read through {getattr(meter, 'tool_version', 'zeus')}")
    _idle(meter, seconds, check)


def _remote(endpoint: EndpointConfig, check: EndpointCheck, seconds: float) -> None:
    from .available import remote_meter
    from .server_meter import figure_url, read_total_j
    from .zeusd_meter import DaemonRefused, ZeusdMeter

    sources = endpoint.energy_sources()
    ok = True
    for spec, base_url in sources:
        if spec.zeusd is not None:
            daemon = ZeusdMeter(spec)
            try:
                client, plan = daemon.client()
                gpu, cpu, dram = daemon.read_counters()
            except (MeterUnavailable, DaemonRefused) as exc:
                check.lines.append(str(exc))
                ok = False
                continue
            except Exception as exc:
                check.lines.append(f"zeusd at {spec.zeusd}: {exc}")
                ok = False
                continue
            names = {g.id: g.name for g in client.gpus}
            gpus = ", ".join(f"gpu{g} ({names.get(g, '?')})" for g in plan.gpus) or "none"
            check.lines.append(f"zeusd at {spec.zeusd}: GPUs {gpus}"
                               f"{f', sampled (no counter): {plan.polled}' if plan.polled else ''}; "
                               f"CPU packages {plan.cpus}"
                               + (f"; auth as {spec.token_env}" if spec.token_env else ""))
            counters = [f"gpu{g} {j:.1f} J" for g, j in gpu.items()] + [f"cpu{c} {j:.1f} J" for c, j in cpu.items()]
            counters += [f"cpu{c} dram {j:.1f} J" for c, j in dram.items()]
            check.lines.append("  counters: " + (", ".join(counters) or "none (power samples only)"))
        else:
            assert spec.server is not None
            url = figure_url(base_url or "", spec.server)
            try:
                check.lines.append(f"server figure {url}: {read_total_j(url):.1f} J so far")
            except MeterUnavailable as exc:
                check.lines.append(str(exc))
                ok = False
    if not ok:
        return
    meter = remote_meter([s for s, _ in sources], [u for _, u in sources])
    check.meter = meter.method
    _idle(meter, seconds, check)


def check_endpoints(config: RunConfig, seconds: float = 3.0) -> list[EndpointCheck]:
    """One EndpointCheck per contestant and judge, in the config's order."""
    endpoints: list[tuple[str, str, EndpointConfig]] = [("contestant", c.name, c) for c in config.contestants]
    endpoints += [("judge", j.label if len(config.judges) > 1 else "judge", j) for j in config.judges]
    local_meters: dict[str, tuple[Meter | None, str | None]] = {}
    checks = []
    for role, name, endpoint in endpoints:
        if endpoint.energy is not None:
            check = EndpointCheck(role, name, "another machine")
            _remote(endpoint, check, seconds)
        elif endpoint.is_local:
            check = EndpointCheck(role, name, "this machine")
            _local(config, endpoint, check, seconds, local_meters)
        elif _is_api(endpoint):
            check = EndpointCheck(role, name, "an API")
            check.lines.append("an API model: EcoLogits estimates its energy per request" if config.energy.estimate_api
                               else "an API model, and energy.estimate_api is off: its energy stays unknown")
        else:
            check = EndpointCheck(role, name, "another machine")
            check.lines.append(f"its server ({endpoint.base_url}) runs elsewhere and says nothing of its power: add "
                               "energy: {zeusd: http://HOST:4938} (the machine's Zeus daemon) or energy: {server: "
                               "/energy_metrics} (a server that reports its own)")
        checks.append(check)
    return checks


def check_exit_code(checks: list[EndpointCheck]) -> int:
    """0 when every contestant on this machine or another one has a meter that measures it, else 2."""
    needed = [c for c in checks if c.role == "contestant" and c.where != "an API"]
    return 0 if all(c.measured for c in needed) else 2


def lock_groups(config: RunConfig) -> list[str]:
    """Endpoints that share a metered device, and so take turns (a line each)."""
    metered = [c for c in config.contestants if EnergyTracker.metered(c)]
    tracker = EnergyTracker(config.energy, None, "", metered)
    sharing: dict[str, list[str]] = {}
    for contestant in metered:
        try:
            keys = tracker.lock_keys(contestant)
        except MeterUnavailable:  # this machine has no meter: said above, under the contestant
            continue
        for key in keys:
            sharing.setdefault(key, []).append(contestant.name)
    return [f"{key}: {', '.join(names)} take turns" for key, names in sharing.items() if len(names) > 1]
