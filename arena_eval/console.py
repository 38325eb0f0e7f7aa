"""Where the command lines write messages: stderr, one line per message, never with a known secret in it."""

from __future__ import annotations

from rich.console import Console

from .redaction import redact


class RedactingConsole(Console):
    """A rich console whose text passes through redaction.redact: a message may quote a server's reply."""

    def print(self, *objects, **kwargs) -> None:  # noqa: A003 (rich's name)
        super().print(*(redact(o) if isinstance(o, str) else o for o in objects), **kwargs)


# soft_wrap: messages stay one line each in logs and pipes, whatever the terminal width.
err = RedactingConsole(stderr=True, soft_wrap=True)
