"""The HTML report: one self-contained file (no network, no CDN) written beside the leaderboard.

Charts are inline SVG computed here; the only script is a small filter for the per-question view, allowed by
its hash in the page's Content-Security-Policy, so no other script can run even if some text escaped the
escaping. Every model-produced text goes through Jinja2's autoescape.
"""

from __future__ import annotations

import base64
import hashlib
import math
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
from jinja2 import FileSystemLoader, select_autoescape
from jinja2.sandbox import SandboxedEnvironment

from .store import Store

if TYPE_CHECKING:
    from .pipeline import Arena, Result

_HERE = Path(__file__).parent
_ENV = SandboxedEnvironment(loader=FileSystemLoader(_HERE / "report_templates"),
                            autoescape=select_autoescape(default=True, default_for_string=True))

# Scatter plot geometry (SVG user units).
_W, _H, _PAD_L, _PAD_R, _PAD_T, _PAD_B = 720, 420, 64, 24, 20, 52


def write_report(arena: "Arena", store: Store, result: "Result", path: Path | None = None) -> Path:
    """Render report.html for `result` (a scored run) into the output folder, atomically."""
    path = path or arena.config.output_dir / "report.html"
    html = render_report(arena, store, result)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(html, encoding="utf-8")
    tmp.replace(path)
    return path


def render_report(arena: "Arena", store: Store, result: "Result") -> str:
    board = result.leaderboard
    script = (_HERE / "report_templates" / "report.js").read_text(encoding="utf-8")
    digest = base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()
    context = {
        "title": arena.config.name,
        "generated": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "run_id": result.run_id,
        "baseline": arena.baseline.name,
        "judge": f"{arena.config.judge.provider}:{arena.config.judge.model or Path(arena.config.judge.model_path or '').name}",
        "n_questions": len(arena.questions),
        "rows": _leaderboard_rows(board),
        "scatter": _scatter(board),
        "categories": _category_scores(result.battles, arena),
        "diagnostics": _diagnostics(board, result, arena),
        "regressions": [] if result.regressions is None else result.regressions.to_dict("records"),
        "summary": result.summary,
        "questions": _question_view(arena, store),
        "contestants": [c.name for c in arena.contestants[1:]],
        "script": script,
        "script_hash": digest,
    }
    return _ENV.get_template("report.html.j2").render(**context)


# --- leaderboard ------------------------------------------------------------------------------------------


def _num(value: Any) -> float | None:
    if value is None or isinstance(value, (str, dict, list)):
        return None
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(value) else value


def _leaderboard_rows(board: pd.DataFrame) -> list[dict[str, Any]]:
    rows = []
    for r in board.to_dict("records"):
        score, low, high = _num(r.get("score")), _num(r.get("ci_low")), _num(r.get("ci_high"))
        rows.append({
            "model": r["model"],
            "score": score, "ci_low": low, "ci_high": high, "elo": _num(r.get("elo")),
            "battles": _num(r.get("battles")), "unparsed_rate": _num(r.get("unparsed_rate")),
            "avg_output_tokens": _num(r.get("avg_output_tokens")),
            "wh_per_pass": _num(r.get("wh_per_pass")), "co2_g_per_pass": _num(r.get("co2_g_per_pass")),
            "cost": _num(r.get("answer_cost")), "method": r.get("method") if isinstance(r.get("method"), str) else None,
            "is_estimated": r.get("is_estimated") if isinstance(r.get("is_estimated"), bool) else None,
            "pareto": bool(r.get("pareto")) if r.get("pareto") is not None and not pd.isna(r.get("pareto")) else False,
            "is_baseline": bool(r.get("is_baseline")),
            # CI bar on a 0-100 axis, as percentages of the cell's width
            "bar": None if score is None else {"low": low if low is not None else score,
                                               "high": high if high is not None else score, "score": score},
        })
    return rows


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


def _scatter(board: pd.DataFrame) -> dict[str, Any]:
    points, missing = [], []
    for r in _leaderboard_rows(board):
        if r["wh_per_pass"] is None or r["wh_per_pass"] <= 0 or r["score"] is None:
            missing.append(r["model"])
            continue
        points.append(_Point(r["model"], r["wh_per_pass"], r["score"], r["bar"]["low"], r["bar"]["high"], r["pareto"],
                             bool(r["is_estimated"])))
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


def _category_scores(battles: pd.DataFrame | None, arena: "Arena") -> dict[str, Any]:
    """Weighted win rate against the baseline per category: (wins + ½ ties) / battles, in 0-100.

    With every battle against the single baseline this is exactly what the Bradley-Terry score would be if it
    were fitted on that category's battles alone (DESIGN §3.4)."""
    category = {q.question_id: q.category or "(none)" for q in arena.questions}
    if battles is None or battles.empty:
        return {"categories": [], "rows": []}
    frame = battles.assign(category=battles.question_id.map(category))
    frame["won"] = frame.weight * ((frame.winner == "model_b") + 0.5 * (frame.winner == "tie"))
    sums = frame.groupby(["model_b", "category"])[["won", "weight"]].sum()
    categories = sorted(frame.category.unique())
    rows = []
    for model in [c.name for c in arena.contestants[1:]]:
        cells = []
        for cat in categories:
            if (model, cat) in sums.index and sums.loc[(model, cat), "weight"] > 0:
                won, weight = sums.loc[(model, cat)]
                cells.append(100.0 * won / weight)
            else:
                cells.append(None)
        rows.append({"model": model, "cells": cells})
    counts = frame.groupby("category").question_id.nunique().to_dict()
    return {"categories": [{"name": c, "questions": counts.get(c, 0)} for c in categories], "rows": rows}


# --- judge diagnostics -------------------------------------------------------------------------------------


def _diagnostics(board: pd.DataFrame, result: "Result", arena: "Arena") -> list[dict[str, Any]]:
    per_model = {}
    if result.diagnostics is not None:
        per_model = {r["model"]: r for r in result.diagnostics.to_dict("records")}
    unparsed = dict(zip(board.model, board.get("unparsed_rate", pd.Series(dtype=float))))
    games = dict(zip(board.model, board.get("games", pd.Series(dtype=float))))
    rows = []
    for name in [c.name for c in arena.contestants[1:]] + ["*"]:
        d = per_model.get(name, {})
        if name == "*":
            total = sum(_num(games.get(m)) or 0 for m in games if m != arena.baseline.name)
            bad = sum((_num(unparsed.get(m)) or 0) * (_num(games.get(m)) or 0) for m in games if m != arena.baseline.name)
            rate = bad / total if total else None
        else:
            rate = _num(unparsed.get(name))
        first = _num(d.get("first_position_win_rate"))
        rows.append({"model": "all contestants" if name == "*" else name, "games": games.get(name) if name != "*" else total,
                     "unparsed_rate": rate, "consistency": _num(d.get("consistency")), "first_position_win_rate": first,
                     "suspicious_rate": _num(d.get("suspicious_rate")),
                     "biased": first is not None and abs(first - 0.5) > 0.2})
    return rows


# --- per-question view ----------------------------------------------------------------------------------------


def _question_view(arena: "Arena", store: Store) -> list[dict[str, Any]]:
    """Each question with the baseline's answer and, per contestant, its answer and both games' judgments."""
    from .pipeline import current_answer_ids

    augmenter = arena.augmenter(store)
    ids = {c.name: current_answer_ids(c, arena.questions, store, augmenter) for c in arena.contestants}
    judgments = defaultdict(dict)
    for j in store.judgments(arena.judge_config_id):
        judgments[(j.answer_a_id, j.answer_b_id)] = j
    out = []
    base = arena.baseline.name

    def text(answer_id: str | None) -> str | None:
        if answer_id is None:
            return None
        answer = store.get_answer(answer_id)
        return answer.text if answer else None

    for q in arena.questions:
        base_id = ids[base].get(q.question_id)
        entry = {"id": q.question_id, "category": q.category, "prompt": q.prompt, "baseline_answer": text(base_id),
                 "contestants": []}
        for c in arena.contestants[1:]:
            aid = ids[c.name].get(q.question_id)
            games = []
            for number, key in ((1, (base_id, aid)), (2, (aid, base_id))):
                j = judgments.get(key) if aid and base_id else None
                games.append({"number": number, "verdict": j.verdict if j else None,
                              "judged": j is not None, "reasoning": j.judge_text if j else None,
                              "outcome": _outcome(j.verdict, number) if j and j.verdict else None})
            entry["contestants"].append({"name": c.name, "answer": text(aid), "games": games})
        out.append(entry)
    return out


def _outcome(verdict: str, game: int) -> str:
    """The verdict read from the contestant's side (in game 1 it sits in position B)."""
    if "=" in verdict:
        return "tie"
    contestant_won = (verdict[0] == "B") if game == 1 else (verdict[0] == "A")
    strength = "clearly " if ">>" in verdict else ""
    return f"{strength}{'better' if contestant_won else 'worse'}"
