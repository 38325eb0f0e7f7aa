"""The code's layout stays as docs/design.md §7 describes it: stages import only earlier stages."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_the_package_has_no_import_cycles():
    done = subprocess.run([sys.executable, str(ROOT / "bench" / "import_graph.py"), "--check"],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "cycles among load and deferred imports: none" in done.stdout


def test_the_report_and_the_leaderboard_never_reach_back_into_the_pipeline():
    for module in ("report.py", "leaderboard.py", "dispatch.py", "answer_sets.py", "stream.py"):
        source = (ROOT / "arena_eval" / module).read_text()
        assert "from .pipeline" not in source and "import pipeline" not in source, module
