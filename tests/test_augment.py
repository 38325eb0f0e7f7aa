"""Guidance and RAG: what each request carries, caching, failures, and retrieval itself."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import yaml
from conftest import write_config

from arena_eval import Arena, load_config
from arena_eval.augment.rag import BM25Index, Passage, chunk_text, load_corpus

CLI = [sys.executable, "-m", "arena_eval.cli"]


def add(path, **sections):
    data = yaml.safe_load(path.read_text())
    data.update(sections)
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def bodies(server, model):
    return [b for b in server.captured if b["model"] == model]


def test_guided_requests_carry_guidance_and_nobody_else_sees_it(tmp_path, fake_server):
    server = fake_server()
    server.capture = True
    contestants = [{"name": "base", "model": "m-base"}, {"name": "guided", "model": "m-guided", "augment": "guidance"}]
    path = write_config(tmp_path, server.base_url, n_questions=4, contestants=contestants)
    add(path, guidance={"provider": "openai", "base_url": server.base_url, "model": "guide-model",
                        "retry_initial_s": 0.01, "retry_max_s": 0.05})
    result = Arena(load_config(path)).run_sync()
    assert result.exit_code == 0, result.summary

    # The fake guide answers "Answer from guide-model to: <prompt>"; two calls per question (reference, guidance).
    assert server.requests["guide-model"] == 8
    guided = bodies(server, "m-guided")
    assert len(guided) == 4
    assert all("Guidance for the question" in b["messages"][0]["content"] and "Answer from guide-model" in b["messages"][0]["content"]
               for b in guided)
    for model in ("m-base", "judge-model"):
        assert not any("guide-model" in m["content"] or "Guidance for the question" in m["content"]
                       for b in bodies(server, model) for m in b["messages"])
    # The guided prompt is longer, and the leaderboard shows it.
    board = result.leaderboard.set_index("model")
    assert board.loc["guided", "avg_input_tokens"] > 3 * board.loc["base", "avg_input_tokens"]

    # Cached per (question, guide config): a second run asks the guide nothing.
    Arena(load_config(path)).run_sync()
    assert server.requests["guide-model"] == 8


@pytest.mark.slow
def test_guidance_command_builds_ahead_and_a_failing_guide_becomes_answer_errors(tmp_path, fake_server):
    server = fake_server(always_fail_models={"broken-guide"})
    contestants = [{"name": "base", "model": "m-base"}, {"name": "guided", "model": "m-guided", "augment": "guidance"}]
    path = write_config(tmp_path, server.base_url, n_questions=3, contestants=contestants)
    add(path, guidance={"provider": "openai", "base_url": server.base_url, "model": "guide-model"})
    built = subprocess.run([*CLI, "guidance", "--config", str(path)], capture_output=True, text=True)
    assert built.returncode == 0, built.stderr
    assert "guidance: 3 new, 0 stored before, 0 errors" in built.stderr
    assert server.requests["guide-model"] == 6 and server.requests["m-guided"] == 0

    add(path, guidance={"provider": "openai", "base_url": server.base_url, "model": "broken-guide", "max_attempts": 2,
                        "retry_initial_s": 0.01, "retry_max_s": 0.02})
    run = subprocess.run([*CLI, "run", "--config", str(path)], capture_output=True, text=True)
    assert run.returncode == 2
    assert "guided: 3" in run.stderr
    config = load_config(path)
    import sqlite3

    with sqlite3.connect(config.output_dir / "arena.db") as db:
        reasons = [r[0] for r in db.execute("SELECT reason FROM errors WHERE contestant='guided'")]
    assert len(reasons) == 3 and all("guide model failed" in r for r in reasons)
    assert server.requests["m-guided"] == 0


def test_rag_prompt_carries_the_passage_that_answers_and_ids_are_stored(tmp_path, fake_server):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "pets.md").write_text("# Pets\n\nThe office cat is called Bartholomew and sleeps on the printer.\n\n"
                                    "Dogs are not allowed in the office.")
    (corpus / "building.txt").write_text("The building has four floors.\n\nThe canteen opens at noon on weekdays.")
    questions = tmp_path / "rag-questions.jsonl"
    questions.write_text(json.dumps({"id": "cat", "prompt": "What is the name of the office cat?"}) + "\n"
                         + json.dumps({"id": "canteen", "prompt": "When does the canteen open?"}) + "\n")
    server = fake_server()
    server.capture = True
    contestants = [{"name": "base", "model": "m-base"}, {"name": "rag", "model": "m-rag", "augment": "rag"}]
    path = write_config(tmp_path, server.base_url, contestants=contestants)
    add(path, questions=str(questions), rag={"corpus": str(corpus), "top_k": 1, "chunk_chars": 100, "chunk_overlap": 10})
    result = Arena(load_config(path)).run_sync()
    assert result.exit_code == 0, result.summary

    prompts = {b["messages"][-1]["content"].rsplit("Question:\n", 1)[1].strip(): b["messages"][-1]["content"]
               for b in bodies(server, "m-rag")}
    assert "Bartholomew" in prompts["What is the name of the office cat?"]
    assert "noon" in prompts["When does the canteen open?"] and "Bartholomew" not in prompts["When does the canteen open?"]
    assert not any("Bartholomew" in m["content"] for model in ("m-base", "judge-model")
                   for b in bodies(server, model) for m in b["messages"])
    answers = {a.question_id: a for a in _answers(path, "rag")}
    assert answers["cat"].context_ids == ["pets.md#0"] and answers["canteen"].context_ids == ["building.txt#0"]


def test_a_conversation_retrieves_for_each_turn_and_stores_each_turns_passage_ids(tmp_path, fake_server):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "pets.md").write_text("# Pets\n\nThe office cat is called Bartholomew and sleeps on the printer.")
    (corpus / "building.txt").write_text("The building has four floors.\n\nThe canteen opens at noon on weekdays.")
    questions = tmp_path / "rag-questions.jsonl"
    questions.write_text(json.dumps({"id": "chat", "prompt": ["What is the name of the office cat?",
                                                              "And when does the canteen open?"]}) + "\n")
    server = fake_server()
    server.capture = True
    contestants = [{"name": "base", "model": "m-base"}, {"name": "rag", "model": "m-rag", "augment": "rag"}]
    path = write_config(tmp_path, server.base_url, contestants=contestants)
    add(path, questions=str(questions), rag={"corpus": str(corpus), "top_k": 1, "chunk_chars": 100, "chunk_overlap": 10})
    result = Arena(load_config(path)).run_sync()
    assert result.exit_code == 0, result.summary

    second = next(b["messages"] for b in bodies(server, "m-rag") if len(b["messages"]) == 3)
    # The first turn keeps its passage; the second turn is sent with the passage its own text retrieved.
    assert "Bartholomew" in second[0]["content"] and "noon" in second[2]["content"]
    assert "Bartholomew" not in second[2]["content"]
    answer = _answers(path, "rag")[0]
    assert [t.get("context_ids") for t in answer.turns] == [["pets.md#0"], ["building.txt#0"]]
    assert not any("Bartholomew" in m["content"] or "noon" in m["content"]
                   for b in bodies(server, "judge-model") for m in b["messages"])


def _answers(path, contestant):
    from arena_eval.store import Store

    with Store(load_config(path).output_dir / "arena.db") as store:
        return list(store.answers(contestant))


def test_augment_without_its_section_is_a_config_error(tmp_path):
    import pytest

    from arena_eval.errors import ConfigError

    path = write_config(tmp_path, "http://x/v1", contestants=[{"name": "a", "model": "m"}, {"name": "b", "model": "m", "augment": "rag"}])
    with pytest.raises(ConfigError, match="augment: rag, but the config has no `rag:` section"):
        load_config(path)


def test_chunking_packs_paragraphs_and_cuts_long_ones_with_overlap():
    text = "alpha " * 10 + "\n\n" + "beta " * 10 + "\n\n" + "x" * 250
    chunks = chunk_text(text, chunk_chars=120, overlap=20)
    assert chunks[0].startswith("alpha") and "beta" in chunks[0]
    long_parts = chunks[1:]
    assert all(len(c) <= 120 for c in long_parts) and "".join(c[:100] for c in long_parts[:-1]) + long_parts[-1] == "x" * 250


def test_bm25_ranks_the_matching_passage_first_and_ignores_stopwords():
    passages = [Passage("1", "Paris is the capital of France."), Passage("2", "Berlin is the capital of Germany."),
                Passage("3", "The the the of of of.")]
    index = BM25Index(passages)
    assert [p.id for p, _ in index.search("What is the capital of Germany?", 2)][0] == "2"
    assert index.search("the of", 3) == []


def test_jsonl_corpus_and_bad_lines(tmp_path):
    import pytest

    from arena_eval.errors import ConfigError

    good = tmp_path / "p.jsonl"
    good.write_text('{"id": "a", "text": "one"}\n{"id": "b", "text": "two"}\n')
    assert [p.id for p in load_corpus(good)] == ["a", "b"]
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "a", "text": "one"}\n{"id": "b"}\n')
    with pytest.raises(ConfigError, match="bad.jsonl:2"):
        load_corpus(bad)


def test_a_corpus_line_that_is_not_utf8_names_the_file_and_line_and_a_byte_order_mark_is_accepted(tmp_path):
    import pytest

    from arena_eval.errors import ConfigError

    bad = tmp_path / "p.jsonl"
    bad.write_bytes(b'{"id": "a", "text": "one"}\n{"id": "b", "text": "Gr\xfc\xdfe"}\n')
    with pytest.raises(ConfigError) as info:
        load_corpus(bad)
    assert str(info.value) == f"{bad}:2: not valid UTF-8 (byte 0xfc at column 24); save the file as UTF-8"
    marked = tmp_path / "marked.jsonl"
    marked.write_bytes(b'\xef\xbb\xbf{"id": "a", "text": "one"}\n')
    assert [p.id for p in load_corpus(marked)] == ["a"]


@pytest.mark.slow
def test_a_guide_or_rag_template_that_needs_other_files_is_refused_when_read_before_any_request(tmp_path, fake_server):
    server = fake_server()
    contestants = [{"name": "base", "model": "m-base"}, {"name": "rag", "model": "m-rag", "augment": "rag"},
                   {"name": "guided", "model": "m-guided", "augment": "guidance"}]
    path = write_config(tmp_path, server.base_url, n_questions=2, contestants=contestants)
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text('{"id": "a", "text": "The office cat is called Bartholomew."}\n')
    rag_prompts, guide_prompts = tmp_path / "rag-prompts", tmp_path / "guide-prompts"
    rag_prompts.mkdir()
    guide_prompts.mkdir()
    (rag_prompts / "rag_user.j2").write_text("{% include 'passages.j2' %}\n{{ question }}")
    for name in ("guide_reference.j2", "guide_guidance.j2", "guidance_system.j2"):
        (guide_prompts / name).write_text("{{ question }}{{ guidance }}")
    (guide_prompts / "guide_guidance.j2").write_text("{{ question }}\n\n{% import 'macros.j2' as m %}{{ m.hint() }}")
    add(path, rag={"corpus": str(corpus), "prompt_dir": str(rag_prompts)},
        guidance={"provider": "openai", "base_url": server.base_url, "model": "guide-model",
                  "prompt_dir": str(guide_prompts)})

    def run_fails_with(message: str) -> None:
        run = subprocess.run([*CLI, "run", "--config", str(path), "--no-progress"], capture_output=True, text=True)
        assert run.returncode == 1 and "Traceback" not in run.stderr, run.stderr
        assert run.stderr.strip() == "error: " + message, run.stderr
        assert sum(server.requests.values()) == 0

    # The guide's templates are read first; once that one is fixed, the RAG template is refused in turn.
    run_fails_with(f"{guide_prompts / 'guide_guidance.j2'}: line 3: {{% import %}} is not supported: a prompt "
                   "template is one file; paste the text in")
    (guide_prompts / "guide_guidance.j2").write_text("{{ question }} {{ reference }}")
    run_fails_with(f"{rag_prompts / 'rag_user.j2'}: line 1: {{% include %}} is not supported: a prompt template is "
                   "one file; paste the text in")
