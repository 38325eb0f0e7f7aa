"""Bradley-Terry ratings, bootstrap confidence intervals and the leaderboard (DESIGN §3.4).

Pure functions over a battles frame with columns ``question_id``, ``model_a``, ``model_b``, ``winner``
("model_a", "model_b" or "tie") and ``weight`` (a row of weight 3 stands for 3 identical battles; a missing
``weight`` column means 1 per row).

The fit is a logistic regression solved by Newton's method in numpy. Battles are first reduced to one row
per unordered pair of models holding the pair's total weight and the first model's points (wins + ½ ties):
the likelihood only depends on those two numbers, so this is the same fit as on aggregated unique rows with
sample weights. Bootstrap rounds are fitted together, as a batch of independent Newton problems.

Style control (``style=[columns]``) adds per-battle style features to the regression, each a difference
between model_a's answer and model_b's such as (a − b) / (a + b + 1) (see style.py). They are scaled to unit
standard deviation and fitted jointly with the models; ratings come from the model coefficients alone, i.e.
as if both answers of every battle had the same style. Rows are then unique (pair, features) combinations.
A style coefficient is learnt from how style varies within each model's battles: a model whose answers are
always longer than the baseline's by the same ratio cannot be told apart from a stronger one, and the
bootstrap interval of the coefficient (and of that model's score) says so by being wide.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import sparse
from threadpoolctl import ThreadpoolController

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
# With style features every round holds one value per unique battle row, and the Newton steps make some 50
# passes over them: chunks of rounds that stay in the CPU cache run much faster. Measured on 2 cores (1 MiB L2
# each) with 1000 rounds: 32 MiB arrays ~3x slower than 1 MiB ones, and 1 MiB ~1.7x slower than 256 KiB ones.
_CACHE_FLOATS = 1 << 15
# A style feature whose variation within the models' battles is below this share of its mean square is not
# fitted: it cannot be told apart from the models' own strengths (see _separable_from_models).
_SEPARABLE = 1e-3


def aggregate_battles(battles: pd.DataFrame) -> pd.DataFrame:
    """Unique (model_a, model_b, winner) rows with their summed weight."""
    frame = _validate(battles, need_questions=False)
    grouped = frame.groupby(["model_a", "model_b", "winner"], sort=True)["weight"].sum()
    return grouped.reset_index()


def fit_bradley_terry(battles: pd.DataFrame, baseline: str, style: Sequence[str] | None = None) -> pd.Series:
    """Elo per model, the baseline pinned at exactly 1000; NaN for a model not linked to the baseline.

    With ``style`` (battle columns of style features), the fit controls for them and the result's
    ``attrs["style_coefficients"]`` holds {column: log-odds per standard deviation}, NaN for a column left
    out of the fit (see compute_leaderboard).
    """
    problem = _prepare(_validate(battles, need_questions=False, style=style), baseline, by="rows", style=style)
    elo, gamma = _fit(problem, *problem.totals())
    result = pd.Series(elo[0], index=pd.Index(problem.models, name="model"), name="elo")
    if problem.style:
        result.attrs["style_coefficients"] = dict(zip(problem.style, problem.full_style(gamma)[0].tolist()))
    return result


def bootstrap_elo(
    battles: pd.DataFrame,
    baseline: str,
    rounds: int = 1000,
    seed: int = 42,
    by: str = "questions",
    style: Sequence[str] | None = None,
) -> pd.DataFrame:
    """Elo of every model (columns) in each bootstrap round (rows); NaN where a model is absent that round.

    ``by="questions"`` resamples question ids, keeping all the rows of a question together;
    ``by="rows"`` resamples individual battles (rows expanded by weight). A battle keeps its style features
    either way. With ``style``, ``attrs["style_coefficients"]`` holds each round's coefficients as
    {column: list over rounds}.
    """
    problem = _prepare(_validate(battles, need_questions=by == "questions", style=style), baseline, by, style)
    point = _fit(problem, *problem.totals())
    elo, gamma = _bootstrap(problem, point, rounds, seed)
    frame = _bootstrap_frame(problem, elo)
    if problem.style:
        frame.attrs["style_coefficients"] = dict(zip(problem.style, problem.full_style(gamma).T.tolist()))
    return frame


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
    style: Sequence[str] | None = None,
) -> pd.DataFrame:
    """Score, Elo and 95% bootstrap intervals per model, best score first.

    Column ``battles`` is the total weight of the rows a model is in, ``questions`` the number of distinct
    question ids among its rows of positive weight. ``rounds=0`` skips the bootstrap and leaves the interval
    columns NaN (the baseline's too). A model not linked to the baseline by battles gets NaN ratings.

    ``style`` names battle columns of style features (model_a's answer against model_b's); the ratings are
    then style-controlled, and ``attrs["style_coefficients"]`` reports, per column, ``coef`` (log-odds of
    model_a winning per standard deviation of the feature), its 95% bootstrap interval ``ci_low``/``ci_high``,
    ``elo_per_sd`` (the same effect in Elo points), ``sd`` (the scale used) and ``fitted``. A column is left
    out of the fit (``fitted`` False, coefficients NaN) when it is constant (sd 0) or when it does not vary
    within the models' battles, so that it cannot be told apart from the models' own strengths.
    """
    frame = _validate(battles, need_questions=True, style=style)
    problem = _prepare(frame, baseline, by, style)
    point = _fit(problem, *problem.totals())
    elo = point[0][0]
    boot, boot_gamma = _bootstrap(problem, point, rounds, seed)
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
    board = board.reset_index(drop=True)[LEADERBOARD_COLUMNS]
    if problem.style:
        board.attrs["style_coefficients"] = _style_report(problem, point[1][0], boot_gamma if rounds > 0 else None)
    return board


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

_BATTLE_COLUMNS = ("question_id", "model_a", "model_b", "winner", "weight")


def _validate(battles: pd.DataFrame, need_questions: bool, style: Sequence[str] | None = None) -> pd.DataFrame:
    if not isinstance(battles, pd.DataFrame):
        raise TypeError(f"battles must be a pandas DataFrame, not {type(battles).__name__}")
    if len(battles) == 0:
        raise ValueError("battles is empty: there is nothing to rate")
    style = _style_names(style)
    required = ["model_a", "model_b", "winner"] + (["question_id"] if need_questions else []) + style
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
    for column in style:
        values = pd.to_numeric(battles[column], errors="coerce").to_numpy(dtype=float)
        if not np.isfinite(values).all():
            raise ValueError(f"style feature {column!r} must hold finite numbers in every battle")
        frame[column] = values
    return frame


def _style_names(style: Sequence[str] | None) -> list[str]:
    if style is None:
        return []
    if isinstance(style, str):
        raise TypeError("style takes a list of column names, not one string")
    names = list(style)
    clashes = sorted(set(names) & set(_BATTLE_COLUMNS))
    if clashes:
        raise ValueError(f"style column(s) {', '.join(clashes)} are battle columns, not style features")
    if len(set(names)) != len(names):
        raise ValueError("style lists a column more than once")
    return names


@dataclass(frozen=True)
class _Problem:
    """Battles reduced to rows and to resampling units (questions or unique battles).

    A row is an unordered model pair; with style features, a unique (pair, features) combination.
    """

    models: list[str]  # every model in the battles, sorted: the columns of all results
    baseline: int  # index into models
    pair_first: np.ndarray  # (P,) model index; the baseline is never first, else pair_first < pair_second
    pair_second: np.ndarray
    row_pair: np.ndarray  # (R,) pair of each row; arange(P) without style features
    row_style: np.ndarray  # (R, F) scaled style features of each row, first model's answer against the second's
    unit_points: sparse.csr_array  # (units, R) points (wins + ½ ties) of the pair's first model
    unit_weight: sparse.csr_array  # (units, R) battle weight
    by: str
    style: list[str]  # the style columns asked for
    style_sd: np.ndarray  # their scale
    style_fitted: np.ndarray  # False for a feature with scale 0 or one not separable from the models

    def totals(self) -> tuple[np.ndarray, np.ndarray]:
        return _dense(self.unit_points.sum(0))[None], _dense(self.unit_weight.sum(0))[None]

    @property
    def rows_are_pairs(self) -> bool:
        return len(self.row_pair) == len(self.pair_first)

    def full_style(self, gamma: np.ndarray) -> np.ndarray:
        """(rounds × style columns) coefficients, NaN for the columns left out of the fit."""
        out = np.full((len(gamma), len(self.style)), np.nan)
        out[:, self.style_fitted] = gamma
        return out


def _prepare(frame: pd.DataFrame, baseline: str, by: str, style: Sequence[str] | None = None) -> _Problem:
    if by not in ("questions", "rows"):
        raise ValueError(f"by must be 'questions' or 'rows', not {by!r}")
    style = _style_names(style)
    models = sorted(pd.unique(pd.concat([frame["model_a"], frame["model_b"]], ignore_index=True)))
    n_models = len(models)
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
    # Each unordered pair in one orientation: the baseline second, otherwise the lower index first.
    a_first = np.where(a == base, False, (b == base) | (a < b))
    first, second = np.where(a_first, a, b), np.where(a_first, b, a)
    a_won = winner == "model_a"
    share = np.where(winner == "tie", 0.5, (a_won == a_first).astype(float))
    features, style_sd = _scaled_style(usable, style)
    style_fitted = style_sd > 0
    if features.shape[1]:
        # A feature compares model_a's answer with model_b's; a row's compares its first model's with the second's.
        features = features * np.where(a_first, 1.0, -1.0)[:, None] + 0.0  # + 0.0: no -0.0 beside 0.0
        separable = _separable_from_models(first, second, features, weight, n_models, int(base))
        style_fitted[style_fitted] = separable
        features = features[:, separable]
    if features.shape[1]:
        rows, row_of_battle = np.unique(np.column_stack([first * n_models + second, features]), axis=0,
                                        return_inverse=True)
        pairs, row_pair = np.unique(rows[:, 0].astype(np.int64), return_inverse=True)
        row_style = rows[:, 1:]
    else:
        pairs, row_of_battle = np.unique(first * n_models + second, return_inverse=True)
        row_pair, row_style = np.arange(len(pairs)), np.zeros((len(pairs), 0))
    row_of_battle = row_of_battle.ravel()

    if by == "questions":
        unit_of_battle, _ = pd.factorize(usable["question_id"], sort=True)
    else:
        winner_code = np.where(a_won, 0, np.where(winner == "tie", 2, 1))
        if row_style.shape[1]:
            # Battles of one ordered pair and winner are distinct units when their style differs.
            keys = np.column_stack([a * n_models + b, row_of_battle, winner_code])
            unit_of_battle = np.unique(keys, axis=0, return_inverse=True)[1].ravel()
        else:
            _, unit_of_battle = np.unique((a * n_models + b) * 3 + winner_code, return_inverse=True)
    n_units = int(unit_of_battle.max()) + 1
    # Sparse: a tournament among many models has few of its pairs in any one question.
    shape = (n_units, len(row_pair))
    unit_points = sparse.csr_array((weight * share, (unit_of_battle, row_of_battle)), shape=shape)
    unit_weight = sparse.csr_array((weight, (unit_of_battle, row_of_battle)), shape=shape)
    return _Problem(
        models=models,
        baseline=int(base),
        pair_first=pairs // n_models,
        pair_second=pairs % n_models,
        row_pair=row_pair.ravel(),
        row_style=row_style,
        unit_points=unit_points,
        unit_weight=unit_weight,
        by=by,
        style=style,
        style_sd=style_sd,
        style_fitted=style_fitted,
    )


def _scaled_style(usable: pd.DataFrame, style: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Style features divided by their weighted root mean square; only the features that vary are kept.

    The root mean square is the standard deviation over the battles counted in both orientations: a battle
    and its mirror image (sides swapped, features negated) are the same comparison, so their mean is 0.
    Centring on the mean of one orientation instead would make the ratings depend on which side is called
    model_a (the pipeline always puts the baseline there) and on which other contestants are in the arena.
    Uncentred, the scale only sets the units of the style coefficients: the ratings do not depend on it.
    """
    if not style:
        return np.zeros((len(usable), 0)), np.zeros(0)
    raw = usable[style].to_numpy(dtype=float)
    weight = usable["weight"].to_numpy()
    sd = np.sqrt(weight @ raw**2 / weight.sum())
    return raw[:, sd > 0] / sd[sd > 0], sd


def _separable_from_models(
    first: np.ndarray, second: np.ndarray, features: np.ndarray, weight: np.ndarray, n_models: int, baseline: int
) -> np.ndarray:
    """Which style features vary within the models' battles, i.e. are not (almost) a sum of model columns.

    A feature held at one level per model (say a contestant that always writes exactly one bold span and a
    baseline that never does) is the same regressor as that model's own column: the fit could split the
    model's advantage between the two at will, and only the tiny ridge would decide. Measured as 1 − R² of
    the weighted least-squares regression of the feature on the model columns.
    """
    free = np.array([i for i in range(n_models) if i != baseline], dtype=int)
    models = (_one_hot(first, n_models) - _one_hot(second, n_models))[:, free].tocsc()
    cross = models.T @ (weight[:, None] * features)
    if (second == baseline).all():  # every battle against the baseline: a diagonal Gram matrix
        gram = _dense(abs(models).T @ weight)
        explained = (cross**2 / np.where(gram > 0, gram, 1.0)[:, None]).sum(0)
    else:
        gram = (models.T @ _scale_rows(models, weight)).toarray()
        # Models cut off from the baseline leave the Gram matrix singular.
        gram[np.diag_indices_from(gram)] += 1e-9 * (np.diag(gram) + 1.0)
        explained = np.einsum("kf,kf->f", cross, np.linalg.solve(gram, cross))
    total = weight @ features**2
    return total - explained > _SEPARABLE * total


def _style_report(problem: _Problem, gamma: np.ndarray, boot: np.ndarray | None) -> dict[str, dict[str, float]]:
    coef = problem.full_style(gamma[None])[0]
    if boot is not None and len(boot):
        low, high = _percentiles(problem.full_style(boot))
    else:
        low = high = np.full(len(coef), np.nan)
    return {
        name: {
            "coef": float(coef[i]),
            "ci_low": float(low[i]),
            "ci_high": float(high[i]),
            "elo_per_sd": float(coef[i] * 400.0 / _LN10),
            "sd": float(problem.style_sd[i]),
            "fitted": bool(problem.style_fitted[i]),
        }
        for i, name in enumerate(problem.style)
    }


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

def _bootstrap(
    problem: _Problem, point: tuple[np.ndarray, np.ndarray], rounds: int, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Elo (rounds × models) and style coefficients (rounds × fitted features) of each bootstrap round."""
    if rounds < 0:
        raise ValueError(f"rounds must be >= 0, not {rounds}")
    rng = np.random.default_rng(seed)
    n_units, n_rows = problem.unit_weight.shape
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
    gamma = np.empty((rounds, problem.row_style.shape[1]))
    start = (point[0][0], point[1][0])
    solver = _Newton(problem)
    # Chunks bound memory; drawing chunk by chunk gives the same counts as drawing all rounds at once.
    chunk = max(1, _ROUND_FLOATS // max(n_units, n_rows))
    solve_chunk = max(1, _CACHE_FLOATS // n_rows) if problem.row_style.shape[1] else chunk
    with _blas_threads().limit(limits=1, user_api="blas"):  # see _fit
        expansion = _PointExpansion.of(problem, solver, start)
        for lo in range(0, rounds, chunk):
            counts = rng.multinomial(draws, probabilities, size=min(chunk, rounds - lo)) * per_draw
            begin = expansion.first_step(counts) if expansion is not None else None
            for sub in range(0, len(counts), solve_chunk):
                part = slice(sub, min(sub + solve_chunk, len(counts)))
                # One matrix product gives every round's row weights; a unit's style features stay with its rows.
                elo[lo + part.start : lo + part.stop], gamma[lo + part.start : lo + part.stop] = _fit(
                    problem, counts[part] @ problem.unit_points, counts[part] @ problem.unit_weight, start=start,
                    solver=solver, beta=None if begin is None else begin[part],
                )
    return elo, gamma


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
    start: tuple[np.ndarray, np.ndarray] | None = None,
    solver: "_Newton | None" = None,
    beta: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Elo (rounds × models) and style coefficients (rounds × fitted features) from per-round row points and
    weights; Elo is NaN for models not linked to the baseline. The search starts from `beta` (rounds ×
    parameters) when given, else from `start` (Elo and style coefficients), else from 0."""
    solver = solver or _Newton(problem)
    free, k = solver.free, solver.n_models
    rounds = points.shape[0]
    if beta is None:
        beta = np.zeros((rounds, solver.n_params))
        if start is not None:
            beta[:] = solver.parameters(*start)
    chunk = rounds if solver.diagonal else max(1, _HESSIAN_FLOATS // max(1, solver.n_params) ** 2)
    # Threaded BLAS gains little on many small solves and, with another busy process on the machine,
    # its spinning threads made them ~100 times slower (12.7 s instead of 0.1 s measured on 2 cores).
    with _blas_threads().limit(limits=1, user_api="blas"):
        for lo in range(0, rounds, chunk):
            part = slice(lo, lo + chunk)
            beta[part] = solver.solve(points[part], weight[part], beta[part])

    elo = np.full((rounds, len(problem.models)), BASELINE_ELO)
    elo[:, free] = BASELINE_ELO + 400.0 * beta[:, :k]
    if solver.segment_model is not None:
        # Every pair has the baseline on one side: a model is linked when it has a battle this round.
        linked = np.zeros((rounds, len(problem.models)), dtype=bool)
        linked[:, problem.baseline] = True
        linked[:, free[solver.segment_model]] = np.add.reduceat(weight, solver.segment_start, axis=1) > 0
    else:
        linked = _linked_to_baseline(problem, solver.pair_weight(weight))
    elo[~linked] = np.nan
    return elo, beta[:, k:]


@functools.cache
def _blas_threads() -> ThreadpoolController:
    # Finding the BLAS libraries takes milliseconds: once, not once per chunk of bootstrap rounds.
    return ThreadpoolController()


class _Newton:
    """Batched damped Newton for the penalised Bradley-Terry log-likelihood, one problem per round.

    With x_k = ln10·(e_first − e_second) for row k, z_k its style features, θ the log10-odds of each
    non-baseline model against the baseline and γ the style coefficients, each round minimises
    Σ_k n_k·softplus(η_k) − s_k·η_k + ½ Σ_i λ_i β_i²  with η_k = x_k·θ + z_k·γ and β = (θ, γ),
    where n_k is the row's weight and s_k the first model's points.

    When every pair has the baseline on one side (the pipeline's design), each model owns one contiguous run
    of rows (the baseline second in each), and sums per model are segment sums instead of sparse products.
    """

    def __init__(self, problem: _Problem):
        n_all = len(problem.models)
        self.free = np.array([i for i in range(n_all) if i != problem.baseline], dtype=int)
        k = self.n_models = len(self.free)
        # Parameter column of each model; the baseline maps to an extra column held at 0.
        column = np.full(n_all, k)
        column[self.free] = np.arange(k)
        pair_first, pair_second = column[problem.pair_first], column[problem.pair_second]
        first, second = pair_first[problem.row_pair], pair_second[problem.row_pair]
        f = self.n_style = problem.row_style.shape[1]
        self.n_params = k + f
        # Pairs without the baseline couple two parameters; with none the model block of the Hessian is diagonal.
        self.inner = np.flatnonzero((pair_first < k) & (pair_second < k))
        self.inner_first, self.inner_second = pair_first[self.inner], pair_second[self.inner]
        self.diagonal = len(self.inner) == 0
        self.row_to_pair = None if problem.rows_are_pairs else _one_hot(problem.row_pair, len(pair_first))
        self.features = problem.row_style
        if self.diagonal:
            # Every row is its first model against the baseline (never first); rows are sorted by pair.
            self.row_model = first
            self.segment_start = np.flatnonzero(np.r_[True, problem.row_pair[1:] != problem.row_pair[:-1]])
            self.segment_model = self.row_model[self.segment_start]
        else:
            self.segment_start = self.segment_model = None
            self.first, self.second = first, second
            # Row-to-parameter incidence (+1 first, −1 second); the baseline's column is dropped.
            self.incidence = (_one_hot(first, k + 1) - _one_hot(second, k + 1))[:, :k].tocsr()
            self.touches = abs(self.incidence)
        self.features_t = np.ascontiguousarray(self.features.T)

    def pair_weight(self, weight: np.ndarray) -> np.ndarray:
        return weight if self.row_to_pair is None else weight @ self.row_to_pair

    def parameters(self, elo: np.ndarray, gamma: np.ndarray) -> np.ndarray:
        """β = (θ, γ) from Elo of every model and the fitted style coefficients."""
        return np.concatenate([np.nan_to_num((elo[self.free] - BASELINE_ELO) / 400.0), gamma])

    def _per_model(self, values: np.ndarray, signed: bool = True) -> np.ndarray:
        """Σ over each model's rows of values (… × rows), times x/ln10 (signed) or |x|/ln10."""
        if self.segment_model is None:
            flat = values.reshape(-1, values.shape[-1]) @ (self.incidence if signed else self.touches)
            return flat.reshape(values.shape[:-1] + (self.n_models,))
        out = np.zeros(values.shape[:-1] + (self.n_models,))
        out[..., self.segment_model] = np.add.reduceat(values, self.segment_start, axis=-1)
        return out

    def solve(self, points: np.ndarray, weight: np.ndarray, beta: np.ndarray) -> np.ndarray:
        beta = beta.copy()
        k = self.n_models
        model_weight = self._per_model(weight, signed=False)
        # Absent models get a unit ridge: their gradient is 0, so they stay at 0 and are masked later.
        ridge = np.empty_like(beta)
        ridge[:, :k] = _RIDGE * np.where(model_weight > 0, model_weight, 1.0)
        total = np.maximum(weight.sum(1), 1.0)
        # Style coefficients get the same tiny ridge relative to the round's weight (a style that always wins).
        ridge[:, k:] = _RIDGE * total[:, None]
        tol = _GRAD_TOL * total
        eta, e, loss = self._evaluate(beta, points, weight, ridge)
        # The working arrays hold the unconverged rounds only; they are copied only when a round converges.
        active, s, n, lam = np.arange(len(beta)), points, weight, ridge
        for _ in range(_MAX_ITER):
            p = 1.0 + e
            np.divide(e, p, out=p)  # σ(−|η|)
            residual = 0.5 - p
            np.copysign(residual, eta, out=residual)
            residual += 0.5  # σ(η), without a branch per row
            residual *= n
            residual -= s
            grad = lam * beta[active]
            grad[:, :k] += _LN10 * self._per_model(residual)
            if self.n_style:
                grad[:, k:] += residual @ self.features_t.T  # twice as fast as @ features (row-major)
            still = np.abs(grad).max(1, initial=0.0) > tol[active]
            if not still.any():
                break
            if not still.all():
                active, s, n, lam, grad = active[still], s[still], n[still], lam[still], grad[still]
                eta, loss, p = eta[still], loss[still], p[still]
            logistic_weight = p - p * p
            logistic_weight *= n  # n·σ′(η)
            step = self._newton_step(logistic_weight, lam, grad)
            largest = np.abs(step).max(1, initial=0.0)
            step *= np.minimum(1.0, _MAX_STEP / np.maximum(largest, 1e-300))[:, None]
            beta[active], eta, e, loss = self._line_search(beta[active], step, s, n, lam, loss)
        return beta

    def _predictor(self, beta: np.ndarray) -> np.ndarray:
        k = self.n_models
        models = _LN10 * beta[:, :k]
        if self.segment_model is not None:
            eta = np.take(models, self.row_model, axis=1)
        else:
            padded = np.concatenate([models, np.zeros((len(beta), 1))], axis=1)
            eta = np.take(padded, self.first, axis=1)
            eta -= np.take(padded, self.second, axis=1)
        if self.n_style:
            eta += beta[:, k:] @ self.features_t
        return eta

    def _evaluate(self, beta, points, weight, ridge):
        """Linear predictors, exp(−|η|) (reused for σ and σ′) and the objective of each round."""
        eta = self._predictor(beta)
        e = np.abs(eta)
        np.negative(e, out=e)
        np.exp(e, out=e)  # never overflows
        # Σ n·softplus(η) − s·η with softplus(η) = max(η, 0) + log1p(e^−|η|)
        loss = (
            np.einsum("ij,ij->i", weight, np.log1p(e))
            + np.einsum("ij,ij->i", weight, np.maximum(eta, 0.0))
            - np.einsum("ij,ij->i", points, eta)
            + 0.5 * (ridge * beta**2).sum(1)
        )
        return eta, e, loss

    def _newton_step(self, logistic_weight, ridge, grad) -> np.ndarray:
        k, f = self.n_models, self.n_style
        diagonal = _LN10**2 * self._per_model(logistic_weight, signed=False) + ridge[:, :k]
        if not f:
            if self.diagonal:
                return grad / diagonal
            return np.linalg.solve(self._model_block(logistic_weight, diagonal), grad[..., None])[..., 0]
        # Model-style block Σ ln10·v·x·z and style block Σ v·z·zᵀ, from v·z (rounds × features × rows).
        weighted = logistic_weight[:, None, :] * self.features_t
        cross = _LN10 * self._per_model(weighted).transpose(0, 2, 1)
        style = weighted @ self.features
        style[:, np.arange(f), np.arange(f)] += ridge[:, k:]
        if self.diagonal:
            return _arrow_step(diagonal, cross, style, grad)
        rounds = len(grad)
        hessian = np.zeros((rounds, k + f, k + f))
        hessian[:, :k, :k] = self._model_block(logistic_weight, diagonal)
        hessian[:, :k, k:] = cross
        hessian[:, k:, :k] = cross.transpose(0, 2, 1)
        hessian[:, k:, k:] = style
        return np.linalg.solve(hessian, grad[..., None])[..., 0]

    def _model_block(self, logistic_weight, diagonal) -> np.ndarray:
        """The models' Hessian: the weighted graph Laplacian of the comparisons, baseline row/column removed."""
        curvature = _LN10**2 * self.pair_weight(logistic_weight)
        rounds, p = diagonal.shape
        # Unordered pairs are unique, so plain fancy assignment fills each off-diagonal cell once.
        hessian = np.zeros((rounds, p, p))
        hessian[:, np.arange(p), np.arange(p)] = diagonal
        i, j = self.inner_first, self.inner_second
        hessian[:, i, j] = -curvature[:, self.inner]
        hessian[:, j, i] = -curvature[:, self.inner]
        return hessian

    def _line_search(self, beta, step, points, weight, ridge, before):
        """β − step, the step halved until the objective does not rise (a capped Newton step can overshoot)."""
        new = beta - step
        eta, e, after = self._evaluate(new, points, weight, ridge)
        scale = np.ones(len(beta))
        pending = np.arange(len(beta))
        for _ in range(_MAX_HALVINGS):
            # Relative slack: near the optimum the change is below rounding noise.
            rose = after[pending] > before[pending] + 1e-12 * np.abs(before[pending])
            pending = pending[rose]
            if len(pending) == 0:
                break
            scale[pending] *= 0.5
            new[pending] = beta[pending] - scale[pending, None] * step[pending]
            eta[pending], e[pending], after[pending] = self._evaluate(
                new[pending], points[pending], weight[pending], ridge[pending]
            )
        return new, eta, e, after


def _arrow_step(diagonal, cross, style, grad) -> np.ndarray:
    """Newton step for an arrow-shaped Hessian [[diag(diagonal), cross], [crossᵀ, style]] (rounds first):
    eliminate the models (a diagonal block), then solve the small style system (its Schur complement)."""
    k = diagonal.shape[1]
    scaled = cross / diagonal[..., None]
    schur = style - np.einsum("bkf,bkg->bfg", cross, scaled)
    rhs = grad[:, k:] - np.einsum("bkf,bk->bf", scaled, grad[:, :k])
    style_step = np.linalg.solve(schur, rhs[..., None])[..., 0]
    model_step = grad[:, :k] / diagonal - np.einsum("bkf,bf->bk", scaled, style_step)
    return np.concatenate([model_step, style_step], axis=1)


class _PointExpansion:
    """Each resampling unit's gradient and Hessian at the point estimate, for the first Newton step of the
    bootstrap rounds (style control with every pair against the baseline).

    Both are sums over the unit's rows, so a round's are its counts times these: the first step from the point
    estimate costs one small matrix product instead of passes over every row, and the row-by-row Newton
    iterations start one step closer.
    """

    def __init__(self, problem: _Problem, solver: "_Newton", beta: np.ndarray):
        k, f = solver.n_models, solver.n_style
        self.beta, self.n_models, self.n_style = beta, k, f
        mu = _sigmoid(solver._predictor(beta[None])[0])
        weight = problem.unit_weight
        residual = _scale_columns(weight, mu) - problem.unit_points
        curvature = _scale_columns(weight, mu * (1.0 - mu))
        to_model = _one_hot(solver.row_model, k)
        rows = np.arange(len(mu))
        to_cross = sparse.csr_array(
            (solver.features.ravel(), (np.repeat(rows, f), (solver.row_model[:, None] * f + np.arange(f)).ravel())),
            shape=(len(mu), k * f),
        )
        products = (solver.features[:, :, None] * solver.features[:, None, :]).reshape(len(mu), f * f)
        self.sums = np.hstack([
            _LN10 * (residual @ to_model).toarray(),  # gradient, models
            residual @ solver.features,  # gradient, style
            (weight @ to_model).toarray(),  # the models' battle weight (their ridge)
            _dense(weight.sum(1))[:, None],  # all battle weight (the style ridge)
            _LN10**2 * (curvature @ to_model).toarray(),  # Hessian: the models' diagonal
            _LN10 * (curvature @ to_cross).toarray(),  # Hessian: models × style
            curvature @ products,  # Hessian: style × style
        ])

    @classmethod
    def of(cls, problem: _Problem, solver: "_Newton", start: tuple[np.ndarray, np.ndarray]) -> "_PointExpansion | None":
        k, f = solver.n_models, solver.n_style
        width = 3 * k + f + 1 + k * f + f * f
        # Worth it when rows far outnumber units (resampled questions), and possible for an arrow-shaped Hessian.
        if not (f and solver.diagonal) or problem.unit_weight.shape[0] * width > _ROUND_FLOATS:
            return None
        return cls(problem, solver, solver.parameters(*start))

    def first_step(self, counts: np.ndarray) -> np.ndarray:
        """β after one Newton step from the point estimate, for each round of `counts` (rounds × units)."""
        k, f = self.n_models, self.n_style
        sums = counts @ self.sums
        ends = np.cumsum([k, f, k, 1, k, k * f])
        grad_models, grad_style, model_weight, total, diagonal, cross, style = np.split(sums, ends, axis=1)
        # The same ridge as _Newton.solve gives each round.
        ridge_models = _RIDGE * np.where(model_weight > 0, model_weight, 1.0)
        ridge_style = _RIDGE * np.maximum(total, 1.0)
        grad = np.concatenate([grad_models + ridge_models * self.beta[:k], grad_style + ridge_style * self.beta[k:]], 1)
        style = style.reshape(len(counts), f, f)
        style[:, np.arange(f), np.arange(f)] += ridge_style
        step = _arrow_step(diagonal + ridge_models, cross.reshape(len(counts), k, f), style, grad)
        largest = np.abs(step).max(1, initial=0.0)
        step *= np.minimum(1.0, _MAX_STEP / np.maximum(largest, 1e-300))[:, None]
        return self.beta - step


def _linked_to_baseline(problem: _Problem, weight: np.ndarray) -> np.ndarray:
    """(rounds × models) True where a chain of weighted pairs links the model to the baseline.

    `weight` is per pair (rounds × pairs).
    """
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


def _scale_rows(matrix: sparse.csc_array, factors: np.ndarray) -> sparse.csc_array:
    return sparse.csc_array((matrix.data * factors[matrix.indices], matrix.indices, matrix.indptr), shape=matrix.shape)


def _scale_columns(matrix: sparse.csr_array, factors: np.ndarray) -> sparse.csr_array:
    return sparse.csr_array((matrix.data * factors[matrix.indices], matrix.indices, matrix.indptr), shape=matrix.shape)


def _one_hot(index: np.ndarray, size: int) -> sparse.csr_array:
    rows = np.arange(len(index))
    return sparse.csr_array((np.ones(len(index)), (rows, index)), shape=(len(index), size))


def _dense(values) -> np.ndarray:
    return np.asarray(values, dtype=float).ravel()


def weighted_win_rate(battles: pd.DataFrame, by: list[str]) -> dict:
    """(wins + ½ ties) / battles × 100 of model_b (the contestant: the baseline is model_a) per group of `by`,
    with the battles' weights; groups without weight are left out."""
    frame = battles.assign(_won=battles.weight * ((battles.winner == "model_b") + 0.5 * (battles.winner == "tie")))
    sums = frame.groupby(by)[["_won", "weight"]].sum()
    return {key: 100.0 * won / weight for key, (won, weight) in zip(sums.index, sums.to_numpy()) if weight > 0}
