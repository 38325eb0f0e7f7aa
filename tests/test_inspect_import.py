"""Questions and answers from inspect_ai eval logs (arena_eval/inspect_logs.py, docs/design.md §5.9), on real logs
that inspect_ai itself writes offline (its mockllm provider, two "models"), made once per test session."""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path

import pytest
import yaml
from conftest import write_config
from typer.testing import CliRunner

from arena_eval.cli import app
from arena_eval.config import load_config
from arena_eval.pipeline import Arena
from arena_eval.store import Store

runner = CliRunner()
UNUSED_URL = "http://127.0.0.1:9/v1"  # port 9 (discard): the imported contestants are never asked


def cli(*args, code: int = 0):
    result = runner.invoke(app, [str(a) for a in args])
    assert result.exit_code == code, result.output
    return result


# --- the logs: made by inspect_ai's own eval() with its mockllm provider ----------------------------------------

CONVERSATION = ("Name a prime.", "Two.", "And the next?")


def _samples(sample_type, user, assistant, system):
    return [
        sample_type(id="q1", input="What is 2+2?", target="4"),
        sample_type(id=2, input="Name a colour.", metadata={"category": "easy"}),
        sample_type(id="conv", input=[system(content="Be brief."), user(content=CONVERSATION[0]),
                                      assistant(content=CONVERSATION[1]), user(content=CONVERSATION[2])]),
        sample_type(id="flaky", input="Say something."),
    ]


def _model_replies(name: str, fail_once: str | None = None):
    """mockllm's custom_outputs: a reply naming the model and the last message (beta's longer), with token counts;
    the first request for `fail_once` raises, so that its sample fails in that epoch."""
    from inspect_ai.model import ModelOutput, ModelUsage

    seen: dict[str, int] = {}

    def reply(messages, tools, tool_choice, config):
        last = messages[-1].text
        seen[last] = seen.get(last, 0) + 1
        if last == fail_once and seen[last] == 1:
            raise RuntimeError(f"{name} could not answer {last!r}")
        text = f"{name} answers {last}" + (" at length, in many more words than alpha" if name == "beta" else "")
        output = ModelOutput.from_content(model=name, content=text)
        # Given, so that mockllm does not count tokens with tiktoken (which would download its encoding).
        output.usage = ModelUsage(input_tokens=sum(len(m.text.split()) for m in messages),
                                  output_tokens=len(text.split()), total_tokens=0)
        return output

    return reply


@pytest.fixture(scope="session")
def logs(tmp_path_factory) -> dict[str, Path]:
    """Log folders: `alpha` (a .eval log, 2 epochs; `flaky` fails in epoch 1), `beta` (a .json log, 1 epoch;
    `flaky` fails), `unanswered` (a solver that never calls the model: samples without output), `other` (another
    task whose sample `q1` asks something else). inspect_ai sets up its logging on the root logger: put back."""
    from inspect_ai import Task, eval
    from inspect_ai.dataset import Sample
    from inspect_ai.model import ChatMessageAssistant, ChatMessageSystem, ChatMessageUser, get_model
    from inspect_ai.solver import generate, solver

    @solver
    def never_asks():
        async def solve(state, generate):
            return state

        return solve

    root = tmp_path_factory.mktemp("inspect_logs")
    samples = _samples(Sample, ChatMessageUser, ChatMessageAssistant, ChatMessageSystem)
    saved = [(logger, logger.level, list(logger.handlers), logger.propagate)
             for logger in (logging.getLogger(), *map(logging.getLogger, ("inspect_ai", "httpx", "httpx2")))]
    started, cpu = time.perf_counter(), time.process_time()
    try:
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv("XDG_DATA_HOME", str(root / "inspect_data"))  # its trace files, not the user's
            patch.setenv("INSPECT_EVAL_CTL_SERVER", "false")  # no control server (and no fastapi import) per eval
            common = {"display": "none", "fail_on_error": False}
            eval(Task(dataset=samples, solver=generate(), name="arena"), epochs=2, log_dir=str(root / "alpha"),
                 model=get_model("mockllm/alpha", custom_outputs=_model_replies("alpha", "Say something.")), **common)
            eval(Task(dataset=samples, solver=generate(), name="arena"), log_dir=str(root / "beta"), log_format="json",
                 model=get_model("mockllm/beta", custom_outputs=_model_replies("beta", "Say something.")), **common)
            eval(Task(dataset=samples, solver=never_asks(), name="arena"), log_dir=str(root / "unanswered"),
                 model="mockllm/model", **common)
            eval(Task(dataset=[Sample(id="q1", input="What is 3+3?")], solver=generate(), name="other"),
                 log_dir=str(root / "other"), model=get_model("mockllm/alpha", custom_outputs=_model_replies("alpha")),
                 **common)
    finally:
        for logger, level, handlers, propagate in saved:
            logger.setLevel(level)
            logger.handlers[:] = handlers
            logger.propagate = propagate
    print(f"\ninspect_ai wrote 4 logs in {time.perf_counter() - started:.1f} s ({time.process_time() - cpu:.1f} s CPU)")
    return {name: root / name for name in ("alpha", "beta", "unanswered", "other")}


def log_file(folder: Path) -> Path:
    (file,) = [p for p in folder.iterdir() if p.suffix in (".eval", ".json")]
    return file


def read_samples(folder: Path) -> dict[tuple[str, int], object]:
    """(id, epoch) → the sample, as inspect_ai reads its own log."""
    from inspect_ai.log import read_eval_log

    return {(str(s.id), s.epoch): s for s in read_eval_log(str(log_file(folder))).samples}


def config_for(folder: Path, questions: Path, judge_url: str = UNUSED_URL, **alpha) -> Path:
    """alpha (the baseline) and beta, both imported from logs; the judge at `judge_url`."""
    path = write_config(folder, judge_url, contestants=[{"name": "alpha", "model": "mockllm/alpha", **alpha},
                                                        {"name": "beta", "model": "mockllm/beta"}])
    data = yaml.safe_load(path.read_text())
    data["questions"] = str(questions)
    for contestant in data["contestants"]:
        contestant["base_url"] = UNUSED_URL
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def stored_anything(folder: Path) -> bool:
    return any((folder / "out").rglob("arena.db"))


def stored_answers(config: Path, contestant: str) -> dict[str, object]:
    arena = Arena(load_config(config))
    with Store(arena.config.output_dir / "arena.db") as store:
        current = arena.answer_sets(store).current(contestant, arena.scope.questions)
        return {qid: store.get_answer(aid) for qid, aid in current.items()}


# --- questions --------------------------------------------------------------------------------------------------

def test_a_logs_samples_become_a_question_set_with_their_ids_inputs_categories_and_targets(logs, tmp_path):
    from arena_eval.questions import load_questions

    out = tmp_path / "questions.jsonl"
    result = cli("questions", "--from", "inspect", logs["alpha"], "--out", out)
    assert f"wrote 4 questions to {out}, from 1 log" in result.stdout
    assert "1 of the samples' inputs begin with a system message" in result.stdout
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert {r["id"] for r in records} == {sid for sid, _ in read_samples(logs["alpha"])}
    by_id = {r["id"]: r for r in records}
    assert by_id["q1"] == {"id": "q1", "prompt": "What is 2+2?", "category": "arena", "reference": "4"}
    assert by_id["2"] == {"id": "2", "prompt": "Name a colour.", "category": "easy"}  # the sample's category
    assert by_id["conv"]["prompt"] == [CONVERSATION[0], CONVERSATION[2]]  # the user turns: a conversation
    questions = {q.question_id: q for q in load_questions(out)}
    assert questions["conv"].turns == (CONVERSATION[0], CONVERSATION[2])

    # A folder of both models' logs of the task holds the same questions once.
    both = tmp_path / "both"
    both.mkdir()
    for name in ("alpha", "beta"):
        (both / log_file(logs[name]).name).write_bytes(log_file(logs[name]).read_bytes())
    again = tmp_path / "again.jsonl"
    assert "wrote 4 questions" in cli("questions", "--from", "inspect", both, "--out", again).stdout
    assert sorted(again.read_text().splitlines()) == sorted(out.read_text().splitlines())


def test_questions_refuses_an_existing_out_file_without_force_and_a_file_that_is_not_jsonl(logs, tmp_path):
    out = tmp_path / "questions.jsonl"
    out.write_text("keep me\n")
    assert "exists; pass --force" in cli("questions", "--from", "inspect", logs["alpha"], "--out", out, code=1).output
    assert out.read_text() == "keep me\n"
    cli("questions", "--from", "inspect", logs["alpha"], "--out", out, "--force")
    assert len(out.read_text().splitlines()) == 4
    assert "name it FILE.jsonl" in cli("questions", "--from", "inspect", logs["alpha"], "--out", tmp_path / "q.csv",
                                       code=1).output


# --- answers, and judging them ------------------------------------------------------------------------------------

@pytest.mark.slow  # judging and scoring in process: seconds
def test_two_models_logs_imported_as_two_contestants_are_judged_with_the_logs_ids_and_answers(logs, tmp_path,
                                                                                            fake_server):
    server = fake_server()  # the judge only: it prefers the longer answer, beta's
    questions = tmp_path / "from_log.jsonl"
    cli("questions", "--from", "inspect", logs["alpha"], "--out", questions)
    config = config_for(tmp_path, questions, server.base_url)

    alpha = cli("import", "--from", "inspect", logs["alpha"], "--contestant", "alpha", "--config", config)
    assert "4 answers imported for alpha (model mockllm/alpha), 0 already stored" in alpha.stdout
    assert ("each question's answer is its lowest epoch with an output (epoch 1 for 3 questions, epoch 2 for 1 "
            "question), 3 samples of later epochs left out") in alpha.stdout
    assert "sample 'flaky' (epoch 1): failed in inspect_ai (RuntimeError(" in alpha.stderr
    assert "epoch 2 is taken instead" in alpha.stderr
    beta = cli("import", "--from", "inspect", logs["beta"], "--contestant", "beta", "--config", config)
    assert "3 answers imported for beta (model mockllm/beta)" in beta.stdout
    assert "1 questions without an answer in the log" in beta.stdout
    assert "sample 'flaky' (epoch 1): failed in inspect_ai" in beta.stderr and "not imported" in beta.stderr

    # The stored answers are the logs' samples: ids, texts (a conversation's given turn, then the output), tokens.
    for name, epochs in (("alpha", {"q1": 1, "2": 1, "conv": 1, "flaky": 2}), ("beta", {"q1": 1, "2": 1, "conv": 1})):
        samples = read_samples(logs[name])
        answers = stored_answers(config, name)
        assert set(answers) == set(epochs)
        for qid, epoch in epochs.items():
            sample, answer = samples[(qid, epoch)], answers[qid]
            assert answer.text == sample.output.completion
            assert (answer.output_tokens, answer.input_tokens) == (sample.output.usage.output_tokens,
                                                                   sample.output.usage.input_tokens)
            assert (answer.source_id, answer.tokens_estimated, answer.finish_reason) == (sample.uuid, False, "stop")
        assert [t["text"] for t in answers["conv"].turns] == [CONVERSATION[1], samples[("conv", 1)].output.completion]

    judged = cli("judge", "--config", config, code=2)  # 2: beta has no answer to flaky, so its games are missing
    assert "answers 0 new, 7 stored before, 0 errors, 1 missing; games 6 new" in judged.output
    assert server.requests["judge-model"] == 6, judged.output  # q1, 2 and conv, two games each; flaky unanswered
    assert server.requests["mockllm/alpha"] == server.requests["mockllm/beta"] == 0  # nothing asked of them
    rows = {r["model"]: r for r in json.loads(cli("score", "--config", config, "--format", "json", code=2).stdout)}
    assert rows["beta"]["score"] > rows["alpha"]["score"]  # the judge preferred beta's longer answers each time

    # Imported again: nothing new, everything found stored.
    again = cli("import", "--from", "inspect", logs["beta"], "--contestant", "beta", "--config", config)
    assert "0 answers imported for beta (model mockllm/beta), 3 already stored" in again.stdout


def test_an_answer_over_max_response_bytes_is_skipped_and_named(logs, tmp_path):
    questions = tmp_path / "from_log.jsonl"
    cli("questions", "--from", "inspect", logs["alpha"], "--out", questions)
    config = config_for(tmp_path, questions, max_response_bytes=26)  # "alpha answers What is 2+2?" is 26 bytes
    result = cli("import", "--from", "inspect", logs["alpha"], "--contestant", "alpha", "--config", config)
    assert "1 answers imported for alpha" in result.stdout and "3 over max_response_bytes (skipped)" in result.stdout
    assert "sample 'conv' (epoch 1): the answer to question 'conv' is 27 bytes, over alpha's max_response_bytes of 26" \
           in result.stderr
    assert set(stored_answers(config, "alpha")) == {"q1"}


def test_thinking_a_cut_off_answer_a_log_without_usage_a_refusal_and_inputs_that_are_not_questions(logs, tmp_path):
    """alpha's log rewritten by inspect_ai's own writer with the cases its mock model cannot produce: an output
    with reasoning content, stopped at max_tokens, without usage; a refused one; inputs with an image or a tool
    message."""
    from inspect_ai.log import read_eval_log, write_eval_log
    from inspect_ai.model import (
        ChatMessageTool,
        ChatMessageUser,
        ContentImage,
        ContentReasoning,
        ContentText,
        ModelOutput,
    )

    log = read_eval_log(str(log_file(logs["alpha"])))
    by_id = {str(s.id): s for s in log.samples if s.epoch == 1}
    thought = ModelOutput.from_content(model="alpha", stop_reason="max_tokens", content=[
        ContentReasoning(reasoning="Two plus two: count on."), ContentText(text="4, as far as I got")])
    log.samples = [
        by_id["q1"].model_copy(update={"output": thought}),
        by_id["2"].model_copy(update={"output": ModelOutput.from_content(model="alpha", content="No.",
                                                                       stop_reason="content_filter")}),
        by_id["conv"].model_copy(update={"input": [ChatMessageUser(content="Look it up."),
                                                   ChatMessageTool(content="42", tool_call_id="t1")]}),
        by_id["flaky"].model_copy(update={"input": [ChatMessageUser(content=[
            ContentText(text="What is this?"), ContentImage(image="data:image/png;base64,iVBORw0KGgo=")])]}),
    ]
    rewritten = tmp_path / "logs" / "2026-01-01T00-00-00+00-00_arena_rewritten.eval"
    rewritten.parent.mkdir()
    write_eval_log(log, str(rewritten))

    questions = tmp_path / "from_log.jsonl"
    made = cli("questions", "--from", "inspect", rewritten, "--out", questions)
    assert "wrote 2 questions" in made.stdout and "(2 samples are not questions: named above)" in made.stdout
    assert "sample 'conv' (epoch 1): input message 2 is the tool's where a conversation has the assistant's" \
           in made.stderr
    assert "sample 'flaky' (epoch 1): input message 1 holds image content; a question is text only" in made.stderr
    config = config_for(tmp_path, questions)
    result = cli("import", "--from", "inspect", rewritten, "--contestant", "alpha", "--config", config)
    assert "1 answers imported for alpha" in result.stdout and "1 questions without an answer" in result.stdout
    assert "sample 2 (epoch 1): was refused (stop reason content_filter); not imported" in result.stderr
    answer = stored_answers(config, "alpha")["q1"]
    assert (answer.text, answer.reasoning, answer.finish_reason) == ("4, as far as I got", "Two plus two: count on.",
                                                                     "length")
    assert (answer.output_tokens, answer.tokens_estimated) == (round(len("4, as far as I got") / 4), True)


# --- bad input ----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name, content", [("notes.json", b'{"a": 1}\n'), ("broken.eval", b"not a zip file"),
                                           ("answers.jsonl", b'{"question_id": "q1"}\n')])
def test_a_file_that_is_not_an_inspect_log_is_an_error_naming_it_and_nothing_is_stored(logs, tmp_path, name,
                                                                                       content):
    questions = tmp_path / "from_log.jsonl"
    cli("questions", "--from", "inspect", logs["alpha"], "--out", questions)
    config = config_for(tmp_path, questions)
    bad = tmp_path / name
    bad.write_bytes(content)
    result = cli("import", "--from", "inspect", bad, "--contestant", "alpha", "--config", config, code=1)
    assert f"{bad}: not an inspect_ai eval log: inspect_ai cannot read it" in result.output
    assert not stored_anything(tmp_path)
    out = tmp_path / "q2.jsonl"
    assert f"{bad}: not an inspect_ai eval log" in cli("questions", "--from", "inspect", bad, "--out", out,
                                                       code=1).output
    assert not out.exists()


def test_a_log_whose_samples_have_no_output_is_an_error(logs, tmp_path):
    questions = tmp_path / "from_log.jsonl"
    cli("questions", "--from", "inspect", logs["unanswered"], "--out", questions)  # its inputs are questions all the same
    config = config_for(tmp_path, questions)
    result = cli("import", "--from", "inspect", logs["unanswered"], "--contestant", "alpha", "--config", config, code=1)
    assert f"{logs['unanswered']}: its samples have no output to import (4 without output)" in result.output
    assert "has no output" in result.output
    assert not stored_anything(tmp_path)


def test_ids_that_clash_are_an_error_between_logs_and_against_the_question_set(logs, tmp_path):
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    for name in ("alpha", "other"):
        (mixed / log_file(logs[name]).name).write_bytes(log_file(logs[name]).read_bytes())
    clash = cli("questions", "--from", "inspect", mixed, "--out", tmp_path / "q.jsonl", code=1).output
    assert "ids clash" in clash and "'q1'" in clash and "What is 3+3?" in clash.replace("\n", "")

    # The set's q1 asks something else than the log's q1: the log is of another question set.
    questions = tmp_path / "from_log.jsonl"
    cli("questions", "--from", "inspect", logs["other"], "--out", questions)
    config = config_for(tmp_path, questions)
    result = cli("import", "--from", "inspect", logs["alpha"], "--contestant", "alpha", "--config", config, code=1)
    assert "its id is question 'q1' of the set, but its input differs (user turn 1 starts 'What is 2+2?', the question's " \
           "'What is 3+3?')" in result.output.replace("\n", "")
    assert "ids clash" in result.output and "arena-eval questions --from inspect" in result.output
    assert not stored_anything(tmp_path)  # found before the store was opened


def test_a_folder_of_two_models_logs_a_folder_without_logs_and_an_unknown_contestant_are_errors(logs, tmp_path):
    questions = tmp_path / "from_log.jsonl"
    cli("questions", "--from", "inspect", logs["alpha"], "--out", questions)
    config = config_for(tmp_path, questions)
    both = tmp_path / "both"
    both.mkdir()
    for name in ("alpha", "beta"):
        (both / log_file(logs[name]).name).write_bytes(log_file(logs[name]).read_bytes())
    two = cli("import", "--from", "inspect", both, "--contestant", "alpha", "--config", config, code=1).output
    assert "holds the answers of 2 models (mockllm/alpha:" in two and "import each model's logs" in two
    empty = tmp_path / "empty"
    empty.mkdir()
    assert "holds no inspect_ai log" in cli("import", "--from", "inspect", empty, "--contestant", "alpha",
                                            "--config", config, code=1).output
    assert "contestant 'gamma' is not in the config" in cli("import", "--from", "inspect", logs["alpha"],
                                                             "--contestant", "gamma", "--config", config, code=1).output


def test_without_inspect_ai_the_message_says_how_to_install_it(tmp_path, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "inspect_ai", None)  # `import inspect_ai` raises ImportError
    log = tmp_path / "run.eval"
    log.write_bytes(b"")
    result = cli("questions", "--from", "inspect", log, "--out", tmp_path / "q.jsonl", code=1)
    assert "pip install 'arena-eval[inspect]'" in result.output


def test_help_validate_and_import_help_do_not_load_inspect_ai(tmp_path):
    import subprocess
    import sys

    from test_startup import _IN_PROCESS, _config

    config = _config(tmp_path)
    for args in (["--help"], ["import", "--help"], ["questions", "--help"], ["validate", "-c", str(config)]):
        done = subprocess.run([sys.executable, "-W", "ignore", "-c", _IN_PROCESS, *args], capture_output=True,
                              text=True, cwd=tmp_path, timeout=120, env={**os.environ, "COLUMNS": "200"})
        report = json.loads(done.stdout.strip().splitlines()[-1])
        assert report["code"] == 0, done.stdout + done.stderr
        assert not [m for m in report["modules"] if m.split(".")[0] == "inspect_ai"], args
