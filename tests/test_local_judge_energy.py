"""A local judge on the machine its local contestants are metered on: their Wh and the judge's add up to the
meter's total for the run, never counting a request twice (docs/design.md §3.5.2)."""

from __future__ import annotations

import sqlite3
import time

import pytest
from conftest import write_config

from arena_eval import Arena, load_config
from arena_eval.energy import tracking
from arena_eval.energy.meters import EnergyReading, Window

J_PER_REQUEST = 36.0  # the fake machine spends exactly this much per request it serves, nothing in between


class _CountingWindow(Window):
    def __init__(self, meter):
        self.meter, self.served, self.started = meter, meter.served(), time.time()

    def _close(self) -> EnergyReading:
        served = self.meter.served() - self.served
        return EnergyReading(method="rapl", is_estimated=False, started_at=self.started, ended_at=time.time(),
                             duration_s=time.time() - self.started, energy_j=served * J_PER_REQUEST)


class CountingMeter:
    """A machine-wide meter (like RAPL): every window sees every request the machine serves while it is open, i.e.
    the requests of the models on this machine (`models`; an API judge's are served elsewhere)."""

    method = "rapl"

    def __init__(self, server, models: set[str]):
        self.server, self.models = server, models

    def served(self) -> int:
        return sum(n for model, n in self.server.successes.items() if model in self.models)

    def start(self) -> Window:
        return _CountingWindow(self)


@pytest.mark.parametrize("judge_local", [True, False])
def test_a_local_judge_and_two_local_contestants_add_up_to_the_meters_total(tmp_path, fake_server, monkeypatch,
                                                                           judge_local):
    server = fake_server(latency_s=0.01)
    on_machine = {"m-base", "m-c1", "m-c2"} | ({"judge-model"} if judge_local else set())
    meter = CountingMeter(server, on_machine)
    monkeypatch.setattr(tracking, "available_meter", lambda *a, **k: meter)
    contestants = [{"name": "base", "model": "m-base", "local": True, "concurrency": 4},
                   {"name": "c1", "model": "m-c1", "local": True, "concurrency": 4},
                   {"name": "c2", "model": "m-c2", "local": True, "concurrency": 4}]
    path = write_config(tmp_path, server.base_url, n_questions=12, contestants=contestants,
                        judge={"local": judge_local, "concurrency": 4}, energy={"idle_seconds": 0})
    result = Arena(load_config(path)).run_sync()
    assert result.exit_code == 0, result.summary

    with sqlite3.connect(result.output_dir / "arena.db") as db:
        windows = db.execute("SELECT role, contestant, energy_j, requests, started_at, ended_at FROM energy_windows "
                             "WHERE role != 'idle'").fetchall()
    total = meter.served() * J_PER_REQUEST  # the meter's total for the run
    metered = sum(energy for _, _, energy, *_ in windows)
    judge = [w for w in windows if w[0] == "judge"]
    if judge_local:
        # Every request was served inside exactly one window: the sum is the meter's total.
        assert metered == pytest.approx(total, rel=0.02)
        assert judge[0][2] == pytest.approx(2 * 2 * 12 * J_PER_REQUEST)  # the judge's 48 games, its own
        contestant_windows = [w for w in windows if w[0] == "contestant"]
        assert max(w[5] for w in contestant_windows) <= judge[0][4]  # judging started after collection
    else:  # an API judge is not metered: the contestants' windows hold only the contestants' requests
        assert not judge and metered == pytest.approx(3 * 12 * J_PER_REQUEST, rel=0.02)
