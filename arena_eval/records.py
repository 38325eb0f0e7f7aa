"""The records that flow through the pipeline: one definition each, used by the store, exports and reports."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields
from typing import Any

Message = dict[str, str]


@dataclass
class Completion:
    """What a provider returns for one chat request."""

    text: str
    input_tokens: int | None = None
    output_tokens: int | None = None
    tokens_estimated: bool = False
    finish_reason: str | None = None
    latency_s: float | None = None
    ttft_s: float | None = None
    cost: float | None = None
    raw_model: str | None = None
    # A reasoning model's thinking, returned beside the answer (never shown to a judge), and its tokens where the
    # provider counts them apart (they are part of output_tokens, as providers bill them).
    reasoning: str | None = None
    reasoning_tokens: int | None = None


@dataclass
class Answer:
    answer_id: str
    contestant: str
    config_id: str
    question_id: str
    prompt_hash: str
    text: str
    input_tokens: int | None = None
    output_tokens: int | None = None
    tokens_estimated: bool = False
    finish_reason: str | None = None
    latency_s: float | None = None
    ttft_s: float | None = None
    cost: float | None = None
    created_at: float | None = None
    run_id: str | None = None
    # Ids of the passages retrieved into the prompt (augment: rag), for audit.
    context_ids: list[str] | None = None
    # The question text it answers (answer_sets.question_digest): an edited question makes it stale.
    question_digest: str | None = None
    # A conversation (a question with several user turns): one AnswerTurn dict per turn, in order. `text` is then
    # the last turn's answer, and the tokens, cost and latency above are the sums over the turns.
    turns: list[dict[str, Any]] | None = None
    # A reasoning model's thinking (every turn's, for a conversation), kept apart from the answer: never judged.
    reasoning: str | None = None
    reasoning_tokens: int | None = None
    # The id an imported answer had in its file (arena-hard v2.0's ans_id), written back on export.
    source_id: str | None = None
    # True when the answer was already stored before this run (nothing was requested).
    cached: bool = field(default=False, compare=False)


def answer_turns(answer: Answer) -> list[str]:
    """The assistant's text for each turn: one for a single-turn answer."""
    return [t["text"] for t in answer.turns] if answer.turns else [answer.text]


@dataclass
class AnswerError:
    """A request that failed after every retry. Never stored, exported or judged as an answer."""

    contestant: str
    config_id: str
    question_id: str
    reason: str
    attempts: int


@dataclass
class Game:
    """One judge call: the answer in position A against the answer in position B."""

    game_id: str
    question_id: str
    contestant: str
    baseline: str
    game: int  # 1: baseline in position A; 2: positions swapped
    answer_a_id: str
    answer_b_id: str


@dataclass
class Judgment:
    game_id: str
    judge_config_id: str
    question_id: str
    contestant: str
    baseline: str
    game: int
    answer_a_id: str
    answer_b_id: str
    verdict: str | None  # canonical label such as "A>B"; None when unparsed
    judge_text: str
    attempts: int
    input_tokens: int | None = None
    output_tokens: int | None = None
    latency_s: float | None = None
    run_id: str | None = None
    cost: float | None = None
    # Why the judge's replies were suspicious (verdict.FLAGS, comma-separated); None when nothing was.
    flags: str | None = None
    cached: bool = field(default=False, compare=False)


@dataclass
class GameError:
    game_id: str
    question_id: str
    contestant: str
    game: int
    reason: str
    attempts: int


@dataclass
class JudgeDiagnostics:
    """The judge's diagnostics over every contestant (judge.position_diagnostics, row "*")."""

    consistency: float | None = None
    first_position_win_rate: float | None = None
    suspicious_rate: float | None = None


@dataclass
class StyleEffect:
    """One style feature's fitted effect (rating with style control): log-odds of the first model winning per
    standard deviation of the feature, its 95% bootstrap interval, the same in Elo, the scale used, and whether
    it was fitted at all (a feature that does not vary within the models' battles is left out)."""

    coef: float
    ci_low: float
    ci_high: float
    elo_per_sd: float
    sd: float
    fitted: bool


@dataclass
class EnergyOverview:
    """How the run's energy was known: the methods used, idle power, the judge's own energy, the carbon factor."""

    methods: list[str] = field(default_factory=list)
    idle_power_w: float | None = None
    judge_wh: float | None = None
    carbon: str = ""


@dataclass
class GuidanceCounts:
    """The `guidance` stage: guidance generated now, found stored, and failed (with one line per failure)."""

    new: int = 0
    stored: int = 0
    errors: int = 0
    error_lines: list[str] = field(default_factory=list)


@dataclass
class AdaptiveSummary:
    """Adaptive judging's account: stored games its plan calls for against a full run, and once the plan is done
    what that saved (tokens, cost and Wh estimated from the judged games' average); per stopped contestant,
    [questions judged, why it stopped]."""

    games_judged: int
    games_full: int
    games_saved: int | None  # None (and no other saving) while the plan is unfinished
    tokens_saved: float | None = None
    cost_saved: float | None = None
    wh_saved: float | None = None
    stopped: dict[str, list] = field(default_factory=dict)
    complete: bool = True


@dataclass
class ReplicaCounts:
    """One replica of an endpoint with several base_urls, over one run: the requests sent to it (every attempt,
    retries included), how many of them failed, the median latency of those it answered, and how often it was
    rested for failing (providers.replicas)."""

    url: str  # as config.redact_url shows it: never with a password
    requests: int = 0
    errors: int = 0
    latency_p50_s: float | None = None
    rests: int = 0


@dataclass
class EndpointReplicas:
    """The replicas of one endpoint: `role` contestant, judge or guide, and its name."""

    role: str
    name: str
    replicas: list[ReplicaCounts] = field(default_factory=list)


@dataclass
class TrackedRun:
    """Where a scored run was logged in MLflow (mlflow_tracking.py): the MLflow run's id, its experiment, and the tracking
    URI with any credentials masked; for a tracking server, the run's page in its web UI."""

    run_id: str
    experiment_id: str
    experiment: str
    tracking_uri: str
    page: str | None = None


@dataclass
class RunSummary:
    run_id: str
    questions: int
    contestants: list[str]
    answers_new: int = 0
    answers_cached: int = 0
    answer_errors: int = 0
    answers_missing: int = 0
    guidance_errors: int = 0
    games_new: int = 0
    games_cached: int = 0
    games_unparsed: int = 0
    games_suspicious: int = 0  # new judgments whose replies were flagged (verdict.FLAGS)
    game_errors: int = 0
    games_missing: int = 0
    errors_by_contestant: dict[str, int] = field(default_factory=dict)
    # Earlier runs of the folder found still 'running' (killed) and marked interrupted by this one.
    unfinished_runs: list[str] = field(default_factory=list)
    # [old name, new name] of contestants renamed in the config whose stored work this run carried over.
    renamed: list[list[str]] = field(default_factory=list)
    # Set by the stages that produce them; None when the run did not get that far.
    judge: JudgeDiagnostics | None = None
    style: dict[str, StyleEffect] | None = None
    energy: EnergyOverview | None = None
    guidance: GuidanceCounts | None = None
    regressions: list[str] | None = None  # contestants that regressed against their previous scored run
    # Judges failing quietly (too many unparsed games), one sentence each; contestants with judged games but no
    # parsed verdict at all (no score: the run is incomplete).
    judge_warnings: list[str] = field(default_factory=list)
    unrated: list[str] = field(default_factory=list)
    # What the judge diagnostics found worrying (bias, length, disagreement), one sentence each.
    judge_concerns: list[str] = field(default_factory=list)
    # rating.calibration: where the calibrated score's interval and the judge-only one do not overlap, a sentence
    # each ("the judge over-rates X by ~N points").
    judge_bias: list[str] = field(default_factory=list)
    # Judges that take a reference answer: games judged without one (the question had none).
    games_without_reference: dict[str, int] = field(default_factory=dict)
    adaptive: AdaptiveSummary | None = None  # with rating.adaptive
    # Endpoints whose base_url lists replicas, and that sent requests: each replica's share (docs/design.md §3.1.5).
    replicas: list[EndpointReplicas] = field(default_factory=list)
    # Batch mode (docs/design.md §3.9): the batches still at the provider when the run ended (`run --no-wait`, or
    # a batch that could not be polled), and results that matched no request (recorded and skipped).
    batches_waiting: list[str] = field(default_factory=list)
    batch_notes: list[str] = field(default_factory=list)
    # `run --max-cost` (spending.py): the cap, what this run's priced replies cost, and whether it stopped there
    # (with the requests it then held back, and the replies it could not price).
    max_cost: float | None = None
    spent: float | None = None
    capped: bool = False
    requests_held_back: int = 0
    unpriced_replies: int = 0
    # tracking.mlflow (mlflow_tracking.py): the MLflow run this scored run was logged as, or why it could not be (a
    # warning each: a missing package, an unreachable server; the evaluation itself is not affected).
    tracked: TrackedRun | None = None
    tracking_warnings: list[str] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        return not (self.answer_errors or self.answers_missing or self.game_errors or self.games_missing
                    or self.guidance_errors or self.unrated or self.capped)

    @property
    def extra(self) -> dict[str, Any]:
        """The stage results above as plain dicts, under the keys earlier versions used (read-only)."""
        out: dict[str, Any] = {}
        if self.judge is not None:
            out["judge"] = asdict(self.judge)
        if self.style is not None:
            out["style"] = {name: asdict(effect) for name, effect in self.style.items()}
        if self.energy is not None:
            out["energy"] = asdict(self.energy)
        if self.guidance is not None:
            out["guidance"] = {"new": self.guidance.new, "stored": self.guidance.stored, "errors": self.guidance.errors}
            if self.guidance.error_lines:
                out["guidance_errors"] = list(self.guidance.error_lines)
        if self.regressions is not None:
            out["regressions"] = list(self.regressions)
        if self.adaptive is not None:
            out["adaptive"] = asdict(self.adaptive)
        if self.replicas:
            out["replicas"] = [asdict(endpoint) for endpoint in self.replicas]
        if self.tracked is not None:
            out["mlflow"] = asdict(self.tracked)
        return out

    def to_json_dict(self) -> dict[str, Any]:
        """What `runs.summary_json` holds: the counts, and the stage results under "extra"."""
        typed = {"judge", "style", "energy", "guidance", "regressions", "adaptive", "replicas", "tracked"}
        out = {f.name: getattr(self, f.name) for f in fields(self) if f.name not in typed}
        out["extra"] = self.extra
        return out


# --- the leaderboard ------------------------------------------------------------------------------------------


def _column(group: str, label: str | None = None, fmt: str = ".2f", terminal: bool = False,
            default: Any = None) -> Any:
    """A leaderboard column: its group (which stage fills it), its header and number format in the terminal
    table (shown there when `terminal`; "%" is a percentage with one decimal), and its default (None: unknown)."""
    return field(default=default, metadata={"group": group, "label": label, "format": fmt, "terminal": terminal})


@dataclass
class LeaderboardRow:
    """One row of the leaderboard: a contestant, or one of its energy configurations (CodeCarbon imports with
    tags give a contestant one row each). This is the one definition of the leaderboard's columns: the rating,
    the run's counts, the energy join, the files, the store's history, the terminal table and the report all
    read them from here. A board holds the columns its run produced (`leaderboard.Leaderboard.columns`): energy
    columns come only with energy figures of their kind, and a column a run did not produce is absent from its
    files, as it always was.
    """

    model: str = _column("model", terminal=True)
    # rating.compute_leaderboard
    score: float | None = _column("rating", terminal=True)
    ci_low: float | None = _column("rating", terminal=True)
    ci_high: float | None = _column("rating", terminal=True)
    elo: float | None = _column("rating", fmt=".1f", terminal=True)
    elo_ci_low: float | None = _column("rating")
    elo_ci_high: float | None = _column("rating")
    battles: float | None = _column("rating", fmt="g", terminal=True)
    questions: float | None = _column("rating", fmt="g")
    # rank (1 = best score) and its 95% interval over the bootstrap rounds; not told apart from the best by the
    # paired test, Holm-corrected (rating.paired, docs/design.md §3.4.8)
    rank: float | None = _column("rating", "rank (95%)", fmt="g", terminal=True)
    rank_low: float | None = _column("rating", fmt="g")
    rank_high: float | None = _column("rating", fmt="g")
    tied_with_best: bool | None = _column("rating", "tied w/ best", terminal=True)
    # rating.calibration (rating/calibration.py, docs/design.md §3.4.7): the score calibrated with human labels
    # (prediction-powered), its 95 % interval, and how many labelled judged pairs the contestant has
    calibrated_score: float | None = _column("calibration", "calibrated", terminal=True)
    calibrated_ci_low: float | None = _column("calibration", "cal low", terminal=True)
    calibrated_ci_high: float | None = _column("calibration", "cal high", terminal=True)
    labels: int | None = _column("calibration", fmt="g", terminal=True)
    # the run's tally of answers and games (leaderboard.build_leaderboard)
    games: int | None = _column("run")
    unparsed_rate: float | None = _column("run", "unparsed", fmt="%", terminal=True)
    answers_missing: int | None = _column("run")
    games_missing: int | None = _column("run")
    avg_input_tokens: float | None = _column("run", "in tok", fmt=".1f", terminal=True)
    avg_output_tokens: float | None = _column("run", "out tok", fmt=".1f", terminal=True)
    answer_cost: float | None = _column("run", "cost", fmt=".4f", terminal=True)
    judge_cost: float | None = _column("run", fmt=".4f")
    consistency: float | None = _column("run")
    first_position_win_rate: float | None = _column("run")
    suspicious_rate: float | None = _column("run")
    is_baseline: bool = _column("run", default=False)
    # With a baseline per category: category → the score against that category's own baseline (a category's
    # baseline has 50 there); `score` and its interval are then these scores' mean weighted by questions.
    category_scores: dict | None = _column("category", "by category", terminal=True)
    # adaptive judging (rating.adaptive): the questions a contestant was judged on, and whether it stopped early
    judged_questions: int | None = _column("run", "judged q", fmt="g")
    stopped_early: bool | None = _column("run", "stopped")
    # efficiency beside energy (leaderboard.efficiency_table, docs/design.md §3.5.7): per request, the latency
    # percentiles, time to first token (streamed) and output tokens per second; over the collection window, the
    # delivered throughput; for local contestants the memory used (and how it was read), the weights' size, the
    # size relative to efficiency.reference, and model FLOPs utilisation where parameters and peak FLOP/s are known
    latency_p50_s: float | None = _column("efficiency", "lat p50 s", fmt=".2f", terminal=True)
    latency_p95_s: float | None = _column("efficiency", "lat p95 s", fmt=".2f", terminal=True)
    ttft_p50_s: float | None = _column("efficiency", "ttft s", fmt=".2f", terminal=True)
    output_tokens_per_s: float | None = _column("efficiency", "tok/s req", fmt=".1f", terminal=True)
    throughput_tokens_per_s: float | None = _column("efficiency", "tok/s", fmt=".1f", terminal=True)
    peak_memory_gb: float | None = _column("efficiency", "mem GB", fmt=".2f", terminal=True)
    memory_source: str | None = _column("efficiency")
    model_size_gb: float | None = _column("efficiency", "size GB", fmt=".3g", terminal=True)
    compression_ratio: float | None = _column("efficiency", "size ratio", fmt=".2f", terminal=True)
    mfu: float | None = _column("efficiency", "MFU", fmt="%", terminal=True)
    params_b: float | None = _column("efficiency", fmt=".3g")
    peak_tflops: float | None = _column("efficiency", fmt="g")
    efficiency_estimated: bool | None = _column("efficiency")
    # energy.energy_summary joined by contestant, or a CodeCarbon import (energy.summarise_runs)
    windows: int | None = _column("energy")
    windows_unknown: int | None = _column("energy")
    requests: float | None = _column("energy")
    output_tokens: float | None = _column("energy")
    duration_s: float | None = _column("energy")
    energy_source: str | None = _column("energy")
    runs: int | None = _column("energy")
    energy_wh: float | None = _column("energy")
    energy_wh_std: float | None = _column("energy")
    gpu_wh: float | None = _column("energy")
    cpu_wh: float | None = _column("energy")
    ram_wh: float | None = _column("energy")
    wh_per_pass: float | None = _column("energy", "Wh/pass", fmt=".3g", terminal=True)
    wh_per_1k_tokens: float | None = _column("energy", "Wh/1k tok", fmt=".3g", terminal=True)
    tokens_per_j: float | None = _column("energy")
    avg_power_w: float | None = _column("energy")
    co2_g_per_pass: float | None = _column("energy", "gCO2/pass", fmt=".3g", terminal=True)
    cost_per_pass: float | None = _column("energy")
    method: str | None = _column("energy", "energy by", terminal=True)
    is_estimated: bool | None = _column("energy", "est.", terminal=True)
    pareto: bool | None = _column("energy", terminal=True)
    tags: dict | None = _column("energy", terminal=True)  # the energy configuration's tags (CodeCarbon imports)

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> LeaderboardRow:
        unknown = set(record) - set(COLUMN_NAMES)
        if unknown:
            raise ValueError(f"leaderboard column(s) {', '.join(sorted(unknown))} are not LeaderboardRow fields "
                             "(arena_eval/records.py): define them there")
        return cls(**{name: _plain(value) for name, value in record.items()})

    def to_record(self, columns: list[str]) -> dict[str, Any]:
        return {name: getattr(self, name) for name in columns}


COLUMNS = {f.name: f for f in fields(LeaderboardRow)}
COLUMN_NAMES = list(COLUMNS)


# The terminal table's columns by priority (docs/design.md §5.3): the name, score and interval always; then, as the
# terminal's width allows, quality, energy, the efficiency figures, cost and the rest.
TERMINAL_PRIORITY = [
    "model", "score", "ci_low", "ci_high", "rank", "tied_with_best", "calibrated_score", "calibrated_ci_low",
    "calibrated_ci_high", "labels", "category_scores", "wh_per_pass", "is_estimated", "unparsed_rate",
    "latency_p50_s", "throughput_tokens_per_s", "answer_cost", "elo", "mfu", "peak_memory_gb", "model_size_gb",
    "compression_ratio", "latency_p95_s", "ttft_p50_s", "output_tokens_per_s", "co2_g_per_pass", "wh_per_1k_tokens",
    "avg_output_tokens", "avg_input_tokens", "battles", "method", "pareto", "tags",
]


def terminal_columns() -> list[str]:
    """The columns the terminal table may show, by priority (TERMINAL_PRIORITY)."""
    marked = {name for name, f in COLUMNS.items() if f.metadata["terminal"]}
    assert marked == set(TERMINAL_PRIORITY), "records.TERMINAL_PRIORITY must list every terminal column once"
    return list(TERMINAL_PRIORITY)


def columns_of(*groups: str) -> list[str]:
    """The names of the leaderboard columns in `groups`, in their order."""
    return [name for name, f in COLUMNS.items() if f.metadata["group"] in groups]


def _plain(value: Any) -> Any:
    """A cell as a plain Python value: NaN and pandas' missing values become None, numpy scalars numbers."""
    if value is None:
        return None
    if hasattr(value, "item") and not isinstance(value, (str, bytes, dict, list)):
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    if value.__class__.__name__ in ("NAType", "NaTType"):
        return None
    return value
