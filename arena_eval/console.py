"""Where the command lines write messages and tables: one line per message, never with a known secret in it, never
with a control sequence a terminal would obey.

Names and texts reach the terminal from files and servers (contestant and judge names, question ids, label and
judgment files, a server's error body): `for_terminal` is what every printed text passes through.
"""

from __future__ import annotations

import re

import rich.table
import typer
from rich.console import Console
from rich.errors import MarkupError
from rich.text import Text

from .redaction import redact

# C0 controls but tab and newline (ESC starts the sequences that retitle a terminal, clear it or move the cursor;
# a carriage return overwrites the line), DEL, and the C1 controls (U+009B is an 8-bit CSI).
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def for_terminal(text: str) -> str:
    """`text` as the command lines print it: without known secrets (redaction.redact), and with each control
    character but tab and newline shown as its escape (`\\x1b`), visible and inert."""
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", redact(text))


class RedactingConsole(Console):
    """A rich console whose text passes through for_terminal: a message may quote a server's reply or a name."""

    def print(self, *objects, **kwargs) -> None:  # noqa: A003 (rich's name)
        objects = tuple(for_terminal(o) if isinstance(o, str) else o for o in objects)
        try:
            super().print(*objects, **kwargs)
        except MarkupError:  # a name that reads as a closing tag ("[/x]"): the message as plain text
            super().print(*objects, **{**kwargs, "markup": False})


def echo(message: str) -> None:
    """typer.echo for lines that may hold names or stored text (for_terminal)."""
    typer.echo(for_terminal(message))


def _text(value):
    return Text(for_terminal(value)) if isinstance(value, str) else value


class Table(rich.table.Table):
    """The tables the command lines print: the title, headers and cells are text as written (never read as rich
    markup, so a name like "[/x]" is shown, not parsed) and pass through for_terminal."""

    def __init__(self, *headers, title=None, **kwargs) -> None:
        super().__init__(*(_text(h) for h in headers), title=_text(title), **kwargs)

    def add_column(self, header="", *args, **kwargs) -> None:
        super().add_column(_text(header), *args, **kwargs)

    def add_row(self, *cells, **kwargs) -> None:
        super().add_row(*(_text(c) for c in cells), **kwargs)


# soft_wrap: messages stay one line each in logs and pipes, whatever the terminal width.
err = RedactingConsole(stderr=True, soft_wrap=True)
