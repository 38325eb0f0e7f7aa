"""arena-eval: LLM-as-a-judge evaluation that weighs answer quality against energy, carbon and cost.

The public names are re-exported here; every other module is internal and may change.
"""

from .config import ContestantConfig as Contestant
from .config import JudgeConfig as Judge
from .config import RatingConfig, RunConfig, load_config
from .errors import ArenaError, ConfigError
from .pipeline import Arena, Result
from .questions import Question, QuestionSet, load_questions

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
    "load_questions",
]
__version__ = "0.1.0"
