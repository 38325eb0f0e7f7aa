"""A scored run logged to MLflow (docs/design.md §3.6.1): `tracking: {mlflow: {tracking_uri, experiment}}`.

After each run that scores (`run`, `score`), one MLflow run holds what a team watches night after night: tags that
say which arena-eval run and configuration it was, one metric per contestant and leaderboard column, the judges'
diagnostics, and report.html, the leaderboard files and the config snapshot as artifacts. MLflow (mlflow-skinny is
enough) is imported here only, when a run has scored: `validate` and `--help` never load it.

The tracker is a convenience, never a condition: a missing package, an unreachable server or a store that refuses
a write is a warning in the run's summary (the URI shown with its credentials masked), and the evaluation, its store,
its leaderboard files and its exit code are what they would have been without tracking.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import math
import os
import re
import time
import urllib.parse
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .config import MlflowTracking, RunConfig, redact_secrets, redact_url, stable_hash
from .records import LeaderboardRow, RunSummary, TrackedRun
from .redaction import redact, register_secret

if TYPE_CHECKING:
    import pandas as pd

    from .context import RunScope

INSTALL = "pip install 'arena-eval[mlflow]'"
# MLflow's rule for metric, param and tag keys (mlflow.utils.validation): letters, digits, `_ - . /`, space and colon.
# Names are kept to `[A-Za-z0-9_.-]`: a slash would make a key look like a path (MLflow refuses `a//b`, `a/`),
# a colon is refused by MLflow on Windows, and a space would need quoting in every search filter.
_NOT_IN_A_KEY = re.compile(r"[^A-Za-z0-9_.-]")
_MAX_NAME = 120  # of a name's part of a key; MLflow allows 250 characters for the whole key
# The run-level prefixes: a contestant whose key would start with one is given a suffix (see `contestant_keys`).
_RESERVED = ("judge", "run")
# Leaderboard columns that are not figures to chart: the name, flags, text and mappings.
_NOT_METRICS = {"model", "is_baseline", "stopped_early", "efficiency_estimated", "is_estimated", "pareto",
                "memory_source", "energy_source", "method", "tags", "category_scores"}
_RUN_COUNTS = ("questions", "answers_new", "answers_cached", "answer_errors", "answers_missing", "games_new",
               "games_cached", "game_errors", "games_missing", "games_unparsed", "games_suspicious")
# MLflow's own variables for its HTTP requests, set from the config while a run is logged.
_TIMEOUT_VARIABLE, _RETRIES_VARIABLE = "MLFLOW_HTTP_REQUEST_TIMEOUT", "MLFLOW_HTTP_REQUEST_MAX_RETRIES"
# MLflow 3 refuses a file store unless this is set (it calls it "maintenance mode"); naming a `file:` URI in the
# config is that choice. mlflow-skinny has no database store, so a folder is its one local store.
_FILE_STORE_VARIABLE = "MLFLOW_ALLOW_FILE_STORE"
# The variables MLflow reads credentials from: registered as secrets, so that no message shows them.
_CREDENTIAL_VARIABLES = ("MLFLOW_TRACKING_TOKEN", "MLFLOW_TRACKING_PASSWORD", "DATABRICKS_TOKEN")


@dataclass
class TrackedFigures:
    """What one scored run puts into MLflow, before any of it is sent (a pure function makes it: `figures`)."""

    tags: dict[str, str] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)


def tracking_uri(settings: MlflowTracking, config: RunConfig) -> str:
    """The tracking URI with a local store's relative path resolved against the config's folder (as every path in
    a config is): a plain path or a `file:` URI becomes an absolute `file://` URI, `sqlite:///relative.db` an
    absolute `sqlite:////…` one. Servers' URIs are returned as written."""
    uri = settings.tracking_uri
    parts = urllib.parse.urlsplit(uri)
    scheme = parts.scheme.lower()
    if scheme == "" or (scheme == "file" and not parts.netloc):
        path = urllib.parse.unquote(parts.path) if scheme else uri
        return config.resolve(path).resolve().as_uri()
    if scheme == "sqlite" and uri.startswith("sqlite:///") and not uri.startswith("sqlite:////"):
        return "sqlite:///" + str(config.resolve(uri[len("sqlite:///"):]).resolve())
    return uri


def masked(uri: str) -> str:
    """`uri` as messages show it: no user info (`scheme://***@host`), no value of a secret-named query parameter
    (`?token=***`), no known secret anywhere."""
    uri = redact_url(uri)
    parts = urllib.parse.urlsplit(uri)
    if parts.query:
        pairs = urllib.parse.parse_qsl(parts.query, keep_blank_values=True)
        hidden = [(k, redact_secrets({k: v})[k]) for k, v in pairs]
        uri = urllib.parse.urlunsplit(parts._replace(query=urllib.parse.urlencode(hidden, safe="*")))
    return redact(uri)


def key_part(name: str) -> str:
    """A name as a part of an MLflow key: each character outside `[A-Za-z0-9_.-]` becomes `_`; a long name is
    cut to 120 characters."""
    return _NOT_IN_A_KEY.sub("_", name)[:_MAX_NAME] or "_"


def contestant_keys(names: Sequence[str]) -> dict[str, str]:
    """Each contestant's name → the prefix of its metrics' keys. A name MLflow takes as it is (`[A-Za-z0-9_.-]`, at
    most 120 characters, not `judge`, `run` nor starting with `judge.` or `run.`, the run-level prefixes) is its own
    key; any other becomes `key_part(name)`, `-` and the first 6 hex digits of the name's SHA-256, so that two
    contestants never share a key ("a b" → "a_b-…", beside a contestant named "a_b"). The tags
    `arena_eval.contestant.<key>.name` say whose each key is."""
    out: dict[str, str] = {}
    for name in names:
        reserved = any(name == r or name.startswith(r + ".") for r in _RESERVED)
        if key_part(name) == name and not reserved:
            out[name] = name
    taken = set(out.values())
    for name in names:
        if name in out:
            continue
        digest = hashlib.sha256(name.encode()).hexdigest()
        key = f"{key_part(name)}-{digest[:6]}"
        if key in taken:  # a contestant is named like another's key: the longer digest tells them apart
            key = f"{key_part(name)}-{digest[:16]}"
        out[name] = key
        taken.add(key)
    return out


def run_config_id(scope: RunScope) -> str:
    """What the scores of a run depend on, as one id: the baseline (or the mapping of baselines), every
    contestant's config id by name, the rated judges' config ids, the rating's settings and the questions (ids and
    turns). Two runs with one id are the same evaluation on another night; tracking, output and concurrency do not
    count (they change no score)."""
    config = scope.config
    digest = hashlib.sha256()
    for q in scope.questions:
        digest.update(q.question_id.encode() + b"\x1f" + "\x1e".join(q.turns).encode() + b"\x1d")
    return stable_hash({
        "baseline": config.baseline, "category_baselines": config.category_baselines,
        "contestants": {c.name: c.config_id for c in scope.contestants},
        "judges": sorted(j.config_id for j in scope.rated_judges),
        "rating": config.rating.model_dump(mode="json"), "questions": digest.hexdigest()[:16],
    })


def _number(value: Any) -> float | None:
    if value is None or isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def contestant_metrics(rows: Sequence[LeaderboardRow], columns: Sequence[str], keys: dict[str, str]) -> dict[str, float]:
    """`<contestant key>.<column>` for every numeric leaderboard column a row has a value in (score, ci_low,
    ci_high, elo, wh_per_pass, co2_g_per_pass, cost_per_pass, latency_p50_s, unparsed_rate, ...), and
    `<contestant key>.category.<category>` for a score against a category's own baseline. A contestant's second row
    (imported energy beside measured) puts its energy source after the key: `<key>.codecarbon-import.energy_wh`."""
    metrics: dict[str, float] = {}
    seen: dict[str, int] = {}
    for row in rows:
        prefix = keys.get(row.model) or key_part(row.model)
        seen[prefix] = seen.get(prefix, 0) + 1
        if seen[prefix] > 1:
            prefix = f"{prefix}.{key_part(row.energy_source or 'row')}"
            seen[prefix] = seen.get(prefix, 0) + 1
            if seen[prefix] > 1:
                prefix = f"{prefix}.{seen[prefix]}"
        for column in columns:
            if column in _NOT_METRICS:
                continue
            value = _number(getattr(row, column, None))
            if value is not None:
                metrics[f"{prefix}.{column}"] = value
        for category, score in (row.category_scores or {}).items():
            value = _number(score)
            if value is not None:
                metrics[f"{prefix}.category.{key_part(str(category))}"] = value
    return metrics


def judge_metrics(judges: pd.DataFrame | None) -> dict[str, float]:
    """`judge.<judge>.<figure>` for every judge and `judge.pooled` (the leaderboard's judge diagnostics: games,
    unparsed_rate, consistency, first_position_win_rate, longer_answer_win_rate, length_coefficient,
    suspicious_rate, self_preference, agreement and kappa with each other judge, tokens, cost), and
    `judge.<judge>.position_bias`, |first_position_win_rate − 0.5| (the figure the judges' warnings weigh)."""
    metrics: dict[str, float] = {}
    if judges is None or judges.empty:
        return metrics
    for record in judges.to_dict("records"):
        prefix = f"judge.{key_part(str(record['judge']))}"
        for column, raw in record.items():
            value = _number(raw.item() if hasattr(raw, "item") else raw)
            if column != "judge" and value is not None:
                metrics[f"{prefix}.{key_part(str(column))}"] = value
        first = _number(record.get("first_position_win_rate"))
        if first is not None:
            metrics[f"{prefix}.position_bias"] = abs(first - 0.5)
    return metrics


def figures(scope: RunScope, rows: Sequence[LeaderboardRow], columns: Sequence[str], judges: pd.DataFrame | None,
            summary: RunSummary, command: str, version: str) -> TrackedFigures:
    """The tags and metrics of one scored run (what `log_scored_run` sends)."""
    config = scope.config
    keys = contestant_keys([c.name for c in scope.contestants])
    baseline = (", ".join(f"{c}: {n}" for c, n in config.category_baselines.items()) if config.category_baselines
                else config.baseline)
    tags = {
        "arena_eval.run_id": summary.run_id, "arena_eval.config_id": run_config_id(scope),
        "arena_eval.config_name": config.name, "arena_eval.command": command, "arena_eval.version": version,
        "arena_eval.baseline": baseline,
        "arena_eval.judges": ", ".join(j.name for j in scope.rated_judges),
        "arena_eval.judge_config_ids": ", ".join(j.config_id for j in scope.rated_judges),
        "arena_eval.status": "complete" if summary.complete else "incomplete",
        "arena_eval.regressions": ", ".join(summary.regressions or []) or "none",
        "arena_eval.output": str(config.output_dir),
    }
    for c in scope.contestants:
        key = keys[c.name]
        tags[f"arena_eval.contestant.{key}.name"] = c.name
        tags[f"arena_eval.contestant.{key}.config_id"] = c.config_id
        if c.model:
            tags[f"arena_eval.contestant.{key}.model"] = c.model
    metrics = contestant_metrics(rows, columns, keys)
    metrics.update(judge_metrics(judges))
    for name in _RUN_COUNTS:
        metrics[f"run.{name}"] = float(getattr(summary, name))
    metrics["run.regressions"] = float(len(summary.regressions or []))
    metrics["run.judge_concerns"] = float(len(summary.judge_concerns))
    return TrackedFigures({k: redact(v)[:8000] for k, v in tags.items()}, metrics)


@contextlib.contextmanager
def _mlflow_environment(settings: MlflowTracking, uri: str) -> Iterator[None]:
    """MLflow's request timeout and retries from the config (and its file store allowed for a `file:` URI) while
    the run is logged; the variables are restored afterwards."""
    wanted = {_TIMEOUT_VARIABLE: str(settings.timeout_s), _RETRIES_VARIABLE: str(settings.max_retries)}
    if uri.startswith("file:"):
        wanted[_FILE_STORE_VARIABLE] = "true"
    saved = {name: os.environ.get(name) for name in wanted}
    os.environ.update(wanted)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _version() -> str:
    from importlib import metadata

    try:
        return metadata.version("arena-eval")
    except metadata.PackageNotFoundError:
        return "unknown"


def log_scored_run(scope: RunScope, rows: Sequence[LeaderboardRow], columns: Sequence[str],
                   judges: pd.DataFrame | None, summary: RunSummary, command: str, files: Sequence[Path]) -> None:
    """Log a scored run to the MLflow of `tracking.mlflow`: one MLflow run, its tags, metrics and artifacts
    (`files`: the leaderboard files and report.html; the config snapshot as config.json). Sets `summary.tracked`,
    or adds a warning to `summary.tracking_warnings`; never raises for the tracker's failures."""
    config = scope.config
    settings = config.tracking.mlflow
    if settings is None:
        return
    for variable in _CREDENTIAL_VARIABLES:
        register_secret(os.environ.get(variable))
    uri = tracking_uri(settings, config)
    shown = masked(uri)
    experiment = settings.experiment or config.name
    where = f"{shown} (experiment {experiment!r})"
    try:
        from mlflow import MlflowClient
    except ImportError:
        summary.tracking_warnings.append(f"MLflow: tracking.mlflow is set but MLflow is not installed ({INSTALL}); "
                                         f"run {summary.run_id} was not logged to {where}. Its results are stored "
                                         "as usual")
        return
    started = time.time()
    mlflow_run = None
    try:
        tracked = figures(scope, rows, columns, judges, summary, command, _version())
        # MLflow writes "View run … at: URL" lines to stdout for a server's runs: they would break `--format json`
        # output, and the summary says where the run went.
        with _mlflow_environment(settings, uri), contextlib.redirect_stdout(io.StringIO()):
            client = MlflowClient(tracking_uri=uri)
            experiment_id = _experiment_id(client, experiment)
            mlflow_run = client.create_run(experiment_id, start_time=int(started * 1000), tags=tracked.tags,
                                           run_name=f"{config.name} {summary.run_id}")
            run_id = mlflow_run.info.run_id
            _log_metrics(client, run_id, tracked.metrics, int(started * 1000))
            for path in files:
                if Path(path).is_file():
                    client.log_artifact(run_id, str(path))
            client.log_dict(run_id, config.snapshot(), "config.json")
            client.set_terminated(run_id, "FINISHED")
    except Exception as exc:  # noqa: BLE001 — any failure of the tracker is a warning; the evaluation stands
        if mlflow_run is not None:
            try:
                with _mlflow_environment(settings, uri):
                    client.set_terminated(mlflow_run.info.run_id, "FAILED")
            except Exception:  # noqa: BLE001 — the store that just failed may fail again: the warning says enough
                pass
        summary.tracking_warnings.append(
            f"MLflow: run {summary.run_id} was not logged to {where}: {_reason(exc)}{_hint(uri, exc)}. The "
            f"evaluation is unaffected: its store, leaderboard files and report are in {config.output_dir}")
        return
    page = (f"{shown.rstrip('/')}/#/experiments/{experiment_id}/runs/{run_id}"
            if urllib.parse.urlsplit(uri).scheme.lower() in ("http", "https") else None)
    summary.tracked = TrackedRun(run_id, experiment_id, experiment, shown, page)


def _experiment_id(client: Any, name: str) -> str:
    """The experiment's id, created on first use; a deleted experiment is an error that says how to restore it."""
    from mlflow.exceptions import MlflowException

    found = client.get_experiment_by_name(name)
    if found is None:
        try:
            return client.create_experiment(name)
        except MlflowException:  # created meanwhile by another run
            found = client.get_experiment_by_name(name)
            if found is None:
                raise
    if found.lifecycle_stage == "deleted":
        raise ValueError(f"experiment {name!r} is deleted in MLflow; restore it (`mlflow experiments restore "
                         f"--experiment-id {found.experiment_id}`) or name another in tracking.mlflow.experiment")
    return found.experiment_id


def _log_metrics(client: Any, run_id: str, metrics: dict[str, float], timestamp_ms: int) -> None:
    """All metrics at step 0, in batches of MLflow's limit of 1000 per request."""
    from mlflow.entities import Metric

    items = [Metric(key, value, timestamp_ms, 0) for key, value in sorted(metrics.items())]
    for start in range(0, len(items), 1000):
        client.log_batch(run_id, metrics=items[start : start + 1000])


def _reason(exc: Exception) -> str:
    """The failure in one line, without credentials: MLflow's messages repeat the request's URL."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    text = redact(redact_url(text))
    return text if len(text) <= 400 else text[:400] + " …"


def _hint(uri: str, exc: Exception) -> str:
    scheme = urllib.parse.urlsplit(uri).scheme.lower()
    if scheme in ("sqlite", "postgresql", "mysql", "mssql") and "unsupported uri" in str(exc).lower():
        return (" (a database store needs the full MLflow package, `pip install mlflow`; mlflow-skinny writes to a "
                "tracking server or a file: folder)")
    if scheme in ("http", "https"):
        return (" (is the tracking server running and reachable from here? tracking.mlflow.max_retries and "
                "timeout_s set how long a run keeps trying)")
    return ""
