from __future__ import annotations

import json

import pytest

from arena_eval.errors import ConfigError
from arena_eval.questions import QuestionSet, load_questions
from arena_eval.resources import bundled_path


def test_both_jsonl_forms_and_csv(tmp_path):
    jsonl = tmp_path / "q.jsonl"
    jsonl.write_text(
        json.dumps({"question_id": "a", "category": "x", "cluster": "k", "turns": [{"content": "Hi?"}]}) + "\n\n"
        + json.dumps({"id": 2, "prompt": "Why?", "reference": "Because."}) + "\n"
    )
    questions = load_questions(jsonl)
    assert [(q.question_id, q.prompt, q.category, q.cluster, q.reference) for q in questions] == [
        ("a", "Hi?", "x", "k", None), ("2", "Why?", None, None, "Because.")]
    csv = tmp_path / "q.csv"
    csv.write_text('id,prompt,category,reference\n1,"What, exactly?",c,\n2,Next,,ref\n')
    assert [(q.question_id, q.prompt, q.category, q.reference) for q in load_questions(csv)] == [
        ("1", "What, exactly?", "c", None), ("2", "Next", None, "ref")]


def test_the_bundled_demo_set_loads():
    assert len(load_questions(bundled_path("question_sets/demo.jsonl"))) == 12


@pytest.mark.parametrize(
    "lines, expected",
    [
        (['{"id": "a", "prompt": "x"}', "{not json"], "q.jsonl:2: malformed JSON"),
        (['{"id": "a", "prompt": "x"}', '{"id": "a", "prompt": "y"}'], "duplicate question id 'a'"),
        (['{"prompt": "x"}'], "q.jsonl:1: missing `question_id`"),
        (['{"id": "a"}'], "neither `prompt` nor `turns`"),
        (['{"id": "a", "prompt": "  "}'], "empty prompt"),
        (['{"question_id": "a", "turns": [{"content": "1"}, {"content": "2"}]}'], "multi-turn"),
        ([], "the question set is empty"),
    ],
)
def test_bad_question_files_name_the_file_and_line(tmp_path, lines, expected):
    path = tmp_path / "q.jsonl"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(ConfigError, match=expected.replace("(", r"\(").replace("`", "`")) as info:
        load_questions(path)
    assert str(path) in str(info.value)


def test_csv_without_the_columns_is_rejected(tmp_path):
    path = tmp_path / "q.csv"
    path.write_text("question,text\n1,2\n")
    with pytest.raises(ConfigError, match="needs the columns id and prompt"):
        load_questions(path)


def test_from_records():
    questions = QuestionSet.from_records([{"id": "x", "prompt": "p"}, {"question_id": "y", "turns": [{"content": "t"}]}])
    assert [q.question_id for q in questions] == ["x", "y"]
