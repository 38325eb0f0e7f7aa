"""The run's context sits in the base layer, and the leaderboard's jobs stay in modules of their own (design §7)."""

from __future__ import annotations

import ast
from pathlib import Path

from arena_eval.context import RunScope, judge_energy_lines

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "arena_eval"


def _runtime_imports(module: str) -> set[str]:
    """The package modules `module` imports when it runs (imports under `if TYPE_CHECKING:` left out)."""
    tree = ast.parse((PACKAGE / module).read_text())
    typing_only = {id(node) for block in ast.walk(tree) if isinstance(block, ast.If)
                   and getattr(block.test, "id", None) == "TYPE_CHECKING" for node in ast.walk(block)}
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level == 1 and id(node) not in typing_only:
            found.add(node.module)
    return found


def test_the_run_context_and_the_recorders_import_only_the_vocabulary_and_the_config_when_they_run():
    assert _runtime_imports("context.py") <= {"config", "records"}
    assert _runtime_imports("recorders.py") <= {"records"}


def test_the_stream_batch_mode_the_plan_and_the_formats_never_reach_into_the_leaderboard():
    for module in ("stream.py", "batch.py", "plan.py", "interop.py", "collect.py"):
        assert not _runtime_imports(module) & {"leaderboard", "report_data", "savings", "energy_tables"}, module


def test_the_leaderboard_stage_is_split_into_modules_under_400_lines():
    for module in ("context.py", "tally.py", "leaderboard.py", "energy_tables.py", "adaptive_run.py", "savings.py",
                   "leaderboard_files.py", "report_data.py", "recorders.py"):
        lines = len((PACKAGE / module).read_text().splitlines())
        assert lines < 400, f"{module}: {lines} lines"


def test_the_judges_energy_lines_are_named_after_the_judges_when_there_are_several():
    class Judge:
        def __init__(self, name: str, config_id: str):
            self.name, self.config_id = name, config_id

    one = RunScope(config=None, contestants=[], questions=[], judges=[Judge("j", "cfg-j")])
    two = RunScope(config=None, contestants=[], questions=[], judges=[Judge("j", "cfg-j"), Judge("k", "cfg-k")])
    assert judge_energy_lines(one) == {"cfg-j": "(judge)"}
    assert judge_energy_lines(two) == {"cfg-j": "(judge j)", "cfg-k": "(judge k)"}
