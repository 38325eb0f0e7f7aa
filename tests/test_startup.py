"""Start-up (issue 26 item 6): `validate` loads the config, the questions, the judges' templates and the plan, and
imports nothing it never uses: no pandas or numpy, no HTTP client, no provider SDK, no scikit-learn or SciPy."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from arena_eval import questions
from arena_eval.errors import ConfigError
from arena_eval.questions import load_questions
from arena_eval.resources import bundled_path

ROOT = Path(__file__).resolve().parents[1]

# What `validate` of an OpenAI-compatible config must leave unimported; each one costs 0.1 s or more to import.
NEVER_IMPORTED = ("pandas", "numpy", "aiohttp", "openai", "anthropic", "litellm", "sklearn", "scipy")

# The command run in-process, then the names of the modules it imported, as one JSON line on stdout.
_IN_PROCESS = """
import json, sys
from arena_eval.cli import main
sys.argv = ["arena-eval", *sys.argv[1:]]
try:
    main()
except SystemExit as exc:
    code = exc.code
else:
    code = 0
print(json.dumps({"code": code, "modules": sorted(sys.modules)}))
"""


def _config(folder: Path) -> Path:
    endpoint = {"provider": "openai", "base_url": "http://127.0.0.1:9/v1"}  # port 9 (discard): never reached
    data = {
        "name": "startup",
        "questions": str(bundled_path("question_sets/demo.jsonl")),
        "output": str(folder / "out"),
        "baseline": "c0",
        "judge": {**endpoint, "model": "judge-model"},
        "contestants": [{**endpoint, "name": n, "model": f"model-{n}"} for n in ("c0", "c1")],
    }
    path = folder / "config.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def test_validate_imports_no_dataframes_http_client_sdk_or_statistics_library(tmp_path):
    config = _config(tmp_path)
    done = subprocess.run([sys.executable, "-W", "ignore", "-c", _IN_PROCESS, "validate", "-c", str(config)],
                          capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["code"] == 0, done.stdout + done.stderr
    assert f"{config}: ok" in done.stdout  # it did validate: config, questions, templates and plan
    assert "plan:" in done.stdout
    loaded = {name.split(".")[0] for name in report["modules"]}
    assert sorted(loaded & set(NEVER_IMPORTED)) == []


def test_help_imports_none_of_them_either(tmp_path):
    done = subprocess.run([sys.executable, "-W", "ignore", "-c", _IN_PROCESS, "--help"],
                          capture_output=True, text=True, cwd=tmp_path, timeout=120)
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["code"] == 0, done.stdout + done.stderr
    assert "validate" in done.stdout  # the command list was printed
    loaded = {name.split(".")[0] for name in report["modules"]}
    assert sorted(loaded & set(NEVER_IMPORTED)) == []


# --- repeated question ids: a set for small files, numpy's sort above SET_CHECK_MAX, the same answer ------------

def _write(path: Path, ids: list[str]) -> Path:
    path.write_text("".join(json.dumps({"id": qid, "prompt": f"Question {qid}?"}) + "\n" for qid in ids))
    return path


@pytest.mark.parametrize("set_check_max", [100_000, 0], ids=["set", "numpy"])
def test_a_repeated_question_id_is_named_whichever_way_it_is_found(tmp_path, monkeypatch, set_check_max):
    monkeypatch.setattr(questions, "SET_CHECK_MAX", set_check_max)
    path = _write(tmp_path / "q.jsonl", ["a", "b", "c", "b", "d"])
    with pytest.raises(ConfigError, match=r"duplicate question id 'b' \(entries 2 and 4\) at lines 2 and 4"):
        load_questions(path)


@pytest.mark.parametrize("set_check_max", [100_000, 0], ids=["set", "numpy"])
def test_distinct_question_ids_load_whichever_way_they_are_checked(tmp_path, monkeypatch, set_check_max):
    monkeypatch.setattr(questions, "SET_CHECK_MAX", set_check_max)
    path = _write(tmp_path / "q.jsonl", [f"q{i}" for i in range(50)])
    assert [q.question_id for q in load_questions(path)] == [f"q{i}" for i in range(50)]
