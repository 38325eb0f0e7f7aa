"""Per-request energy estimates for API models with EcoLogits (offline; from the model name and output tokens).

EcoLogits models a request from the model's parameter count, the output tokens and the request latency; input
tokens do not enter. Its figure already includes the provider's data-centre PUE (so arena-eval must not apply
`energy.pue` to it again) and is a range: the midpoint is reported. A model EcoLogits does not know gets
energy None and a warning, never 0.
"""

from __future__ import annotations

import functools
import math
import warnings
from collections.abc import Sequence
from importlib import metadata

from .meters import J_PER_KWH, EnergyReading

# Our provider name → EcoLogits provider, where a model name alone decides it.
ECOLOGITS_PROVIDERS = {
    "openai": "openai",
    "anthropic": "anthropic",
}

# litellm-style prefixes ("gemini/gemini-2.5-pro") → EcoLogits provider.
LITELLM_PREFIXES = {
    "openai": "openai",
    "anthropic": "anthropic",
    "gemini": "google_genai",
    "vertex_ai": "google_genai",
    "mistral": "mistralai",
    "cohere": "cohere",
    "huggingface": "huggingface_hub",
}

# Model names as contestants spell them (usually the vLLM / Hugging Face name served behind an
# OpenAI-compatible endpoint) → (EcoLogits provider, EcoLogits model name), where the two differ.
ECOLOGITS_MODELS: dict[str, tuple[str, str]] = {
    "meta-llama/Llama-3.1-8B-Instruct": ("huggingface_hub", "meta-llama/Meta-Llama-3.1-8B-Instruct"),
    "meta-llama/Llama-3.1-8B": ("huggingface_hub", "meta-llama/Meta-Llama-3.1-8B"),
    "meta-llama/Llama-3.1-70B-Instruct": ("huggingface_hub", "meta-llama/Meta-Llama-3.1-70B-Instruct"),
    "meta-llama/Llama-3.1-70B": ("huggingface_hub", "meta-llama/Meta-Llama-3.1-70B"),
    "meta-llama/Llama-3.1-405B-Instruct": ("huggingface_hub", "meta-llama/Meta-Llama-3.1-405B-Instruct"),
    "meta-llama/Llama-3.1-405B-Instruct-FP8": ("huggingface_hub", "meta-llama/Meta-Llama-3.1-405B-Instruct-FP8"),
    "gpt-oss-20b": ("huggingface_hub", "openai/gpt-oss-20b"),
    "gpt-oss-120b": ("huggingface_hub", "openai/gpt-oss-120b"),
}

# Tried in this order when the provider does not decide (e.g. an OpenAI-compatible endpoint serving any model).
_SEARCH_ORDER = ("openai", "anthropic", "mistralai", "google_genai", "cohere", "huggingface_hub")


class UnknownModelWarning(UserWarning):
    """EcoLogits has no data for a model; its energy stays unknown (None)."""


def _tool_version() -> str | None:
    try:
        return f"ecologits {metadata.version('ecologits')}"
    except metadata.PackageNotFoundError:
        return None


@functools.cache
def resolve_model(model: str, provider: str | None = None) -> tuple[str, str] | None:
    """(EcoLogits provider, EcoLogits model) for one of our model names, or None when EcoLogits lacks it."""
    from ecologits.model_repository import models

    if model in ECOLOGITS_MODELS:
        return ECOLOGITS_MODELS[model]
    candidates: list[tuple[str, str]] = []
    prefix, _, rest = model.partition("/")
    if provider == "litellm" and rest and prefix in LITELLM_PREFIXES:
        candidates.append((LITELLM_PREFIXES[prefix], rest))
    if provider in ECOLOGITS_PROVIDERS:
        candidates.append((ECOLOGITS_PROVIDERS[provider], model))
    candidates += [(p, model) for p in _SEARCH_ORDER]
    for eco_provider, eco_model in candidates:
        if models.find_model(provider=eco_provider, model_name=eco_model) is not None:
            return eco_provider, eco_model
    return None


@functools.lru_cache(maxsize=65536)
def _request_kwh(eco_provider: str, eco_model: str, output_tokens: int, latency_s: float) -> float | None:
    from ecologits.tracers.utils import llm_impacts

    impacts = llm_impacts(eco_provider, eco_model, output_tokens, latency_s)
    if impacts.energy is None:
        return None
    value = impacts.energy.value  # a number, or a RangeValue (min, max, mean)
    return float(value.mean if hasattr(value, "mean") else value)


@functools.cache
def _warn_unknown(model: str, provider: str | None) -> None:
    warnings.warn(
        f"EcoLogits has no data for model {model!r} (provider {provider or 'unspecified'}): its energy is left "
        "unknown; add it to arena_eval.energy.ECOLOGITS_MODELS if EcoLogits knows it by another name",
        UnknownModelWarning,
        stacklevel=3,
    )


def estimate_api_energy(model: str, output_tokens: int, latency_s: float | None = None,
                        provider: str | None = None) -> EnergyReading:
    """EcoLogits' estimate for one request. `latency_s` None lets EcoLogits model the generation time itself."""
    if output_tokens < 0:
        raise ValueError(f"output_tokens must be ≥ 0, got {output_tokens}")
    reading = EnergyReading(method="ecologits", is_estimated=True, tool_version=_tool_version(), devices=[],
                            duration_s=latency_s)
    try:
        resolved = resolve_model(model, provider)
    except ImportError:
        reading.error = "ecologits is not installed (pip install ecologits)"
        return reading
    if resolved is None:
        _warn_unknown(model, provider)
        reading.error = f"EcoLogits has no data for model {model!r}"
        return reading
    eco_provider, eco_model = resolved
    reading.devices = [f"{eco_provider}:{eco_model}"]
    # EcoLogits takes min(measured latency, modelled generation time); infinity means "use the model's own".
    kwh = _request_kwh(eco_provider, eco_model, int(output_tokens), math.inf if latency_s is None else float(latency_s))
    if kwh is None:
        reading.error = f"EcoLogits returned no energy for {eco_provider}:{eco_model}"
        return reading
    reading.energy_j = kwh * J_PER_KWH
    return reading


def estimate_api_batch(model: str, output_tokens: Sequence[int], latencies_s: Sequence[float | None] | None = None,
                       provider: str | None = None) -> EnergyReading:
    """The sum of per-request estimates for one contestant's answers, as one reading (store it as one window).

    Computed after collection, not in the request path: about 0.5 ms per distinct (tokens, latency) pair.
    Energy is None when the model is unknown (one warning) or when any request's estimate is missing.
    """
    latencies = list(latencies_s) if latencies_s is not None else [None] * len(output_tokens)
    if len(latencies) != len(output_tokens):
        raise ValueError(f"{len(output_tokens)} token counts but {len(latencies)} latencies")
    total = 0.0
    first = None
    for tokens, latency in zip(output_tokens, latencies):
        reading = estimate_api_energy(model, tokens, latency, provider)
        first = first or reading
        if reading.energy_j is None:
            return reading  # unknown model or missing estimate: the whole batch is unknown
        total += reading.energy_j
    durations = [x for x in latencies if x is not None]
    return EnergyReading(method="ecologits", is_estimated=True, tool_version=_tool_version(),
                         devices=first.devices if first else [], duration_s=sum(durations) if durations else None,
                         energy_j=total if first else None)
