"""Exceptions that carry a message meant for the user: where the problem is and how to fix it."""

from __future__ import annotations


class ArenaError(Exception):
    """Base class for errors reported to the user without a traceback."""

    exit_code = 1


class ConfigError(ArenaError):
    """The run config or an input file is wrong; the message names the file, field or line."""


class StoreLockedError(ArenaError):
    """Another run holds the output folder."""


class AugmentError(Exception):
    """A prompt could not be prepared (e.g. the guide model failed); the answer becomes a recorded error."""


class StoreError(ArenaError):
    """The result database failed (disk full, damaged, not writable); the message says which and what to do."""


class RunInterrupted(ArenaError):
    """A run stopped by SIGINT (Ctrl-C) or SIGTERM; what it stored is kept. `summary` counts what it did."""

    def __init__(self, signal_name: str, summary=None, output_dir=None):
        self.signal_name = signal_name
        self.summary = summary
        self.output_dir = output_dir
        # The shell's convention: 128 + the signal's number (SIGINT 2 → 130, SIGTERM 15 → 143).
        self.exit_code = 143 if signal_name == "SIGTERM" else 130
        super().__init__(f"interrupted by {signal_name}")
