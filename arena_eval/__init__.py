"""arena-eval: LLM-as-a-judge evaluation that weighs answer quality against energy, carbon and cost.

The public names are re-exported here; every other module is internal and may change. They are imported on
first use (`arena_eval.Arena` loads the pipeline then), so that `arena-eval --help` and `validate` start
without pandas, the providers or the meters.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .config import ContestantConfig as Contestant
    from .config import JudgeConfig as Judge
    from .config import RatingConfig, RunConfig, load_config
    from .errors import ArenaError, ConfigError
    from .pipeline import Arena, Result
    from .questions import Question, QuestionSet, load_dataset_questions, load_questions

# public name → (module, name in that module)
_EXPORTS = {
    "Arena": ("pipeline", "Arena"),
    "ArenaError": ("errors", "ArenaError"),
    "ConfigError": ("errors", "ConfigError"),
    "Contestant": ("config", "ContestantConfig"),
    "Judge": ("config", "JudgeConfig"),
    "Question": ("questions", "Question"),
    "QuestionSet": ("questions", "QuestionSet"),
    "RatingConfig": ("config", "RatingConfig"),
    "Result": ("pipeline", "Result"),
    "RunConfig": ("config", "RunConfig"),
    "load_config": ("config", "load_config"),
    "load_dataset_questions": ("questions", "load_dataset_questions"),
    "load_questions": ("questions", "load_questions"),
}
__all__ = [
    "Arena",
    "ArenaError",
    "ConfigError",
    "Contestant",
    "Judge",
    "Question",
    "QuestionSet",
    "RatingConfig",
    "Result",
    "RunConfig",
    "load_config",
    "load_dataset_questions",
    "load_questions",
]
assert sorted(__all__) == sorted(_EXPORTS)
__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    module, attribute = _EXPORTS[name]
    value = getattr(import_module(f"{__name__}.{module}"), attribute)
    globals()[name] = value  # the next access is a plain lookup
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])
