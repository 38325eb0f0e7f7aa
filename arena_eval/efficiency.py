"""Efficiency beside energy (docs/design.md §3.5.7): latency, throughput, memory, model size, compression and model
FLOPs utilisation per contestant, from what collection recorded. A figure that cannot be known is empty, never a
guess; a figure built on estimated token counts is flagged.

Pure functions, except `read_gguf_parameters` (reads a file header) and `peak_resident_gb` (reads /proc).
"""

from __future__ import annotations

import json
import os
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
# ggml's GGML_MAX_DIMS: no tensor of a GGUF file has more dimensions.
GGUF_MAX_DIMS = 4
# The metadata and tensor descriptions of real models take a few MB (a 262k-token vocabulary with its scores about
# 6 MB); a header said to run longer is refused rather than walked.
GGUF_MAX_HEADER_BYTES = 64 * 1024 * 1024
# The fewest bytes a metadata entry (key length, empty key, value type, a one-byte value) and a tensor description
# (name length, dimension count, type, offset) take: a count that could not fit is refused at once.
_MIN_ENTRY_BYTES = 8 + 4 + 1
_MIN_TENSOR_BYTES = 8 + 4 + 4 + 8
_U32, _U64 = struct.Struct("<I"), struct.Struct("<Q")
_WINDOW_BYTES = 1 << 20


class GGUFError(ValueError):
    """A file that is not a GGUF model this reader understands."""


class GGUFWarning(UserWarning):
    """A model file whose header could not be read: the figures it would give (parameters, MFU) are left empty."""


def read_gguf_parameters(path: str | Path) -> int:
    """The parameter count of a GGUF model: the sum of its tensors' element counts, read from the header (the
    weights themselves are not read). Raises GGUFError for a file that is not GGUF version 2 or 3, or whose header
    is damaged or crafted: every count and length is checked against the file's size before it is used, and a tensor
    has at most GGUF_MAX_DIMS dimensions, so the work is bounded by the header's size and the arithmetic is small."""
    if not Path(path).is_file():  # a pipe would block the read, a device never end it
        raise GGUFError(f"{path}: not a regular file")
    with open(path, "rb") as handle:
        header = _GGUFHeader(handle, path)
        if header.take(4) != _GGUF_MAGIC:
            raise GGUFError(f"{path}: not a GGUF file")
        version = header.number(_U32)
        if version not in (2, 3):
            raise GGUFError(f"{path}: GGUF version {version}; versions 2 and 3 are read")
        tensors = header.number(_U64)
        for _ in range(header.count("metadata entries", _MIN_ENTRY_BYTES)):
            header.skip(header.number(_U64), "a key")
            header.skip_value(header.number(_U32))
        if tensors * _MIN_TENSOR_BYTES > header.room:
            raise header.past_end(f"a count of {tensors:,} tensors")
        total = 0
        for _ in range(tensors):
            header.skip(header.number(_U64), "a tensor name")
            dims = header.number(_U32)
            if dims > GGUF_MAX_DIMS:
                raise header.fail(f"a tensor with {dims:,} dimensions (GGUF tensors have at most {GGUF_MAX_DIMS})")
            elements = 1
            for _ in range(dims):
                elements *= header.number(_U64)
            header.number(_U32), header.number(_U64)  # tensor type and offset
            total += elements
        # Every type stores a weight in at least one bit (the smallest quantisations take 1.5): a header that claims
        # more weights than the file has bits describes weights that are not there.
        if total > 8 * header.size:
            raise header.fail(f"{total:,} parameters in a file of {header.size:,} bytes")
        return total


class _GGUFHeader:
    """A cursor over a GGUF file's header. Numbers are read through a window of the file (a vocabulary's hundred
    thousand strings cost no system call each); strings and arrays are skipped by position. Nothing is read or
    skipped past the file's end, nor past GGUF_MAX_HEADER_BYTES."""

    def __init__(self, handle, path: str | Path):
        self.handle, self.path = handle, path
        self.size = os.fstat(handle.fileno()).st_size
        self.limit = min(self.size, GGUF_MAX_HEADER_BYTES)
        self.window, self.base, self.pos = b"", 0, 0

    @property
    def room(self) -> int:
        """Bytes left before the end of what may be read."""
        return self.limit - self.pos

    def fail(self, problem: str) -> GGUFError:
        return GGUFError(f"{self.path}: {problem} (at byte {self.pos:,}); the GGUF header is damaged or crafted")

    def past_end(self, what: str) -> GGUFError:
        if self.limit == self.size:
            return self.fail(f"the GGUF header ends early: {what} runs past the end of the file")
        return self.fail(f"{what} runs past {GGUF_MAX_HEADER_BYTES // 2**20} MiB, longer than any model's GGUF header")

    def take(self, n: int) -> bytes:
        if n > self.room:
            raise self.past_end(f"a field of {n} bytes")
        offset = self.pos - self.base
        if offset + n > len(self.window):
            self.handle.seek(self.pos)
            self.window, self.base, offset = self.handle.read(min(max(n, _WINDOW_BYTES), self.room)), self.pos, 0
            if len(self.window) < n:
                raise self.past_end(f"a field of {n} bytes")  # the file shrank while it was read
        self.pos += n
        return self.window[offset : offset + n]

    def number(self, kind: struct.Struct) -> int:
        return kind.unpack(self.take(kind.size))[0]

    def skip(self, n: int, what: str) -> None:
        if n > self.room:
            raise self.past_end(f"{what} of {n:,} bytes")
        self.pos += n

    def skip_strings(self, n: int) -> None:
        """Skip `n` strings (a vocabulary holds 50,000 to 260,000): their lengths are read straight from the window,
        with the cursor in locals (a 64 MiB header of empty strings then takes seconds, not a minute)."""
        unpack, limit = _U64.unpack_from, self.limit
        window, base, pos = self.window, self.base, self.pos
        end = base + len(window)
        for _ in range(n):
            if pos + 8 > end:
                self.pos = pos
                self.skip(self.number(_U64), "a string")  # refills the window
                window, base, pos = self.window, self.base, self.pos
                end = base + len(window)
                continue
            length = unpack(window, pos - base)[0]
            pos += 8 + length
            if pos > limit:
                self.pos = pos - length
                raise self.past_end(f"a string of {length:,} bytes")
        self.pos = pos

    def count(self, what: str, each: int) -> int:
        """A u64 count of items of at least `each` bytes, refused when they could not fit in what is left."""
        n = self.number(_U64)
        if n * each > self.room:
            raise self.past_end(f"a count of {n:,} {what}")
        return n

    def skip_value(self, kind: int) -> None:
        if kind == 8:
            self.skip(self.number(_U64), "a string")
        elif kind == 9:
            item = self.number(_U32)
            if item == 8:
                self.skip_strings(self.count("strings in an array", 8))
            elif item in _GGUF_SIZES:
                self.skip(self.count("array items", _GGUF_SIZES[item]) * _GGUF_SIZES[item], "an array")
            else:
                raise self.fail(f"unknown GGUF array type {item}")
        elif kind in _GGUF_SIZES:
            self.skip(_GGUF_SIZES[kind], "a value")
        else:
            raise self.fail(f"unknown GGUF value type {kind}")


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
