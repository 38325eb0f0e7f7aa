"""bench/estimates_vs_measured.py on a tiny task file of the ML.ENERGY leaderboard's shape: the estimate it puts
beside a measurement is arena-eval's own, and the ratio is the one worked out by hand."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import pytest

pytest.importorskip("ecologits", reason="ecologits is not installed")

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
import estimates_vs_measured as bench  # noqa: E402  (bench/ is not a package)

from arena_eval.energy.ecologits_estimate import estimate_api_energy  # noqa: E402


def config(model="meta-llama/Llama-3.1-8B-Instruct", batch=64, **overrides):
    """One measured configuration: 500 output tokens per request at 6400 tokens/s with 64 requests in flight,
    so a request spends 64 × 500 / 6400 = 5.0 s in the server; 40 J per request, 0.08 J per token."""
    entry = {"model_id": model, "nickname": model, "gpu_model": "H100", "num_gpus": 1, "weight_precision": "bfloat16",
             "max_num_seqs": batch, "avg_batch_size": 64.0, "avg_output_len": 500.0,
             "output_throughput_tokens_per_sec": 6400.0, "energy_per_request_joules": 40.0,
             "energy_per_token_joules": 0.08, "median_itl_ms": 9.5, "avg_power_watts": 512.0}
    return {**entry, **overrides}


@pytest.fixture
def task_file(tmp_path):
    path = tmp_path / "lm-arena-chat.json"
    path.write_text(json.dumps({"task": "lm-arena-chat", "task_display_name": "LLM Chat", "configurations": [
        config(),
        config(batch=8),  # another batch size: left out by --batch-sizes 64
        config(model="meta-llama/Llama-3.3-70B-Instruct", num_gpus=4),
        config(model="Qwen/Qwen3-8B"),  # EcoLogits does not know it
    ]}))
    return path


def test_latency_is_requests_in_flight_over_requests_per_second():
    assert bench.request_latency_s(64, 500, 6400) == pytest.approx(5.0)
    assert bench.request_latency_s(8, 300, 1200) == pytest.approx(2.0)


def test_estimate_and_ratio_match_a_hand_computed_case():
    from ecologits.impacts import llm

    row = bench.compare(config(), "lm-arena-chat")
    # By hand, with EcoLogits' formulas (ecologits/impacts/llm.py) for Llama 3.1 8B (8.03 B parameters, one
    # 80 GB GPU at 16 bits), 500 tokens, 5.0 s, its batch of 64 and Hugging Face's PUE range 1.09–1.14:
    gpu_wh_per_token = llm.GPU_ENERGY_ALPHA * math.exp(llm.GPU_ENERGY_BETA * 64) * 8.03 + llm.GPU_ENERGY_GAMMA
    gpu_j = 500 * gpu_wh_per_token * 3600
    host_j = 5.0 * 1200 * (1 / 8) / 64  # 1.2 kW server, 1 of its 8 GPUs, shared by 64 requests
    estimate_j = (gpu_j + host_j) * (1.09 + 1.14) / 2
    assert row.latency_s == pytest.approx(5.0) and row.estimate_tokens == 500
    assert row.estimate_j == pytest.approx(estimate_j, rel=1e-9)
    assert row.estimate_j == pytest.approx(estimate_api_energy("meta-llama/Llama-3.1-8B-Instruct", 500, 5.0).energy_j)
    assert row.ecologits_gpus == 1 and row.ecologits_gpu_j == pytest.approx(gpu_j, rel=1e-9)
    assert row.ratio == pytest.approx(estimate_j / 40.0) and row.ratio > 1  # above 1: the estimate is higher
    assert row.estimate_j_per_token == pytest.approx(estimate_j / 500)
    assert row.ratio_per_token == pytest.approx((estimate_j / 500) / 0.08) == pytest.approx(row.ratio)
    assert row.gpu_ratio == pytest.approx(gpu_j / 40.0)
    # With EcoLogits 0.11's coefficients this is 103.6 J against 40 J measured: 2.59×.
    if llm.GPU_ENERGY_ALPHA == pytest.approx(1.1665273170451914e-06):
        assert row.estimate_j == pytest.approx(103.59, abs=0.01) and row.ratio == pytest.approx(2.590, abs=0.001)


def test_same_architecture_model_is_estimated_as_its_twin():
    row = bench.compare(config(model="meta-llama/Llama-3.3-70B-Instruct", num_gpus=4), "lm-arena-chat")
    twin = bench.compare(config(model="meta-llama/Llama-3.1-70B-Instruct", num_gpus=4), "lm-arena-chat")
    assert row.estimated_as == "meta-llama/Llama-3.1-70B-Instruct" and row.estimate_j == twin.estimate_j
    assert row.ecologits_gpus == 4  # 70.55 B × 2 bytes × 1.2 = 169 GB: 3 GPUs of 80 GB, rounded up to 4


def test_table_lists_known_models_at_the_chosen_batch_sizes(task_file, capsys):
    assert bench.main([str(task_file), "--batch-sizes", "64"]) == 0
    out = capsys.readouterr().out
    assert "| Llama-3.1-8B-Instruct | lm-arena-chat | 1× H100 bfloat16 (1) | 64 / 64 | 500 | 5.0 | 40 | 104 |" in out
    assert "Llama-3.3-70B-Instruct (as Llama-3.1-70B-Instruct)" in out
    assert "| 8 / 64 |" not in out
    assert "Not estimated (EcoLogits does not know them): Qwen/Qwen3-8B" in out
    assert "| H100 | 64 | 2 |" in out  # the summary: two configurations at batch 64 on H100
    assert "sha256" in out and "ecologits" in out


def test_no_file_says_how_to_get_one_and_never_downloads(tmp_path, capsys):
    assert bench.main([]) == 2
    assert "git clone" in capsys.readouterr().out
    assert bench.main([str(tmp_path / "absent.json")]) == 1
    err = capsys.readouterr().err
    assert "absent.json: no such file" in err and "lm-arena-chat.json" in err


def test_bad_entry_names_the_file_the_entry_and_the_field(tmp_path, capsys):
    path = tmp_path / "bad.json"
    entry = config()
    del entry["avg_output_len"]
    path.write_text(json.dumps({"task": "x", "configurations": [config(), entry]}))
    assert bench.main([str(path)]) == 1
    assert "bad.json: configurations[1]: field 'avg_output_len' must be a positive number" in capsys.readouterr().err
    path.write_text(json.dumps([1, 2]))
    assert bench.main([str(path)]) == 1
    assert "'configurations' list" in capsys.readouterr().err
