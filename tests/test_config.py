from __future__ import annotations

import subprocess
import sys

import pytest
import yaml
from conftest import write_config

from arena_eval.config import load_config
from arena_eval.errors import ConfigError

CLI = [sys.executable, "-m", "arena_eval.cli"]


def edit(path, change):
    data = yaml.safe_load(path.read_text())
    change(data)
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def error_of(path) -> str:
    with pytest.raises(ConfigError) as info:
        load_config(path)
    return str(info.value)


def test_a_valid_config_loads_and_config_ids_are_stable(tmp_path):
    path = write_config(tmp_path, "http://127.0.0.1:9/v1")
    first, second = load_config(path), load_config(path)
    assert first.contestants[1].config_id == second.contestants[1].config_id
    assert first.contestants[0].config_id != first.contestants[1].config_id
    assert first.output_dir == tmp_path / "out" / "t"


def test_concurrency_does_not_change_the_config_id_but_temperature_does(tmp_path):
    config = load_config(write_config(tmp_path, "http://127.0.0.1:9/v1"))
    c = config.contestants[1]
    assert c.model_copy(update={"concurrency": 99}).config_id == c.config_id
    assert c.model_copy(update={"temperature": 0.7}).config_id != c.config_id


def test_unknown_key_names_the_field_the_line_and_the_fix(tmp_path):
    path = edit(write_config(tmp_path, "http://x/v1"), lambda d: d["contestants"][1].update(temprature=0.2))
    message = error_of(path)
    assert "contestants[1].temprature" in message and "unknown key" in message
    line = next(i for i, text in enumerate(path.read_text().splitlines(), 1) if "temprature" in text)
    assert f"config.yaml:{line}:" in message


def test_wrong_type_names_the_field_and_the_value(tmp_path):
    path = edit(write_config(tmp_path, "http://x/v1"), lambda d: d["judge"].update(concurrency="lots"))
    message = error_of(path)
    assert "judge.concurrency" in message and "'lots'" in message


def test_baseline_must_be_a_contestant(tmp_path):
    path = edit(write_config(tmp_path, "http://x/v1"), lambda d: d.update(baseline="nobody"))
    message = error_of(path)
    assert "baseline 'nobody' is not a contestant" in message and "base, c1" in message


def test_missing_questions_file(tmp_path):
    path = edit(write_config(tmp_path, "http://x/v1"), lambda d: d.update(questions="nowhere.jsonl"))
    message = error_of(path)
    assert "questions" in message and "nowhere.jsonl" in message and "not found" in message


def test_malformed_yaml_points_at_the_line(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("name: x\njudge: [unclosed\nbaseline: y\n")
    message = error_of(path)
    assert "bad.yaml:" in message and "malformed YAML" in message


def test_unknown_provider_lists_the_known_ones(tmp_path):
    path = edit(write_config(tmp_path, "http://x/v1"), lambda d: d["judge"].update(provider="openia"))
    message = error_of(path)
    assert "unknown provider 'openia'" in message and "openai" in message and "llama_cpp" in message


def test_api_key_env_refuses_a_key_value(tmp_path):
    path = edit(write_config(tmp_path, "http://x/v1"), lambda d: d["judge"].update(api_key_env="sk-abc123"))
    message = error_of(path)
    assert "NAME of an environment variable" in message and "sk-abc123" not in message


@pytest.mark.slow
def test_validate_command(tmp_path):
    path = write_config(tmp_path, "http://127.0.0.1:9/v1")
    ok = subprocess.run([*CLI, "validate", "--config", str(path)], capture_output=True, text=True)
    assert ok.returncode == 0 and "ok — 10 questions, 2 contestants" in ok.stdout
    edit(path, lambda d: d.update(colour="blue"))
    bad = subprocess.run([*CLI, "validate", "--config", str(path)], capture_output=True, text=True)
    assert bad.returncode == 1 and "unknown key 'colour'" in bad.stderr and "Traceback" not in bad.stderr


@pytest.mark.slow
def test_missing_api_key_variable_is_reported_before_any_request(tmp_path, fake_server, monkeypatch):
    server = fake_server()
    monkeypatch.delenv("ARENA_TEST_KEY", raising=False)
    path = write_config(tmp_path, server.base_url, contestants=[
        {"name": "base", "model": "m-base"}, {"name": "c1", "model": "m-c1", "api_key_env": "ARENA_TEST_KEY"}])
    run = subprocess.run([*CLI, "run", "--config", str(path)], capture_output=True, text=True)
    assert run.returncode == 1 and "ARENA_TEST_KEY" in run.stderr and "not set" in run.stderr
    assert sum(server.requests.values()) == 0


@pytest.mark.slow
def test_a_missing_gguf_file_is_a_config_error(tmp_path):
    path = write_config(tmp_path, "http://x/v1", judge={"provider": "llama_cpp", "model_path": "missing.gguf"})
    run = subprocess.run([*CLI, "validate", "--config", str(path)], capture_output=True, text=True)
    assert run.returncode == 1 and "missing.gguf" in run.stderr and "no GGUF file" in run.stderr


def test_a_key_given_twice_names_both_lines_at_any_level(tmp_path):
    path = write_config(tmp_path, "http://x/v1")
    lines = path.read_text().splitlines()
    assert lines[0] == "name: t"
    path.write_text("\n".join(lines + ["name: h"]) + "\n")
    assert error_of(path) == f"{path}:{len(lines) + 1}: duplicate key 'name' (first at line 1); keep one of them"

    # Inside a contestant: the second `model:` would silently replace the first.
    first = next(i for i, line in enumerate(lines, 1) if line == "  model: model-c1")
    path.write_text("\n".join(lines[:first] + ["  model: model-c2"] + lines[first:]) + "\n")
    assert error_of(path) == f"{path}:{first + 1}: duplicate key 'model' (first at line {first}); keep one of them"


def test_yaml_merge_keys_may_override_what_they_merge(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text(
        "name: t\nquestions: questions.jsonl\nbaseline: base\n"
        "judge: {provider: openai, base_url: 'http://x/v1', model: judge-model}\n"
        "contestants:\n"
        "  - &defaults {name: base, provider: openai, base_url: 'http://x/v1', model: m-base, temperature: 0.5}\n"
        "  - <<: *defaults\n    name: c1\n    model: m-c1\n"
    )
    (tmp_path / "questions.jsonl").write_text('{"id": "a", "prompt": "Hi?"}\n')
    config = load_config(path)
    assert [(c.name, c.model, c.temperature) for c in config.contestants] == [("base", "m-base", 0.5), ("c1", "m-c1", 0.5)]


def test_a_config_that_is_not_utf8_names_the_file_and_line(tmp_path):
    path = write_config(tmp_path, "http://x/v1")
    path.write_bytes(path.read_bytes().replace(b"name: t\n", b"name: t\n# Gr\xfc\xdfe\n", 1))
    assert error_of(path) == f"{path}:2: not valid UTF-8 (byte 0xfc at column 5); save the file as UTF-8"


def test_a_config_saved_with_a_byte_order_mark_loads(tmp_path):
    path = write_config(tmp_path, "http://x/v1")
    path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())
    assert load_config(path).name == "t"
    edit_text = path.read_bytes().replace(b"baseline: base", b"baseline: nobody")
    path.write_bytes(edit_text)
    line = next(i for i, text in enumerate(path.read_text(encoding="utf-8-sig").splitlines(), 1) if "nobody" in text)
    assert f"config.yaml:{line}: baseline" in error_of(path)  # line numbers as without the mark


def test_two_contestants_with_one_configuration_are_refused_naming_both_and_the_fix(tmp_path):
    # One model under two names (to measure noise) would share one answer set: one scored from the other's games.
    path = write_config(tmp_path, "http://x/v1", contestants=[
        {"name": "base", "model": "m-base"}, {"name": "c1", "model": "m-c1"},
        {"name": "c1-again", "model": "m-c1", "concurrency": 3, "refresh": "always"}])
    message = error_of(path)
    line = next(i for i, text in enumerate(path.read_text().splitlines(), 1) if "c1-again" in text)
    assert f"config.yaml:{line}: contestants[2].name: contestants 'c1' (contestants[1]) and 'c1-again' " \
           "(contestants[2]) have the same configuration" in message
    assert "`tags:`" in message and "`seed`" in message
    # The ways out the message names: a tag (part of the id), or another seed.
    edit(path, lambda d: d["contestants"][2].update(tags={"copy": 2}))
    tagged = load_config(path)
    assert tagged.contestants[1].config_id != tagged.contestants[2].config_id
    edit(path, lambda d: (d["contestants"][2].pop("tags"), d["contestants"][2].update(seed=7)))
    assert load_config(path).contestants[2].seed == 7
    # The baseline and a contestant are no exception.
    edit(path, lambda d: d["contestants"][2].update(model="m-base", seed=None))
    assert "contestants 'base' (contestants[0]) and 'c1-again' (contestants[2])" in error_of(path)


def test_two_judges_with_one_configuration_are_refused_naming_both(tmp_path):
    # One judge under two names would be stored once but pooled twice: its verdicts would count double.
    judge = {"provider": "openai", "base_url": "http://x/v1", "model": "judge-model"}
    path = edit(write_config(tmp_path, "http://x/v1"), lambda d: d.update(judge=[
        {**judge, "name": "j1"}, {**judge, "name": "j2", "concurrency": 4, "weights": {"strong": 5}}]))
    message = error_of(path)
    line = next(i for i, text in enumerate(path.read_text().splitlines(), 1) if "name: j2" in text)
    assert f"config.yaml:{line}: judge[1].name: judges 'j1' (judge[0]) and 'j2' (judge[1]) have the same " \
           "configuration" in message and "`seed`" in message
    # The same prompt folder spelt two ways is still one folder.
    (tmp_path / "p").mkdir()
    edit(path, lambda d: (d["judge"][0].update(prompt_dir="p"), d["judge"][1].update(prompt_dir="./p/")))
    assert "judges 'j1' (judge[0]) and 'j2' (judge[1])" in error_of(path)
    edit(path, lambda d: d["judge"][1].update(seed=2))
    assert [j.label for j in load_config(path).judges] == ["j1", "j2"]


def test_two_judges_whose_prompt_folders_hold_the_same_templates_are_refused_before_any_request(tmp_path):
    from arena_eval import Arena
    from arena_eval.resources import bundled_path

    for folder in ("p1", "p2"):
        (tmp_path / folder).mkdir()
        for name in ("judge_system.j2", "judge_user.j2", "judge_reask.j2"):
            (tmp_path / folder / name).write_text(bundled_path(f"prompts/{name}").read_text())
    judge = {"provider": "openai", "base_url": "http://127.0.0.1:9/v1", "model": "judge-model"}
    path = edit(write_config(tmp_path, "http://127.0.0.1:9/v1"), lambda d: d.update(judge=[
        {**judge, "name": "j1", "prompt_dir": "p1"}, {**judge, "name": "j2", "prompt_dir": "p2"}]))
    config = load_config(path)  # two folders: their texts are read with the templates
    with pytest.raises(ConfigError, match=r"judges 'j1' \(judge\[0\]\) and 'j2' \(judge\[1\]\) have the same configuration"):
        Arena(config)


def test_validate_refuses_one_model_under_two_names(tmp_path):
    from typer.testing import CliRunner

    from arena_eval.cli import app

    path = write_config(tmp_path, "http://127.0.0.1:9/v1", contestants=[
        {"name": "base", "model": "m-base"}, {"name": "noise-1", "model": "m-c1"}, {"name": "noise-2", "model": "m-c1"}])
    result = CliRunner().invoke(app, ["validate", "--config", str(path)])
    assert result.exit_code == 1 and "ok" not in result.stdout
    assert "contestants 'noise-1' (contestants[1]) and 'noise-2' (contestants[2]) have the same configuration" \
           in " ".join(result.stderr.split())
    edit(path, lambda d: d["contestants"][2].update(tags={"copy": 2}))
    again = CliRunner().invoke(app, ["validate", "--config", str(path)])
    assert again.exit_code == 0 and "ok — 10 questions, 3 contestants" in again.stdout
