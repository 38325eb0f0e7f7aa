"""Battles to a fitting problem: validation, reduction to weighted pair rows, style features.

A battles frame has columns ``question_id``, ``model_a``, ``model_b``, ``winner`` ("model_a", "model_b" or
"tie") and ``weight`` (a row of weight 3 stands for 3 identical battles; a missing ``weight`` column means 1
per row).

Battles are reduced to one row per unordered pair of models holding the pair's total weight and the first
model's points (wins + ½ ties): the likelihood only depends on those two numbers, so the fit on these rows is
the same fit as on aggregated unique rows with sample weights.

Style control (``style=[columns]``) adds per-battle style features to the regression, each a difference
between model_a's answer and model_b's such as (a − b) / (a + b + 1) (see style.py). They are scaled to unit
standard deviation and fitted jointly with the models; ratings come from the model coefficients alone, i.e.
as if both answers of every battle had the same style. Rows are then unique (pair, features) combinations.
A style coefficient is learnt from how style varies within each model's battles: a model whose answers are
always longer than the baseline's by the same ratio cannot be told apart from a stronger one, and the
bootstrap interval of the coefficient (and of that model's score) says so by being wide.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import sparse

WINNERS = ("model_a", "model_b", "tie")

# A style feature whose variation within the models' battles is below this share of its mean square is not
# fitted: it cannot be told apart from the models' own strengths (see _separable_from_models).
_SEPARABLE = 1e-3


def aggregate_battles(battles: pd.DataFrame) -> pd.DataFrame:
    """Unique (model_a, model_b, winner) rows with their summed weight."""
    frame = _validate(battles, need_questions=False)
    grouped = frame.groupby(["model_a", "model_b", "winner"], sort=True)["weight"].sum()
    return grouped.reset_index()


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


def _scale_rows(matrix: sparse.csc_array, factors: np.ndarray) -> sparse.csc_array:
    return sparse.csc_array((matrix.data * factors[matrix.indices], matrix.indices, matrix.indptr), shape=matrix.shape)


def _one_hot(index: np.ndarray, size: int) -> sparse.csr_array:
    rows = np.arange(len(index))
    return sparse.csr_array((np.ones(len(index)), (rows, index)), shape=(len(index), size))


def _dense(values) -> np.ndarray:
    return np.asarray(values, dtype=float).ravel()
