"""Providers: one module per way of reaching a model, all behind the same small interface (base.Provider)."""

from __future__ import annotations

from pathlib import Path

from ..config import EndpointConfig
from .base import Provider, ProviderError, estimate_tokens


def make_provider(config: EndpointConfig, base_dir: str | Path = ".") -> Provider:
    if config.provider == "openai":
        from .openai_compat import OpenAIProvider

        if isinstance(config.base_url, list):  # replicas of one endpoint
            from .replicas import ReplicaSet

            return ReplicaSet(config, [OpenAIProvider(config, url) for url in config.base_url])
        return OpenAIProvider(config)
    if config.provider == "anthropic":
        from .anthropic import AnthropicProvider

        return AnthropicProvider(config)
    if config.provider == "litellm":
        # Imported only here: a run that does not use litellm does not pay its import time.
        from .litellm import LiteLLMProvider

        return LiteLLMProvider(config)
    if config.provider == "vllm":
        from .vllm import VLLMProvider

        return VLLMProvider(config)
    if config.provider == "llama_cpp":
        from .llama_cpp import LlamaCppProvider

        return LlamaCppProvider(config, base_dir)
    raise ValueError(f"unknown provider {config.provider!r}")  # the config validator lists the known ones


__all__ = ["Provider", "ProviderError", "estimate_tokens", "make_provider"]
