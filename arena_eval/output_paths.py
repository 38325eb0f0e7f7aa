"""Where a command may write a file the user names: never over the results of an output folder.

`prune --out FILE --force` once replaced `<output>/arena.db` with a question list, losing every answer and
verdict. A file named on the command line is refused when it is the store, its `-wal` or `-shm`, the run config,
or any file inside the output folder (the leaderboard files, the report, the lock). Paths are compared after
resolving `..` and symbolic links, and an existing file also by identity (a hard link to the store is the store).
"""

from __future__ import annotations

import os
from pathlib import Path

from .errors import ArenaError

STORE_NAME = "arena.db"


def refuse_results_target(target: Path, output_dir: Path, config_file: Path | None, option: str) -> None:
    """Raise ArenaError, naming `option` and what `target` would replace, when writing `target` would overwrite
    a file of the output folder `output_dir` or the config file; return when it is elsewhere."""
    resolved = target.expanduser().resolve()
    folder = output_dir.expanduser().resolve()
    store = folder / STORE_NAME
    protected = {store: "the result database", Path(f"{store}-wal"): "the result database's write-ahead log",
                 Path(f"{store}-shm"): "the result database's shared-memory file"}
    if config_file is not None:
        protected[config_file.expanduser().resolve()] = "the run config"
    what = protected.get(resolved)
    if what is None and resolved.exists():
        what = next((words for path, words in protected.items() if path.exists() and _same_file(resolved, path)), None)
    if what is None and resolved.is_relative_to(folder):
        what = f"a file inside the output folder {folder}"
    if what is not None:
        shown = f"{target} (that is {resolved})" if resolved != target else str(target)
        raise ArenaError(f"{option} {shown} is {what}; writing there would replace the run's results. Write the file "
                         "outside the output folder, e.g. next to the config")


def _same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False
