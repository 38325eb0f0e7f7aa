"""Energy measured where the model runs: a remote Zeus daemon (tests/fake_zeusd.py, counters advancing at a known
wattage), a replica list of daemons, a server's own /energy_metrics (tests/fake_server.py), the checks on tokens,
and `arena-eval energy check` (docs/design.md §3.5.1)."""

from __future__ import annotations

import re
import sqlite3
import threading
import time
from pathlib import Path

import pytest
import yaml
from conftest import write_config
from fake_zeusd import DaemonSetup, FakeZeusd
from typer.testing import CliRunner

from arena_eval import Arena, load_config
from arena_eval.energy.config import EndpointEnergy
from arena_eval.energy.meters import MeterUnavailable
from arena_eval.errors import ArenaError, ConfigError

pytest.importorskip("zeus", reason="zeus is not installed (pip install 'arena-eval[zeus]')")

from arena_eval.energy.zeusd_meter import DaemonRefused, ZeusdMeter, connect  # noqa: E402


@pytest.fixture
def zeusd():
    daemons: list[FakeZeusd] = []

    def start(**setup) -> FakeZeusd:
        daemon = FakeZeusd(DaemonSetup(**setup)).start()
        daemons.append(daemon)
        return daemon

    yield start
    for daemon in daemons:
        daemon.stop()


def windows(result, role: str = "contestant") -> list[dict]:
    with sqlite3.connect(result.output_dir / "arena.db") as db:
        db.row_factory = sqlite3.Row
        return [dict(r) for r in db.execute("SELECT * FROM energy_windows WHERE role = ? ORDER BY id", (role,))]


def remote_run(tmp_path: Path, server, contestant: dict, n_questions: int = 5, **energy) -> Path:
    """A run whose contestant c1 is metered elsewhere; the baseline and the judge are API models."""
    contestants = [{"name": "base", "model": "m-base", "concurrency": 4},
                   {"name": "c1", "model": "m-c1", "concurrency": 1, **contestant}]
    return write_config(tmp_path, server.base_url, n_questions=n_questions, contestants=contestants,
                        energy={"idle_seconds": 0, "estimate_api": False, **energy})


# --- a contestant on another machine --------------------------------------------------------------------------


@pytest.mark.slow  # a whole run in process: a few seconds
def test_a_contestant_metered_by_a_remote_daemon_gets_watts_times_its_window(tmp_path, fake_server, zeusd):
    server = fake_server(latency_s=0.25)
    daemon = zeusd(gpu_watts={0: 120.0, 1: 80.0}, cpu_watts={0: 40.0}, dram_watts={0: 5.0}, gpu_names={0: "H100"})
    path = remote_run(tmp_path, server, {"energy": {"zeusd": daemon.address, "gpus": [0]}}, idle_seconds=1.0)
    result = Arena(load_config(path)).run_sync()
    assert result.exit_code == 0, result.summary

    [window] = windows(result)
    assert window["contestant"] == "c1" and window["method"] == "zeusd" and not window["is_estimated"]
    assert window["requests"] == 5 and window["error"] is None
    # gpu0 only (the config names it): 120 W over the window, within 1 %
    assert window["energy_j"] == pytest.approx(120.0 * window["duration_s"], rel=0.01)
    assert window["gpu_j"] == pytest.approx(window["energy_j"]) and window["cpu_j"] is None
    assert window["duration_s"] >= 1.0  # five answers at 0.25 s, one at a time
    assert "gpu0 (H100)" in window["devices"]
    # idle power the same way, before the window, under the same lock key
    [idle] = windows(result, "idle")
    assert idle["energy_j"] / idle["duration_s"] == pytest.approx(120.0, rel=0.02)
    assert idle["device"] == window["device"] == f"zeusd {daemon.address} gpu0"


@pytest.mark.slow  # a whole run in process: a few seconds
def test_a_replica_list_of_two_daemons_sums_both(tmp_path, fake_server, zeusd):
    first, second = fake_server(latency_s=0.25), fake_server(latency_s=0.25)
    d1, d2 = zeusd(gpu_watts={0: 100.0}), zeusd(gpu_watts={0: 300.0, 1: 1000.0})
    contestant = {"base_url": [entry.base_url for entry in (first, second)],
                  "energy": [{"zeusd": d1.address}, {"zeusd": d2.address, "gpus": [0]}]}
    result = Arena(load_config(remote_run(tmp_path, first, contestant, n_questions=6))).run_sync()
    assert result.exit_code == 0, result.summary
    [window] = windows(result)
    assert window["error"] is None and window["requests"] == 6
    assert window["energy_j"] == pytest.approx(400.0 * window["duration_s"], rel=0.01)
    assert d1.address in window["devices"] and d2.address in window["devices"]
    assert second.successes["m-c1"] > 0 and first.successes["m-c1"] > 0  # both replicas answered


def test_replicas_written_with_their_own_energy_are_the_same_list(tmp_path):
    path = tmp_path / "c.yaml"
    base = {"provider": "openai", "model": "m", "name": "c1"}
    path.write_text(yaml.safe_dump({"name": "t", "questions": "q.jsonl", "baseline": "c1", "judge": {"model": "j"},
                                    "contestants": [{**base, "base_url": [
                                        {"url": "http://a:8000/v1", "energy": {"zeusd": "http://a:4938"}},
                                        {"url": "http://b:8000/v1", "energy": {"server": "/energy_metrics"}}]}]}))
    (tmp_path / "q.jsonl").write_text('{"question_id": "q1", "prompt": "hi"}\n')
    contestant = load_config(path).contestants[0]
    assert contestant.base_url == ["http://a:8000/v1", "http://b:8000/v1"]
    assert [(s.zeusd, s.server, url) for s, url in contestant.energy_sources()] == [
        ("http://a:4938", None, "http://a:8000/v1"), (None, "/energy_metrics", "http://b:8000/v1")]


@pytest.mark.parametrize(("energy", "message"), [
    ({"zeusd": "http://a:4938"}, "base_url lists 2 replicas: give a list of 2 energy sources"),
    ([{"zeusd": "http://a:4938"}], "1 energy sources for 2 replicas"),
    ({"zeusd": "https://a:4938"}, "zeusd speaks plain HTTP"),
    ({"zeusd": "http://a:4938", "token_env": "zd-secret-token"}, "token_env takes the NAME"),
    ({"zeusd": "http://a:4938", "server": "/energy_metrics"}, "one of the two"),
])
def test_bad_energy_sources_are_config_errors_naming_the_field(tmp_path, energy, message):
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({"name": "t", "questions": "q.jsonl", "baseline": "c1", "judge": {"model": "j"},
                                    "contestants": [{"name": "c1", "model": "m", "energy": energy,
                                                     "base_url": ["http://a:8000/v1", "http://b:8000/v1"]}]}))
    with pytest.raises(ConfigError, match="contestants") as caught:
        load_config(path)
    assert message in str(caught.value)
    assert "zd-secret-token" not in str(caught.value)  # a token written where its variable's name belongs


@pytest.mark.slow  # a whole run in process: a few seconds
def test_a_daemon_killed_mid_run_leaves_that_window_unknown_and_the_run_completes(tmp_path, fake_server, zeusd):
    server = fake_server(latency_s=0.2)
    daemon = zeusd(gpu_watts={0: 100.0})
    path = remote_run(tmp_path, server, {"energy": {"zeusd": daemon.address}}, n_questions=6)

    def kill_after_two_answers() -> None:  # of c1's: its window is open by then
        deadline = time.monotonic() + 30
        while server.successes["m-c1"] < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        daemon.stop()

    killer = threading.Thread(target=kill_after_two_answers)
    killer.start()
    result = Arena(load_config(path)).run_sync()
    killer.join()
    assert result.exit_code == 0, result.summary
    assert result.summary.answers_new == 12  # every answer collected and judged all the same
    [window] = windows(result)
    assert window["energy_j"] is None and window["requests"] == 6
    assert f"zeusd at {daemon.address} unreadable at window end" in window["error"]


def test_a_wrong_token_is_an_error_naming_the_variable_never_the_token(tmp_path, fake_server, zeusd, monkeypatch):
    server = fake_server()
    daemon = zeusd(token="the-daemons-right-token-8h2k")
    monkeypatch.setenv("ZEUSD_TEST_TOKEN", "a-wrong-token-5f9q7x")
    path = remote_run(tmp_path, server, {"energy": {"zeusd": daemon.address, "token_env": "ZEUSD_TEST_TOKEN"}})
    with pytest.raises(DaemonRefused) as caught:
        Arena(load_config(path)).run_sync()
    message = str(caught.value)
    assert "ZEUSD_TEST_TOKEN" in message and daemon.address in message
    assert "a-wrong-token" not in message and "5f9q7x" not in message
    assert server.successes.total() == 0  # refused before any request
    written = [p for p in (tmp_path / "out").rglob("*") if p.is_file()]  # the store, its WAL, any file
    assert written and not any(b"a-wrong-token-5f9q7x" in p.read_bytes() for p in written)

    monkeypatch.setenv("ZEUSD_TEST_TOKEN", "the-daemons-right-token-8h2k")  # the right one reads
    spec = EndpointEnergy(zeusd=daemon.address, token_env="ZEUSD_TEST_TOKEN")
    assert connect(spec).gpu_ids == [0]
    monkeypatch.delenv("ZEUSD_TEST_TOKEN")
    with pytest.raises(DaemonRefused, match="ZEUSD_TEST_TOKEN, which is not set"):
        connect(spec)


def test_a_daemon_asking_for_a_token_without_one_configured(zeusd):
    daemon = zeusd(token="the-daemons-right-token-8h2k")
    with pytest.raises(DaemonRefused, match="name its variable in energy.token_env"):
        connect(EndpointEnergy(zeusd=daemon.address))


# --- the meter itself -----------------------------------------------------------------------------------------


def test_zeusd_over_a_unix_socket_with_cpu_and_dram(tmp_path, zeusd):
    daemon = zeusd(gpu_watts={}, cpu_watts={0: 60.0, 1: 50.0}, dram_watts={0: 10.0},
                   socket_path=str(tmp_path / "zeusd.sock"))
    meter = ZeusdMeter(EndpointEnergy(zeusd=daemon.address, cpus=[0]))
    window = meter.start()
    time.sleep(0.3)
    reading = window.stop()
    assert reading.error is None and reading.method == "zeusd"
    assert reading.cpu_j == pytest.approx(60.0 * reading.duration_s, rel=0.05)
    assert reading.ram_j == pytest.approx(10.0 * reading.duration_s, rel=0.05)
    assert reading.energy_j == pytest.approx(reading.cpu_j + reading.ram_j) and reading.gpu_j is None


def test_a_gpu_without_a_counter_is_sampled(zeusd):
    daemon = zeusd(gpu_watts={0: 200.0, 1: 50.0}, no_counter={1})
    meter = ZeusdMeter(EndpointEnergy(zeusd=daemon.address), poll_hz=50)
    window = meter.start()
    time.sleep(0.4)
    reading = window.stop()
    assert reading.error is None and reading.method == "zeusd-power-poll"
    assert reading.energy_j == pytest.approx(250.0 * reading.duration_s, rel=0.05)


def test_an_unreachable_daemon_makes_the_window_unknown_with_the_reason(zeusd):
    daemon = zeusd()
    address = daemon.address
    daemon.stop()
    reading = ZeusdMeter(EndpointEnergy(zeusd=address)).start().stop()
    assert reading.energy_j is None and f"zeusd at {address} cannot be reached" in reading.error


# --- a server's own figures -----------------------------------------------------------------------------------


@pytest.mark.slow  # a whole run in process: a few seconds
def test_a_server_reporting_its_own_energy(tmp_path, fake_server):
    server = fake_server(latency_s=0.25, energy_watts=75.0)
    path = remote_run(tmp_path, server, {"energy": {"server": "/energy_metrics"}})
    result = Arena(load_config(path)).run_sync()
    assert result.exit_code == 0, result.summary
    [window] = windows(result)
    assert window["method"] == "server" and not window["is_estimated"] and window["error"] is None
    assert window["energy_j"] == pytest.approx(75.0 * window["duration_s"], rel=0.01)
    assert window["devices"] == f'["http://127.0.0.1:{server.port}/energy_metrics"]'


def test_a_server_without_the_figure_leaves_the_window_unknown(fake_server):
    from arena_eval.energy.server_meter import ServerMeter

    server = fake_server()  # no /energy_metrics: 404
    reading = ServerMeter(f"http://127.0.0.1:{server.port}/energy_metrics").start().stop()
    assert reading.energy_j is None and "HTTP 404" in reading.error and reading.method == "server"


# --- sharing a remote device: the no-overlap rule --------------------------------------------------------------


@pytest.mark.slow  # a whole run in process: a few seconds
def test_contestants_on_one_remote_gpu_take_turns(tmp_path, fake_server, zeusd):
    server = fake_server(latency_s=0.05)
    daemon = zeusd(gpu_watts={0: 100.0, 1: 100.0})
    contestants = [{"name": "base", "model": "m-base"},
                   {"name": "c1", "model": "m-c1", "energy": {"zeusd": daemon.address, "gpus": [0]}},
                   {"name": "c2", "model": "m-c2", "energy": {"zeusd": daemon.address, "gpus": [0]}},
                   {"name": "c3", "model": "m-c3", "energy": {"zeusd": daemon.address, "gpus": [1]}}]
    path = write_config(tmp_path, server.base_url, n_questions=6, contestants=contestants,
                        energy={"idle_seconds": 0, "estimate_api": False})
    result = Arena(load_config(path)).run_sync()
    assert result.exit_code == 0, result.summary
    by_name = {w["contestant"]: w for w in windows(result)}
    c1, c2, c3 = by_name["c1"], by_name["c2"], by_name["c3"]
    assert c1["ended_at"] <= c2["started_at"] or c2["ended_at"] <= c1["started_at"]  # gpu0: one after the other
    assert c3["started_at"] < max(c1["ended_at"], c2["ended_at"])  # gpu1 is another device: no wait


@pytest.mark.slow  # a whole run in process: a few seconds
def test_a_judge_on_a_contestants_remote_gpu_judges_after_collection(tmp_path, fake_server, zeusd):
    server = fake_server(latency_s=0.05)
    daemon = zeusd(gpu_watts={0: 100.0})
    on_gpu0 = {"zeusd": daemon.address, "gpus": [0]}
    contestants = [{"name": "base", "model": "m-base"}, {"name": "c1", "model": "m-c1", "energy": on_gpu0}]
    path = write_config(tmp_path, server.base_url, n_questions=4, contestants=contestants, judge={"energy": on_gpu0},
                        energy={"idle_seconds": 0, "estimate_api": False})
    result = Arena(load_config(path)).run_sync()
    assert result.exit_code == 0, result.summary
    [contestant], [judge] = windows(result), windows(result, "judge")
    assert contestant["ended_at"] <= judge["started_at"]  # one GPU, one window at a time: nothing counted twice
    assert judge["energy_j"] == pytest.approx(100.0 * judge["duration_s"], rel=0.05) and judge["requests"] == 8


def test_validate_points_at_energy_check_when_an_endpoint_is_metered(tmp_path, fake_server):
    from arena_eval.cli import app

    server = fake_server()
    contestants = [{"name": "base", "model": "m-base"},
                   {"name": "c1", "model": "m-c1", "energy": {"zeusd": "http://gpu-box:4938"}}]
    path = write_config(tmp_path, server.base_url, n_questions=2, contestants=contestants)
    result = CliRunner().invoke(app, ["validate", "-c", str(path)])
    assert result.exit_code == 0, result.output
    assert f"energy: 1 endpoint(s) metered; `arena-eval energy check -c {path}`" in result.output


# --- this machine ----------------------------------------------------------------------------------------------


def _zeus_finds_a_device() -> bool:
    from arena_eval.energy.zeus_meter import ZeusMeter

    try:
        ZeusMeter()
    except MeterUnavailable:
        return False
    return True


@pytest.mark.slow
def test_auto_on_a_machine_without_sensors_still_picks_codecarbon_with_the_same_energy_line(tmp_path, fake_server):
    pytest.importorskip("codecarbon")
    if _zeus_finds_a_device():
        pytest.skip("Zeus finds a GPU or a readable RAPL counter here: auto picks Zeus")
    from arena_eval.cli.summary import energy_line

    server = fake_server()
    contestants = [{"name": "base", "model": "m-base"}, {"name": "c1", "model": "m-c1", "local": True}]
    path = write_config(tmp_path, server.base_url, n_questions=3, contestants=contestants,
                        energy={"idle_seconds": 0})
    result = Arena(load_config(path)).run_sync()
    assert result.exit_code == 0
    [window] = windows(result)
    assert window["method"] == "codecarbon" and window["is_estimated"]
    [line] = energy_line(result.summary)
    assert line.text.startswith("energy: CodeCarbon estimated this machine's energy for local models from CPU load "
                                "and a default power per core (no sensor could be read), so it is an estimate")


def test_meter_zeus_with_nothing_to_measure_is_an_error_saying_what_zeus_found(tmp_path, fake_server):
    if _zeus_finds_a_device():
        pytest.skip("Zeus finds a device here")
    server = fake_server()
    contestants = [{"name": "base", "model": "m-base"}, {"name": "c1", "model": "m-c1", "local": True}]
    path = write_config(tmp_path, server.base_url, n_questions=3, contestants=contestants,
                        energy={"idle_seconds": 0, "meter": "zeus"})
    with pytest.raises(ArenaError, match=r"Zeus found nothing to measure \(GPUs: .*; CPUs: .*\)"):
        Arena(load_config(path)).run_sync()
    assert server.successes.total() == 0


# --- arena-eval energy check -----------------------------------------------------------------------------------


@pytest.mark.slow  # two checks with idle measurements
def test_energy_check_against_the_fake_daemon(tmp_path, fake_server, zeusd):
    from arena_eval.cli import app

    server = fake_server(energy_watts=30.0)
    daemon = zeusd(gpu_watts={0: 150.0}, gpu_names={0: "H100"})
    contestants = [{"name": "base", "model": "m-base", "energy": {"server": "/energy_metrics"}},
                   {"name": "c1", "model": "m-c1", "energy": {"zeusd": daemon.address, "gpus": [0]}}]
    path = write_config(tmp_path, server.base_url, contestants=contestants)
    result = CliRunner().invoke(app, ["energy", "check", "-c", str(path), "--seconds", "0.3"])
    assert result.exit_code == 0, result.output
    assert "contestant c1 (another machine): zeusd" in result.output
    assert f"zeusd at {daemon.address}: GPUs gpu0 (H100)" in result.output
    idle = [float(w) for w in re.findall(r"idle power: ([\d.]+) W", result.output)]
    assert idle == pytest.approx([30.0, 150.0], rel=0.05)  # base's server figure, then c1's daemon
    assert "contestant base (another machine): server" in result.output

    daemon.stop()
    down = CliRunner().invoke(app, ["energy", "check", "-c", str(path), "--seconds", "0.3"])
    assert down.exit_code == 2 and "cannot be reached" in down.output and "not measured: c1" in down.output


def test_energy_check_on_this_machine(tmp_path, fake_server):
    from arena_eval.cli import app

    if _zeus_finds_a_device():
        pytest.skip("Zeus finds a device here")
    server = fake_server()
    contestants = [{"name": "base", "model": "m-base"}, {"name": "c1", "model": "m-c1", "local": True}]
    path = write_config(tmp_path, server.base_url, contestants=contestants, energy={"meter": "zeus"})
    result = CliRunner().invoke(app, ["energy", "check", "-c", str(path), "--seconds", "0.3"])
    assert result.exit_code == 2, result.output
    assert "contestant c1 (this machine): nothing measures it" in result.output
    assert "Zeus found nothing to measure" in result.output
    assert "says nothing of its power" in result.output  # base: a server elsewhere without energy:
