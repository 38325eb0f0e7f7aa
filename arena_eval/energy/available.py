"""Which energy meter this machine can read (docs/design.md §3.5.1): NVML > RAPL > CodeCarbon's estimate > none.

Its own module because it builds the concrete meters, which import `meters` for the shared vocabulary: kept in
`meters`, the two would import each other.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from .codecarbon_meter import CodeCarbonMeter
from .meters import Meter, MeterKind, MeterUnavailable, NullMeter
from .nvml import NVMLMeter
from .rapl import RAPLMeter

log = logging.getLogger(__name__)


def available_meter(kind: MeterKind = "auto", *, devices: list[int] | None = None,
                    rapl_root: str = "/sys/class/powercap", country_iso_code: str = "USA", nvml: Any = None) -> Meter:
    """The best meter this machine can read: NVML > RAPL > CodeCarbon's estimate > NullMeter.

    An explicit `kind` that cannot work raises `MeterUnavailable` saying why; "auto" never raises.
    `nvml` replaces the pynvml module (tests).
    """
    builders: dict[str, Callable[[], Meter]] = {
        "nvml": lambda: NVMLMeter(devices=devices, nvml=nvml),
        "rapl": lambda: RAPLMeter(root=rapl_root),
        "codecarbon": lambda: CodeCarbonMeter(country_iso_code=country_iso_code),
        "none": lambda: NullMeter("energy metering switched off (meter: none)"),
    }
    if kind != "auto":
        if kind not in builders:
            raise MeterUnavailable(f"unknown meter {kind!r}; choose one of auto, {', '.join(builders)}")
        return builders[kind]()
    reasons = []
    for name in ("nvml", "rapl", "codecarbon"):
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
