"""Nightly runs logged to MLflow (issue 25 item 3; arena_eval/mlflow_tracking.py): what lands there, read back with MLflow's
own client from a local file store, and a tracker that cannot be reached or is not installed as a warning only."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path

import pytest
import yaml
from conftest import write_config
from test_startup import _IN_PROCESS
from test_startup import _config as startup_config

from arena_eval import Arena, load_config
from arena_eval.cli.summary import tracking_lines
from arena_eval.config import config_from_dict
from arena_eval.errors import ConfigError
from arena_eval.mlflow_tracking import contestant_keys, masked, run_config_id, tracking_uri
from arena_eval.store import Store

mlflow = pytest.importorskip("mlflow", reason="the mlflow extra: pip install 'arena-eval[mlflow]'")
from mlflow import MlflowClient  # noqa: E402

ARTIFACTS = {"report.html", "leaderboard.csv", "leaderboard.json", "leaderboard.parquet", "config.json"}


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def nightly_config(tmp_path: Path, server, tracking: dict, **top) -> Path:
    return write_config(tmp_path, f"http://127.0.0.1:{server.port}/v1", n_questions=5,
                        tracking={"mlflow": tracking}, **top)


def runs_of(store_uri: str, experiment: str) -> list:
    client = MlflowClient(tracking_uri=store_uri)
    found = client.get_experiment_by_name(experiment)
    assert found is not None, f"no experiment {experiment!r} in {store_uri}"
    return client.search_runs([found.experiment_id], order_by=["attributes.start_time ASC"])


def test_each_night_is_one_mlflow_run_with_its_tags_metrics_and_artifacts(tmp_path, fake_server, monkeypatch):
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # for this test's own client; the run sets it itself
    server = fake_server(judge_verdict="longer")
    cfg = load_config(nightly_config(tmp_path, server, {"tracking_uri": "mlruns", "experiment": "nightly"}))
    store_uri = (tmp_path / "mlruns").as_uri()  # relative to the config's folder

    first = Arena(cfg).run_sync()
    assert first.exit_code == 0 and first.summary.tracking_warnings == []
    tracked = first.summary.tracked
    assert tracked is not None and tracked.experiment == "nightly" and tracked.tracking_uri == store_uri
    [run] = runs_of(store_uri, "nightly")
    assert run.info.run_id == tracked.run_id and run.info.status == "FINISHED"
    assert run.info.run_name == f"t {first.run_id}"

    tags = run.data.tags
    assert tags["arena_eval.run_id"] == first.run_id and tags["arena_eval.command"] == "run"
    assert tags["arena_eval.baseline"] == "base" and tags["arena_eval.judges"] == "judge-model"
    assert tags["arena_eval.version"] and tags["arena_eval.status"] == "complete"
    assert tags["arena_eval.regressions"] == "none"
    assert tags["arena_eval.contestant.c1.config_id"] == cfg.contestants[1].config_id
    assert tags["arena_eval.contestant.c1.name"] == "c1" and tags["arena_eval.contestant.c1.model"] == "model-c1"

    # Every number of the leaderboard file is a metric `<contestant>.<column>`, with the same value.
    metrics = run.data.metrics
    board = json.loads((cfg.output_dir / "leaderboard.json").read_text())
    checked = 0
    for row in board:
        for column, value in row.items():
            if isinstance(value, (int, float)) and not isinstance(value, bool) and column != "is_baseline":
                assert metrics[f"{row['model']}.{column}"] == pytest.approx(value), column
                checked += 1
    c1 = next(r for r in board if r["model"] == "c1")
    for column in ("score", "ci_low", "ci_high", "elo", "unparsed_rate", "latency_p50_s"):
        assert metrics[f"c1.{column}"] == pytest.approx(c1[column])
    assert checked >= 30
    # The judge's diagnostics, per judge and pooled, and the run's counts.
    judges = Arena(cfg).stored_leaderboard().judges.set_index("judge")
    for name in ("judge-model", "pooled"):
        assert metrics[f"judge.{name}.consistency"] == pytest.approx(judges.loc[name, "consistency"])
        first_wins = judges.loc[name, "first_position_win_rate"]
        assert metrics[f"judge.{name}.first_position_win_rate"] == pytest.approx(first_wins)
        assert metrics[f"judge.{name}.position_bias"] == pytest.approx(abs(first_wins - 0.5))
        assert metrics[f"judge.{name}.games"] == judges.loc[name, "games"] == 10  # both orders
    assert metrics["run.questions"] == 5 and metrics["run.answers_new"] == 10 and metrics["run.games_new"] == 10

    # The report, the leaderboard files and the config snapshot as artifacts, byte for byte.
    client = MlflowClient(tracking_uri=store_uri)
    assert {a.path for a in client.list_artifacts(run.info.run_id)} == ARTIFACTS
    fetched = Path(client.download_artifacts(run.info.run_id, "leaderboard.json", str(tmp_path / "fetched")))
    assert fetched.read_bytes() == (cfg.output_dir / "leaderboard.json").read_bytes()
    snapshot = json.loads(Path(client.download_artifacts(run.info.run_id, "config.json", str(tmp_path / "f2"))).read_text())
    assert snapshot["tracking"]["mlflow"]["experiment"] == "nightly"

    # The second night: nothing changed, so nothing is asked again; it is a second MLflow run of the same config id.
    before = sum(server.requests.values())
    second = Arena(cfg).run_sync()
    assert second.exit_code == 0 and sum(server.requests.values()) == before
    runs = runs_of(store_uri, "nightly")
    assert [r.data.tags["arena_eval.run_id"] for r in runs] == [first.run_id, second.run_id]
    assert runs[1].info.run_id == second.summary.tracked.run_id != tracked.run_id
    assert runs[0].data.tags["arena_eval.config_id"] == runs[1].data.tags["arena_eval.config_id"]
    assert runs[1].data.metrics["run.answers_new"] == 0 and runs[1].data.metrics["run.answers_cached"] == 10
    assert runs[1].data.metrics["c1.score"] == pytest.approx(metrics["c1.score"])
    # The store records where each run went.
    with Store(cfg.output_dir / "arena.db") as store:
        summaries = {r["run_id"]: json.loads(r["summary_json"]) for r in store.runs()}
    assert summaries[second.run_id]["extra"]["mlflow"]["run_id"] == runs[1].info.run_id


def test_an_unreachable_tracking_server_is_a_warning_and_the_run_is_as_without_it(tmp_path, fake_server):
    server = fake_server(judge_verdict="longer")
    password = "s3cret-tracking-pass"
    uri = f"http://arena:{password}@127.0.0.1:{closed_port()}/"
    path = nightly_config(tmp_path, server, {"tracking_uri": uri, "max_retries": 0, "timeout_s": 5})
    started = time.monotonic()
    result = Arena(load_config(path)).run_sync()
    assert time.monotonic() - started < 60
    assert result.exit_code == 0 and result.summary.tracked is None
    [warning] = result.summary.tracking_warnings
    assert "was not logged to http://***@127.0.0.1:" in warning and "experiment 't'" in warning
    assert "tracking server running" in warning and "unaffected" in warning
    out = load_config(path).output_dir
    assert {p.name for p in result.files} == {"leaderboard.csv", "leaderboard.json", "leaderboard.parquet", "report.html"}
    assert all(p.is_file() for p in result.files)
    # The password is nowhere: not in the warning, the stored config, nor the stored summary.
    with Store(out / "arena.db") as store:
        [row] = store.runs()
        assert row["status"] == "complete"
        stored = json.dumps(asdict(row), default=str)
    assert password not in warning and password not in stored and "arena:" not in stored


def test_without_mlflow_installed_the_warning_says_how_to_install_it(tmp_path, fake_server, monkeypatch):
    monkeypatch.setitem(sys.modules, "mlflow", None)  # `import mlflow` raises ImportError, as when it is absent
    server = fake_server(judge_verdict="longer")
    cfg = load_config(nightly_config(tmp_path, server, {"tracking_uri": str(tmp_path / "mlruns")}))
    result = Arena(cfg).run_sync()
    assert result.exit_code == 0 and result.summary.tracked is None and (cfg.output_dir / "leaderboard.csv").is_file()
    [warning] = result.summary.tracking_warnings
    assert "pip install 'arena-eval[mlflow]'" in warning and str(tmp_path / "mlruns") in warning
    assert not (tmp_path / "mlruns").exists()


def test_a_deleted_experiment_is_a_warning_that_says_how_to_restore_it(tmp_path, fake_server, monkeypatch):
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    client = MlflowClient(tracking_uri=(tmp_path / "mlruns").as_uri())
    client.delete_experiment(client.create_experiment("gone"))
    server = fake_server(judge_verdict="longer")
    cfg = load_config(nightly_config(tmp_path, server, {"tracking_uri": "mlruns", "experiment": "gone"}))
    result = Arena(cfg).run_sync()
    assert result.exit_code == 0 and result.summary.tracked is None
    [warning] = result.summary.tracking_warnings
    assert "experiment 'gone' is deleted in MLflow; restore it (`mlflow experiments restore" in warning


def test_the_cli_prints_where_the_run_went_and_a_failure_as_a_warning(tmp_path, fake_server, monkeypatch):
    server = fake_server(judge_verdict="longer")
    path = nightly_config(tmp_path, server, {"tracking_uri": f"http://127.0.0.1:{closed_port()}", "max_retries": 0})
    result = Arena(load_config(path)).run_sync()
    [line] = [line.text for line in tracking_lines(result.summary)]  # what `run` and `score` print after the board
    assert line.startswith("warning: MLflow: run ") and "was not logged to http://127.0.0.1:" in line
    # `score` logs too (a second MLflow run for the same stored verdicts), and says where.
    data = yaml.safe_load(path.read_text())
    data["tracking"]["mlflow"] = {"tracking_uri": "file:mlruns"}
    path.write_text(yaml.safe_dump(data))
    scored = subprocess.run([sys.executable, "-m", "arena_eval.cli", "score", "-c", str(path)], capture_output=True,
                            text=True, timeout=300)
    assert scored.returncode == 0, scored.stderr
    assert "mlflow: logged as run " in scored.stderr and "in experiment 't'" in scored.stderr
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    [run] = runs_of((tmp_path / "mlruns").as_uri(), "t")
    assert run.data.tags["arena_eval.command"] == "score" and run.info.run_id in scored.stderr


def test_validate_and_help_do_not_load_mlflow(tmp_path):
    config = startup_config(tmp_path)
    data = yaml.safe_load(config.read_text())
    data["tracking"] = {"mlflow": {"tracking_uri": "http://127.0.0.1:9", "experiment": "nightly"}}
    config.write_text(yaml.safe_dump(data))
    done = subprocess.run([sys.executable, "-W", "ignore", "-c", _IN_PROCESS, "validate", "-c", str(config)],
                          capture_output=True, text=True, cwd=tmp_path, timeout=120)
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["code"] == 0, done.stdout + done.stderr
    assert not {name for name in report["modules"] if name.split(".")[0] == "mlflow"}


def test_validate_warns_when_mlflow_is_not_installed(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from arena_eval.cli import app

    path = write_config(tmp_path, "http://127.0.0.1:9/v1", tracking={"mlflow": {"tracking_uri": "mlruns"}})
    monkeypatch.setitem(sys.modules, "mlflow", None)  # as if it were not installed: find_spec answers None
    done = CliRunner().invoke(app, ["validate", "-c", str(path)])
    assert done.exit_code == 0, done.output
    assert "tracking.mlflow is set but MLflow is not installed (pip install 'arena-eval[mlflow]')" in done.output


# --- the pieces: keys, URIs, the config ------------------------------------------------------------------------------

def test_metric_keys_keep_to_mlflows_characters_and_never_collide():
    keys = contestant_keys(["gpt-4o", "meta-llama/Llama-3.1-8B", "a b", "a_b", "judge", "run.x", "ok_name"])
    assert keys["gpt-4o"] == "gpt-4o" and keys["ok_name"] == "ok_name"  # names MLflow takes stay as they are
    for name in ("meta-llama/Llama-3.1-8B", "a b", "judge", "run.x"):  # changed, or clashing with run-level prefixes
        assert keys[name].startswith(name.replace("/", "_").replace(" ", "_") + "-") and len(keys[name]) == len(name) + 7
    assert keys["a_b"] == "a_b" and keys["a b"] != "a_b"
    assert len(set(keys.values())) == len(keys)
    from mlflow.utils.validation import _validate_metric_name

    for key in keys.values():
        _validate_metric_name(f"{key}.score")  # raises on a key MLflow refuses


def test_uris_are_resolved_against_the_config_and_shown_without_credentials(tmp_path):
    cfg = load_config(write_config(tmp_path, "http://127.0.0.1:9/v1", tracking={"mlflow": {"tracking_uri": "x"}}))
    for written, expected in [("mlruns", (tmp_path / "mlruns").as_uri()), ("file:runs/ml", (tmp_path / "runs/ml").as_uri()),
                              ("file:///abs/mlruns", "file:///abs/mlruns"),
                              ("sqlite:///mlflow.db", f"sqlite:///{tmp_path / 'mlflow.db'}"),
                              ("sqlite:////abs/mlflow.db", "sqlite:////abs/mlflow.db"),
                              ("https://mlflow.example.com", "https://mlflow.example.com")]:
        settings = cfg.tracking.mlflow.model_copy(update={"tracking_uri": written})
        assert tracking_uri(settings, cfg) == expected, written
    assert masked("https://me:hunter22hunter@mlflow.example.com/x") == "https://***@mlflow.example.com/x"
    assert masked("https://mlflow.example.com/?token=abcdefgh123&team=ml") == "https://mlflow.example.com/?token=***&team=ml"


def test_the_tracking_section_is_checked_and_changes_no_id(tmp_path):
    path = write_config(tmp_path, "http://127.0.0.1:9/v1")
    plain = load_config(path)
    data = yaml.safe_load(path.read_text())
    tracked = config_from_dict({**data, "tracking": {"mlflow": {"tracking_uri": "http://h:5000", "experiment": "e"}}},
                               source=str(path))
    assert [c.config_id for c in tracked.contestants] == [c.config_id for c in plain.contestants]
    assert run_config_id(Arena(tracked).scope) == run_config_id(Arena(plain).scope)
    changed = config_from_dict({**data, "baseline": "c1"}, source=str(path))
    assert run_config_id(Arena(changed).scope) != run_config_id(Arena(plain).scope)
    for bad, words in [({"mlflow": {"experiment": "e"}}, "tracking_uri"), ({"mlflw": {}}, "mlflw"),
                       ({"mlflow": {"tracking_uri": "x", "max_retries": -1}}, "max_retries")]:
        with pytest.raises(ConfigError) as caught:
            config_from_dict({**data, "tracking": bad}, source=str(path))
        assert words in str(caught.value) and "tracking" in str(caught.value)
