"""The HTML report: one self-contained file (no network, no CDN) written beside the leaderboard.

Charts are inline SVG computed here; the only script is a small filter for the per-question view, allowed by
its hash in the page's Content-Security-Policy, so no other script can run even if some text escaped the
escaping. Every model-produced text goes through Jinja2's autoescape.
"""

from __future__ import annotations

import base64
import hashlib
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
from jinja2 import FileSystemLoader, select_autoescape
from jinja2.sandbox import SandboxedEnvironment

from .records import LeaderboardRow
from .report_data import ReportData

_HERE = Path(__file__).parent
_ENV = SandboxedEnvironment(loader=FileSystemLoader(_HERE / "report_templates"),
                            autoescape=select_autoescape(default=True, default_for_string=True))

# Scatter plot geometry (SVG user units).
_W, _H, _PAD_L, _PAD_R, _PAD_T, _PAD_B = 720, 420, 64, 24, 20, 52


def write_report(data: ReportData, path: Path) -> Path:
    """Render report.html from `data` (a scored run) into `path`, atomically."""
    html = render_report(data)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(html, encoding="utf-8")
    tmp.replace(path)
    return path


def render_report(data: ReportData) -> str:
    script = (_HERE / "report_templates" / "report.js").read_text(encoding="utf-8")
    digest = base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()
    board = data.leaderboard
    rows = _leaderboard_rows(board.rows)
    pairwise = _pairwise(rows, data.pairwise, data.pairwise_note)
    context = {
        "title": data.title,
        "generated": data.generated,
        "run_id": data.run_id,
        "baseline": data.baseline,
        "category_baselines": data.category_baselines,
        "judge": data.judge,
        "n_questions": len(data.categories),
        "rows": rows,
        "pairwise": pairwise,
        "estimate_note": estimate_note(rows),
        "scatters": _scatters(rows),
        "categories": _category_scores(board.battles, data.categories, data.contestants),
        "diagnostics": _diagnostics(board.rows, board.diagnostics, data.contestants, data.baseline, board.rated_games),
        **_judges(board, data.rated),
        "benchmark": _benchmark(board, data),
        "calibration": _calibration(board),
        "regressions": data.regressions,
        "changes": data.changes,
        "summary": data.summary,
        "questions": data.questions,
        "contestants": data.contestants,
        "script": script,
        "script_hash": digest,
    }
    return _ENV.get_template("report.html.j2").render(**context)


# --- leaderboard ------------------------------------------------------------------------------------------

def _calibration(board) -> dict[str, Any] | None:
    """The judge-only and the calibrated score of each contestant side by side (§3.4.7), with the sentences where
    their intervals do not overlap; None when the run is not calibrated."""
    result = board.calibration
    if result is None:
        return None
    rows = [{"model": r.model, "score": r.score, "ci_low": r.ci_low, "ci_high": r.ci_high,
             "calibrated_score": r.calibrated_score, "calibrated_ci_low": r.calibrated_ci_low,
             "calibrated_ci_high": r.calibrated_ci_high, "labels": r.labels} for r in board.rows]
    return {"rows": rows, "bias": board.judge_bias, "lam": result.lam, "labelled": result.labelled_pairs,
            "judged": result.judged_pairs, "unmatched": result.unmatched_count}




def _num(value: Any) -> float | None:
    if value is None or isinstance(value, (str, dict, list, bool)):
        return None
    value = float(value)
    return None if math.isnan(value) else value


def _leaderboard_rows(rows: list[LeaderboardRow]) -> list[dict[str, Any]]:
    out = []
    for r in rows:
        score, low, high = _num(r.score), _num(r.ci_low), _num(r.ci_high)
        out.append({
            "model": r.model,
            "score": score, "ci_low": low, "ci_high": high, "elo": _num(r.elo),
            "battles": _num(r.battles), "unparsed_rate": _num(r.unparsed_rate),
            "avg_output_tokens": _num(r.avg_output_tokens),
            "wh_per_pass": _num(r.wh_per_pass), "co2_g_per_pass": _num(r.co2_g_per_pass),
            "latency_p50_s": _num(r.latency_p50_s), "throughput_tokens_per_s": _num(r.throughput_tokens_per_s),
            "mfu": _num(r.mfu), "peak_memory_gb": _num(r.peak_memory_gb), "memory_source": r.memory_source,
            "cost": _num(r.answer_cost), "method": r.method,
            "is_estimated": r.is_estimated, "pareto": bool(r.pareto), "is_baseline": bool(r.is_baseline),
            "rank": _rank_text(r.rank, r.rank_low, r.rank_high), "tied_with_best": bool(r.tied_with_best),
            # CI bar on a 0-100 axis, as percentages of the cell's width
            "bar": None if score is None else {"low": low if low is not None else score,
                                               "high": high if high is not None else score, "score": score},
        })
    return out


# How far EcoLogits' estimates are from measurement: docs/energy-estimates.md (bench/estimates_vs_measured.py
# against the ML.ENERGY leaderboard's GPU energy, commit 7885788e; geometric means over the H100 configurations).
ESTIMATE_NOTE = ("API models' energy is EcoLogits' estimate, which for open models runs about 2.6× above the GPU "
                 "energy measured on H100 servers at batch size 64 and about 5× at 256 (ML.ENERGY leaderboard): an "
                 "estimate a few times a measured figure does not show that the model uses more energy.")


def estimate_note(rows: list[dict[str, Any]]) -> str | None:
    """The note on how far EcoLogits' estimates run from measurement, when some row's energy is one."""
    # a row's method lists every method of its windows, comma-separated ("ecologits", "codecarbon,nvml")
    return ESTIMATE_NOTE if any("ecologits" in (r.get("method") or "").split(",") for r in rows) else None


def _rank_text(rank: Any, low: Any, high: Any) -> str:
    rank, low, high = _num(rank), _num(low), _num(high)
    if rank is None:
        return "–"
    return f"{rank:g}" if low is None or high is None else f"{rank:g} ({low:g}–{high:g})"


# --- pairwise comparisons ------------------------------------------------------------------------------------

MATRIX_LIMIT = 30  # contestants; more and the matrix is left out (`arena-eval compare --all` prints every pair)
ALPHA = 0.05


def _pairwise(rows: list[dict[str, Any]], table: pd.DataFrame | None, note: str | None) -> dict[str, Any]:
    """The pairwise matrix (row − column, in rank order) and, on the leaderboard's rows, where a tied group ends:
    after a row whose paired difference with the next rated row is significant (Holm over every pair)."""
    models = list(dict.fromkeys(r["model"] for r in rows if r["score"] is not None))
    if table is None:
        return {"note": note}
    cells: dict[tuple[str, str], dict[str, Any]] = {}
    for t in table.itertuples(index=False):
        significant = bool(t.p_holm < ALPHA)
        cells[(t.a, t.b)] = {"diff": t.difference, "low": _num(t.ci_low), "high": _num(t.ci_high),
                             "p": _num(t.p_holm), "significant": significant}
        cells[(t.b, t.a)] = {"diff": -t.difference, "low": None if _num(t.ci_high) is None else -t.ci_high,
                             "high": None if _num(t.ci_low) is None else -t.ci_low, "p": _num(t.p_holm),
                             "significant": significant}
    following = dict(zip(models, models[1:]))
    for r in rows:
        after = following.get(r["model"])
        r["group_ends"] = after is not None and cells.get((r["model"], after), {}).get("significant", False)
    if len(models) > MATRIX_LIMIT:
        return {"omitted": len(models), "limit": MATRIX_LIMIT}
    return {"models": models, "alpha": ALPHA,
            "cells": [[cells.get((a, b)) for b in models] for a in models]}


# --- quality vs energy scatter -------------------------------------------------------------------------------


@dataclass
class _Point:
    model: str
    x: float
    y: float
    y_low: float
    y_high: float
    pareto: bool
    estimated: bool


# The scatter's x-axes (the report switches between them): key, axis title, unit in a tooltip, whether lower is
# better, whether the figure is estimated when the row's energy is.
_AXES = [
    ("wh_per_pass", "Wh per benchmark pass", "Wh/pass", True),
    ("latency_p50_s", "median latency per request (s)", "s median latency", True),
    ("throughput_tokens_per_s", "delivered throughput (output tokens/s)", "tokens/s", False),
]


def _scatters(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Score against each x-axis of _AXES that some contestant has a figure for (energy always, to say so)."""
    out = []
    for key, title, unit, lower in _AXES:
        if key != "wh_per_pass" and not any(r[key] for r in rows):
            continue
        out.append({**_scatter(rows, key, lower), "key": key, "title": title, "unit": unit, "lower": lower})
    return out


def _pareto(points: list[_Point], lower: bool) -> set[str]:
    """The models no other point beats on both axes: a score at least as high and an x at least as good, one of
    them strictly (for energy this is the leaderboard's own front)."""
    def better_x(a: float, b: float) -> bool:
        return a <= b if lower else a >= b

    front = set()
    for p in points:
        if not any(q is not p and q.y >= p.y and better_x(q.x, p.x) and (q.y > p.y or q.x != p.x) for q in points):
            front.add(p.model)
    return front


def _scatter(rows: list[dict[str, Any]], key: str = "wh_per_pass", lower: bool = True) -> dict[str, Any]:
    points, missing = [], []
    for r in rows:
        if r[key] is None or r[key] <= 0 or r["score"] is None:
            missing.append(r["model"])
            continue
        points.append(_Point(r["model"], r[key], r["score"], r["bar"]["low"], r["bar"]["high"], r["pareto"],
                             bool(r["is_estimated"]) if key == "wh_per_pass" else False))
    if key != "wh_per_pass":
        front = _pareto(points, lower)
        for p in points:
            p.pareto = p.model in front
    if not points:
        return {"points": [], "missing": missing}
    xs = [p.x for p in points]
    log = max(xs) / min(xs) > 20
    fx = math.log10 if log else (lambda v: v)
    x_lo, x_hi = fx(min(xs)), fx(max(xs))
    if x_hi - x_lo < 1e-12:
        x_lo, x_hi = x_lo - (abs(x_lo) * 0.1 or 0.5), x_hi + (abs(x_hi) * 0.1 or 0.5)
    span = x_hi - x_lo
    x_lo, x_hi = x_lo - 0.08 * span, x_hi + 0.08 * span
    if not log:
        x_lo = max(x_lo, 0.0)
    y_lo = max(0.0, math.floor(min(p.y_low for p in points) / 10) * 10)
    y_hi = min(100.0, math.ceil(max(p.y_high for p in points) / 10) * 10)
    if y_hi - y_lo < 10:
        y_lo, y_hi = max(0.0, y_lo - 5), min(100.0, y_hi + 5)

    def sx(v: float) -> float:
        return _PAD_L + (fx(v) - x_lo) / (x_hi - x_lo) * (_W - _PAD_L - _PAD_R)

    def sy(v: float) -> float:
        return _PAD_T + (y_hi - v) / (y_hi - y_lo) * (_H - _PAD_T - _PAD_B)

    drawn = [{"model": p.model, "cx": sx(p.x), "cy": sy(p.y), "y_low": sy(p.y_low), "y_high": sy(p.y_high),
              "pareto": p.pareto, "estimated": p.estimated, "wh": p.x, "score": p.y} for p in points]
    # Labels: to the left of points in the right half (so they stay inside), alternately above and below the
    # point when points sit close together.
    middle = (_PAD_L + _W - _PAD_R) / 2
    for i, d in enumerate(sorted(drawn, key=lambda d: (d["cx"], d["cy"]))):
        right_half = d["cx"] > middle
        d["label_anchor"] = "end" if right_half else "start"
        d["label_x"] = d["cx"] - 8 if right_half else d["cx"] + 8
        d["label_y"] = d["cy"] - 8 if i % 2 == 0 else d["cy"] + 16
    front = sorted((d for d in drawn if d["pareto"]), key=lambda d: d["cx"])
    y_ticks = [{"y": sy(v), "label": f"{v:g}"} for v in _ticks(y_lo, y_hi, 5)]
    if log:
        x_ticks = [{"x": sx(10 ** e), "label": f"{10 ** e:g}"} for e in range(math.ceil(x_lo), math.floor(x_hi) + 1)]
    else:
        x_ticks = [{"x": sx(v), "label": f"{v:.3g}"} for v in _ticks(x_lo, x_hi, 5)]
    return {
        "points": drawn, "missing": missing, "log": log,
        "front": " ".join(f"{d['cx']:.1f},{d['cy']:.1f}" for d in front),
        "width": _W, "height": _H, "left": _PAD_L, "right": _W - _PAD_R, "top": _PAD_T, "bottom": _H - _PAD_B,
        "x_ticks": x_ticks, "y_ticks": y_ticks,
    }


def _ticks(lo: float, hi: float, n: int) -> list[float]:
    raw = (hi - lo) / max(n, 1)
    if raw <= 0:
        return [lo]
    step = 10 ** math.floor(math.log10(raw))
    for m in (1, 2, 5, 10):
        if raw <= m * step:
            step *= m
            break
    first = math.ceil(lo / step) * step
    return [round(first + i * step, 10) for i in range(int((hi - first) / step) + 1)]


# --- per category ---------------------------------------------------------------------------------------------


def _category_scores(battles: pd.DataFrame, categories: dict[str, str | None], contestants: list[str]) -> dict[str, Any]:
    """Weighted win rate against the baseline per category: (wins + ½ ties) / battles, in 0-100 (rating.py).

    With every battle against the single baseline this is exactly what the Bradley-Terry score would be if it
    were fitted on that category's battles alone (docs/design.md §3.4.4)."""
    from .rating import weighted_win_rate  # here: scipy adds ~0.2 s to the start of every command otherwise

    if battles is None or battles.empty:
        return {"categories": [], "rows": []}
    frame = battles.assign(category=battles.question_id.map(lambda q: categories.get(q) or "(none)"))
    rates = weighted_win_rate(frame, by=["model", "category"])
    cats = sorted(frame.category.unique())
    rows = [{"model": model, "cells": [_num(rates.get((model, cat))) for cat in cats]} for model in contestants]
    counts = frame.groupby("category").question_id.nunique().to_dict()
    return {"categories": [{"name": c, "questions": counts.get(c, 0)} for c in cats], "rows": rows}


# --- the judges ------------------------------------------------------------------------------------------------


def _judges(board, rated: str) -> dict[str, Any]:
    """The judges' table (one row per judge and pooled) and, with several judges, each judge's own scores."""
    frame = board.judges
    if frame is None or frame.empty:
        return {"judges": [], "judge_names": [], "judge_concerns": [], "per_judge": {}, "rated": ""}
    names = [j for j in frame.judge if j != "pooled"]
    rows = []
    for r in frame.to_dict("records"):
        coef = r.get("length_coefficient")
        shown = ("+∞ (follows length)" if coef == float("inf") else "−∞ (follows shortness)" if coef == float("-inf")
                 else ("–" if _num(coef) is None else f"{coef:+.2f}"))
        rows.append({**{k: (_num(v) if k not in ("judge",) else v) for k, v in r.items()}, "length_coefficient": shown,
                     "kappas": {other: _num(r.get(f"kappa_{other}")) for other in names}})
    per_judge = {name: {m: _num(s) for m, s in zip(scores.model, scores.score)} if "score" in scores else {}
                 for name, scores in board.per_judge.items()}
    return {"judges": rows, "judge_names": names if len(names) > 1 else [], "judge_concerns": board.judge_concerns,
            "per_judge": per_judge, "rated": rated}


# --- the benchmark ------------------------------------------------------------------------------------------

LEAST_USEFUL_SHOWN = 10


def _benchmark(board, data: ReportData) -> dict[str, Any]:
    """Separability of this run's scores, adaptive judging's account, and the least useful questions."""
    from .quality import fully_judged, outcome_disagreement, question_diagnostics, separability

    scored = [r for r in board.rows if _num(r.ci_low) is not None and _num(r.ci_high) is not None]
    n = len(scored)
    out: dict[str, Any] = {"pairs": n * (n - 1) // 2, "adaptive": data.summary.adaptive, "questions": [],
                           "partly_judged": 0}
    if n >= 2:
        share = separability([r.ci_low for r in scored], [r.ci_high for r in scored])
        out.update(separability=share, separated=round(share * out["pairs"]))
    battles, out["partly_judged"] = fully_judged(board.battles)
    if not battles.empty and len(data.contestants) >= 1:
        anchors = {q.id: i for i, q in enumerate(data.questions, start=1)}
        frame = question_diagnostics(battles, outcome_disagreement(battles), data.baseline)
        out["questions"] = [{**{k: (_num(v) if k not in ("question_id", "contestants") else v)
                                for k, v in row.items()}, "anchor": anchors.get(row["question_id"])}
                            for row in frame.head(LEAST_USEFUL_SHOWN).to_dict("records")]
    return out


# --- judge diagnostics -------------------------------------------------------------------------------------


def _diagnostics(rows: list[LeaderboardRow], diagnostics: pd.DataFrame, contestants: list[str],
                 baseline: str, rated_games: tuple[int, int] | None = None) -> list[dict[str, Any]]:
    per_model = {r["model"]: r for r in diagnostics.to_dict("records")} if diagnostics is not None else {}
    unparsed = {r.model: _num(r.unparsed_rate) for r in rows}
    games = {r.model: r.games for r in rows}
    out = []
    for name in contestants + ["*"]:
        d = per_model.get(name, {})
        if name == "*":
            total = sum(_num(games.get(m)) or 0 for m in games if m != baseline)
            bad = sum((unparsed.get(m) or 0) * (_num(games.get(m)) or 0) for m in games if m != baseline)
            rate = bad / total if total else None
            if rated_games is not None and total:  # (a game between two contestants is in both of their rows)
                total, rate = rated_games[0], rated_games[1] / rated_games[0] if rated_games[0] else None
        else:
            rate = unparsed.get(name)
        first = _num(d.get("first_position_win_rate"))
        out.append({"model": "all contestants" if name == "*" else name, "games": games.get(name) if name != "*" else total,
                    "unparsed_rate": rate, "consistency": _num(d.get("consistency")), "first_position_win_rate": first,
                    "suspicious_rate": _num(d.get("suspicious_rate")),
                    "biased": first is not None and abs(first - 0.5) > 0.2})
    return out
