from __future__ import annotations

import pytest

from arena_eval.config import ContestantConfig, Price
from arena_eval.pricing import cost_of, price_for


def contestant(**fields) -> ContestantConfig:
    return ContestantConfig(name="x", **{"provider": "openai", "model": "gpt-4o-mini", **fields})


def test_config_price_wins_and_cost_is_per_million_tokens():
    price = price_for(contestant(price={"input_per_mtok": 2.0, "output_per_mtok": 8.0}))
    assert cost_of(price, 1_000, 500) == pytest.approx((1_000 * 2 + 500 * 8) / 1e6)


def test_list_price_comes_from_litellms_bundled_map():
    price = price_for(contestant())
    assert price is not None and price.output_per_mtok > price.input_per_mtok > 0


@pytest.mark.slow
def test_reading_prices_does_not_import_litellm():
    import subprocess
    import sys

    code = ("import sys; from arena_eval.config import ContestantConfig; from arena_eval.pricing import price_for;"
            "p = price_for(ContestantConfig(name='x', provider='openai', model='gpt-4o-mini'));"
            "print(p is not None, 'litellm' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout.split()
    assert out == ["True", "False"]


@pytest.mark.parametrize("fields", [
    {"base_url": "http://127.0.0.1:8000/v1"},  # a self-hosted server: the vendor's list price would be wrong
    {"model": "no-such-model-anywhere"},
    {"provider": "llama_cpp", "model_path": "x.gguf"},
])
def test_unknown_prices_are_none_never_zero(fields):
    price = price_for(contestant(**fields))
    assert price is None and cost_of(price, 10, 10) is None


def test_missing_token_counts_give_no_cost():
    assert cost_of(Price(input_per_mtok=1, output_per_mtok=1), None, 5) is None
