"""Bradley-Terry ratings, bootstrap confidence intervals and the leaderboard (DESIGN §3.4).

Pure functions over a battles frame with columns ``question_id``, ``model_a``, ``model_b``, ``winner``
("model_a", "model_b" or "tie") and ``weight`` (a row of weight 3 stands for 3 identical battles; a missing
``weight`` column means 1 per row).

The fit is a logistic regression solved by Newton's method in numpy. Battles are first reduced to one row
per unordered pair of models holding the pair's total weight and the first model's points (wins + ½ ties):
the likelihood only depends on those two numbers, so this is the same fit as on aggregated unique rows with
sample weights. Bootstrap rounds are fitted together, as a batch of independent Newton problems.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import sparse
from threadpoolctl import threadpool_limits

WINNERS = ("model_a", "model_b", "tie")
LEADERBOARD_COLUMNS = [
    "model", "score", "ci_low", "ci_high", "elo", "elo_ci_low", "elo_ci_high", "battles", "questions",
]
BASELINE_ELO = 1000.0
CI_PERCENTILES = (2.5, 97.5)

_LN10 = float(np.log(10.0))
# The ridge only keeps separated data finite: a model that wins every battle against the baseline gets
# Elo ≈ 3250, score 99.9998, instead of +inf. It is relative to each model's own battle weight, so whatever
# the model's share of the battles it moves log-odds by a few millionths of their value: far below 0.01 score.
_RIDGE = 1e-6
_GRAD_TOL = 1e-10  # on the gradient, relative to the round's total weight
_MAX_ITER = 50
_MAX_STEP = 2.0  # log10-odds per Newton step (800 Elo): keeps early steps on separated data sane
_MAX_HALVINGS = 30
_HESSIAN_FLOATS = 1 << 23  # dense Hessians per chunk of rounds: 64 MiB
_ROUND_FLOATS = 1 << 22  # bootstrap counts or pair weights per chunk of rounds: 32 MiB each


def aggregate_battles(battles: pd.DataFrame) -> pd.DataFrame:
    """Unique (model_a, model_b, winner) rows with their summed weight."""
    frame = _validate(battles, need_questions=False)
    grouped = frame.groupby(["model_a", "model_b", "winner"], sort=True)["weight"].sum()
    return grouped.reset_index()


def fit_bradley_terry(battles: pd.DataFrame, baseline: str) -> pd.Series:
    """Elo per model, the baseline pinned at exactly 1000; NaN for a model not linked to the baseline."""
    problem = _prepare(_validate(battles, need_questions=False), baseline, by="rows")
    elo = _fit(problem, *problem.totals())[0]
    return pd.Series(elo, index=pd.Index(problem.models, name="model"), name="elo")


def bootstrap_elo(
    battles: pd.DataFrame,
    baseline: str,
    rounds: int = 1000,
    seed: int = 42,
    by: str = "questions",
) -> pd.DataFrame:
    """Elo of every model (columns) in each bootstrap round (rows); NaN where a model is absent that round.

    ``by="questions"`` resamples question ids, keeping all the rows of a question together;
    ``by="rows"`` resamples individual battles (rows expanded by weight).
    """
    problem = _prepare(_validate(battles, need_questions=by == "questions"), baseline, by)
    point = _fit(problem, *problem.totals())
    return _bootstrap_frame(problem, _bootstrap(problem, point[0], rounds, seed))


def score_from_elo(elo, baseline_elo: float = BASELINE_ELO):
    """Expected score (0–100) against the baseline: 100 / (1 + 10**((baseline_elo - elo) / 400))."""
    x = (np.asarray(elo, dtype=float) - baseline_elo) * (_LN10 / 400.0)
    score = 100.0 * _sigmoid(x)
    if isinstance(elo, pd.Series):
        return pd.Series(score, index=elo.index, name=elo.name)
    if isinstance(elo, pd.DataFrame):
        return pd.DataFrame(score, index=elo.index, columns=elo.columns)
    return float(score) if score.ndim == 0 else score


def compute_leaderboard(
    battles: pd.DataFrame,
    baseline: str,
    rounds: int = 1000,
    seed: int = 42,
    by: str = "questions",
) -> pd.DataFrame:
    """Score, Elo and 95% bootstrap intervals per model, best score first.

    Column ``battles`` is the total weight of the rows a model is in, ``questions`` the number of distinct
    question ids among its rows of positive weight. ``rounds=0`` skips the bootstrap and leaves the interval
    columns NaN (the baseline's too). A model not linked to the baseline by battles gets NaN ratings.
    """
    frame = _validate(battles, need_questions=True)
    problem = _prepare(frame, baseline, by)
    elo = _fit(problem, *problem.totals())[0]
    boot = _bootstrap(problem, elo, rounds, seed)
    if rounds > 0:
        elo_low, elo_high = _percentiles(boot)
        score_low, score_high = _percentiles(score_from_elo(boot))
    else:
        elo_low = elo_high = score_low = score_high = np.full(len(problem.models), np.nan)

    battles_count, questions_count = _participation(frame, problem.models)
    board = pd.DataFrame({
        "model": problem.models,
        "score": score_from_elo(elo),
        "ci_low": score_low,
        "ci_high": score_high,
        "elo": elo,
        "elo_ci_low": elo_low,
        "elo_ci_high": elo_high,
        "battles": battles_count,
        "questions": questions_count,
    })
    board = board.sort_values("model", kind="stable")
    board = board.sort_values("score", ascending=False, na_position="last", kind="stable")
    return board.reset_index(drop=True)[LEADERBOARD_COLUMNS]


def win_rate_oracle(battles: pd.DataFrame, baseline: str) -> pd.Series:
    """(wins + ½ ties) / battles × 100 of each non-baseline model in its weighted battles with the baseline.

    When every battle is against the baseline this is exactly the Bradley-Terry score.
    """
    frame = _validate(battles, need_questions=False)
    everyone = pd.unique(pd.concat([frame["model_a"], frame["model_b"]], ignore_index=True))
    models = sorted(model for model in everyone if model != baseline)
    a = frame["model_a"].to_numpy()
    b = frame["model_b"].to_numpy()
    winner = frame["winner"].to_numpy()
    vs = (a == baseline) ^ (b == baseline)
    a_is_base = a[vs] == baseline
    other = np.where(a_is_base, b[vs], a[vs])
    other_won = np.where(a_is_base, winner[vs] == "model_b", winner[vs] == "model_a")
    weight = frame["weight"].to_numpy()[vs]
    points = weight * (other_won + 0.5 * (winner[vs] == "tie"))
    total = pd.Series(weight).groupby(other).sum().reindex(models, fill_value=0.0)
    earned = pd.Series(points).groupby(other).sum().reindex(models, fill_value=0.0)
    rate = (100.0 * earned / total.where(total > 0)).rename("win_rate")
    rate.index.name = "model"
    return rate


# --- preparation ---------------------------------------------------------------------------------------

def _validate(battles: pd.DataFrame, need_questions: bool) -> pd.DataFrame:
    if not isinstance(battles, pd.DataFrame):
        raise TypeError(f"battles must be a pandas DataFrame, not {type(battles).__name__}")
    if len(battles) == 0:
        raise ValueError("battles is empty: there is nothing to rate")
    required = ["model_a", "model_b", "winner"] + (["question_id"] if need_questions else [])
    missing = [column for column in required if column not in battles.columns]
    if missing:
        raise ValueError(f"battles is missing column(s): {', '.join(missing)}")

    columns = [c for c in ("question_id", "model_a", "model_b", "winner") if c in battles.columns]
    frame = battles[columns].reset_index(drop=True)
    frame["weight"] = battles["weight"].to_numpy(dtype=float) if "weight" in battles.columns else 1.0

    bad = ~frame["winner"].isin(WINNERS)
    if bad.any():
        values = list(dict.fromkeys(frame.loc[bad, "winner"].tolist()))
        shown = ", ".join(repr(v) for v in values[:5]) + (", ..." if len(values) > 5 else "")
        raise ValueError(f"invalid winner value(s) {shown}; expected one of {', '.join(WINNERS)}")
    for column in columns:
        if frame[column].isna().any():
            raise ValueError(f"battles has missing values in column {column!r}")
    weight = frame["weight"].to_numpy()
    if not np.isfinite(weight).all() or (weight < 0).any():
        raise ValueError("battle weights must be finite and >= 0")
    return frame


@dataclass(frozen=True)
class _Problem:
    """Battles reduced to unordered model pairs, and to resampling units (questions or unique rows)."""

    models: list[str]  # every model in the battles, sorted: the columns of all results
    baseline: int  # index into models
    pair_first: np.ndarray  # (P,) model index; pair_first < pair_second
    pair_second: np.ndarray
    unit_points: sparse.csr_array  # (units, P) points (wins + ½ ties) of the pair's first model
    unit_weight: sparse.csr_array  # (units, P) battle weight
    by: str

    def totals(self) -> tuple[np.ndarray, np.ndarray]:
        return _dense(self.unit_points.sum(0))[None], _dense(self.unit_weight.sum(0))[None]


def _prepare(frame: pd.DataFrame, baseline: str, by: str) -> _Problem:
    if by not in ("questions", "rows"):
        raise ValueError(f"by must be 'questions' or 'rows', not {by!r}")
    models = sorted(pd.unique(pd.concat([frame["model_a"], frame["model_b"]], ignore_index=True)))
    lookup = pd.Index(models)
    # Self-battles carry no information and zero weights none either.
    usable = frame[(frame["weight"] > 0) & (frame["model_a"] != frame["model_b"])]
    a = lookup.get_indexer(usable["model_a"])
    b = lookup.get_indexer(usable["model_b"])
    base = lookup.get_indexer([baseline])[0]
    if base < 0 or not ((a == base) | (b == base)).any():
        known = "" if base >= 0 else f" (models in battles: {', '.join(map(str, models[:10]))})"
        raise ValueError(f"baseline {baseline!r} has no battles{known}")

    winner = usable["winner"].to_numpy()
    weight = usable["weight"].to_numpy()
    first, second = np.minimum(a, b), np.maximum(a, b)
    a_won = winner == "model_a"
    share = np.where(winner == "tie", 0.5, (a_won == (a < b)).astype(float))
    pairs, pair_of_row = np.unique(first * len(models) + second, return_inverse=True)

    if by == "questions":
        unit_of_row, _ = pd.factorize(usable["question_id"], sort=True)
    else:
        winner_code = np.where(a_won, 0, np.where(winner == "tie", 2, 1))
        _, unit_of_row = np.unique((a * len(models) + b) * 3 + winner_code, return_inverse=True)
    n_units = int(unit_of_row.max()) + 1
    # Sparse: a tournament among many models has few of its pairs in any one question.
    shape = (n_units, len(pairs))
    unit_points = sparse.csr_array((weight * share, (unit_of_row, pair_of_row)), shape=shape)
    unit_weight = sparse.csr_array((weight, (unit_of_row, pair_of_row)), shape=shape)
    return _Problem(
        models=models,
        baseline=int(base),
        pair_first=pairs // len(models),
        pair_second=pairs % len(models),
        unit_points=unit_points,
        unit_weight=unit_weight,
        by=by,
    )


def _participation(frame: pd.DataFrame, models: list[str]) -> tuple[np.ndarray, np.ndarray]:
    sides = pd.concat([
        frame[["model_a", "question_id", "weight"]].rename(columns={"model_a": "model"}),
        frame.loc[frame["model_b"] != frame["model_a"], ["model_b", "question_id", "weight"]]
        .rename(columns={"model_b": "model"}),
    ])
    battles = sides.groupby("model")["weight"].sum().reindex(models, fill_value=0.0)
    played = sides[sides["weight"] > 0]
    questions = played.groupby("model")["question_id"].nunique().reindex(models, fill_value=0)
    return battles.to_numpy(dtype=float), questions.to_numpy(dtype=int)


# --- bootstrap -----------------------------------------------------------------------------------------

def _bootstrap(problem: _Problem, point_elo: np.ndarray, rounds: int, seed: int) -> np.ndarray:
    if rounds < 0:
        raise ValueError(f"rounds must be >= 0, not {rounds}")
    rng = np.random.default_rng(seed)
    n_units, n_pairs = problem.unit_weight.shape
    if problem.by == "questions":
        draws, probabilities, per_draw = n_units, np.full(n_units, 1.0 / n_units), 1.0
    else:
        # Rows expanded by weight, drawn with replacement = a multinomial over the unique rows.
        row_weight = _dense(problem.unit_weight.sum(1))
        total = row_weight.sum()
        draws, probabilities = max(1, round(total)), row_weight / total
        # A draw is one battle, not the unique row's whole weight (fractional weights keep their total).
        per_draw = (total / draws) / row_weight

    elo = np.empty((rounds, len(problem.models)))
    # Chunks bound memory; drawing chunk by chunk gives the same counts as drawing all rounds at once.
    chunk = max(1, _ROUND_FLOATS // max(n_units, n_pairs))
    for lo in range(0, rounds, chunk):
        counts = rng.multinomial(draws, probabilities, size=min(chunk, rounds - lo)) * per_draw
        # One matrix product gives every round's pair weights.
        elo[lo : lo + len(counts)] = _fit(
            problem, counts @ problem.unit_points, counts @ problem.unit_weight, start=point_elo
        )
    return elo


def _bootstrap_frame(problem: _Problem, elo: np.ndarray) -> pd.DataFrame:
    return pd.DataFrame(
        elo,
        index=pd.RangeIndex(len(elo), name="round"),
        columns=pd.Index(problem.models, name="model"),
    )


def _percentiles(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    low = np.full(values.shape[1], np.nan)
    high = np.full(values.shape[1], np.nan)
    seen = ~np.isnan(values).all(0)  # nanpercentile warns on all-NaN columns
    if seen.any():
        low[seen], high[seen] = np.nanpercentile(values[:, seen], CI_PERCENTILES, axis=0)
    return low, high


# --- Newton solver -------------------------------------------------------------------------------------

def _fit(
    problem: _Problem,
    points: np.ndarray,
    weight: np.ndarray,
    start: np.ndarray | None = None,
) -> np.ndarray:
    """Elo (rounds × models) from per-round pair points and weights; NaN for models not linked to the baseline."""
    n_models = len(problem.models)
    free = np.array([i for i in range(n_models) if i != problem.baseline], dtype=int)
    # Parameter column of each model; the baseline maps to an extra column held at 0.
    column = np.full(n_models, len(free))
    column[free] = np.arange(len(free))
    solver = _Newton(column[problem.pair_first], column[problem.pair_second], len(free))

    rounds = points.shape[0]
    theta = np.zeros((rounds, len(free)))
    if start is not None:
        theta[:] = np.nan_to_num((start[free] - BASELINE_ELO) / 400.0)
    chunk = rounds if solver.diagonal else max(1, _HESSIAN_FLOATS // max(1, len(free)) ** 2)
    # Threaded BLAS gains little on many small solves and, with another busy process on the machine,
    # its spinning threads made them ~100 times slower (12.7 s instead of 0.1 s measured on 2 cores).
    with threadpool_limits(1, user_api="blas"):
        for lo in range(0, rounds, chunk):
            part = slice(lo, lo + chunk)
            theta[part] = solver.solve(points[part], weight[part], theta[part])

    elo = np.full((rounds, n_models), BASELINE_ELO)
    elo[:, free] = BASELINE_ELO + 400.0 * theta
    elo[~_linked_to_baseline(problem, weight)] = np.nan
    return elo


class _Newton:
    """Batched damped Newton for the penalised Bradley-Terry log-likelihood, one problem per round.

    With x_k = ln10·(e_first − e_second) and θ the log10-odds of each non-baseline model against the
    baseline, each round minimises  Σ_k n_k·softplus(x_k·θ) − s_k·x_k·θ + ½ Σ_i λ_i θ_i²
    where n_k is the pair's weight and s_k the first model's points.
    """

    def __init__(self, first: np.ndarray, second: np.ndarray, n_params: int):
        self.first, self.second, self.n_params = first, second, n_params
        # Pair-to-parameter incidence (+1 first, −1 second); the baseline's column is dropped.
        incidence = _one_hot(first, n_params + 1) - _one_hot(second, n_params + 1)
        self.incidence = incidence[:, :n_params].tocsr()
        self.touches = abs(self.incidence)
        # Pairs without the baseline couple two parameters; with none the Hessian is diagonal.
        self.inner = np.flatnonzero((first < n_params) & (second < n_params))
        self.diagonal = len(self.inner) == 0

    def solve(self, points: np.ndarray, weight: np.ndarray, theta: np.ndarray) -> np.ndarray:
        theta = theta.copy()
        model_weight = weight @ self.touches
        # Absent models get a unit ridge: their gradient is 0, so they stay at 0 and are masked later.
        ridge = _RIDGE * np.where(model_weight > 0, model_weight, 1.0)
        tol = _GRAD_TOL * np.maximum(weight.sum(1), 1.0)
        eta, e, loss = self._evaluate(theta, points, weight, ridge)
        active = np.arange(len(theta))
        for _ in range(_MAX_ITER):
            s, n, lam, ea = points[active], weight[active], ridge[active], e[active]
            mu = np.where(eta[active] >= 0, 1.0, ea) / (1.0 + ea)
            grad = (_LN10 * (n * mu - s)) @ self.incidence + lam * theta[active]
            still = np.abs(grad).max(1, initial=0.0) > tol[active]
            if not still.any():
                break
            active, s, n, lam, ea, grad = active[still], s[still], n[still], lam[still], ea[still], grad[still]
            curvature = _LN10**2 * n * ea / (1.0 + ea) ** 2
            step = self._newton_step(curvature, lam, grad)
            largest = np.abs(step).max(1, initial=0.0)
            step *= np.minimum(1.0, _MAX_STEP / np.maximum(largest, 1e-300))[:, None]
            theta[active], eta[active], e[active], loss[active] = self._line_search(
                theta[active], step, s, n, lam, loss[active]
            )
        return theta

    def _evaluate(self, theta, points, weight, ridge):
        """Linear predictors, exp(−|η|) (reused for σ and σ′) and the objective of each round."""
        padded = np.concatenate([theta, np.zeros((len(theta), 1))], axis=1)
        eta = _LN10 * (padded[:, self.first] - padded[:, self.second])
        e = np.exp(-np.abs(eta))  # never overflows
        softplus = np.maximum(eta, 0.0) + np.log1p(e)
        loss = (weight * softplus - points * eta).sum(1) + 0.5 * (ridge * theta**2).sum(1)
        return eta, e, loss

    def _newton_step(self, curvature, ridge, grad) -> np.ndarray:
        diagonal = curvature @ self.touches + ridge
        if self.diagonal:
            return grad / diagonal
        rounds, p = grad.shape
        # Hessian = weighted graph Laplacian of the comparisons, baseline row/column removed. Unordered
        # pairs are unique, so plain fancy assignment fills each off-diagonal cell once.
        hessian = np.zeros((rounds, p, p))
        hessian[:, np.arange(p), np.arange(p)] = diagonal
        i, j = self.first[self.inner], self.second[self.inner]
        hessian[:, i, j] = -curvature[:, self.inner]
        hessian[:, j, i] = -curvature[:, self.inner]
        return np.linalg.solve(hessian, grad[..., None])[..., 0]

    def _line_search(self, theta, step, points, weight, ridge, before):
        """θ − step, the step halved until the objective does not rise (a capped Newton step can overshoot)."""
        new = theta - step
        eta, e, after = self._evaluate(new, points, weight, ridge)
        scale = np.ones(len(theta))
        pending = np.arange(len(theta))
        for _ in range(_MAX_HALVINGS):
            # Relative slack: near the optimum the change is below rounding noise.
            rose = after[pending] > before[pending] + 1e-12 * np.abs(before[pending])
            pending = pending[rose]
            if len(pending) == 0:
                break
            scale[pending] *= 0.5
            new[pending] = theta[pending] - scale[pending, None] * step[pending]
            eta[pending], e[pending], after[pending] = self._evaluate(
                new[pending], points[pending], weight[pending], ridge[pending]
            )
        return new, eta, e, after


def _linked_to_baseline(problem: _Problem, weight: np.ndarray) -> np.ndarray:
    """(rounds × models) True where a chain of weighted pairs links the model to the baseline."""
    n_models = len(problem.models)
    to_first = _one_hot(problem.pair_first, n_models)
    to_second = _one_hot(problem.pair_second, n_models)
    present = weight > 0
    linked = np.zeros((len(weight), n_models), dtype=bool)
    linked[:, problem.baseline] = True
    while True:
        from_second = (present & linked[:, problem.pair_second]).astype(float) @ to_first
        from_first = (present & linked[:, problem.pair_first]).astype(float) @ to_second
        grown = linked | (from_second > 0) | (from_first > 0)
        if (grown == linked).all():
            return linked
        linked = grown


def _sigmoid(x: np.ndarray) -> np.ndarray:
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1.0, e) / (1.0 + e)


def _one_hot(index: np.ndarray, size: int) -> sparse.csr_array:
    rows = np.arange(len(index))
    return sparse.csr_array((np.ones(len(index)), (rows, index)), shape=(len(index), size))


def _dense(values) -> np.ndarray:
    return np.asarray(values, dtype=float).ravel()
