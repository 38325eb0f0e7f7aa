"""Bad input stops `arena-eval run` with exit code 1 and one message that names the file, line or field and
says what to do — never a traceback — and what earlier runs stored in the output folder stays as it was.

The loaders' own messages are unit-tested in test_config.py and test_questions.py; here each case goes
through the command line, against an output folder that already holds a complete run."""

from __future__ import annotations

import re
import sqlite3
from contextlib import contextmanager
from pathlib import Path

import pytest
import yaml
from conftest import write_config
from typer.testing import CliRunner

from arena_eval.augment.rag import load_corpus
from arena_eval.cli import app
from arena_eval.errors import ArenaError
from arena_eval.interop import read_battles
from arena_eval.labels import read_labels
from arena_eval.quality import read_reference
from arena_eval.questions import load_questions

N = 3


def edit(path: Path, change) -> None:
    data = yaml.safe_load(path.read_text())
    change(data)
    path.write_text(yaml.safe_dump(data, sort_keys=False))


def line_of(path: Path, text: str) -> int:
    return next(number for number, line in enumerate(path.read_text().splitlines(), 1) if text in line)


def label_less_prompts(folder: Path) -> Path:
    folder.mkdir()
    (folder / "judge_system.j2").write_text("Compare the two answers and say which one is better.")
    (folder / "judge_user.j2").write_text("{{ question }}\n{{ answer_a }}\n{{ answer_b }}")
    (folder / "judge_reask.j2").write_text("Please decide.")
    return folder


# name → (break the inputs, the patterns the message must match). `config` is the YAML file, `questions` the
# question set, `folder` the test's folder; a pattern may use {line:TEXT}, the config line holding TEXT.
CASES = {
    "malformed YAML": (
        lambda config, questions, folder: config.write_text(config.read_text().replace("baseline: base", "baseline: [base")),
        [r"config\.yaml:\d+:\d+: malformed YAML: .*\(while parsing a flow sequence started at line {line:baseline: [base}\)",
         r"Fix the syntax at that position"]),
    "unknown key": (
        lambda config, questions, folder: edit(config, lambda d: d["contestants"][1].update(temprature=0.2)),
        [r"config\.yaml:{line:temprature}: contestants\[1\]\.temprature: unknown key 'temprature'",
         r"remove it or check its spelling"]),
    "wrong type": (
        lambda config, questions, folder: edit(config, lambda d: d["judge"].update(concurrency="lots")),
        [r"config\.yaml:{line:lots}: judge\.concurrency: .*integer", r"\(got 'lots'\)"]),
    "missing questions file": (
        lambda config, questions, folder: edit(config, lambda d: d.update(questions="nowhere.jsonl")),
        [r"config\.yaml:{line:nowhere.jsonl}: questions: file \S*nowhere\.jsonl not found",
         r"Point `questions` at a \.jsonl or \.csv question set"]),
    "bad JSONL line": (
        lambda config, questions, folder: questions.write_text(
            questions.read_text().splitlines()[0] + '\n{"question_id": "q1", "turns": [\n'),
        [r"questions\.jsonl:2: malformed JSON", r"fix or remove the line"]),
    "duplicate question ids": (
        lambda config, questions, folder: questions.write_text(2 * (questions.read_text().splitlines()[0] + "\n")),
        [r"questions\.jsonl: duplicate question id 'q0000' \(entries 1 and 2\)", r"ids must be unique"]),
    "empty question set": (
        lambda config, questions, folder: questions.write_text("\n"),
        [r"questions\.jsonl: the question set is empty", r"add at least one question"]),
    "unknown provider": (
        lambda config, questions, folder: edit(config, lambda d: d["contestants"][1].update(provider="openia")),
        [r"config\.yaml:{line:openia}: contestants\[1\]\.provider: unknown provider 'openia'",
         r"known providers: openai, anthropic, litellm, llama_cpp, vllm"]),
    "missing API key variable": (
        lambda config, questions, folder: edit(config, lambda d: d["contestants"][1].update(api_key_env="ARENA_BAD_INPUT_KEY")),
        [r"environment variable ARENA_BAD_INPUT_KEY \(api_key_env of model 'model-c1'\) is not set",
         r"export ARENA_BAD_INPUT_KEY=\.\.\. before the run"]),
    "baseline not a contestant": (
        lambda config, questions, folder: edit(config, lambda d: d.update(baseline="nobody")),
        [r"config\.yaml:{line:nobody}: baseline: baseline 'nobody' is not a contestant", r"set baseline to one of: base, c1"]),
    "category baseline not a contestant": (
        lambda config, questions, folder: edit(config, lambda d: d.update(
            baseline={"cat0": "base", "cat1": "nobody", "default": "base"})),
        [r"config\.yaml:{line:nobody}: baseline\.cat1: baseline 'nobody' for category 'cat1' is not a contestant",
         r"use one of: base, c1"]),
    "category left without a baseline": (
        lambda config, questions, folder: edit(config, lambda d: d.update(baseline={"cat0": "base", "cat1": "c1"})),
        [r"baseline: \S*questions\.jsonl has questions in category cat2 that the baseline mapping gives no baseline",
         r"add them to the mapping or give a `default:` baseline"]),
    "baseline for an unknown category": (
        lambda config, questions, folder: edit(config, lambda d: d.update(
            baseline={"cat0": "base", "cat_1": "c1", "default": "base"})),
        [r"baseline names category cat_1, which \S*questions\.jsonl does not have; its categories: cat0, cat1, cat2",
         r"`default:` names the baseline of every other category"]),
    "judge prompts for an unknown category": (
        lambda config, questions, folder: edit(config, lambda d: d["judge"].update(
            prompts_by_category={"creative": "prompts"})),
        [r"judge judge-model: prompts_by_category names category creative, which \S*questions\.jsonl does not have",
         r"its categories: cat0, cat1, cat2"]),
    "a question with an assistant turn": (
        lambda config, questions, folder: questions.write_text(questions.read_text().splitlines()[0] + "\n"
            + '{"question_id": "q1", "turns": [{"content": "Hi"}, {"role": "assistant", "content": "Hello"}]}\n'),
        [r"questions\.jsonl:2: question 'q1': `turns` turn 2 has role 'assistant'",
         r"a question holds the user's turns only"]),
    "an empty turn": (
        lambda config, questions, folder: questions.write_text(questions.read_text().splitlines()[0] + "\n"
            + '{"id": "q1", "prompt": ["Hi", "  "]}\n'),
        [r"questions\.jsonl:2: question 'q1': `prompt` turn 2 is empty"]),
    "a turn that is not text": (
        lambda config, questions, folder: questions.write_text(questions.read_text().splitlines()[0] + "\n"
            + '{"question_id": "q1", "turns": ["Hi", {"content": 7}]}\n'),
        [r"questions\.jsonl:2: question 'q1': `turns` turn 2 is int, not text"]),
    "judge template without labels": (
        lambda config, questions, folder: edit(config, lambda d: d["judge"].update(
            prompt_dir=str(label_less_prompts(folder / "label-less")))),
        [r"label-less: the judge prompt must show all five labels", r"\[\[A>>B\]\] \[\[A>B\]\] \[\[A=B\]\]",
         r"verdicts cannot be parsed"]),
    "missing GGUF file": (
        lambda config, questions, folder: edit(config, lambda d: d["contestants"].append(
            {"name": "local", "provider": "llama_cpp", "model_path": "models/missing.gguf"})),
        [r"model_path 'models/missing\.gguf': no GGUF file at \S*models/missing\.gguf",
         r"point model_path at a \.gguf file"]),
    "key given twice": (
        lambda config, questions, folder: config.write_text(
            config.read_text().replace("  model: model-c1\n", "  model: model-c1\n  model: model-c2\n")),
        [r"config\.yaml:{line:model: model-c2}: duplicate key 'model' \(first at line {line:model: model-c1}\); "
         r"keep one of them$"]),
    "question file not UTF-8": (
        lambda config, questions, folder: questions.write_bytes(
            questions.read_bytes().replace(b"Question number 1?", b"Question number \xff?")),
        [r"questions\.jsonl:2: not valid UTF-8 \(byte 0xff at column \d+\); save the file as UTF-8$"]),
    "a lone surrogate in a question": (
        lambda config, questions, folder: questions.write_text(questions.read_text().splitlines()[0] + "\n"
            + '{"id": "q1", "prompt": "bad \\ud800 text"}\n'),
        [r"questions\.jsonl:2: a string in field `prompt` holds a lone UTF-16 surrogate \(such as \\ud800\)",
         r"fix or remove the line$"]),
    "a deeply nested JSON line": (
        lambda config, questions, folder: questions.write_text(questions.read_text().splitlines()[0] + "\n"
            + "[" * 100_000 + "\n"),
        [r"questions\.jsonl:2: JSON nested too deeply to read", r"fix or remove the line$"]),
    "output below a regular file": (
        lambda config, questions, folder: edit(config, lambda d: d.update(output=str(questions / "results"))),
        [r"cannot write to the output folder \S*questions\.jsonl/results/t: Not a directory",
         r"Set `output` in the config to a folder you can write to"]),
}


def snapshot(output: Path) -> dict:
    with sqlite3.connect(output / "arena.db") as db:
        return {
            "answers": db.execute("SELECT answer_id, text FROM answers ORDER BY 1").fetchall(),
            "judgments": db.execute("SELECT game_id, verdict FROM judgments ORDER BY 1").fetchall(),
            "integrity": db.execute("PRAGMA integrity_check").fetchall(),
            "leaderboard.json": (output / "leaderboard.json").read_text(),
        }


@pytest.mark.slow
@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_is_exit_code_1_with_a_message_that_says_where_and_what_to_do(tmp_path, fake_server, monkeypatch, case):
    server = fake_server()
    config = write_config(tmp_path, server.base_url, n_questions=N)
    questions, output = tmp_path / "questions.jsonl", tmp_path / "out" / "t"
    runner = CliRunner()
    first = runner.invoke(app, ["run", "--config", str(config), "--no-progress"])
    assert first.exit_code == 0, first.output
    before, requests = snapshot(output), sum(server.requests.values())
    assert len(before["answers"]) == 2 * N and len(before["judgments"]) == 2 * N

    monkeypatch.delenv("ARENA_BAD_INPUT_KEY", raising=False)
    breaker, patterns = CASES[case]
    breaker(config, questions, tmp_path)
    result = runner.invoke(app, ["run", "--config", str(config), "--no-progress"])

    assert result.exit_code == 1, result.output
    message = result.stderr
    assert message.startswith("error: ") and "Traceback" not in result.output
    for pattern in patterns:
        pattern = re.sub(r"\{line:(.+?)\}", lambda m: str(line_of(config, m.group(1))), pattern)
        assert re.search(pattern, message), (pattern, message)
    # Stopped before any request, and nothing stored earlier was lost or changed.
    assert sum(server.requests.values()) == requests
    assert snapshot(output) == before


def test_a_leaderboard_that_cannot_be_written_keeps_every_answer_and_verdict(tmp_path, fake_server):
    """An error at the very end of a run (the output file is in the way) loses none of the work before it."""
    server = fake_server()
    config = write_config(tmp_path, server.base_url, n_questions=N)
    output = tmp_path / "out" / "t"
    (output / "leaderboard.json").mkdir(parents=True)
    runner = CliRunner()
    result = runner.invoke(app, ["run", "--config", str(config), "--no-progress"])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert re.search(r"cannot write \S*leaderboard\.json: Is a directory\. Answers and verdicts are stored in "
                     r"\S*arena\.db; .*run `arena-eval score`", result.stderr), result.stderr
    with sqlite3.connect(output / "arena.db") as db:
        assert db.execute("SELECT COUNT(*) FROM answers").fetchone() == (2 * N,)
        assert db.execute("SELECT COUNT(*) FROM judgments").fetchone() == (2 * N,)
    (output / "leaderboard.json").rmdir()
    requests = sum(server.requests.values())
    score = runner.invoke(app, ["score", "--config", str(config), "--format", "json"])
    assert score.exit_code == 0, score.output
    assert (output / "leaderboard.json").exists() and sum(server.requests.values()) == requests


# --- hostile input files: links to devices, endless lines, lone surrogates, deep nesting, huge values -------------

@contextmanager
def memory_bound(extra: int = 2**30):
    """At most `extra` more bytes of address space while inside: a reader that reads a link to /dev/zero to the end
    fails with MemoryError instead of taking the machine's memory (the old code did)."""
    import resource

    used = int(next(line.split()[1] for line in Path("/proc/self/status").read_text().splitlines()
                    if line.startswith("VmSize:"))) * 1024
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    resource.setrlimit(resource.RLIMIT_AS, (used + extra, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


READERS = {
    "questions": ("x.jsonl", load_questions),
    "questions (CSV)": ("x.csv", load_questions),
    "labels": ("x.jsonl", read_labels),
    "battles": ("x.jsonl", read_battles),
    "rag passages": ("x.jsonl", load_corpus),
    "reference leaderboard": ("x.csv", read_reference),
}


@pytest.mark.parametrize("reader", list(READERS))
def test_every_input_reader_refuses_a_link_to_a_device_naming_the_file(tmp_path, reader):
    """Old code: each read /dev/zero until memory ran out (a file without line ends)."""
    name, read = READERS[reader]
    link = tmp_path / name
    link.symlink_to("/dev/zero")
    with memory_bound(), pytest.raises(ArenaError) as caught:
        read(link)
    assert f"{link}: is a device (a link to /dev/zero), not a regular file" in str(caught.value)


def test_a_fifo_as_question_file_is_refused_without_waiting_for_a_writer(tmp_path):
    """Old code: the open blocked for ever, waiting for a writer (here: given up after 10 s, in a daemon thread)."""
    import os
    import threading

    os.mkfifo(tmp_path / "q.jsonl")
    outcome: list[BaseException] = []

    def load() -> None:
        try:
            load_questions(tmp_path / "q.jsonl")
        except BaseException as exc:  # noqa: BLE001 (handed to the test)
            outcome.append(exc)

    worker = threading.Thread(target=load, daemon=True)
    worker.start()
    worker.join(10)
    assert not worker.is_alive(), "still waiting for a writer after 10 s"
    (error,) = outcome
    assert isinstance(error, ArenaError) and "q.jsonl: is a pipe, not a regular file" in str(error)


def test_a_line_over_the_bound_is_never_held_and_files_and_downloads_split_lines_alike(tmp_path):
    from arena_eval.lines import LineSplitter, file_lines

    data = b"short\n" + b'{"custom_id": "c-1", "x": "' + b"y" * 200 + b'"}\nend'
    (tmp_path / "f").write_bytes(data)
    from_file = list(file_lines(tmp_path / "f", limit=40))
    splitter = LineSplitter(limit=40)
    from_chunks = [line for i in range(0, len(data), 7) for line in splitter.feed(data[i:i + 7])] + splitter.end()
    assert from_file == from_chunks
    assert [(line.number, line.data, line.size) for line in from_file] == [(1, b"short", 5), (2, None, 229),
                                                                           (3, b"end", 3)]
    assert from_file[1].head.startswith(b'{"custom_id": "c-1"')


@pytest.mark.parametrize("line, message", [
    ('{"id": "q1", "prompt": "bad \\ud800 text"}',
     r"q\.jsonl:2: a string in field `prompt` holds a lone UTF-16 surrogate \(such as \\ud800\)"),
    ("[" * 100_000, r"q\.jsonl:2: JSON nested too deeply to read"),
])
def test_a_lone_surrogate_or_deep_nesting_in_a_question_is_an_error_naming_file_and_line(tmp_path, line, message):
    """Old code: a UnicodeEncodeError traceback when the question was stored, a RecursionError traceback."""
    from arena_eval.errors import ConfigError
    from arena_eval.questions import load_questions

    path = tmp_path / "q.jsonl"
    path.write_text('{"id": "q0", "prompt": "fine"}\n' + line + "\n")
    with pytest.raises(ConfigError, match=message):
        load_questions(path)


def test_a_question_line_over_the_bound_is_an_error_naming_file_and_line(tmp_path):
    from arena_eval import questions

    path = tmp_path / "q.jsonl"
    path.write_text('{"id": "q0", "prompt": "fine"}\n{"id": "q1", "prompt": "' + "z" * 5_000 + '"}\n')
    with pytest.raises(questions.ConfigError, match=r"q\.jsonl:2: the line is 5,026 bytes, more than the 1,000"):
        list(questions.read_jsonl(path, limit=1_000))


def test_an_error_about_a_reference_csv_shows_a_huge_value_cut_short(tmp_path):
    """Old code: the message held the 5 MB value whole."""
    from arena_eval.errors import ConfigError
    from arena_eval.quality import read_reference

    path = tmp_path / "ref.csv"
    path.write_text("model,score\na,1\nb," + "9x" * 2_500_000 + "\n")
    with pytest.raises(ConfigError) as caught:
        read_reference(path)
    message = str(caught.value)
    assert len(message) < 400 and "ref.csv:3: `score` of 'b' is '9x9x" in message
    assert "… (5,000,000 characters), not a number" in message
