"""The `arena-eval` command line.

Exit codes: 0 complete, 1 usage or config error, 2 finished with missing items (`merge`: with conflicting rows),
3 a contestant regressed, 4 `run --max-cost` reached (stored work kept, nothing scored), 130 / 143 stopped by
SIGINT / SIGTERM (what was stored is kept; run again to resume).

One module per group of commands, each command a thin call into the library, which it imports inside its
function so that `--help` and `validate` start without pandas, the providers or the meters:

- stages.py: run, answers, guidance, judge
- scoring.py: score, compare, report, history
- quality.py: judges, agreement, quality, prune
- planning.py: plan, validate
- data.py: export, import, questions, merge, batches
- energy.py: energy import-codecarbon, energy show

and what they share: common.py (the app, the options, loading a config, failing), render.py (the one table
renderer), summary.py (a run's summary as lines: pure functions).
"""

from __future__ import annotations

import importlib
import os
import sys

from ..console import err
from .common import app
from .energy import energy_app

# Each module registers its commands on `app` when imported; `--help` lists them in this order.
COMMAND_MODULES = ("stages", "scoring", "quality", "planning", "data")
for _name in COMMAND_MODULES:
    importlib.import_module(f"{__name__}.{_name}")
app.add_typer(energy_app, name="energy", help="Energy logs: import CodeCarbon CSVs, show what is stored.")

__all__ = ["app", "main"]


def main() -> None:
    """The command (arena_eval.launch.main imports this package and calls it): Ctrl-C is one line and exit 130,
    never a traceback, wherever it comes."""
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    from ..launch import STARTUP_INTERRUPTED, interrupted_silently

    try:
        app()
    except KeyboardInterrupt:  # outside a command (typer turns one inside a command into exit 130)
        err.print(STARTUP_INTERRUPTED, highlight=False)
        sys.exit(130)
    except SystemExit as exc:
        if interrupted_silently(exc):  # a command without its own Ctrl-C message: one line instead of nothing
            err.print("interrupted (SIGINT) before the command finished; what was stored before is kept",
                      highlight=False)
        raise
