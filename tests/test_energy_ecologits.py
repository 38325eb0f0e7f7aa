"""EcoLogits per-request estimates for API models: known models give energy, unknown ones None and a warning."""

from __future__ import annotations

import pytest

pytest.importorskip("ecologits", reason="ecologits is not installed")

from arena_eval.energy import ECOLOGITS_MODELS, UnknownModelWarning  # noqa: E402
from arena_eval.energy.ecologits_estimate import (
    estimate_api_energy,  # noqa: E402
    resolve_model,  # noqa: E402
)


def test_known_model_gives_an_estimated_positive_energy():
    reading = estimate_api_energy("gpt-4o-mini", output_tokens=500, latency_s=5.0, provider="openai")
    assert reading.method == "ecologits" and reading.is_estimated is True
    assert reading.energy_j is not None and reading.energy_j > 0
    assert reading.error is None and reading.tool_version.startswith("ecologits ")
    assert reading.devices == ["openai:gpt-4o-mini"] and reading.duration_s == 5.0


def test_more_output_tokens_cost_more_and_input_tokens_do_not_enter():
    short = estimate_api_energy("gpt-4o-mini", output_tokens=100, provider="openai").energy_j
    long = estimate_api_energy("gpt-4o-mini", output_tokens=1000, provider="openai").energy_j
    assert long > short > 0


def test_unknown_model_is_none_with_a_warning_never_zero():
    with pytest.warns(UnknownModelWarning, match="no-such-model-xyz"):
        reading = estimate_api_energy("no-such-model-xyz", output_tokens=500, latency_s=2.0, provider="openai")
    assert reading.energy_j is None and reading.is_estimated is True
    assert "no-such-model-xyz" in reading.error


def test_name_mapping():
    # Our name for a served Hugging Face model → EcoLogits' name for it
    assert resolve_model("meta-llama/Llama-3.1-8B-Instruct", "openai") == (
        "huggingface_hub", "meta-llama/Meta-Llama-3.1-8B-Instruct")
    assert all(resolve_model(ours) == theirs for ours, theirs in ECOLOGITS_MODELS.items()), "a mapping points nowhere"
    # litellm prefixes choose the provider; without a provider the name is searched
    assert resolve_model("mistral/mistral-large-latest", "litellm") == ("mistralai", "mistral-large-latest")
    assert resolve_model("claude-sonnet-4-5", None) == ("anthropic", "claude-sonnet-4-5")
    reading = estimate_api_energy("meta-llama/Llama-3.1-8B-Instruct", output_tokens=200, provider="openai")
    assert reading.energy_j > 0


def test_negative_tokens_are_refused():
    with pytest.raises(ValueError, match="output_tokens"):
        estimate_api_energy("gpt-4o-mini", output_tokens=-1)


def test_batch_is_the_sum_of_requests():
    from arena_eval.energy.ecologits_estimate import estimate_api_batch

    tokens, latencies = [100, 300, 100], [2.0, 6.0, None]
    each = [estimate_api_energy("gpt-4o-mini", t, x, "openai").energy_j for t, x in zip(tokens, latencies)]
    batch = estimate_api_batch("gpt-4o-mini", tokens, latencies, provider="openai")
    assert batch.energy_j == pytest.approx(sum(each)) and batch.is_estimated and batch.method == "ecologits"
    assert batch.duration_s == pytest.approx(8.0)
    with pytest.warns(UnknownModelWarning):
        unknown = estimate_api_batch("no-such-model-batch", [10, 20], provider="openai")
    assert unknown.energy_j is None
