"""Token prices: a config override, or the price map that ships inside the litellm package.

The map is read as a JSON file without importing litellm (whose import is slow). Unknown prices are None,
never 0: a local model's electricity is accounted for by the energy log, not here.
"""

from __future__ import annotations

import functools
import importlib.util
import json
from pathlib import Path

from .config import EndpointConfig, Price


@functools.lru_cache(maxsize=1)
def _bundled_price_map() -> dict:
    spec = importlib.util.find_spec("litellm")
    if spec is None or not spec.submodule_search_locations:
        return {}
    path = Path(next(iter(spec.submodule_search_locations))) / "model_prices_and_context_window_backup.json"
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def price_for(endpoint: EndpointConfig, batch: bool = False) -> Price | None:
    """The endpoint's price per million tokens; with `batch`, the batch APIs' price: half of it (OpenAI and
    Anthropic both take half the price in effect, a configured `price` included)."""
    price = _list_price(endpoint)
    if batch and price is not None:
        return Price(input_per_mtok=price.input_per_mtok / 2, output_per_mtok=price.output_per_mtok / 2)
    return price


def _list_price(endpoint: EndpointConfig) -> Price | None:
    if endpoint.price is not None:
        return endpoint.price
    # A custom base_url (vLLM, llama.cpp, Ollama) serves its own weights: a vendor's list price would be wrong.
    if endpoint.is_local or (endpoint.base_url and endpoint.provider != "litellm") or not endpoint.model:
        return None
    prices = _bundled_price_map()
    names = [endpoint.model]
    if "/" not in endpoint.model:
        names.append(f"{endpoint.provider}/{endpoint.model}")
    for name in names:
        entry = prices.get(name)
        if entry and entry.get("input_cost_per_token") is not None and entry.get("output_cost_per_token") is not None:
            return Price(input_per_mtok=entry["input_cost_per_token"] * 1e6, output_per_mtok=entry["output_cost_per_token"] * 1e6)
    return None


def completion_cost(completion, price: Price | None) -> float | None:
    """What one reply cost: the provider's own figure where it gives one, else its tokens at `price`."""
    if completion.cost is not None:
        return completion.cost
    return cost_of(price, completion.input_tokens, completion.output_tokens)


def cost_of(price: Price | None, input_tokens: float | None, output_tokens: float | None) -> float | None:
    """The price of a request (or of an average one: the plan passes mean token counts)."""
    if price is None or input_tokens is None or output_tokens is None:
        return None
    return (input_tokens * price.input_per_mtok + output_tokens * price.output_per_mtok) / 1e6
