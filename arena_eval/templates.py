"""Jinja2 prompt templates. All render in a sandbox: users may supply their own templates, and model text only
ever enters as a variable, never as template source."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

from jinja2 import StrictUndefined
from jinja2.sandbox import SandboxedEnvironment

from .errors import ConfigError
from .resources import bundled_path

_ENV = SandboxedEnvironment(undefined=StrictUndefined, keep_trailing_newline=True, autoescape=False)


def render(template: str, **values: Any) -> str:
    return _compiled(template).render(**values)


@lru_cache(maxsize=128)
def _compiled(template: str) -> Any:
    # Compiling is ~20x the cost of rendering, and the judge renders the same two templates for every game
    # (bench/bench_orchestration.py).
    return _ENV.from_string(template)


def read_template(prompt_dir: str | Path | None, name: str) -> str:
    """The text of `name` from `prompt_dir`, or from the bundled prompts/ when no folder is given."""
    folder = Path(prompt_dir) if prompt_dir else bundled_path("prompts")
    path = folder / name
    if not path.exists():
        raise ConfigError(f"prompt template {path} is missing; copy the bundled prompts/{name} there and adapt it")
    return path.read_text(encoding="utf-8")
