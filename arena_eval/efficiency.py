"""Efficiency beside energy (docs/design.md §3.5.7): latency, throughput, memory, model size, compression and model
FLOPs utilisation per contestant, from what collection recorded. A figure that cannot be known is empty, never a
guess; a figure built on estimated token counts is flagged.

Pure functions, except `read_gguf_parameters` (reads a file header) and `peak_resident_gb` (reads /proc).
"""

from __future__ import annotations

import json
import statistics
import struct
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

# Dense BF16/FP16 tensor throughput in TFLOP/s from the vendors' datasheets (without sparsity). MFU divides by
# this; a machine not listed (a CPU, a consumer card) states its own `peak_tflops`.
PEAK_TFLOPS = {
    "H200": 989.4,
    "H100-SXM": 989.4,
    "H100-PCIE": 756.0,
    "A100": 312.0,
    "L40S": 362.1,
    "A10": 125.0,
    "L4": 121.0,
    "V100": 125.0,
    "T4": 65.0,
    "RTX-4090": 165.2,
}

_GGUF_MAGIC = b"GGUF"
# GGUF metadata value types: fixed sizes, 8 = string, 9 = array.
_GGUF_SIZES = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}


class GGUFError(ValueError):
    """A file that is not a GGUF model this reader understands."""


def read_gguf_parameters(path: str | Path) -> int:
    """The parameter count of a GGUF model: the sum of its tensors' element counts, read from the header (the
    weights themselves are not read). Raises GGUFError for a file that is not GGUF version 2 or 3."""
    with open(path, "rb") as handle:
        def read(n: int) -> bytes:
            data = handle.read(n)
            if len(data) != n:
                raise GGUFError(f"{path}: the GGUF header ends early")
            return data

        def number(fmt: str) -> int:
            return struct.unpack("<" + fmt, read(struct.calcsize(fmt)))[0]

        def skip_string() -> None:
            handle.seek(number("Q"), 1)

        def skip_value(kind: int) -> None:
            if kind == 8:
                skip_string()
            elif kind == 9:
                item, count = number("I"), number("Q")
                if item == 8:
                    for _ in range(count):
                        skip_string()
                elif item in _GGUF_SIZES:
                    handle.seek(_GGUF_SIZES[item] * count, 1)
                else:
                    raise GGUFError(f"{path}: unknown GGUF array type {item}")
            elif kind in _GGUF_SIZES:
                handle.seek(_GGUF_SIZES[kind], 1)
            else:
                raise GGUFError(f"{path}: unknown GGUF value type {kind}")

        if read(4) != _GGUF_MAGIC:
            raise GGUFError(f"{path}: not a GGUF file")
        version = number("I")
        if version not in (2, 3):
            raise GGUFError(f"{path}: GGUF version {version}; versions 2 and 3 are read")
        tensors, entries = number("Q"), number("Q")
        for _ in range(entries):
            skip_string()
            skip_value(number("I"))
        total = 0
        for _ in range(tensors):
            skip_string()
            dims = [number("Q") for _ in range(number("I"))]
            number("I"), number("Q")  # tensor type and offset
            count = 1
            for dim in dims:
                count *= dim
            total += count
        return total


def peak_resident_gb(pid: int) -> float | None:
    """The peak resident memory (VmHWM) of process `pid` in GB, or None where /proc cannot tell."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024 / 1e9
    except (OSError, ValueError, IndexError):
        return None
    return None


@dataclass
class Efficiency:
    """One contestant's efficiency figures (None: unknown)."""

    latency_p50_s: float | None = None
    latency_p95_s: float | None = None
    ttft_p50_s: float | None = None
    output_tokens_per_s: float | None = None
    throughput_tokens_per_s: float | None = None
    peak_memory_gb: float | None = None
    memory_source: str | None = None
    model_size_gb: float | None = None
    compression_ratio: float | None = None
    mfu: float | None = None
    efficiency_estimated: bool | None = None


def _percentile(values: list[float], q: float) -> float | None:
    """The q-quantile by linear interpolation between order statistics (numpy's default)."""
    if not values:
        return None
    ordered = sorted(values)
    position = q * (len(ordered) - 1)
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def request_rows(rows: Iterable[tuple]) -> list[tuple[float | None, float | None, int | None, bool]]:
    """(latency, ttft, output tokens, tokens estimated) per request, from answer rows (latency_s, ttft_s,
    output_tokens, tokens_estimated, turns): a conversation's turns are requests of their own."""
    out = []
    for latency, ttft, tokens, estimated, turns in rows:
        if turns:
            for turn in json.loads(turns) if isinstance(turns, str) else turns:
                out.append((turn.get("latency_s"), turn.get("ttft_s"), turn.get("output_tokens"),
                            bool(turn.get("tokens_estimated"))))
        else:
            out.append((latency, ttft, tokens, bool(estimated)))
    return out


def efficiency_of(requests: list[tuple[float | None, float | None, int | None, bool]], window_s: float | None,
                  window_tokens: int | None) -> Efficiency:
    """Latency percentiles, time to first token, per-request speed and delivered throughput (`window_tokens` over
    `window_s`, the contestant's collection window, i.e. what it delivered under its concurrency)."""
    latencies = [r[0] for r in requests if r[0] is not None and r[0] > 0]
    ttfts = [r[1] for r in requests if r[1] is not None]
    speeds = [r[2] / r[0] for r in requests if r[0] and r[0] > 0 and r[2] is not None]
    throughput = window_tokens / window_s if window_s and window_tokens is not None else None
    return Efficiency(
        latency_p50_s=_percentile(latencies, 0.5),
        latency_p95_s=_percentile(latencies, 0.95),
        ttft_p50_s=_percentile(ttfts, 0.5),
        output_tokens_per_s=statistics.median(speeds) if speeds else None,
        throughput_tokens_per_s=throughput,
        efficiency_estimated=any(r[3] for r in requests) if requests else None,
    )


def model_flops_utilisation(params: float | None, throughput_tokens_per_s: float | None,
                            peak_tflops: float | None) -> float | None:
    """MFU = 2 × parameters × tokens per second ÷ peak FLOP/s (the forward pass of a dense decoder costs about 2
    FLOPs per parameter per generated token); None unless all three are known."""
    if not params or throughput_tokens_per_s is None or not peak_tflops:
        return None
    return 2.0 * params * throughput_tokens_per_s / (peak_tflops * 1e12)
