"""Question sets from tables (issue 25 item 2): Parquet, CSV with mapped columns and Hugging Face datasets are read
as the JSONL forms are, with the same checks, and errors that name the file, the row and the column."""

from __future__ import annotations

import json
import os
import sqlite3
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml
from conftest import write_config

from arena_eval import Arena, load_config
from arena_eval.answer_sets import question_digest
from arena_eval.errors import ConfigError
from arena_eval.questions import load_dataset_questions, load_questions

# ../shared/data beside the checkout (its README); ARENA_EVAL_SHARED_DATA points elsewhere (a worktree's checkout).
SHARED_DATA = Path(os.environ.get("ARENA_EVAL_SHARED_DATA", Path(__file__).resolve().parents[1].parent / "shared" / "data"))
ARENA_HARD_V2 = SHARED_DATA / "arena-hard-v2.0" / "question.jsonl"

# A small set in the simple form: categories, a reference, and one conversation of two user turns.
RECORDS = [
    {"id": "q1", "prompt": "Name three prime numbers.", "category": "math"},
    {"id": "q2", "prompt": "Write a haiku about rain.", "category": "writing", "reference": "Soft rain on the roof"},
    {"id": "q3", "prompt": ["Plan a picnic.", "Now make it rain-proof."], "category": "writing"},
    {"id": "q4", "prompt": "What is 17 * 23?", "category": "math"},
]


def jsonl(path: Path, records: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def parquet(path: Path, rows: list[dict], schema: pa.Schema | None = None) -> Path:
    pq.write_table(pa.Table.from_pylist(rows, schema=schema), path)
    return path


def as_table_rows(records: list[dict]) -> list[dict]:
    """The simple records as a table's rows: every prompt a list of user turns in a `turns` column."""
    return [{"id": r["id"], "turns": r["prompt"] if isinstance(r["prompt"], list) else [r["prompt"]],
             "category": r.get("category"), "reference": r.get("reference")} for r in records]


def fields(questions) -> list[tuple]:
    return [(q.question_id, q.turns, q.category, q.subcategory, q.cluster, q.reference) for q in questions]


# --- the same questions as JSONL and as a table --------------------------------------------------------------

@pytest.mark.skipif(not ARENA_HARD_V2.exists(), reason="reference data ../shared/data is not present")
def test_arena_hard_v2_as_parquet_has_the_jsonl_prompts_ids_and_categories(tmp_path):
    records = [json.loads(line) for line in ARENA_HARD_V2.read_text().split("\n") if line.strip()]  # not splitlines: U+2028
    path = parquet(tmp_path / "arena-hard-v2.parquet", records)  # uid, category, subcategory, prompt: as they are
    from_jsonl, from_parquet = list(load_questions(ARENA_HARD_V2)), list(load_questions(path))
    assert len(from_parquet) == len(records) == 750
    assert from_parquet == from_jsonl  # every field of every question, in the file's order
    assert [q.question_id for q in from_parquet] == [r["uid"] for r in records]
    assert [q.prompt for q in from_parquet] == [r["prompt"] for r in records]
    assert [(q.category, q.subcategory) for q in from_parquet] == [(r["category"], r["subcategory"]) for r in records]
    assert {q.category for q in from_parquet} == {"hard_prompt", "creative_writing"}


def test_a_parquet_set_with_a_turns_column_is_the_jsonl_set(tmp_path):
    from_jsonl = load_questions(jsonl(tmp_path / "q.jsonl", RECORDS))
    from_parquet = load_questions(parquet(tmp_path / "q.parquet", as_table_rows(RECORDS)))
    assert not from_parquet.in_memory and len(from_parquet) == 4
    assert list(from_parquet) == list(from_jsonl)
    conversation = next(q for q in from_parquet if q.question_id == "q3")
    assert conversation.multi_turn and conversation.turns == ("Plan a picnic.", "Now make it rain-proof.")
    # The question's text identifies its answers (docs/design.md §2.3): the same for either file.
    assert [question_digest(q) for q in from_parquet] == [question_digest(q) for q in from_jsonl]


def test_turns_as_content_objects_and_integer_ids_read_as_in_jsonl(tmp_path):
    rows = [{"question_id": 7, "turns": [{"content": "First?"}, {"content": "Second?", "role": "user"}]},
            {"question_id": 8, "turns": [{"content": "Only?"}]}]
    assert list(load_questions(parquet(tmp_path / "q.parquet", rows))) == list(load_questions(jsonl(tmp_path / "q.jsonl", rows)))
    assert [q.question_id for q in load_questions(tmp_path / "q.parquet")] == ["7", "8"]


def test_mapped_columns_of_a_parquet_file_and_of_a_csv_file(tmp_path):
    rows = [{"key": "a", "text": "Why is the sky blue?", "topic": "science", "extra": 1},
            {"key": "b", "text": "Sum 2 and 2.", "topic": None, "extra": 2}]
    mapping = {"id": "key", "prompt": "text", "category": "topic"}
    from_parquet = load_questions(parquet(tmp_path / "q.parquet", rows), mapping)
    assert fields(from_parquet) == [("a", ("Why is the sky blue?",), "science", None, None, None),
                                    ("b", ("Sum 2 and 2.",), None, None, None, None)]
    csv = tmp_path / "q.csv"
    csv.write_text('key,text,topic,talk\na,Why is the sky blue?,science,\n"b","Sum 2 and 2.",,\n')
    assert fields(load_questions(csv, mapping)) == fields(from_parquet)
    # A conversation in CSV: the turns column holds a JSON list.
    csv.write_text('key,talk\nc,"[""Plan a picnic."", ""Now make it rain-proof.""]"\n')
    assert fields(load_questions(csv, {"id": "key", "turns": "talk"})) == [
        ("c", ("Plan a picnic.", "Now make it rain-proof."), None, None, None, None)]


def test_csv_in_arena_hard_v2s_columns_needs_no_mapping(tmp_path):
    csv = tmp_path / "q.csv"
    csv.write_text("uid,category,subcategory,prompt\nu1,hard_prompt,coding,Sort a list.\n")
    assert fields(load_questions(csv)) == [("u1", ("Sort a list.",), "hard_prompt", "coding", None, None)]


# --- Hugging Face datasets ----------------------------------------------------------------------------------

def test_a_dataset_saved_to_disk_is_the_jsonl_set(tmp_path):
    datasets = pytest.importorskip("datasets")
    datasets.Dataset.from_list(as_table_rows(RECORDS)).save_to_disk(str(tmp_path / "ds"))
    from_jsonl = list(load_questions(jsonl(tmp_path / "q.jsonl", RECORDS)))
    loaded = load_questions(tmp_path / "ds")
    assert loaded.in_memory and list(loaded) == from_jsonl
    # A DatasetDict: one split is picked by name, and with several a split must be named.
    renamed = datasets.Dataset.from_list([{"qid": r["id"], "turns": t["turns"]} for r, t in zip(RECORDS, as_table_rows(RECORDS))])
    datasets.DatasetDict({"test": renamed, "train": renamed.select([0])}).save_to_disk(str(tmp_path / "dd"))
    test = load_questions(tmp_path / "dd", {"id": "qid"}, split="test")
    assert [q.turns for q in test] == [q.turns for q in from_jsonl] and test.name.endswith("dd[test]")
    with pytest.raises(ConfigError, match=r"dd: the dataset has several splits; its splits are: test, train"):
        load_questions(tmp_path / "dd", {"id": "qid"})
    with pytest.raises(ConfigError, match=r"has no split 'validation'; its splits are: test, train"):
        load_questions(tmp_path / "dd", {"id": "qid"}, split="validation")
    # The same through a run config: a folder's path, or a mapping with the split and the columns.
    data = {"name": "t", "baseline": "a", "judge": {"model": "j"}, "contestants": [{"name": "a", "model": "m"}]}
    config = tmp_path / "config.yaml"
    for questions, expected in (("ds", from_jsonl), ({"path": "dd", "split": "train", "id": "qid"}, from_jsonl[:1])):
        config.write_text(yaml.safe_dump({**data, "questions": questions}))
        assert [(q.question_id, q.turns) for q in load_config(config).load_questions()] == [
            (q.question_id, q.turns) for q in expected]


def test_a_dataset_whose_turns_are_a_sequence_of_dicts_is_read_turn_by_turn(tmp_path):
    """`datasets.Sequence({content, role})` is stored as a struct of lists, not a list of structs."""
    datasets = pytest.importorskip("datasets")
    turn = datasets.Sequence({"content": datasets.Value("string"), "role": datasets.Value("string")})
    features = datasets.Features({"id": datasets.Value("string"), "turns": turn})
    rows = {"id": ["a", "b"], "turns": [{"content": ["Plan a picnic.", "Now make it rain-proof."], "role": ["user", "user"]},
                                        {"content": ["Hi?"], "role": ["user"]}]}
    datasets.Dataset.from_dict(rows, features=features).save_to_disk(str(tmp_path / "ds"))
    assert [q.turns for q in load_questions(tmp_path / "ds")] == [("Plan a picnic.", "Now make it rain-proof."), ("Hi?",)]


def test_a_dataset_by_name_that_needs_the_network_says_so_offline(tmp_path, monkeypatch):
    pytest.importorskip("datasets")
    import datasets.config
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(datasets.config, "HF_DATASETS_OFFLINE", True, raising=False)
    with pytest.raises(ConfigError) as info:
        load_dataset_questions(name="nobody-here/no-such-questions", split="test")
    message = str(info.value)
    assert message.startswith("hf:nobody-here/no-such-questions: the Hugging Face dataset cannot be loaded")
    assert "needs the network" in message and "save_to_disk(FOLDER)" in message


def test_without_the_datasets_package_the_message_says_how_to_install_it(tmp_path, monkeypatch):
    folder = tmp_path / "ds"
    folder.mkdir()
    (folder / "state.json").write_text("{}")
    monkeypatch.setitem(sys.modules, "datasets", None)  # `import datasets` raises ImportError
    with pytest.raises(ConfigError, match=r"ds: a Hugging Face dataset needs the `datasets` package, which is not "
                                          r"installed: pip install 'arena-eval\[hf\]'"):
        load_questions(folder)


# --- a run on a Parquet set, and its identity -----------------------------------------------------------------

def _config_with(path: Path, questions) -> None:
    data = yaml.safe_load(path.read_text())
    data["questions"] = questions
    path.write_text(yaml.safe_dump(data, sort_keys=False))


def test_a_run_on_a_parquet_set_then_on_the_same_questions_as_jsonl_reuses_every_answer_and_verdict(tmp_path, fake_server):
    server = fake_server(judge_verdict="hash")
    config = write_config(tmp_path, server.base_url)
    rows = [{"key": r["id"], "talk": t["turns"], "topic": r["category"], "reference": r.get("reference")}
            for r, t in zip(RECORDS, as_table_rows(RECORDS))]
    parquet(tmp_path / "questions.parquet", rows)
    _config_with(config, {"path": "questions.parquet", "id": "key", "turns": "talk", "category": "topic"})

    first = Arena(load_config(config)).run_sync()
    assert first.exit_code == 0, first.summary
    s = first.summary
    assert (s.questions, s.answers_new, s.answer_errors, s.game_errors) == (4, 8, 0, 0)
    assert s.games_new > 0 and set(first.leaderboard["model"]) == {"base", "c1"}
    with sqlite3.connect(load_config(config).output_dir / "arena.db") as db:
        stored = db.execute("SELECT question_id, prompt, category, follow_ups FROM questions ORDER BY 1").fetchall()
    assert stored == [("q1", "Name three prime numbers.", "math", None), ("q2", "Write a haiku about rain.", "writing", None),
                      ("q3", "Plan a picnic.", "writing", json.dumps(["Now make it rain-proof."])),
                      ("q4", "What is 17 * 23?", "math", None)]

    # The same questions as JSONL: the same ids and texts, so the same answers and games; nothing is sent again.
    _config_with(config, str(jsonl(tmp_path / "same.jsonl", RECORDS)))
    sent = sum(server.requests.values())
    second = Arena(load_config(config)).run_sync()
    assert second.exit_code == 0, second.summary
    assert (second.summary.answers_new, second.summary.games_new) == (0, 0)
    assert second.summary.answers_cached == 8 and second.summary.games_cached == s.games_new
    assert sum(server.requests.values()) == sent


def test_config_forms_of_questions(tmp_path):
    parquet(tmp_path / "q.parquet", [{"key": "a", "text": "Hi?"}])
    data = {"name": "t", "baseline": "a", "judge": {"model": "j"}, "contestants": [{"name": "a", "model": "m"}]}
    path = tmp_path / "config.yaml"
    for questions in ({"path": "q.parquet", "id": "key", "prompt": "text"}, ):
        path.write_text(yaml.safe_dump({**data, "questions": questions}))
        config = load_config(path)
        assert config.questions_path == tmp_path / "q.parquet" and config.questions_label == str(tmp_path / "q.parquet")
        assert [(q.question_id, q.prompt) for q in config.load_questions()] == [("a", "Hi?")]
    path.write_text(yaml.safe_dump({**data, "questions": {"hf": "org/set", "split": "test", "revision": "v1"}}))
    config = load_config(path)
    assert config.questions_path is None and config.questions_label == "hf:org/set@v1[test]"


@pytest.mark.parametrize("questions, expected", [
    ({"path": "q.parquet", "hf": "org/set"}, r"config\.yaml:\d+: questions: give either `path` .* not both"),
    ({"id": "key"}, r"questions: give either `path` .* not neither"),
    ({"path": "q.parquet", "revision": "main"}, r"config\.yaml:\d+: questions\.revision: `revision` applies to a dataset on the Hub"),
    ({"path": "q.parquet", "colums": {"id": "key"}}, r"config\.yaml:\d+: questions\.colums: unknown key 'colums'"),
    ({"path": "q.parquet", "prompt": "p", "turns": "t"}, r"questions\.turns: map `prompt` .* or `turns` .*, not both"),
    ({"path": "missing.parquet"}, r"config\.yaml:\d+: questions\.path: file \S*missing\.parquet not found"),
    (3, r"config\.yaml:\d+: questions: Input should be a valid string"),
])
def test_bad_questions_mappings_name_the_config_line_and_key(tmp_path, questions, expected):
    parquet(tmp_path / "q.parquet", [{"key": "a", "text": "Hi?"}])
    data = {"name": "t", "questions": questions, "baseline": "a", "judge": {"model": "j"},
            "contestants": [{"name": "a", "model": "m"}]}
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError, match=expected):
        load_config(path)


# --- bad tables -------------------------------------------------------------------------------------------

def test_a_parquet_file_without_the_mapped_columns_names_them_and_lists_its_columns(tmp_path):
    path = parquet(tmp_path / "q.parquet", [{"uid": "a", "question": "Hi?", "category": "c"}])
    with pytest.raises(ConfigError) as info:
        load_questions(path, {"id": "key", "prompt": "text"})
    assert str(info.value).startswith(
        f"{path}: a Parquet question set has no column 'key' (for `id`), 'text' (for `prompt`); its columns are: uid, "
        "question, category.")
    with pytest.raises(ConfigError) as info:
        load_questions(path)  # no prompt under any name it is looked for under
    assert str(info.value).startswith(f"{path}: a Parquet question set needs the columns id and prompt: no column "
                                      "for a prompt (prompt, or turns for a conversation); its columns are: uid, "
                                      "question, category.")


@pytest.mark.parametrize("rows, mapping, expected", [
    ([{"id": "a", "prompt": "x"}, {"id": "b", "prompt": None}], {},
     r"q\.parquet: row 2: question 'b' has an empty prompt \(column 'prompt'\)"),
    ([{"id": "a", "text": "x"}, {"id": "b", "text": "  "}], {"prompt": "text"},
     r"q\.parquet: row 2: question 'b' has an empty prompt \(column 'text'\)"),
    ([{"key": "a", "prompt": "x"}, {"key": None, "prompt": "y"}], {"id": "key"},
     r"q\.parquet: row 2: column 'key' is empty; every question needs an id"),
    ([{"id": "a", "prompt": "x"}, {"id": "b", "prompt": "y"}, {"id": "a", "prompt": "z"}], {},
     r"q\.parquet: duplicate question id 'a' \(entries 1 and 3\) at rows 1 and 3 \(column 'id'\); ids must be unique"),
    ([{"id": "a", "talk": ["one", ""]}], {"turns": "talk"}, r"q\.parquet: row 1: question 'a': `talk` turn 2 is empty"),
    ([{"id": "a", "turns": None}], {}, r"q\.parquet: row 1: question 'a': column 'turns' is empty"),
    ([{"id": "a", "turns": [{"role": "assistant", "content": "x"}]}], {},
     r"row 1: question 'a': `turns` turn 1 has role 'assistant'"),
    ([{"id": "a", "prompt": 42}], {}, r"row 1: question 'a': column 'prompt' holds int, not text"),
    ([{"id": "a", "prompt": "x"}], {"prompt": "x", "turns": "y"}, r"both `prompt` and `turns` are mapped"),
])
def test_bad_parquet_rows_name_the_file_row_and_column(tmp_path, rows, mapping, expected):
    path = parquet(tmp_path / "q.parquet", rows)
    with pytest.raises(ConfigError, match=expected):
        load_questions(path, mapping)


def test_an_empty_table_and_bad_csv_cells(tmp_path):
    schema = pa.schema([("id", pa.string()), ("prompt", pa.string())])
    with pytest.raises(ConfigError, match=r"q\.parquet: the question set is empty"):
        load_questions(parquet(tmp_path / "q.parquet", [], schema))
    csv = tmp_path / "q.csv"
    csv.write_text("key,talk\na,not a list\n")
    with pytest.raises(ConfigError, match=r"q\.csv:2: question 'a': column 'talk' holds text that is not a JSON list"):
        load_questions(csv, {"id": "key", "turns": "talk"})
    csv.write_text("id,prompt,category\na,x,c\n,y,c\n")
    with pytest.raises(ConfigError, match=r"q\.csv:3: column 'id' is empty; every question needs an id"):
        load_questions(csv)
    csv.write_text("id,prompt\na,x\nb,y\na,z\n")
    with pytest.raises(ConfigError, match=r"duplicate question id 'a' \(entries 1 and 3\) at lines 2 and 4 \(column 'id'\)"):
        load_questions(csv)


def test_a_file_that_is_not_parquet_and_other_things_that_are_no_question_set(tmp_path):
    fake = tmp_path / "q.parquet"
    fake.write_text("id,prompt\na,x\n")
    with pytest.raises(ConfigError, match=r"q\.parquet: not a Parquet file \(.*\); give a \.parquet file"):
        load_questions(fake)
    link = tmp_path / "zero.parquet"
    link.symlink_to("/dev/zero")
    with pytest.raises(ConfigError, match=r"zero\.parquet: is a device \(a link to /dev/zero\), not a regular file"):
        load_questions(link)
    (tmp_path / "folder").mkdir()
    with pytest.raises(ConfigError, match=r"folder: is a folder, not a dataset saved with `datasets`' save_to_disk"):
        load_questions(tmp_path / "folder")
    with pytest.raises(ConfigError, match=r"q\.jsonl: column names \(id\) apply to tables"):
        load_questions(jsonl(tmp_path / "q.jsonl", RECORDS), {"id": "key"})
    with pytest.raises(ConfigError, match=r"`split` applies to a Hugging Face dataset"):
        load_questions(tmp_path / "q.jsonl", split="test")


def test_a_parquet_file_changed_after_loading_is_refused(tmp_path):
    path = parquet(tmp_path / "q.parquet", [{"id": "a", "prompt": "x"}])
    questions = load_questions(path)
    parquet(path, [{"id": "a", "prompt": "x"}, {"id": "b", "prompt": "y"}])
    with pytest.raises(ConfigError, match=r"q\.parquet: the question file changed since it was loaded"):
        list(questions)


def test_validate_reads_a_parquet_set_without_pandas_and_a_jsonl_set_without_pyarrow(tmp_path):
    import subprocess

    from test_startup import _IN_PROCESS, _config

    def imported(config: Path) -> set[str]:
        done = subprocess.run([sys.executable, "-W", "ignore", "-c", _IN_PROCESS, "validate", "-c", str(config)],
                              capture_output=True, text=True, cwd=tmp_path, timeout=120)
        report = json.loads(done.stdout.strip().splitlines()[-1])
        assert report["code"] == 0 and f"{config}: ok" in done.stdout, done.stdout + done.stderr
        return {name.split(".")[0] for name in report["modules"]}

    config = _config(tmp_path)
    assert not imported(config) & {"pyarrow", "datasets", "pandas"}
    parquet(tmp_path / "q.parquet", as_table_rows(RECORDS))
    _config_with(config, {"path": str(tmp_path / "q.parquet"), "category": "category"})
    assert not imported(config) & {"datasets", "pandas"}
