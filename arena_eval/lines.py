"""Line reading with a bound, shared by every JSONL reader: question, answer, judgment and label files, and the
result files of the batch APIs (docs/design.md §6.2).

A line longer than its bound is never held whole: its first `HEAD_BYTES` are kept (enough to name what it was,
e.g. a batch result's custom id) and the rest is read past. A path that is not a regular file (a link to
/dev/zero, a FIFO, a device) is refused before a byte is read: such a file may have no end.
"""

from __future__ import annotations

import json
import os
import re
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import ConfigError

# The most bytes of one line of an input file. Records that hold model replies have their own, smaller bound
# derived from max_response_bytes (reply_line_bytes).
MAX_LINE_BYTES = 64 * 2**20
HEAD_BYTES = 4096
_READ_BYTES = 2**20


@dataclass(frozen=True)
class Line:
    """One line, without its line end. `data` is None when the line is longer than the bound: then `head` is its
    beginning (HEAD_BYTES, or the bound and one byte if less) and `size` its length in bytes."""

    number: int
    data: bytes | None
    head: bytes
    size: int

    @property
    def too_long(self) -> bool:
        return self.data is None


def reply_line_bytes(reply_cap: int) -> int:
    """The bound on a line holding one model reply of at most `reply_cap` bytes (its text and thinking), in JSON:
    escaping can make a text up to six times longer (a control character), CJK text twice, and the record around
    it (metadata, a conversation's other turns) needs room too."""
    return 8 * reply_cap + 2**20


def open_regular(path: str | Path, what: str = "file"):
    """`path` opened for binary reading, refused unless it is a regular file (no device, FIFO or socket, also not
    through a link). Opened first and checked on the open file, so nothing can swap it in between."""
    path = Path(path)
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))  # a FIFO must not block the open
    except FileNotFoundError:
        raise ConfigError(f"{path}: {what} not found") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the {what} ({exc.strerror or exc})") from None
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        kind = ("a folder" if stat.S_ISDIR(mode) else "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode)
                else "a pipe" if stat.S_ISFIFO(mode) else "a socket" if stat.S_ISSOCK(mode) else "not a regular file")
        via = f" (a link to {os.path.realpath(path)})" if path.is_symlink() else ""
        raise ConfigError(f"{path}: is {kind}{via}, not a regular file; give the {what} itself")
    if hasattr(os, "O_NONBLOCK"):
        os.set_blocking(fd, True)
    return os.fdopen(fd, "rb")


def file_lines(path: str | Path, limit: int = MAX_LINE_BYTES, what: str = "file") -> Iterator[Line]:
    """The lines of a regular file, each read with at most `limit` bytes held."""
    with open_regular(path, what) as handle:
        number = 0
        while True:
            raw = handle.readline(limit + 1)
            if not raw:
                return
            number += 1
            if raw.endswith(b"\n") or len(raw) <= limit:
                data = raw[:-1] if raw.endswith(b"\n") else raw
                yield Line(number, data, data[:HEAD_BYTES], len(data))
                continue
            head, size = raw[:HEAD_BYTES], len(raw)
            while not raw.endswith(b"\n"):  # read past the rest of the line, a block at a time
                raw = handle.readline(_READ_BYTES)
                if not raw:
                    break
                size += len(raw) - raw.endswith(b"\n")
            yield Line(number, None, head, size)


class LineSplitter:
    """Lines out of a stream of byte chunks (a download), each held up to `limit` bytes: feed the chunks, then
    `end()`. The same bound as file_lines, for data that arrives in pieces."""

    def __init__(self, limit: int = MAX_LINE_BYTES):
        self.limit = limit
        self.number = 0
        self._partial = bytearray()
        self._skipping: tuple[bytes, int] | None = None  # (head, size so far) of a line over the bound

    def feed(self, chunk: bytes) -> list[Line]:
        lines = []
        start = 0
        while start < len(chunk):
            end = chunk.find(b"\n", start)
            piece = chunk[start:] if end < 0 else chunk[start:end]
            self._take(piece)
            if end < 0:
                break
            lines.append(self._finish())
            start = end + 1
        return lines

    def end(self) -> list[Line]:
        """The last line, if the stream did not end with a line end."""
        return [self._finish()] if self._partial or self._skipping else []

    def _take(self, piece: bytes) -> None:
        if self._skipping is not None:
            head, size = self._skipping
            self._skipping = (head, size + len(piece))
        elif len(self._partial) + len(piece) > self.limit:
            head = (bytes(self._partial[:HEAD_BYTES]) + piece[:HEAD_BYTES])[:min(HEAD_BYTES, self.limit + 1)]
            self._skipping = (head, len(self._partial) + len(piece))
            self._partial = bytearray()
        else:
            self._partial += piece

    def _finish(self) -> Line:
        self.number += 1
        if self._skipping is not None:
            (head, size), self._skipping = self._skipping, None
            return Line(self.number, None, head, size)
        data, self._partial = bytes(self._partial), bytearray()
        return Line(self.number, data, data[:HEAD_BYTES], len(data))


class BadLine(ValueError):
    """A line that is not one JSON value of text: `reason` says why (without the file and line)."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


_SURROGATE = re.compile("[\ud800-\udfff]")


def parse_json_line(line: Line, limit: int) -> Any:
    """The JSON value of `line`, or BadLine: over the bound, not UTF-8, not JSON, nested past Python's recursion
    limit, or a string with a lone UTF-16 surrogate (`"\\ud800"`: JSON allows it, but it is no character and
    cannot be stored or sent)."""
    if line.data is None:
        raise BadLine(too_long_reason(line, limit))
    try:
        text = line.data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadLine(f"not valid UTF-8 (byte 0x{line.data[exc.start]:02x} at byte {exc.start + 1})") from None
    return parse_json_text(text)


def too_long_reason(line: Line, limit: int) -> str:
    return f"the line is {line.size:,} bytes, more than the {limit:,} a line may hold; it was not read"


def parse_json_text(text: str) -> Any:
    """The JSON value of one line's text, or BadLine (see parse_json_line)."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise BadLine(f"malformed JSON ({exc.msg} at column {exc.colno})") from None
    except RecursionError:
        raise BadLine("JSON nested too deeply to read (arrays or objects inside each other thousands of levels "
                      "deep)") from None
    # Decoded UTF-8 holds no surrogate, so only a \u escape can make one: most lines have none to walk for.
    where = lone_surrogate(value) if "\\u" in text else None
    if where is not None:
        raise BadLine(f"a string{where} holds a lone UTF-16 surrogate (such as \\ud800), which is no character; "
                      "write the text as UTF-8 or as a valid \\u pair")
    return value


def lone_surrogate(value: Any) -> str | None:
    """Where in `value` (" in field X") a string holds a lone surrogate, or None. Walked without recursion: the
    value may be as deep as json.loads allows."""
    stack: list[tuple[Any, str]] = [(value, "")]
    while stack:
        item, key = stack.pop()
        if isinstance(item, str):
            if _SURROGATE.search(item):
                return f" in field `{key}`" if key else ""
        elif isinstance(item, dict):
            for k, v in item.items():
                if isinstance(k, str) and _SURROGATE.search(k):
                    return " (a field name)"
                stack.append((v, key or k))
        elif isinstance(item, list):
            stack.extend((v, key) for v in item)
    return None


def shown(value: Any, limit: int = 80) -> str:
    """`value` as an error message shows it: its repr, cut to `limit` characters with the length said, so that a
    50 MB value in an input file does not become a 50 MB message."""
    text = repr(value)
    if len(text) <= limit:
        return text
    return f"{text[:limit]}… ({len(str(value)):,} characters)"
