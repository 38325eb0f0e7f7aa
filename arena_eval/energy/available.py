"""Which energy meter measures an endpoint (docs/design.md §3.5.1): on this machine Zeus > CodeCarbon's estimate >
none; on another machine what the endpoint's `energy:` names (its zeusd, or its server's own figures).

Its own module because it builds the concrete meters, which import `meters` for the shared vocabulary: kept in
`meters`, the two would import each other.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

from .codecarbon_meter import CodeCarbonMeter
from .config import EndpointEnergy
from .meters import Meter, MeterKind, MeterUnavailable, NullMeter, SumMeter
from .server_meter import ServerMeter, figure_url
from .zeus_meter import ZeusMeter
from .zeusd_meter import ZeusdMeter

log = logging.getLogger(__name__)


def available_meter(kind: MeterKind = "auto", *, devices: list[int] | None = None, cpus: list[int] | None = None,
                    country_iso_code: str = "USA") -> Meter:
    """The best meter this machine can read: Zeus (its GPUs, else its CPU packages) > CodeCarbon's estimate >
    NullMeter. `nvml` and `rapl` are Zeus restricted to the GPUs or to the CPU packages.

    An explicit `kind` that cannot work raises `MeterUnavailable` saying why; "auto" never raises.
    """
    builders: dict[str, Callable[[], Meter]] = {
        "zeus": lambda: ZeusMeter(gpus=devices, cpus=cpus),
        "nvml": lambda: ZeusMeter(gpus=devices, want="gpu"),
        "rapl": lambda: ZeusMeter(cpus=cpus, want="cpu"),
        "codecarbon": lambda: CodeCarbonMeter(country_iso_code=country_iso_code),
        "none": lambda: NullMeter("energy metering switched off (meter: none)"),
    }
    if kind != "auto":
        if kind not in builders:
            raise MeterUnavailable(f"unknown meter {kind!r}; choose one of auto, {', '.join(builders)}")
        return builders[kind]()
    reasons = []
    for name in ("zeus", "codecarbon"):
        try:
            meter = builders[name]()
        except MeterUnavailable as exc:
            reasons.append(f"{name}: {exc}")
            continue
        log.info("energy meter: %s", name)
        return meter
    reason = "no energy meter available (" + "; ".join(reasons) + ")"
    log.warning("%s; energy will be reported as unknown", reason)
    return NullMeter(reason)


def remote_meter(specs: Sequence[EndpointEnergy], base_urls: Sequence[str | None]) -> Meter:
    """The meter of an endpoint whose power is measured elsewhere: one part per spec (a replica each, paired with
    its base URL), summed. Builds without contacting anything: a daemon is reached when a window opens."""
    parts: list[Meter] = []
    for spec, base_url in zip(specs, base_urls, strict=True):
        if spec.zeusd is not None:
            parts.append(ZeusdMeter(spec))
        else:
            assert spec.server is not None
            if base_url is None and spec.server.startswith("/"):
                raise MeterUnavailable(f"energy.server {spec.server!r} is a path, but the endpoint has no base_url "
                                       "to find its host: give the whole URL")
            parts.append(ServerMeter(figure_url(base_url or "", spec.server)))
    return parts[0] if len(parts) == 1 else SumMeter(parts)
