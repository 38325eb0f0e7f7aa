"""provider: vllm against a stand-in `vllm` executable (tests/fake_vllm.py): command, lifecycle, failures."""

from __future__ import annotations

import asyncio
import json
import os
import shlex
import signal
import sys
import tempfile
import time
from pathlib import Path

import pytest
from conftest import write_config

from arena_eval import Arena, ArenaError, ConfigError, load_config
from arena_eval.config import EndpointConfig
from arena_eval.providers import ProviderError, make_provider
from arena_eval.providers.vllm import VLLMProvider, build_vllm_command

FAKE_VLLM = Path(__file__).parent / "fake_vllm.py"


@pytest.fixture(autouse=True)
def server_logs_in_tmp_path(tmp_path, monkeypatch):
    """Logs of servers that failed are kept for the user; in tests they go to tmp_path, not /tmp."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))


@pytest.fixture
def vllm_exe(tmp_path) -> Path:
    """An executable `vllm` that runs the stand-in."""
    wrapper = tmp_path / "bin" / "vllm"
    wrapper.parent.mkdir()
    wrapper.write_text(f"#!/bin/sh\nexec {shlex.quote(sys.executable)} {shlex.quote(str(FAKE_VLLM))} \"$@\"\n")
    wrapper.chmod(0o755)
    return wrapper


@pytest.fixture
def argv_file(tmp_path, monkeypatch) -> Path:
    path = tmp_path / "argv.json"
    monkeypatch.setenv("FAKE_VLLM_ARGV_FILE", str(path))
    return path


def vllm_config(executable: Path | str, **options) -> EndpointConfig:
    return EndpointConfig(provider="vllm", model="org/tiny-chat", vllm_executable=str(executable),
                          timeout_s=10, **options)


def alive(pid: int) -> bool:
    """Whether `pid` runs; a zombie nobody has reaped yet counts as gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def wait_gone(pid: int, within_s: float = 5.0) -> bool:
    deadline = time.monotonic() + within_s
    while alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    return not alive(pid)


# --- the command --------------------------------------------------------------------------------------


def test_command_with_every_option():
    config = EndpointConfig(
        provider="vllm", model="Qwen/Qwen2.5-7B-Instruct-AWQ", vllm_executable="/opt/vllm/bin/vllm",
        dtype="float16", quantization="awq", tensor_parallel_size=2, gpu_memory_utilization=0.85,
        max_model_len=8192, seed=7, api_key_env="MY_VLLM_KEY", vllm_args=["--enforce-eager", "--max-num-seqs", "64"],
    )
    assert build_vllm_command(config, 8123) == [
        "/opt/vllm/bin/vllm", "serve", "Qwen/Qwen2.5-7B-Instruct-AWQ", "--host", "127.0.0.1", "--port", "8123",
        "--dtype", "float16", "--quantization", "awq", "--tensor-parallel-size", "2",
        "--gpu-memory-utilization", "0.85", "--max-model-len", "8192", "--seed", "7",
        "--served-model-name", "Qwen/Qwen2.5-7B-Instruct-AWQ", "--enforce-eager", "--max-num-seqs", "64",
    ]  # the key is passed as VLLM_API_KEY, never on the command line


def test_command_without_options():
    config = EndpointConfig(provider="vllm", model="org/m")
    assert build_vllm_command(config, 9000) == [
        "vllm", "serve", "org/m", "--host", "127.0.0.1", "--port", "9000", "--served-model-name", "org/m",
    ]


def test_missing_executable_is_a_config_error_with_install_advice(tmp_path):
    with pytest.raises(ConfigError) as caught:
        make_provider(vllm_config(tmp_path / "no-such-vllm"))
    message = str(caught.value)
    assert "not installed" in message and "own torch" in message
    assert "python -m venv ~/vllm-env && ~/vllm-env/bin/pip install vllm" in message
    assert "vllm_executable: ~/vllm-env/bin/vllm" in message
    assert "provider: openai" in message and "base_url" in message


def test_api_key_and_label_constraint(vllm_exe, monkeypatch):
    assert VLLMProvider(vllm_config(vllm_exe)).api_key() == "not-needed"
    monkeypatch.delenv("MISSING_VLLM_KEY", raising=False)
    with pytest.raises(ConfigError, match="MISSING_VLLM_KEY"):
        VLLMProvider(vllm_config(vllm_exe, api_key_env="MISSING_VLLM_KEY")).api_key()
    choices = ["[[A>B]]", "[[B>A]]"]
    assert VLLMProvider(vllm_config(vllm_exe)).constrain_to(choices) == {
        "extra_body": {"structured_outputs": {"choice": choices}}
    }


# --- the server's lifecycle ---------------------------------------------------------------------------


@pytest.mark.slow
async def test_start_complete_close(vllm_exe, argv_file, tmp_path, monkeypatch):
    monkeypatch.setenv("FAKE_VLLM_STARTUP_S", "1")
    monkeypatch.setenv("FAKE_VLLM_CHILD_PID_FILE", str(tmp_path / "child.pid"))
    monkeypatch.setenv("TEST_VLLM_KEY", "key-for-the-test")
    provider = make_provider(vllm_config(vllm_exe, dtype="bfloat16", max_model_len=2048, seed=3,
                                         api_key_env="TEST_VLLM_KEY", vllm_args=["--enforce-eager"]))
    started = time.monotonic()
    await provider.start()
    assert time.monotonic() - started >= 1.0  # it waited for the model to "load"
    try:
        completion = await provider.complete([{"role": "user", "content": "What is 2 + 2?"}])
        assert completion.text == "Answer from org/tiny-chat to: What is 2 + 2?"
        assert completion.output_tokens > 0 and not completion.tokens_estimated
        assert provider.endpoint.startswith("http://127.0.0.1:")
    finally:
        await provider.close()
    await provider.close()  # twice is fine

    record = json.loads(argv_file.read_text())
    argv = record["argv"]
    assert argv[:2] == ["serve", "org/tiny-chat"]
    port = argv[argv.index("--port") + 1]
    assert provider.base_url == f"http://127.0.0.1:{port}/v1"
    for flag, value in [("--host", "127.0.0.1"), ("--dtype", "bfloat16"), ("--max-model-len", "2048"),
                        ("--seed", "3"), ("--served-model-name", "org/tiny-chat")]:
        assert argv[argv.index(flag) + 1] == value
    assert argv[-1] == "--enforce-eager"
    assert record["api_key"] == "key-for-the-test" and "key-for-the-test" not in argv
    assert not alive(record["pid"])
    # The engine-like child never got a signal of its own: stopping the process group ended it.
    assert wait_gone(int((tmp_path / "child.pid").read_text()))


async def test_providers_with_the_same_settings_share_one_server(vllm_exe, argv_file):
    first, second = make_provider(vllm_config(vllm_exe)), make_provider(vllm_config(vllm_exe, temperature=0.7))
    await first.start()
    pid = json.loads(argv_file.read_text())["pid"]
    try:
        await second.start()
        assert second.base_url == first.base_url
        assert json.loads(argv_file.read_text())["pid"] == pid  # not started again
        await first.close()
        assert alive(pid)  # still in use by the second
        assert (await second.complete([{"role": "user", "content": "hi"}])).text
    finally:
        await first.close()
        await second.close()
    assert not alive(pid)


async def test_startup_failure_reports_exit_code_and_log_tail(vllm_exe, argv_file, monkeypatch):
    monkeypatch.setenv("FAKE_VLLM_FAIL", "1")
    provider = make_provider(vllm_config(vllm_exe))
    with pytest.raises(ArenaError) as caught:
        await provider.start()
    message = str(caught.value)
    assert "exited with code 1" in message
    assert "RuntimeError: Failed to infer device type (fake vllm startup failure)" in message
    await provider.close()  # after a failed start: nothing to do, no error
    assert not alive(json.loads(argv_file.read_text())["pid"])


@pytest.mark.slow
async def test_startup_timeout_stops_the_server(vllm_exe, argv_file, monkeypatch):
    monkeypatch.setenv("FAKE_VLLM_STARTUP_S", "60")
    provider = make_provider(vllm_config(vllm_exe, startup_timeout_s=1.0))
    started = time.monotonic()
    with pytest.raises(ArenaError) as caught:
        await provider.start()
    assert time.monotonic() - started < 10
    message = str(caught.value)
    assert "startup_timeout_s=1s" in message and "INFO fake vllm: loading org/tiny-chat" in message
    await provider.close()
    assert not alive(json.loads(argv_file.read_text())["pid"])


async def test_a_run_cancelled_while_the_model_loads_stops_the_server(vllm_exe, argv_file, monkeypatch):
    monkeypatch.setenv("FAKE_VLLM_STARTUP_S", "60")
    provider = make_provider(vllm_config(vllm_exe))
    starting = asyncio.ensure_future(provider.start())
    while not argv_file.exists():
        await asyncio.sleep(0.05)
    starting.cancel()  # Ctrl-C during a long model load
    with pytest.raises(asyncio.CancelledError):
        await starting
    await provider.close()
    assert not alive(json.loads(argv_file.read_text())["pid"])


@pytest.mark.slow
async def test_a_server_that_dies_mid_run_fails_requests_without_retries(vllm_exe, argv_file):
    provider = make_provider(vllm_config(vllm_exe))
    await provider.start()
    try:
        os.kill(json.loads(argv_file.read_text())["pid"], signal.SIGKILL)
        await asyncio.sleep(0.3)
        with pytest.raises(ProviderError) as caught:
            await provider.complete([{"role": "user", "content": "hi"}])
        assert not caught.value.retryable
        assert "exited with code -9" in caught.value.reason and "INFO fake vllm: serving" in caught.value.reason
    finally:
        await provider.close()


# --- a whole run --------------------------------------------------------------------------------------


@pytest.mark.slow
def test_a_run_with_a_vllm_contestant(tmp_path, fake_server, vllm_exe, argv_file, monkeypatch):
    monkeypatch.setenv("VLLM_API_KEY", "left-over-in-the-shell")  # must not lock our own client out
    server = fake_server()
    contestants = [{"name": "base", "model": "m-base"},
                   {"name": "local", "provider": "vllm", "model": "org/tiny-chat", "base_url": None,
                    "vllm_executable": str(vllm_exe), "startup_timeout_s": 30}]
    path = write_config(tmp_path, server.base_url, n_questions=4, contestants=contestants)
    result = Arena(load_config(path)).run_sync()

    assert result.exit_code == 0, result.summary
    s = result.summary
    assert (s.answers_new, s.answer_errors, s.games_new, s.game_errors) == (8, 0, 8, 0)
    board = result.leaderboard.set_index("model")
    assert board.loc["local", "battles"] > 0
    record = json.loads(argv_file.read_text())
    assert record["api_key"] is None
    assert not alive(record["pid"])
