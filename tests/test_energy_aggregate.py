"""Energy maths with hand-computed oracles: attribution, sum-over-sum summaries, Pareto front, carbon and cost."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from arena_eval.energy import EnergyConfig
from arena_eval.energy.aggregate import (
    attribute_by_output_tokens,
    energy_summary,
    join_leaderboard,
    overlapping_windows,
    pareto_front,
)
from arena_eval.energy.carbon import GRID_INTENSITY_G_PER_KWH, co2_grams, energy_cost, grid_intensity, grid_table
from arena_eval.errors import ConfigError


def test_attribution_by_output_token_share():
    assert attribute_by_output_tokens(180.0, [10, 20, 60]) == pytest.approx([20.0, 40.0, 120.0])
    assert attribute_by_output_tokens(90.0, [0, 0, 0]) == pytest.approx([30.0, 30.0, 30.0])
    assert attribute_by_output_tokens(None, [5, 5]) == [None, None]  # unknown stays unknown, never 0
    assert attribute_by_output_tokens(90.0, []) == []
    with pytest.raises(ValueError, match="answer 1"):
        attribute_by_output_tokens(90.0, [1, -1])


WINDOWS = [
    # contestant A: a short window with few tokens and a long one with many
    {"contestant": "A", "energy_j": 100.0, "output_tokens": 10, "requests": 20, "duration_s": 10.0, "method": "nvml",
     "is_estimated": False},
    {"contestant": "A", "energy_j": 1000.0, "output_tokens": 1000, "requests": 30, "duration_s": 100.0,
     "method": "nvml", "is_estimated": False},
    # contestant B: one window's energy is unknown
    {"contestant": "B", "energy_j": 360.0, "output_tokens": 100, "requests": 10, "duration_s": 36.0, "method": "rapl",
     "is_estimated": False},
    {"contestant": "B", "energy_j": None, "output_tokens": 50, "requests": 5, "duration_s": 10.0, "method": "rapl",
     "is_estimated": False},
]


def test_summary_is_sum_over_sum_not_mean_of_ratios():
    s = energy_summary(WINDOWS, questions=100).set_index("contestant")
    a = s.loc["A"]
    # SUM(energy) / SUM(tokens): 1100 J over 1010 tokens
    assert a.tokens_per_j == pytest.approx(1010 / 1100)  # 0.918…; the mean of ratios would be (0.1 + 1.0)/2 = 0.55
    assert a.wh_per_1k_tokens == pytest.approx(1100 / 3600 / 1010 * 1000)  # 0.3025…; mean of ratios: 1.528
    assert a.tokens_per_j != pytest.approx((10 / 100 + 1000 / 1000) / 2)
    assert a.energy_wh == pytest.approx(1100 / 3600)
    assert a.avg_power_w == pytest.approx(10.0)  # 1100 J over 110 s
    # 1100 J for 50 requests = 22 J per answer; a pass over 100 questions = 2200 J
    assert a.wh_per_pass == pytest.approx(2200 / 3600)
    assert (a.windows, a.windows_unknown, a.requests, a.output_tokens) == (2, 0, 50, 1010)
    assert a.method == "nvml" and not a.is_estimated


def test_summary_with_an_unknown_window():
    b = energy_summary(WINDOWS, questions=100).set_index("contestant").loc["B"]
    assert math.isnan(b.energy_wh)  # a total with a hole in it is unknown
    assert b.windows_unknown == 1 and b.requests == 15 and b.output_tokens == 150
    # ratios from the known window only, numerator and denominator alike
    assert b.wh_per_1k_tokens == pytest.approx(1.0)
    assert b.tokens_per_j == pytest.approx(100 / 360)
    assert b.avg_power_w == pytest.approx(10.0)
    assert b.wh_per_pass == pytest.approx(3600 / 3600)  # 36 J per answer × 100


def test_summary_all_unknown_is_nan_not_zero():
    rows = [{"contestant": "X", "energy_j": None, "output_tokens": 10, "method": "none", "is_estimated": True}]
    x = energy_summary(rows, questions=10).iloc[0]
    for column in ("energy_wh", "wh_per_pass", "wh_per_1k_tokens", "tokens_per_j", "avg_power_w"):
        assert math.isnan(x[column]), column


def test_summary_carbon_and_cost_apply_pue_once():
    rows = [
        *WINDOWS[:2],
        # EcoLogits already includes the provider's PUE: 3600 J per answer, 100 answers = 0.1 kWh per pass
        {"contestant": "C", "energy_j": 3600.0, "output_tokens": 200, "requests": 1, "method": "ecologits",
         "is_estimated": True},
    ]
    s = energy_summary(rows, questions=100, g_co2_per_kwh=400.0, pue=1.5, price_per_kwh=0.2).set_index("contestant")
    assert s.loc["A", "co2_g_per_pass"] == pytest.approx(2200 / 3.6e6 * 1.5 * 400)  # 0.3667 g
    assert s.loc["A", "cost_per_pass"] == pytest.approx(2200 / 3.6e6 * 1.5 * 0.2)
    assert s.loc["C", "co2_g_per_pass"] == pytest.approx(40.0)
    assert s.loc["C", "cost_per_pass"] == pytest.approx(0.02)
    assert bool(s.loc["C", "is_estimated"]) and s.loc["C", "method"] == "ecologits"


def test_summary_groups_by_configuration():
    rows = [{"contestant": "A", "gpus": 4, "energy_j": 10.0, "output_tokens": 1},
            {"contestant": "A", "gpus": 8, "energy_j": 30.0, "output_tokens": 1}]
    s = energy_summary(rows, by=("contestant", "gpus"))
    assert s[["contestant", "gpus"]].values.tolist() == [["A", 4], ["A", 8]]
    assert s.energy_wh.tolist() == pytest.approx([10 / 3600, 30 / 3600])


def test_pareto_front():
    df = pd.DataFrame({
        "model": ["A", "B", "C", "D", "E", "F"],
        "score": [60.0, 55.0, 50.0, 70.0, 65.0, 40.0],
        "energy_wh": [10.0, 5.0, 8.0, float("nan"), 20.0, 1.0],
    })
    front = pareto_front(df)
    # C is beaten by B (55 > 50 and 5 < 8); D's energy is unknown; E's only better-scoring rival is unknown.
    assert dict(zip(df.model, front)) == {"A": True, "B": True, "C": False, "D": False, "E": True, "F": True}
    assert front.dtype == bool and list(front.index) == list(df.index)


def test_join_leaderboard_one_row_per_configuration():
    board = pd.DataFrame({"model": ["A", "B"], "score": [60.0, 50.0]})
    energy = pd.DataFrame({"contestant": ["A", "A"], "gpus": ["4", "8"], "wh_per_pass": [10.0, 12.0]})
    joined = join_leaderboard(board, energy)
    assert joined[["model", "gpus"]].fillna("-").values.tolist() == [["A", "4"], ["A", "8"], ["B", "-"]]
    assert joined.pareto.tolist() == [True, True, False]  # B has no energy: not on the front


def test_overlapping_windows_on_shared_devices():
    windows = pd.DataFrame({
        "id": [1, 2, 3, 4],
        "devices": [["gpu0"], ["gpu0"], ["gpu1"], ["gpu0", "gpu1"]],
        "started_at": [0.0, 10.0, 5.0, 30.0],
        "ended_at": [10.0, 20.0, 40.0, 35.0],
    })
    # 1 and 2 only touch; 3 (gpu1) overlaps 4 on gpu1
    assert overlapping_windows(windows) == [(3, 4)]
    # by configured device name (one string per window), as stored in energy_windows.device
    by_lock = windows.assign(device=["local", "local", "cuda:1", "local"], ended_at=[10.0, 31.0, 40.0, 35.0])
    assert overlapping_windows(by_lock, device_column="device") == [(2, 4)]


def test_carbon_and_cost_maths():
    assert co2_grams(3.6e6, g_per_kwh=400.0, pue=1.2) == pytest.approx(480.0)
    assert co2_grams(None, g_per_kwh=400.0) is None
    assert energy_cost(7.2e6, price_per_kwh=0.25) == pytest.approx(0.5)
    assert energy_cost(3.6e6, price_per_kwh=0.25, pue=2.0) == pytest.approx(0.5)
    with pytest.raises(ValueError, match="PUE"):
        co2_grams(1.0, g_per_kwh=1.0, pue=0.9)


def test_grid_intensity_table():
    assert grid_intensity("fra") == pytest.approx(56.039)
    assert grid_intensity("WOR") == pytest.approx(475.0)
    with pytest.raises(ConfigError, match="'XXX'"):
        grid_intensity("XXX")


def test_own_copy_matches_codecarbons_table():
    pytest.importorskip("codecarbon", reason="codecarbon is not installed")
    table, source = grid_table()
    assert source.startswith("CodeCarbon")
    for code, value in GRID_INTENSITY_G_PER_KWH.items():
        assert table[code] == pytest.approx(value), code


def test_grid_table_without_codecarbon(monkeypatch):
    import arena_eval.energy.carbon as carbon

    monkeypatch.setattr(carbon.importlib.util, "find_spec", lambda name: None)
    carbon.grid_table.cache_clear()
    try:
        table, source = carbon.grid_table()
        assert source == carbon.TABLE_SOURCE and table["DEU"] == pytest.approx(380.95)
    finally:
        carbon.grid_table.cache_clear()


def test_energy_config():
    config = EnergyConfig(country="fra", pue=1.2)
    assert config.country == "FRA"
    assert config.carbon_intensity()[0] == pytest.approx(56.039)
    assert EnergyConfig(g_co2_per_kwh=100).carbon_intensity() == (100, "energy.g_co2_per_kwh")
    with pytest.raises(ValueError, match="no grid carbon intensity"):
        EnergyConfig(country="Atlantis")
    with pytest.raises(ValueError):
        EnergyConfig(pue=0.8)
    with pytest.raises(ValueError):
        EnergyConfig(metre="auto")
