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
