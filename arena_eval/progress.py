"""Progress reporting for long stages: rich bars on a terminal, plain log lines otherwise (cron, CI, pipes)."""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol, TextIO

if TYPE_CHECKING:
    from rich.progress import TaskID


class Progress(Protocol):
    def add(self, stage: str, total: int) -> None:
        """Announce `total` more items for `stage` ("answers" or "games")."""

    def advance(self, stage: str, *, error: bool = False, cached: bool = False) -> None:
        """One item of `stage` is done."""

    def status(self, line: str) -> None:
        """A line about work that has no count of its own to advance (a batch at a provider being polled)."""

    def close(self) -> None: ...


class NullProgress:
    def add(self, stage: str, total: int) -> None: ...

    def advance(self, stage: str, *, error: bool = False, cached: bool = False) -> None: ...

    def status(self, line: str) -> None: ...

    def close(self) -> None: ...


@dataclass
class _Counts:
    total: int = 0
    done: int = 0
    errors: int = 0
    cached: int = 0
    started: float = field(default_factory=time.monotonic)

    def eta(self) -> str:
        fresh = self.done - self.cached
        remaining = self.total - self.done
        if fresh <= 0 or remaining <= 0:
            return "-"
        seconds = (time.monotonic() - self.started) / fresh * remaining
        return f"{int(seconds // 60)}m{int(seconds % 60):02d}s"


class LineProgress:
    """A line per stage every `every_s` seconds and at the end of each stage: readable in a log file."""

    def __init__(self, stream: TextIO = sys.stderr, every_s: float = 10.0):
        self.stream = stream
        self.every_s = every_s
        self.counts: dict[str, _Counts] = {}
        self._last = 0.0

    def add(self, stage: str, total: int) -> None:
        self.counts.setdefault(stage, _Counts()).total += total

    def advance(self, stage: str, *, error: bool = False, cached: bool = False) -> None:
        c = self.counts.setdefault(stage, _Counts())
        c.done += 1
        c.errors += error
        c.cached += cached
        now = time.monotonic()
        if now - self._last >= self.every_s or c.done == c.total:
            self._last = now
            self._print(stage, c)

    def _print(self, stage: str, c: _Counts) -> None:
        stamp = time.strftime("%H:%M:%S")
        print(
            f"[{stamp}] {stage}: {c.done}/{c.total} done ({c.cached} stored before, {c.errors} errors), eta {c.eta()}",
            file=self.stream,
            flush=True,
        )

    def status(self, line: str) -> None:
        from .console import for_terminal

        print(f"[{time.strftime('%H:%M:%S')}] {for_terminal(line)}", file=self.stream, flush=True)

    def close(self) -> None:
        pass


class RichProgress:
    def __init__(self) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn, TimeRemainingColumn
        from rich.progress import Progress as Bars

        self.bars = Bars(
            TextColumn("{task.description:<8}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("[red]{task.fields[errors]} errors[/red] · {task.fields[cached]} stored before"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            transient=False,
        )
        self.tasks: dict[str, TaskID] = {}
        self.counts: dict[str, _Counts] = {}
        self.bars.start()

    def add(self, stage: str, total: int) -> None:
        c = self.counts.setdefault(stage, _Counts())
        c.total += total
        if stage not in self.tasks:
            self.tasks[stage] = self.bars.add_task(stage, total=c.total, errors=0, cached=0)
        else:
            self.bars.update(self.tasks[stage], total=c.total)

    def advance(self, stage: str, *, error: bool = False, cached: bool = False) -> None:
        if stage not in self.tasks:
            self.add(stage, 0)
        c = self.counts[stage]
        c.done += 1
        c.errors += error
        c.cached += cached
        self.bars.update(self.tasks[stage], advance=1, errors=c.errors, cached=c.cached)

    def status(self, line: str) -> None:
        from .console import for_terminal

        self.bars.console.print(for_terminal(line), highlight=False, markup=False)

    def close(self) -> None:
        self.bars.stop()


def make_progress(enabled: bool = True) -> Progress:
    if not enabled:
        return NullProgress()
    if sys.stdout.isatty() and sys.stderr.isatty():
        return RichProgress()
    return LineProgress()
