"""Bradley-Terry scores calibrated with human labels: prediction-powered inference (docs/design.md §3.4.7).

The judges' battles are the predictions on every judged pair, the human labels on a subset of those pairs are the
truth. The fit is ppi_py's prediction-powered logistic regression (PPI++, Angelopoulos, Duchi and Zrnic 2023):
the judge-only Bradley-Terry fit, rectified by the judge's error on the labelled pairs, so that the estimate is
the one the human labels would give on every pair, with an interval that carries the judge's error.

One row per judged (question, pair of models): its prediction is the judges' weighted point share of the pair's
first model over all its games (both positions, every rated judge; a tie half a point), its truth the mean of
its annotators' points. Each pair counts once (weight 1), in the judged set and in the labelled subset. The
point estimate is `ppi_py.ppi_logistic_pointestimate`; the power-tuning λ and the covariance are its sandwich
formula, summed per question (all pairs of a question share its answers) and written for labels drawn from the
judged pairs themselves (ppi_py's own interval assumes an independent unlabelled sample and independent rows).

Pure functions, no I/O; ppi_py (and numba under it) is imported only when a fit runs.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from ..errors import ConfigError
from .solver import _LN10, BASELINE_ELO, _blas_threads

if TYPE_CHECKING:
    from ..labels import HumanLabel

# Fewer labelled pairs than this and a contestant gets no calibrated score: the rectifier's variance, estimated
# from its labelled pairs, is too unsure for a normal interval.
MIN_LABELS = 10
Z95 = 1.959963984540054
# Keeps separated data finite (a contestant that wins every judged and labelled pair), as §3.4.1's ridge does: a
# tie against the baseline of this weight per contestant, relative to the contestant's own judged pairs.
_KEEL = 1e-6
_EXAMPLES = 5  # unmatched labels described in a message
INSTALL = "pip install 'arena-eval[calibration]'"


@dataclass(frozen=True)
class CalibrationResult:
    """A prediction-powered Bradley-Terry fit.

    `theta` is each model's log10-odds of beating the baseline (baseline 0, in `models` order), `cov` their
    covariance (the baseline's row and column 0). `labels` counts each model's labelled judged pairs; a model
    in `uncalibrated` has fewer than `min_labels` and NaN figures. `lam` is the power-tuning weight of the
    judge's predictions (0: labels alone, 1: plain PPI).
    """

    models: tuple[str, ...]
    baseline: str
    theta: np.ndarray
    cov: np.ndarray
    lam: float
    labels: dict[str, int]
    judged_pairs: int
    labelled_pairs: int
    questions: int
    min_labels: int = MIN_LABELS
    uncalibrated: tuple[str, ...] = ()
    unmatched: tuple[str, ...] = ()  # labels naming a pair no judge judged, described ("file:line (q: a vs b)")
    unmatched_count: int = 0

    def index(self, model: str) -> int:
        try:
            return self.models.index(model)
        except ValueError:
            raise KeyError(f"{model!r} is not among the calibrated models ({', '.join(self.models)})") from None

    def table(self) -> pd.DataFrame:
        """One row per model: model, calibrated_score, calibrated_ci_low, calibrated_ci_high, calibrated_elo,
        calibrated_elo_ci_low, calibrated_elo_ci_high, labels (95 % normal intervals on the log-odds scale)."""
        se = np.sqrt(np.clip(np.diag(self.cov), 0.0, None))
        low, high = self.theta - Z95 * se, self.theta + Z95 * se
        frame = pd.DataFrame({
            "model": list(self.models),
            "calibrated_score": _score(self.theta),
            "calibrated_ci_low": _score(low),
            "calibrated_ci_high": _score(high),
            "calibrated_elo": BASELINE_ELO + 400.0 * self.theta,
            "calibrated_elo_ci_low": BASELINE_ELO + 400.0 * low,
            "calibrated_elo_ci_high": BASELINE_ELO + 400.0 * high,
            "labels": [self.labels.get(m, 0) for m in self.models],
        })
        blank = frame.model.isin(self.uncalibrated)
        frame.loc[blank, frame.columns[1:-1]] = np.nan
        return frame


def calibrated_difference(result: CalibrationResult, a: str, b: str) -> tuple[float, float, float, float]:
    """(score_a − score_b, its 95 % interval low, high, two-sided p-value), in score points, calibrated.

    The difference of the two calibrated scores with the delta method on the fit's covariance: the covariance is
    summed per question, so two contestants judged (and labelled) on the same questions get a paired interval.
    Either may be the baseline (score 50, no variance). NaN throughout when either is uncalibrated.
    """
    i, j = result.index(a), result.index(b)
    if a in result.uncalibrated or b in result.uncalibrated:
        return math.nan, math.nan, math.nan, math.nan
    p = 1.0 / (1.0 + 10.0 ** (-result.theta[[i, j]]))
    slope = 100.0 * _LN10 * p * (1.0 - p)  # d score / d theta
    gradient = np.zeros(len(result.models))
    gradient[i] += slope[0]
    gradient[j] -= slope[1]
    diff = float(100.0 * (p[0] - p[1]))
    se = float(math.sqrt(max(gradient @ result.cov @ gradient, 0.0)))
    if se == 0.0:
        return diff, diff, diff, (1.0 if diff == 0.0 else 0.0)
    pvalue = math.erfc(abs(diff / se) / math.sqrt(2.0))
    return diff, diff - Z95 * se, diff + Z95 * se, pvalue


# --- rows ------------------------------------------------------------------------------------------------

def judged_pairs(battles: pd.DataFrame, baseline: str) -> pd.DataFrame:
    """One row per judged (question, unordered pair): question_id, first, second, judge (the judges' weighted
    point share of `first`: wins + ½ ties, each battle by its weight), weight (the battles' total weight).
    A pair is oriented with the baseline second, otherwise the lower name first."""
    missing = [c for c in ("question_id", "model_a", "model_b", "winner") if c not in battles.columns]
    if missing:
        raise ValueError(f"battles is missing column(s): {', '.join(missing)}")
    frame = battles[["question_id", "model_a", "model_b", "winner"]].copy()
    frame["weight"] = battles["weight"].to_numpy(dtype=float) if "weight" in battles.columns else 1.0
    frame = frame[(frame.weight > 0) & (frame.model_a != frame.model_b)]
    first, second = _orient(frame.model_a.to_numpy(object), frame.model_b.to_numpy(object), baseline)
    a_first = first == frame.model_a.to_numpy(object)
    winner = frame.winner.to_numpy(object)
    share = np.where(winner == "tie", 0.5, ((winner == "model_a") == a_first).astype(float))
    rows = pd.DataFrame({"question_id": frame.question_id.astype(str).to_numpy(), "first": first, "second": second,
                         "points": share * frame.weight.to_numpy(), "weight": frame.weight.to_numpy()})
    grouped = rows.groupby(["question_id", "first", "second"], sort=True)[["points", "weight"]].sum().reset_index()
    grouped["judge"] = grouped.points / grouped.weight
    return grouped[["question_id", "first", "second", "judge", "weight"]]


def labelled_pairs(labels: Sequence[HumanLabel], pairs: pd.DataFrame, baseline: str
                   ) -> tuple[pd.DataFrame, list[HumanLabel]]:
    """The labels matched to judged pairs, one row per pair (question_id, first, second, human: the mean of its
    annotators' points for `first`, annotators), and the labels whose pair no judge judged."""
    known = set(zip(pairs.question_id.tolist(), pairs["first"].tolist(), pairs.second.tolist()))
    points: dict[tuple[str, str, str], list[float]] = {}
    unmatched = []
    for label in labels:
        a, b = str(label.model_a), str(label.model_b)
        a_first = a != baseline and (b == baseline or a < b)
        key = (str(label.question_id), a, b) if a_first else (str(label.question_id), b, a)
        if key not in known:
            unmatched.append(label)
            continue
        won = {"tie": 0.5, "model_a": 1.0, "model_b": 0.0}[label.winner]
        points.setdefault(key, []).append(won if a_first else 1.0 - won)
    rows = [(*key, float(np.mean(v)), len(v)) for key, v in sorted(points.items())]
    return pd.DataFrame(rows, columns=["question_id", "first", "second", "human", "annotators"]), unmatched


def check_labels(labels: Sequence[HumanLabel], questions: Iterable[str], path: str, question_set: str = "") -> None:
    """Refuse a label file written for another question set: not one of its labels names a question of this set.
    The error names the file's first label line."""
    ids = {str(q) for q in questions}
    if labels and not any(str(label.question_id) in ids for label in labels):
        first = labels[0]
        where = first.source or path
        name = f" {question_set}" if question_set else ""
        raise ConfigError(f"{where}: question {first.question_id!r} is not in the question set{name}, and neither is "
                          f"any other of the {len(labels)} labels' questions: {path} looks like the labels of another "
                          "question set; give the labels written for this run's questions")


def describe(label: HumanLabel) -> str:
    text = f"{label.question_id}: {label.model_a} vs {label.model_b}"
    return f"{label.source} ({text})" if label.source else text


# --- the fit ---------------------------------------------------------------------------------------------

def calibrate(battles: pd.DataFrame, labels: Sequence[HumanLabel], baseline: str, *, lam: float | None = None,
              min_labels: int = MIN_LABELS, source: str = "labels") -> CalibrationResult:
    """The prediction-powered Bradley-Terry fit of `battles` (the rated judges' battles: question_id, model_a,
    model_b, winner, weight) corrected by the human `labels`, anchored at `baseline` (θ = 0).

    `lam` None tunes the judge's weight for the smallest total variance over the calibrated models (PPI++);
    0 gives the labels-only estimate, 1 plain PPI. Raises ConfigError naming `source` when no model has
    `min_labels` labelled judged pairs.
    """
    pairs = judged_pairs(battles, baseline)
    if pairs.empty:
        raise ConfigError(f"{source}: there are no judged pairs to calibrate; run the judge first")
    labelled, unmatched = labelled_pairs(labels, pairs, baseline)
    models = tuple(sorted(set(pairs["first"]) | set(pairs.second) | {baseline}))
    free = [m for m in models if m != baseline]
    counts = {m: int(((labelled["first"] == m) | (labelled.second == m)).sum()) for m in models}
    calibrated = [m for m in free if counts[m] >= min_labels]
    unmatched_text = tuple(describe(x) for x in unmatched[:_EXAMPLES])
    if not calibrated:
        best = max(free, key=lambda m: counts[m]) if free else baseline
        more = f"; {len(unmatched)} label(s) name pairs no judge judged, e.g. {unmatched_text[0]}" if unmatched else ""
        raise ConfigError(f"{source}: calibration needs at least {min_labels} labelled judged pairs per contestant; "
                          f"the most any contestant has is {counts.get(best, 0)} ({best}){more}. Label more of "
                          "the judged pairs (`arena-eval agreement --target-width` says how many)")

    fit = _Fit(pairs, labelled, models, baseline, calibrated)
    # One BLAS thread, as the judge-only fit (solver._fit): these products are small, and a BLAS thread pool
    # spinning up on a busy machine took most of a second per product.
    with _blas_threads().limit(limits=1, user_api="blas"):
        if lam is None:
            # PPI++: plain PPI first, then the λ that minimises the calibrated models' total variance, then refit.
            theta1 = fit.point(1.0)
            lam = fit.best_lambda(theta1)
        theta = fit.point(lam)
        cov = fit.covariance(theta, lam)
    full_theta = np.zeros(len(models))
    full_cov = np.zeros((len(models), len(models)))
    keep = [models.index(m) for m in free]
    full_theta[keep] = theta
    full_cov[np.ix_(keep, keep)] = cov
    return CalibrationResult(
        models=models, baseline=baseline, theta=full_theta, cov=full_cov, lam=float(lam), labels=counts,
        judged_pairs=len(pairs), labelled_pairs=len(labelled), questions=int(pairs.question_id.nunique()),
        min_labels=min_labels, uncalibrated=tuple(m for m in free if m not in calibrated),
        unmatched=unmatched_text, unmatched_count=len(unmatched),
    )


def labels_needed(battles: pd.DataFrame, labels: Sequence[HumanLabel], baseline: str, target_width: float, *,
                  min_labels: int = MIN_LABELS, source: str = "labels") -> pd.DataFrame:
    """About how many labelled pairs each contestant needs for a calibrated 95 % interval `target_width` score
    points wide (high − low), from the labels so far (ppi_py's power analysis, `ppi_power`).

    Per contestant: the labels-only standard error now gives the classical sample size n0 the target needs
    (se ∝ 1/√n); the correlation ρ between the human and the judge's gradients on the labelled pairs gives the
    prediction-powered variance σ²·((1 − ρ²)/n + ρ²/M) with n labelled of its M judged pairs; `ppi_power` solves
    it for n with every judged pair already paid for. Columns: model, labels, judged_pairs, width (calibrated,
    now), judge_correlation, labels_needed (NaN when even every judged pair labelled would not reach the target:
    judge more questions), more (labels_needed − labels, at least 0).
    """
    result = calibrate(battles, labels, baseline, min_labels=min_labels, source=source)
    pairs = judged_pairs(battles, baseline)
    labelled, _ = labelled_pairs(labels, pairs, baseline)
    fit = _Fit(pairs, labelled, result.models, baseline, [m for m in result.models if m != baseline
                                                          and m not in result.uncalibrated])
    free = [m for m in result.models if m != baseline]
    theta = result.theta[[result.index(m) for m in free]]
    with _blas_threads().limit(limits=1, user_api="blas"):
        classical = fit.covariance(theta, 0.0)
        _, g, ghat, _, h_lab = fit._pieces(theta)
        inv = np.linalg.inv(fit._hessian(h_lab, h_lab, 0.0))
    human, judge = g @ inv.T, ghat @ inv.T
    table = result.table().set_index("model")
    ppi_power = _ppi().ppi_power
    rows = []
    for k, m in enumerate(free):
        n_now = result.labels.get(m, 0)
        judged = int(((pairs["first"] == m) | (pairs.second == m)).sum())
        width = table.loc[m, "calibrated_ci_high"] - table.loc[m, "calibrated_ci_low"]
        if m in result.uncalibrated:
            rows.append((m, n_now, judged, width, math.nan, math.nan))
            continue
        seen = np.abs(human[:, k]) + np.abs(judge[:, k]) > 0
        rho = float(np.corrcoef(human[seen, k], judge[seen, k])[0, 1]) if seen.sum() > 2 else 0.0
        rho = float(np.clip(np.nan_to_num(rho), -(1 - 1 / max(n_now, 2)), 1 - 1 / max(n_now, 2)))
        p = float(_sigmoid(_LN10 * result.theta[result.index(m)]))
        se_target = target_width / (2 * Z95 * 100.0 * _LN10 * p * (1 - p))
        n0 = n_now * classical[k, k] / se_target**2
        if n0 > judged:
            needed = math.nan
        else:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                plan = ppi_power(rho, cost_X=0.0, cost_Y=1.0, cost_Yhat=1e-6, effective_n=max(n0, 1.0),
                                 n_max=judged)
            needed = float(min(max(plan["n"], min_labels), judged))
        rows.append((m, n_now, judged, width, rho, needed))
    frame = pd.DataFrame(rows, columns=["model", "labels", "judged_pairs", "width", "judge_correlation",
                                        "labels_needed"])
    frame["more"] = (frame.labels_needed - frame.labels).clip(lower=0)
    return frame


class _Fit:
    """The design of one calibration: every judged pair (the predictions) and the labelled ones (the truth)."""

    def __init__(self, pairs: pd.DataFrame, labelled: pd.DataFrame, models: tuple[str, ...], baseline: str,
                 calibrated: list[str]):
        free = [m for m in models if m != baseline]
        self.column = {m: i for i, m in enumerate(free)}
        self.calibrated = np.array([self.column[m] for m in calibrated])
        self.d = len(free)
        self.x_all = self._design(pairs["first"], pairs.second)
        self.yhat_all = pairs.judge.to_numpy(dtype=float)
        key = pd.MultiIndex.from_frame(pairs[["question_id", "first", "second"]])
        where = key.get_indexer(pd.MultiIndex.from_frame(labelled[["question_id", "first", "second"]]))
        self.x_lab = self.x_all[where]
        self.yhat_lab = self.yhat_all[where]
        self.y_lab = labelled.human.to_numpy(dtype=float)
        cluster, questions = pd.factorize(pairs.question_id, sort=True)
        self.cluster_all = cluster
        self.cluster_lab = cluster[where]
        self.clusters = len(questions)
        # The keel: a tie against the baseline per contestant, weighted by its judged pairs × _KEEL.
        own = np.abs(self.x_all).sum(0) / _LN10
        self.keel_x = np.diag(np.full(self.d, _LN10))
        self.keel_w = _KEEL * np.maximum(own, 1.0)

    def _design(self, first: pd.Series, second: pd.Series) -> np.ndarray:
        x = np.zeros((len(first), self.d))
        rows = np.arange(len(first))
        for names, sign in ((first, 1.0), (second, -1.0)):
            cols = np.array([self.column.get(m, -1) for m in names], dtype=int)
            hit = cols >= 0
            x[rows[hit], cols[hit]] = sign * _LN10
        return x

    def point(self, lam: float) -> np.ndarray:
        """ppi_py's prediction-powered logistic point estimate at power-tuning `lam`."""
        ppi_logistic_pointestimate = _ppi().ppi_logistic_pointestimate
        n, N = len(self.y_lab), len(self.yhat_all)
        # ppi_py's starting fit (scikit-learn) takes 0/1 outcomes: a fractional truth y (ties, several annotators)
        # is two rows, y = 1 with weight y and y = 0 with weight 1 − y; the loss is linear in y, so the objective
        # is the same. Every other labelled pair is turned around (x, y, ŷ → −x, 1 − y, 1 − ŷ: the same pair) so
        # that both outcomes occur. The keel's ties go into both sets.
        flip = np.where(np.arange(n) % 2 == 1, -1.0, 1.0)
        x = np.vstack([self.x_lab * flip[:, None], self.keel_x])
        y = np.concatenate([np.where(flip > 0, self.y_lab, 1.0 - self.y_lab), np.full(self.d, 0.5)])
        yhat = np.concatenate([np.where(flip > 0, self.yhat_lab, 1.0 - self.yhat_lab), np.full(self.d, 0.5)])
        w = np.concatenate([np.ones(n), self.keel_w * n / N])
        xs, ys, yhats, ws = (np.vstack([x, x]), np.concatenate([np.ones(len(y)), np.zeros(len(y))]),
                             np.concatenate([yhat, yhat]), np.concatenate([w * y, w * (1.0 - y)]))
        keep = ws > 0
        lab_x, lab_y, lab_yhat, lab_w = _merge_rows(xs[keep], ws[keep], ys[keep], yhats[keep])
        unl_x, unl_yhat, unl_w = _merge_rows(np.vstack([self.x_all, self.keel_x]),
                                             np.concatenate([np.ones(N), self.keel_w]),
                                             np.concatenate([self.yhat_all, np.full(self.d, 0.5)]))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # scikit-learn's starting fit on separated labels
            theta = ppi_logistic_pointestimate(lab_x, lab_y, lab_yhat, unl_x, unl_yhat, lam=float(lam), w=lab_w,
                                               w_unlabeled=unl_w)
        return np.asarray(theta, dtype=float).reshape(self.d)

    def _pieces(self, theta: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Per question: A (the judge's gradient over all its pairs, ×C/N), L (the human gradient over its
        labelled pairs, ×C/n), Lhat (the judge's over the same, ×C/n); and the Hessians of both sets."""
        n, N, C = len(self.y_lab), len(self.yhat_all), self.clusters
        mu_all = _sigmoid(self.x_all @ theta)
        mu_lab = _sigmoid(self.x_lab @ theta)
        a = _sum_by(self.cluster_all, self.x_all * (mu_all - self.yhat_all)[:, None], C) * (C / N)
        g = _sum_by(self.cluster_lab, self.x_lab * (mu_lab - self.y_lab)[:, None], C) * (C / n)
        ghat = _sum_by(self.cluster_lab, self.x_lab * (mu_lab - self.yhat_lab)[:, None], C) * (C / n)
        h_all = (self.x_all * (mu_all * (1 - mu_all))[:, None]).T @ self.x_all / N
        h_lab = (self.x_lab * (mu_lab * (1 - mu_lab))[:, None]).T @ self.x_lab / n
        return a, g, ghat, h_all, h_lab

    def _hessian(self, h_all: np.ndarray, h_lab: np.ndarray, lam: float) -> np.ndarray:
        h = lam * h_all + (1.0 - lam) * h_lab
        return h + np.diag(self.keel_w * _LN10**2 / 4.0 / len(self.yhat_all))

    def best_lambda(self, theta: np.ndarray) -> float:
        """ppi_py's power tuning (its `_calc_lam_glm`), for this design: the estimating function per question is
        φ(λ) = g + λ·(A − ĝ); λ minimises the trace of H⁻¹ Cov(φ) H⁻¹ over the calibrated models, in [0, 1]."""
        a, g, ghat, h_all, h_lab = self._pieces(theta)
        inv = np.linalg.inv(self._hessian(h_all, h_lab, 1.0))[self.calibrated]
        b = a - ghat
        cross = _cov(g, b)
        num = -np.trace(inv @ (cross + cross.T) @ inv.T)
        den = 2.0 * np.trace(inv @ _cov(b, b) @ inv.T)
        if not den > 0:
            return 1.0
        return float(np.clip(num / den, 0.0, 1.0))

    def covariance(self, theta: np.ndarray, lam: float) -> np.ndarray:
        """H⁻¹ Cov(φ) H⁻¹ / C: the sandwich of ppi_py's logistic interval, with questions as the independent
        units and the labelled pairs a subsample of the judged ones (their shared gradient counted once)."""
        a, g, ghat, h_all, h_lab = self._pieces(theta)
        phi = g + lam * (a - ghat)
        inv = np.linalg.inv(self._hessian(h_all, h_lab, lam))
        return inv @ _cov(phi, phi) @ inv.T / self.clusters


# --- helpers ---------------------------------------------------------------------------------------------

def _ppi():
    """ppi_py, imported with numba's compiler off when this process has not imported it yet: the kernels of it that
    calibration calls are numpy one-liners (`safe_expit`), and compiling them took 1.5 s on a quiet machine and 11 s
    on a loaded one, each process; its compiled loops (`_logistic_get_stats`) are not called (§3.4.7)."""
    import sys

    if "ppi_py" in sys.modules:
        return sys.modules["ppi_py"]
    try:
        import numba
    except ImportError:
        raise ConfigError(f"calibration with human labels needs the ppi-python package: {INSTALL}") from None
    compiling = numba.config.DISABLE_JIT
    numba.config.DISABLE_JIT = True  # read by @njit when ppi_py's functions are defined, on import
    try:
        import ppi_py
    except ImportError:
        raise ConfigError(f"calibration with human labels needs the ppi-python package: {INSTALL}") from None
    finally:
        numba.config.DISABLE_JIT = compiling
    return ppi_py


def _merge_rows(x: np.ndarray, w: np.ndarray, *values: np.ndarray) -> tuple[np.ndarray, ...]:
    """Identical rows (x and values) merged into one with their summed weight: ppi_py's objective is a weighted mean
    within each set, so it is unchanged, and the optimiser passes over a few hundred rows instead of every pair."""
    table = np.ascontiguousarray(np.column_stack([x, *values]) + 0.0)  # + 0.0: no -0.0 beside 0.0
    rows = table.view(np.dtype((np.void, table.dtype.itemsize * table.shape[1]))).ravel()
    _, first, inverse = np.unique(rows, return_index=True, return_inverse=True)
    unique = table[first]
    weight = np.bincount(inverse.ravel(), weights=w, minlength=len(unique))
    columns = [unique[:, : x.shape[1]]] + [unique[:, x.shape[1] + i] for i in range(len(values))]
    return (*columns, weight)


def _orient(a: np.ndarray, b: np.ndarray, baseline: str) -> tuple[np.ndarray, np.ndarray]:
    a_first = np.where(a == baseline, False, (b == baseline) | (a.astype(str) < b.astype(str)))
    return np.where(a_first, a, b), np.where(a_first, b, a)


def _sum_by(cluster: np.ndarray, values: np.ndarray, clusters: int) -> np.ndarray:
    return np.column_stack([np.bincount(cluster, weights=values[:, k], minlength=clusters)
                            for k in range(values.shape[1])]).reshape(clusters, values.shape[1])


def _cov(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    uc, vc = u - u.mean(0), v - v.mean(0)
    return uc.T @ vc / max(len(u) - 1, 1)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return np.exp(-np.logaddexp(0.0, -x))


def _score(theta: np.ndarray) -> np.ndarray:
    return 100.0 * _sigmoid(_LN10 * np.asarray(theta, dtype=float))
