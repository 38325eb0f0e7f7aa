from __future__ import annotations

import json
import time
import tracemalloc

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
    questions = list(load_questions(bundled_path("question_sets/demo.jsonl")))
    assert len(questions) == 13 and [q.question_id for q in questions if q.multi_turn] == ["chat-1"]


@pytest.mark.parametrize(
    "lines, expected",
    [
        (['{"id": "a", "prompt": "x"}', "{not json"], "q.jsonl:2: malformed JSON"),
        (['{"id": "a", "prompt": "x"}', '{"id": "a", "prompt": "y"}'], "duplicate question id 'a'"),
        (['{"prompt": "x"}'], "q.jsonl:1: missing `question_id`"),
        (['{"id": "a"}'], "neither `prompt` nor `turns`"),
        (['{"id": "a", "prompt": "  "}'], "empty prompt"),
        (['{"question_id": "a", "turns": [{"content": "1"}, {"content": " "}]}'], "q.jsonl:1: question 'a': `turns` turn 2 is empty"),
        (['{"question_id": "a", "turns": ["1", 2]}'], "q.jsonl:1: question 'a': `turns` turn 2 is int, not text"),
        (['{"question_id": "a", "turns": [{"content": "1"}, {"role": "assistant", "content": "2"}]}'],
         "q.jsonl:1: question 'a': `turns` turn 2 has role 'assistant'"),
        (['{"id": "a", "prompt": []}'], "`prompt` must be a non-empty list"),
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


# --- a set loaded from a file is validated once and streamed, never held -------------------------------------

def write_simple(path, ids, prompt="Prompt {i}?"):
    path.write_text("".join(json.dumps({"id": qid, "prompt": prompt.format(i=i)}) + "\n" for i, qid in enumerate(ids)))
    return path


def test_a_file_set_is_streamed_not_held(tmp_path):
    questions = load_questions(write_simple(tmp_path / "q.jsonl", ["a", "b", "c"]))
    assert not questions.in_memory and len(questions) == 3 and questions.name == str(tmp_path / "q.jsonl")
    # Nothing the set holds is a collection of questions: every question comes from the file when iterated.
    assert not any(isinstance(value, (list, tuple, dict, set)) for value in vars(questions).values())
    first, second = [q.question_id for q in questions], [q.question_id for q in questions]
    assert first == second == ["a", "b", "c"]
    assert next(iter(questions)) is not next(iter(questions))  # parsed afresh each time
    assert questions.to_records()[1] == {"id": "b", "prompt": "Prompt 1?"}
    assert [q.question_id for q in questions.questions] == ["a", "b", "c"]


def test_from_jsonl_and_from_csv_stream_too(tmp_path):
    jsonl = QuestionSet.from_jsonl(write_simple(tmp_path / "q.txt", ["x", "y"]))  # the form, not the suffix
    csv = tmp_path / "q.csv"
    csv.write_text("id,prompt\n1,One\n2,Two\n")
    for questions, ids in ((jsonl, ["x", "y"]), (QuestionSet.from_csv(csv), ["1", "2"]), (QuestionSet.load(csv), ["1", "2"])):
        assert not questions.in_memory and [q.question_id for q in questions] == ids


def test_records_and_dataframes_stay_in_memory():
    import pandas as pd

    for questions in (QuestionSet.from_records([{"id": "x", "prompt": "p"}]),
                      QuestionSet.from_dataframe(pd.DataFrame({"id": ["x"], "prompt": ["p"]}))):
        assert questions.in_memory and [q.question_id for q in questions.questions] == ["x"]


@pytest.mark.parametrize("change", [
    lambda path: path.write_text(path.read_text() + json.dumps({"id": "d", "prompt": "New?"}) + "\n"),
    lambda path: path.write_text(path.read_text().replace("Prompt 1?", "Prompt 9?")),  # same size
    lambda path: (path.unlink(), write_simple(path, ["a", "b", "c"])),  # replaced by an identical copy
])
def test_a_file_changed_after_loading_is_refused(tmp_path, change):
    path = write_simple(tmp_path / "q.jsonl", ["a", "b", "c"])
    questions = load_questions(path)
    time.sleep(0.01)  # a new mtime even on coarse clocks
    change(path)
    with pytest.raises(ConfigError, match="changed since it was loaded") as info:
        list(questions)
    assert str(path) in str(info.value) and "load the set again" in str(info.value)


def test_a_file_changed_during_an_iteration_is_refused_at_its_end(tmp_path):
    path = write_simple(tmp_path / "q.jsonl", ["a", "b", "c"])
    questions = iter(load_questions(path))
    next(questions)
    time.sleep(0.01)
    with path.open("a") as handle:
        handle.write(json.dumps({"id": "d", "prompt": "Late?"}) + "\n")
    with pytest.raises(ConfigError, match="changed since it was loaded"):
        list(questions)


def test_a_missing_file_after_loading_is_refused(tmp_path):
    path = write_simple(tmp_path / "q.jsonl", ["a"])
    questions = load_questions(path)
    path.unlink()
    with pytest.raises(ConfigError, match="can no longer be read"):
        list(questions)


def test_duplicates_name_both_entries_and_lines(tmp_path):
    path = tmp_path / "q.jsonl"
    path.write_text('{"id": "a", "prompt": "x"}\n\n{"id": "b", "prompt": "y"}\n{"id": "b", "prompt": "z"}\n'
                    '{"id": "a", "prompt": "w"}\n')
    with pytest.raises(ConfigError) as info:
        load_questions(path)
    # The first id seen again, as before: b (entries 2 and 3), on lines 3 and 4 (line 2 is blank).
    assert str(info.value) == (f"{path}: duplicate question id 'b' (entries 2 and 3) at lines 3 and 4; "
                               "ids must be unique")
    csv = tmp_path / "q.csv"
    csv.write_text('id,prompt\n1,"two\nlines"\n2,b\n1,c\n')
    with pytest.raises(ConfigError, match=r"duplicate question id '1' \(entries 1 and 3\) at lines 3 and 5"):
        load_questions(csv)


def test_a_bad_line_after_a_duplicate_is_still_reported_first(tmp_path):
    path = tmp_path / "q.jsonl"
    path.write_text('{"id": "a", "prompt": "x"}\n{"id": "a", "prompt": "y"}\n{"id": "c"}\n')
    with pytest.raises(ConfigError, match=r"q\.jsonl:3: question 'c' has neither"):
        load_questions(path)


def test_hash_collisions_between_distinct_ids_are_not_duplicates(tmp_path, monkeypatch):
    import arena_eval.questions as module

    monkeypatch.setattr(module, "hash", lambda value: 7, raising=False)  # every id collides
    questions = load_questions(write_simple(tmp_path / "q.jsonl", ["a", "b", "c"]))
    assert [q.question_id for q in questions] == ["a", "b", "c"]
    with pytest.raises(ConfigError, match=r"duplicate question id 'b' \(entries 2 and 4\) at lines 2 and 4"):
        load_questions(write_simple(tmp_path / "d.jsonl", ["a", "b", "c", "b"]))


@pytest.mark.slow
def test_a_large_file_set_loads_in_bounded_memory(tmp_path):
    n = 200_000
    path = tmp_path / "big.jsonl"
    with path.open("w") as handle:
        for i in range(n):
            handle.write(json.dumps({"id": f"q{i:07d}", "prompt": f"Question {i}: explain topic {i % 997} "
                                     "in a few sentences, with one concrete example, and why it matters."}) + "\n")
    tracemalloc.start()
    try:
        questions = load_questions(path)
        held, peak = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        stream = iter(questions)
        first = [next(stream) for _ in range(20_000)]  # a stretch of an iteration, then drop the read ones
        del first
        _, iter_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(questions) == sum(1 for _ in stream) + 20_000 == n
    # Held as a list of Questions this set would take ~80 MB; loading keeps 8 bytes a question, briefly.
    assert peak < 30e6, f"loading peaked at {peak / 1e6:.1f} MB"
    assert held < 1e6, f"the loaded set holds {held / 1e6:.1f} MB"
    assert iter_peak < 30e6, f"iterating peaked at {iter_peak / 1e6:.1f} MB"


@pytest.mark.parametrize("suffix, lines", [
    ("jsonl", [b'{"id": "a", "prompt": "fine"}', b'{"id": "b", "prompt": "Gr\xfc\xdfe"}']),
    ("csv", [b"id,prompt", b"a,fine", b"b,Gr\xfc\xdfe"]),
])
def test_a_question_file_that_is_not_utf8_names_the_file_line_and_byte(tmp_path, suffix, lines):
    path = tmp_path / f"q.{suffix}"
    path.write_bytes(b"\n".join(lines) + b"\n")
    with pytest.raises(ConfigError) as info:
        load_questions(path)
    column = 26 if suffix == "jsonl" else 5  # the byte after `{"id": "b", "prompt": "Gr` or `b,Gr`
    assert str(info.value) == f"{path}:{len(lines)}: not valid UTF-8 (byte 0xfc at column {column}); save the file as UTF-8"


def test_a_csv_saved_with_a_byte_order_mark_loads_with_its_ids_and_prompts(tmp_path):
    """Spreadsheet programs save CSV with a byte-order mark; it must not become part of the `id` column's name."""
    path = tmp_path / "q.csv"
    path.write_bytes(b"\xef\xbb\xbf" + "id,prompt,category\n1,Was kostet es?,shop\n2,Ça va ?,\n".encode())
    assert [(q.question_id, q.prompt, q.category) for q in load_questions(path)] == [
        ("1", "Was kostet es?", "shop"), ("2", "Ça va ?", None)]


def test_a_jsonl_file_with_a_byte_order_mark_loads(tmp_path):
    path = tmp_path / "q.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + b'{"id": "a", "prompt": "Hi?"}\n{"id": "b", "prompt": "Why?"}\n')
    assert [(q.question_id, q.prompt) for q in load_questions(path)] == [("a", "Hi?"), ("b", "Why?")]


def test_conversation_and_v2_and_mt_bench_forms_load(tmp_path):
    """arena-hard v2.0 ({uid, category, subcategory, prompt}), MT-bench ({question_id, category, turns: [str],
    reference: [str]}), arena-hard turns objects and a simple prompt list load as they are."""
    path = tmp_path / "q.jsonl"
    records = [
        {"uid": "u1", "category": "hard_prompt", "subcategory": "coding", "prompt": "Write zig."},
        {"question_id": 81, "category": "writing", "turns": ["Plan a trip.", "Now in verse."]},
        {"question_id": 101, "category": "math", "turns": ["1+1?", "Times 3?"], "reference": ["2", "6"]},
        {"question_id": "t", "turns": [{"content": "Hi"}, {"role": "user", "content": "More"}]},
        {"id": "s", "prompt": ["first", "second", "third"]},
    ]
    path.write_text("\n".join(json.dumps(r) for r in records) + "\n")
    questions = {q.question_id: q for q in QuestionSet.load(path)}
    v2 = questions["u1"]
    assert (v2.prompt, v2.category, v2.subcategory, v2.follow_ups, v2.multi_turn) == (
        "Write zig.", "hard_prompt", "coding", (), False)
    assert questions["81"].turns == ("Plan a trip.", "Now in verse.") and questions["81"].multi_turn
    assert questions["101"].reference == "Turn 1: 2\n\nTurn 2: 6"
    assert questions["t"].turns == ("Hi", "More")
    assert questions["s"].turns == ("first", "second", "third")
    # Written back as simple records, a conversation keeps its turns.
    again = QuestionSet.from_records(QuestionSet.load(path).to_records())
    assert [q for q in again] == list(questions.values())
