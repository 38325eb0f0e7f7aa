"""arena-hard judgment folders in: read_judgments and `score --judgments DIR --baseline B [--judge J]…`."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from arena_eval.cli import app
from arena_eval.config import VerdictWeights
from arena_eval.errors import ConfigError
from arena_eval.interop import read_judgments

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "arena-hard-v0.1"
COLUMNS = ["question_id", "model_a", "model_b", "winner", "weight", "judge"]
runner = CliRunner()


def write_judgments(root: Path, judge: str, model: str, records: list[dict]) -> Path:
    path = root / "model_judgment" / judge / f"{model}.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def v01(qid: str, model: str, *scores) -> dict:
    """A v0.1 record: question_id, games with a score each (None: the judge gave no label)."""
    return {"question_id": qid, "model": model, "judge": "some-judge",
            "games": [{"user_prompt": "…", "judgment": "…", "score": s} for s in scores]}


def v20(uid: str, model: str, *games) -> dict:
    """A v2.0 record: uid, category, baseline; a game is None where the judge call failed."""
    return {"uid": uid, "category": "hard_prompt", "judge": "some-judge", "model": model, "baseline": "base",
            "games": [None if g is None else {"score": g, "judgment": {"answer": "…"}, "prompt": []} for g in games]}


def score(*args: str):
    result = runner.invoke(app, ["score", *args])
    return result


# --- (a) battles computed by hand ------------------------------------------------------------------------------

def test_two_judges_two_models_give_the_battles_computed_by_hand(tmp_path):
    # Game 1 shows the baseline as A, game 2 as B. Strong labels weigh 3, `<` and `B=A` spellings are read, a
    # game without a score (null score, or a null game in v2.0) is left out on its own.
    write_judgments(tmp_path, "j1", "m1", [
        v01("q1", "m1", "A>>B", "A>B"),
        v01("q2", "m1", "A=B", None),
        v01("q3", "m1", "B>A", "B>>A"),
    ])
    write_judgments(tmp_path, "j1", "m2", [
        v01("q1", "m2", "B>>A", "A>>B"),
        v01("q2", "m2", None, None),
        v01("q3", "m2", "A<B", "B=A"),
    ])
    write_judgments(tmp_path, "j2", "m1", [v20("q1", "m1", None, "B>A"), v20("q2", "m1", "A>B", "A<<B")])
    write_judgments(tmp_path, "j2", "m2", [v20("q1", "m2", "A=B", "A=B"), v20("q3", "m2", "B<<A", "A>B")])

    expected = pd.DataFrame([
        ("q1", "base", "m1", "model_a", 3.0, "j1"),
        ("q1", "base", "m1", "model_b", 1.0, "j1"),
        ("q2", "base", "m1", "tie", 1.0, "j1"),
        ("q3", "base", "m1", "model_b", 1.0, "j1"),
        ("q3", "base", "m1", "model_a", 3.0, "j1"),
        ("q1", "base", "m2", "model_b", 3.0, "j1"),
        ("q1", "base", "m2", "model_b", 3.0, "j1"),
        ("q3", "base", "m2", "model_b", 1.0, "j1"),
        ("q3", "base", "m2", "tie", 1.0, "j1"),
        ("q1", "base", "m1", "model_a", 1.0, "j2"),
        ("q2", "base", "m1", "model_a", 1.0, "j2"),
        ("q2", "base", "m1", "model_a", 3.0, "j2"),
        ("q1", "base", "m2", "tie", 1.0, "j2"),
        ("q1", "base", "m2", "tie", 1.0, "j2"),
        ("q3", "base", "m2", "model_a", 3.0, "j2"),
        ("q3", "base", "m2", "model_b", 1.0, "j2"),
    ], columns=COLUMNS)
    # The folder holding model_judgment and model_judgment itself read the same.
    for folder in (tmp_path, tmp_path / "model_judgment"):
        pd.testing.assert_frame_equal(read_judgments(folder, baseline="base"), expected)
    only_j2 = read_judgments(tmp_path, ["j2"], baseline="base")
    pd.testing.assert_frame_equal(only_j2, expected[expected.judge == "j2"].reset_index(drop=True))
    # arena-hard's --weight: what a strong label weighs.
    halved = read_judgments(tmp_path, ["j1"], baseline="base", weights=VerdictWeights(strong=1.5))
    assert halved["weight"].tolist() == [1.5, 1, 1, 1, 1.5, 1.5, 1.5, 1, 1]


# --- (b) the must-show: the same scores as the same data through score --battles --------------------------------

FORWARD = {"A>>B": "A", "A>B": "A", "A=B": "tie", "B>A": "B", "B>>A": "B"}


def arena_hard_battles(record: dict, baseline: str) -> list[dict]:
    """arena-hard-auto's expansion (show_result.get_battles_from_row), written out for the test: game 1 has the
    baseline in position A, game 2 in B; a `>>` label is three identical rows; a game without a label, none."""
    rows = []
    for game, entry in enumerate(record["games"], start=1):
        label = entry["score"]
        if label is None:
            continue
        position = FORWARD[label]
        baseline_position = "A" if game == 1 else "B"
        winner = "tie" if position == "tie" else "model_a" if position == baseline_position else "model_b"
        row = {"question_id": record["question_id"], "model_a": baseline, "model_b": record["model"], "winner": winner}
        rows += [row] * (3 if ">>" in label else 1)
    return rows


def write_random_folder(root: Path, battles_path: Path, pooled: tuple[str, ...]) -> None:
    """Three judges × three models × 40 questions in arena-hard's layout; the battles of the `pooled` judges
    expanded the arena-hard way into `battles_path`."""
    rng = random.Random(7)
    expanded = []
    for judge in ("judge-a", "judge-b", "judge-c"):
        for model, strength in (("good", 0.7), ("fair", 0.5), ("poor", 0.3)):
            records = []
            for q in range(40):
                scores = []
                for game in (1, 2):
                    roll = rng.random()
                    if roll < 0.05:
                        scores.append(None)
                        continue
                    if roll < 0.2:
                        scores.append("A=B")
                        continue
                    contestant_won = rng.random() < strength
                    # The contestant sits in position B in game 1 and in position A in game 2.
                    winner = "B" if contestant_won == (game == 1) else "A"
                    scores.append(f"{winner}{'>>' if rng.random() < 0.3 else '>'}{'A' if winner == 'B' else 'B'}")
                records.append(v01(f"q{q}", model, *scores))
            write_judgments(root, judge, model, records)
            if judge in pooled:
                expanded += [row for record in records for row in arena_hard_battles(record, "gpt-4-0314")]
    battles_path.write_text("".join(json.dumps(row) + "\n" for row in expanded))


@pytest.mark.parametrize("mode", [[], ["--compat", "arena-hard"]], ids=["by-question", "compat-arena-hard"])
def test_score_judgments_equals_score_battles_on_arena_hards_expanded_battles(tmp_path, mode):
    battles = tmp_path / "battles.jsonl"
    write_random_folder(tmp_path / "data", battles, pooled=("judge-a", "judge-c"))
    from_folder = score("--judgments", str(tmp_path / "data"), "--baseline", "gpt-4-0314",
                        "--judge", "judge-a", "--judge", "judge-c", *mode, "--format", "json")
    from_battles = score("--battles", str(battles), "--baseline", "gpt-4-0314", *mode, "--format", "json")
    assert from_folder.exit_code == 0, from_folder.output
    assert from_battles.exit_code == 0, from_battles.output
    folder_rows, battle_rows = json.loads(from_folder.stdout), json.loads(from_battles.stdout)
    # Weight 3 in one row or three rows of weight 1: the same fit and the same bootstrap draws, to the bit.
    assert folder_rows == battle_rows
    assert {r["model"] for r in folder_rows} == {"gpt-4-0314", "good", "fair", "poor"}
    assert all(r["ci_low"] < r["score"] < r["ci_high"] for r in folder_rows if r["model"] != "gpt-4-0314")
    # Another judge's verdicts do change the scores: --judge really picked.
    everyone = score("--judgments", str(tmp_path / "data"), "--baseline", "gpt-4-0314", *mode, "--format", "json")
    assert everyone.exit_code == 0 and json.loads(everyone.stdout) != folder_rows


def test_score_judgments_prints_a_table_and_csv(tmp_path):
    write_judgments(tmp_path, "j1", "m1", [v01("q1", "m1", "A>B", "A>B"), v01("q2", "m1", "B>>A", "A=B")])
    table = score("--judgments", str(tmp_path), "--baseline", "base", "--rounds", "20")
    assert table.exit_code == 0, table.output
    assert "m1" in table.stdout and "judges j1" in table.stdout and "baseline base" in table.stdout
    csv = score("--judgments", str(tmp_path), "--baseline", "base", "--rounds", "0", "--format", "csv")
    assert csv.stdout.splitlines()[0].startswith("model,score,ci_low,ci_high,elo")
    # m1: a plain win, a plain loss, a strong win and a tie: (1 + 3 + ½) / 6.
    row = next(line for line in csv.stdout.splitlines() if line.startswith("m1,"))
    assert float(row.split(",")[1]) == pytest.approx(100 * 4.5 / 6, abs=1e-3)


# --- (c) the real 7-line example ---------------------------------------------------------------------------------

@pytest.mark.skipif(not SHARED.exists(), reason="reference data ../shared/data is not present")
def test_the_real_arena_hard_example_gives_the_hand_counted_win_rate():
    frame = read_judgments(SHARED, baseline="gpt-4-0314")
    # 7 questions, both games scored; one B>>A in game 2 (the baseline's strong win): weights 6·2 + 1 + 3 = 16.
    assert len(frame) == 14 and frame["weight"].sum() == 16
    assert set(frame["judge"]) == {"gemini-1.5-pro-api-0514"}  # the folder's name, not the records' `judge`
    assert set(frame["model_b"]) == {"phi-3-medium-4k-instruct"} and set(frame["model_a"]) == {"gpt-4-0314"}
    run = score("--judgments", str(SHARED / "model_judgment"), "--baseline", "gpt-4-0314", "--format", "json")
    assert run.exit_code == 0, run.output
    rows = {r["model"]: r for r in json.loads(run.stdout)}
    # Contestant points: wins in questions 2, 4 and 6 (game 1 or 2), a tie in question 5: 3.5 of 16.
    assert rows["phi-3-medium-4k-instruct"]["score"] == pytest.approx(100 * 3.5 / 16, abs=1e-3)
    assert rows["phi-3-medium-4k-instruct"]["battles"] == 16 and rows["gpt-4-0314"]["score"] == 50


# --- (d) errors name the file and line, or list what exists -----------------------------------------------------

def good(root: Path) -> Path:
    return write_judgments(root, "j1", "m1", [v01("q1", "m1", "A>B", "B>A")])


def append(path: Path, line: str) -> None:
    with path.open("a") as handle:
        handle.write(line + "\n")


ERRORS = {
    "malformed JSON": (lambda p: append(p, '{"question_id": "q2", "model": '), r"m1\.jsonl:2: malformed JSON"),
    "not an object": (lambda p: append(p, "[1, 2]"), r"m1\.jsonl:2: expected a JSON object"),
    "no question id": (lambda p: append(p, json.dumps({"model": "m1", "games": []})),
                       r"m1\.jsonl:2: not an arena-hard judgment \(needs question_id or uid"),
    "three games": (lambda p: append(p, json.dumps(v01("q2", "m1", "A>B", "A>B", "A>B"))),
                    r"m1\.jsonl:2: not an arena-hard judgment"),
    "game without score": (lambda p: append(p, json.dumps({"question_id": "q2", "model": "m1", "games": [{}]})),
                           r"m1\.jsonl:2: game 1 is not an arena-hard game \(needs a score field\)"),
    "score not a label": (lambda p: append(p, json.dumps(v01("q2", "m1", "A>B", "A>>>B"))),
                          r"m1\.jsonl:2: game 2 has score 'A>>>B', not a verdict label \(A>>B, A>B, A=B, B>A, B>>A"),
    "same side twice": (lambda p: append(p, json.dumps(v01("q2", "m1", "A>A", "A>B"))),
                        r"m1\.jsonl:2: game 1 has score 'A>A', not a verdict label"),
    "duplicate question": (lambda p: append(p, json.dumps(v01("q1", "m1", "A>B", "A>B"))),
                           r"m1\.jsonl:2: m1 on question q1 was already judged at \S*m1\.jsonl:1"),
    "other baseline": (lambda p: append(p, json.dumps(v20("q2", "m1", "A>B", "A>B") | {"baseline": "gemini"})),
                       r"m1\.jsonl:2: judged against baseline 'gemini', not 'base'"),
    "lone surrogate": (lambda p: append(p, '{"question_id": "q\\ud800", "model": "m1", "games": []}'),
                       r"m1\.jsonl:2: a string in field `question_id` holds a lone UTF-16 surrogate"),
    "deep nesting": (lambda p: append(p, "[" * 100_000), r"m1\.jsonl:2: JSON nested too deeply to read"),
}


@pytest.mark.parametrize("case", list(ERRORS))
def test_a_bad_judgment_line_is_an_error_naming_file_and_line(tmp_path, case):
    breaker, pattern = ERRORS[case]
    breaker(good(tmp_path))
    with pytest.raises(ConfigError, match=pattern):
        read_judgments(tmp_path, baseline="base")
    run = score("--judgments", str(tmp_path), "--baseline", "base")
    assert run.exit_code == 1 and "Traceback" not in run.output
    assert run.stderr.startswith("error: ") and "m1.jsonl:2" in run.stderr


def test_folder_errors_say_what_exists(tmp_path):
    good(tmp_path)
    write_judgments(tmp_path, "j2", "m1", [v01("q1", "m1", "A>B", "B>A")])
    with pytest.raises(ConfigError, match=r"no judge folder 'j3'; available: j1, j2"):
        read_judgments(tmp_path, ["j1", "j3"], baseline="base")
    judge_folder = tmp_path / "model_judgment" / "j1"
    with pytest.raises(ConfigError, match=r"j1: no judge subfolders .*holds <model>\.jsonl files itself"):
        read_judgments(judge_folder, baseline="base")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match=r"empty: no judge subfolders \(expected model_judgment/<judge>/\S+\)$"):
        read_judgments(tmp_path / "empty", baseline="base")
    with pytest.raises(ConfigError, match=r"missing: not a folder"):
        read_judgments(tmp_path / "missing", baseline="base")
    (tmp_path / "model_judgment" / "j4").mkdir()
    with pytest.raises(ConfigError, match=r"j4: holds no <model>\.jsonl judgment files"):
        read_judgments(tmp_path, ["j4"], baseline="base")
    write_judgments(tmp_path, "j5", "m1", [v01("q1", "m1", None, None)])
    with pytest.raises(ConfigError, match=r"no scored game in the judgments of j5"):
        read_judgments(tmp_path, ["j5"], baseline="base")
    unknown = score("--judgments", str(tmp_path), "--baseline", "base", "--judge", "j3")
    assert unknown.exit_code == 1 and "available: j1, j2, j4, j5" in unknown.stderr


def test_option_errors(tmp_path):
    good(tmp_path)
    no_baseline = score("--judgments", str(tmp_path))
    assert no_baseline.exit_code == 1 and "--judgments needs --baseline NAME" in no_baseline.stderr
    judge_alone = score("--judge", "j1", "--baseline", "base")  # without --judgments: a judge of the run (the demo)
    assert judge_alone.exit_code == 1 and "--judge 'j1' names no judge of demo" in judge_alone.stderr
    with_battles = score("--battles", str(tmp_path / "b.jsonl"), "--judge", "j1", "--baseline", "base")
    assert with_battles.exit_code == 1 and "a battles file has none" in with_battles.stderr
    both = score("--judgments", str(tmp_path), "--battles", str(tmp_path / "b.jsonl"), "--baseline", "base")
    assert both.exit_code == 1 and "not both" in both.stderr


def test_score_judgments_refuses_a_link_to_dev_zero_in_the_folder_naming_it(tmp_path):
    """Old code: the link was read as a judgment file until memory ran out (here: 1 GiB more, then MemoryError)."""
    from test_bad_input import memory_bound

    good(tmp_path)
    link = tmp_path / "model_judgment" / "j1" / "m2.jsonl"
    link.symlink_to("/dev/zero")
    with memory_bound():
        run = score("--judgments", str(tmp_path), "--baseline", "base")
    assert run.exit_code == 1 and "Traceback" not in run.output, run.output[-2000:]
    assert f"{link}: is a device (a link to /dev/zero), not a regular file" in run.stderr
