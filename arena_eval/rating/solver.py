"""The Bradley-Terry fit: a batched Newton solver and the bootstrap (docs/design.md, section "Rating").

The fit is a logistic regression solved by Newton's method in numpy, on the weighted pair rows of a problem
(see problem.py). Bootstrap rounds are fitted together, as a batch of independent Newton problems. With style
features the ratings come from the model coefficients alone.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy import sparse
from threadpoolctl import ThreadpoolController

from .problem import _dense, _one_hot, _prepare, _Problem, _validate

BASELINE_ELO = 1000.0

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


# --- Newton solver -------------------------------------------------------------------------------------

def _fit(
    problem: _Problem,
    points: np.ndarray,
    weight: np.ndarray,
    start: tuple[np.ndarray, np.ndarray] | None = None,
    solver: _Newton | None = None,
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
            # Read only when self.diagonal (the arrays above); mypy cannot follow the flag.
            self.segment_start = self.segment_model = None  # type: ignore[assignment]
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

    def __init__(self, problem: _Problem, solver: _Newton, beta: np.ndarray):
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
    def of(cls, problem: _Problem, solver: _Newton, start: tuple[np.ndarray, np.ndarray]) -> _PointExpansion | None:
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


def _scale_columns(matrix: sparse.csr_array, factors: np.ndarray) -> sparse.csr_array:
    return sparse.csr_array((matrix.data * factors[matrix.indices], matrix.indices, matrix.indptr), shape=matrix.shape)

