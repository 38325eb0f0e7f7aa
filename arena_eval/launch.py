"""The `arena-eval` command's entry point: only the standard library is imported before Ctrl-C is handled.

The command line imports typer, rich and (for most commands) pandas and the pipeline, which takes a second or more
on a busy machine. Ctrl-C in that time used to end in a `KeyboardInterrupt` traceback; here it is one line and
exit code 130 (128 + SIGINT), as it is once a command runs (cli.main).
"""

from __future__ import annotations

import sys
from importlib import import_module

STARTUP_INTERRUPTED = "interrupted while starting up; nothing was changed"


def main() -> None:
    try:
        cli = import_module("arena_eval.cli")
    except KeyboardInterrupt:
        sys.stderr.write(STARTUP_INTERRUPTED + "\n")
        sys.exit(130)
    cli.main()


def interrupted_silently(exc: SystemExit) -> bool:
    """Whether `exc` is typer's exit 130 for a Ctrl-C that no command handled (typer says nothing then). A command
    that handles Ctrl-C itself says what it kept, and its exit 130 is not caused by the KeyboardInterrupt."""
    inner = exc.__context__
    return exc.code == 130 and inner is not None and isinstance(inner.__cause__, KeyboardInterrupt)
