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
