"""How far the judges and the benchmark can be trusted: `judges`, `agreement`, `quality`, `prune`
(docs/quality.md)."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from ..console import echo, err
from ..errors import ArenaError
from .common import ConfigOption, Format, FormatOption, RatingDefaultsHelp, app, fail, load, rating_default


@app.command()
def judges(
    config: Path | None = ConfigOption,
    format: Format = FormatOption,
) -> None:
    """How far each judge can be trusted: position and length bias, agreement between judges, self-preference."""
    from ..pipeline import Arena
    from .render import print_frame

    try:
        frame, concerns = Arena(load(config)).judge_diagnostics()
    except ArenaError as exc:
        fail(exc)
    # The terminal gets the figures to read at a glance; JSON and CSV carry every column (agreement, counts).
    hidden = ("games_with_", "agreement_", "decisive_games", "length_games")
    shown = frame if format is not Format.table else frame[[c for c in frame.columns if not c.startswith(hidden)]]
    rates = tuple(c for c in frame.columns if c.endswith("_rate") or c in ("consistency",) or c.startswith("agreement_"))
    print_frame(shown, format, "judges: one row per judge, and all of them pooled", rates)
    for concern in concerns:
        err.print(f"[yellow]warning: {concern}[/yellow]", highlight=False)


@app.command()
def agreement(
    labels: Path = typer.Option(..., "--labels", help="Human labels, JSONL: {question_id, model_a, model_b, winner"
                                ", annotator?}; winner is model_a, model_b or tie."),
    config: Path | None = ConfigOption,
    target_width: float | None = typer.Option(None, "--target-width", min=0.01, max=100.0,
                                              help="Also say about how many labelled pairs each contestant needs for "
                                              "a calibrated 95% interval this many score points wide "
                                              "(rating.calibration; needs arena-eval[calibration])."),
    format: Format = FormatOption,
) -> None:
    """How often each judge (and the judges' majority) agrees with human labels, with and without ties."""
    from ..labels import human_agreement, read_labels
    from ..pipeline import Arena
    from .render import json_records, print_frame, write_json

    needed = None
    try:
        cfg = load(config)
        human = read_labels(labels)
        arena = Arena(cfg)
        report = human_agreement(human, arena.judgments_by_judge(), cfg.baseline)
        if target_width is not None:
            from ..rating.calibration import check_labels, labels_needed

            check_labels(human, (q.question_id for q in arena.questions), str(labels), cfg.name)
            battles = arena.stored_leaderboard().battles
            if battles.empty:
                raise ArenaError(f"{cfg.name}: no parsed verdict is stored yet; run `arena-eval run` first")
            minimum = cfg.rating.calibration.min_labels if cfg.rating.calibration else 10
            needed = labels_needed(battles, human, cfg.baseline, target_width, min_labels=minimum, source=str(labels))
    except ArenaError as exc:
        fail(exc)
    frame = report.frame()
    if format is Format.json:  # each row with its confusion table: rows human, columns judge (model_a, tie, model_b)
        rows = [{**row, "confusion": [list(r) for r in report[row["judge"]].confusion]} for row in json_records(frame)]
        write_json(rows if needed is None else {"agreement": rows, "target_width": target_width,
                                                "labels_needed": json_records(needed)})
    else:
        print_frame(frame, format, f"agreement with {labels.name}: {report.matched} of {report.labels} labels "
                    "matched", ("agreement", "agreement_without_ties"))
    if format is Format.table:
        for judge, table in report.confusion_tables().items():
            err.print(f"{judge}: rows human, columns judge\n{table.to_string()}", highlight=False)
    if report.unmatched:
        err.print(f"{report.unmatched} label(s) name a question or pair no judge judged, e.g. "
                  f"{'; '.join(report.unmatched_examples)}", highlight=False)
    if needed is not None and format is not Format.json:
        print_frame(needed, format, f"labelled pairs for a calibrated 95% interval {target_width:g} points wide "
                    "(labels_needed per contestant; more: beyond those it has)")
        if format is Format.table:
            short = needed[needed.labels_needed.isna() & needed.judge_correlation.notna()]
            words = []
            if needed.more.notna().any():
                words.append(f"about {needed.more.sum():.0f} more labelled pair(s) in all")
            if len(short):
                words.append(f"out of reach with the pairs judged so far for {', '.join(short.model)} (even every "
                             "judged pair labelled would be wider): judge more questions")
            if words:
                echo("; ".join(words))


def _quality_source(config: Path | None, battles: Path | None, judgments: Path | None, baseline: str | None,
                    rounds: int | None, seed: int | None):
    """The battles to judge a benchmark by, with their bootstrap: a run's stored verdicts (--config: its
    rating settings, the very rounds behind its leaderboard's intervals) or a battles file / judgment folder
    (the rating defaults of config.RatingConfig)."""
    from ..quality import bootstrap_scores

    given = [name for name, value in (("--battles", battles), ("--judgments", judgments)) if value is not None]
    if len(given) > 1:
        raise ArenaError("give --battles or --judgments, not both")
    if not given:
        from ..pipeline import Arena

        cfg = load(config)
        board = Arena(cfg).stored_leaderboard()
        rating = cfg.rating
        if board.battles.empty:
            raise ArenaError(f"{cfg.name}: no parsed verdict is stored yet; run `arena-eval run` with this config "
                             "first")
        style = None
        if rating.style_control:
            from ..style import STYLE_COLUMNS
            style = list(STYLE_COLUMNS)
        n_rounds = rounds if rounds is not None else rating.rounds
        n_seed = seed if seed is not None else rating.seed
        boot = bootstrap_scores(board.battles, cfg.baseline, n_rounds, n_seed, rating.bootstrap, style)
        return board.battles, cfg.baseline, board.frame.set_index("model")["score"], boot, cfg.name
    if not baseline:
        raise ArenaError(f"{given[0]} needs --baseline NAME (the model every score is relative to)")
    from ..interop import read_battles, read_judgments
    from ..rating import compute_leaderboard

    source = battles if battles is not None else judgments
    assert source is not None  # `given` names one of them
    frame = read_battles(source) if battles is not None else read_judgments(source, baseline=baseline)
    n_rounds = rounds if rounds is not None else rating_default("rounds")
    n_seed = seed if seed is not None else rating_default("seed")
    try:
        board = compute_leaderboard(frame, baseline, rounds=0, seed=n_seed)
        boot = bootstrap_scores(frame, baseline, n_rounds, n_seed)
    except ValueError as exc:
        raise ArenaError(f"{source}: {exc}") from None
    return frame, baseline, board.set_index("model")["score"], boot, source.name


@app.command(cls=RatingDefaultsHelp)
def quality(
    config: Path | None = ConfigOption,
    battles: Path | None = typer.Option(None, "--battles", help="An arena-hard battles JSONL file instead of a run."),
    judgments: Path | None = typer.Option(None, "--judgments", help="An arena-hard model_judgment folder instead of "
                                             "a run."),
    baseline: str | None = typer.Option(None, "--baseline", help="Baseline model (required with --battles and "
                                           "--judgments)."),
    reference: Path | None = typer.Option(None, "--reference", help="A leaderboard to compare with: CSV with "
                                             "columns model, score and optionally ci_low, ci_high (arena-hard's "
                                             "rating_q025/rating_q975 too); extra columns are ignored."),
    questions: bool = typer.Option(False, "--questions", help="Also each question's discrimination, tie rate and "
                                   "judge disagreement, least useful first."),
    rounds: int | None = typer.Option(None, "--rounds", min=1, help="Bootstrap rounds (default: the run's "
                                         "rating.rounds; {rounds} for --battles)."),
    seed: int | None = typer.Option(None, "--seed", help="Bootstrap seed (default: the run's rating.seed; "
                                       "{seed})."),
    format: Format = FormatOption,
) -> None:
    """Is the benchmark good enough: separability, and agreement with a reference ranking (docs/quality.md)."""
    import pandas as pd

    from .render import json_records, print_frame, write_json

    try:
        frame, base, point, boot, title = _quality_source(config, battles, judgments, baseline, rounds, seed)
        from ..quality import (
            benchmark_quality,
            fully_judged,
            outcome_disagreement,
            question_diagnostics,
            read_reference,
        )

        ref = read_reference(reference) if reference is not None else None
        try:
            result = benchmark_quality(boot, point, ref)
        except ValueError as exc:
            raise ArenaError(f"{reference}: {exc}" if reference is not None else str(exc)) from None
        per_question, partly = None, 0
        if questions:
            complete, partly = fully_judged(frame)
            per_question = question_diagnostics(complete, outcome_disagreement(complete), base)
    except ArenaError as exc:
        fail(exc)
    data = {"source": str(title), "baseline": base, **result.to_dict()}
    if partly:
        err.print(f"note: {partly} question(s) judged for only some contestants (adaptive judging stopped the others "
                  "before them) are left out of the question diagnostics", highlight=False)
    if format is Format.json:
        if per_question is not None:
            data["questions"] = json_records(per_question)
        write_json(data)
        return
    metrics = _quality_metrics(data)
    if format is Format.csv:
        print_frame(per_question if per_question is not None else metrics, format, "")
        return
    intervals = pd.DataFrame(data["intervals"])
    if ref is not None:
        intervals["reference_score"] = intervals.model.map(ref.set_index("model").score)
    print_frame(intervals, format, f"{title}: scores vs baseline {base} (95% CI)")
    print_frame(metrics, format, "benchmark quality")
    if ref is not None and (data["unmatched"]["ours"] or data["unmatched"]["reference"]):
        only = data["unmatched"]["reference"]
        err.print(f"not in the reference: {', '.join(data['unmatched']['ours']) or 'none'}; in the reference only: "
                  f"{len(only)} model(s)" + (f" ({', '.join(only[:5])}{', …' if len(only) > 5 else ''})" if only else ""),
                  highlight=False)
    if per_question is not None:
        print_frame(per_question.head(20), format, "the 20 least useful questions (least useful first; --format "
                    "csv or json for all)", ("tie_rate", "judge_disagreement"))


def _quality_metrics(data: dict):
    """The quality report's figures as rows: metric, value, ci_low, ci_high, over (what it counts)."""
    import pandas as pd

    rows = [("separability", data["separability"], None, None,
             f"{data['separated_pairs']} of {data['pairs']} pairs of {data['n_models']} models")]
    if data.get("spearman") is not None:
        matched = f"{len(data['matched'])} models in both"
        rows += [("spearman", data["spearman"], data["spearman_ci_low"], data["spearman_ci_high"], matched),
                 ("kendall", data["kendall"], data["kendall_ci_low"], data["kendall_ci_high"], matched),
                 ("agreement_with_confidence", data["agreement_with_confidence"], None, None,
                  f"{data['reference_separated_pairs']} pairs the reference separates"),
                 ("pair_brier", data["pair_brier"], None, None, f"{data['brier_pairs']} pairs (0 best, 0.25 a coin)")]
    return pd.DataFrame(rows, columns=["metric", "value", "ci_low", "ci_high", "over"])


@app.command()
def prune(
    config: Path | None = ConfigOption,
    size: int = typer.Option(..., "--size", help="How many questions to keep (at least 2, fewer than the set)."),
    out: Path = typer.Option(..., "--out", "-o", help="Where to write the smaller question set (JSONL)."),
    splits: int = typer.Option(20, "--splits", min=1, help="Held-out bootstrap splits for the estimate."),
    seed: int | None = typer.Option(None, "--seed", help="Seed of the splits and tie-breaks (default: the run's "
                                       "rating.seed)."),
    force: bool = typer.Option(False, "--force", help="Overwrite --out if it exists."),
    format: Format = FormatOption,
) -> None:
    """Write a smaller question set that keeps the run's ranking, and say what it keeps and saves (docs/quality.md)."""
    from ..pipeline import Arena
    from .render import write_json

    try:
        cfg = load(config)
        arena = Arena(cfg)
        n = len(arena.questions)
        if size < 2 or size >= n:
            raise ArenaError(f"--size {size}: keep at least 2 questions and fewer than the set's {n}")
        if cfg.questions_path is not None and out.resolve() == cfg.questions_path.resolve():
            raise ArenaError(f"--out {out} is the run's own question file; write the smaller set elsewhere")
        from ..output_paths import refuse_results_target

        refuse_results_target(out, cfg.output_dir, config, "--out")  # the store, the config, the output folder
        if out.exists() and not force:
            raise ArenaError(f"--out {out} exists; pass --force to overwrite it")
        board = arena.stored_leaderboard()
        if board.battles.empty:
            raise ArenaError(f"{cfg.name}: no parsed verdict is stored yet; run `arena-eval run` with this config first")
        from ..quality import fully_judged, prune_questions
        from ..savings import pruning_savings

        battles, _ = fully_judged(board.battles)
        judged = set(battles.question_id)
        if size >= len(judged):
            raise ArenaError(f"--size {size}: only {len(judged)} of the {n} questions are judged for every contestant; "
                             "keep fewer, or finish the run first (with adaptive judging: judge every question once, "
                             "without rating.adaptive, to prune)")
        n_seed = seed if seed is not None else cfg.rating.seed
        try:
            result = prune_questions(battles, cfg.baseline, size, seed=n_seed, splits=splits, rounds=100)
        except ValueError as exc:
            raise ArenaError(str(exc)) from None
        kept = set(result.question_ids)
        _write_jsonl_atomically(out, [r for r in arena.questions.to_records() if r["id"] in kept])
    except ArenaError as exc:
        fail(exc)
    savings = pruning_savings(arena.scope, board, n - size)
    data = {**result.to_dict(), "out": str(out), "unjudged_questions": n - len(judged), **savings}
    if format is Format.json:
        data.pop("per_split")
        write_json(data)
        return
    if format is Format.csv:
        import pandas as pd

        from .render import write_frame

        write_frame(pd.DataFrame([{k: v for k, v in data.items() if k not in ("per_split", "question_ids")}]), format)
        return
    echo(f"wrote {out}: {size} of {n} questions (the most discriminating; docs/quality.md)")
    echo(f"on {result.splits} held-out splits (medians; each half of the set stands for the benchmark): Kendall tau "
         f"{result.kendall_tau:.3f} (worst {result.kendall_tau_min:.3f}; a random subset of the same size: "
         f"{result.random_kendall_tau:.3f}); separability {result.separability:.0%} (random subset "
         f"{result.random_separability:.0%}, the held-out half {result.full_separability:.0%}; "
         + ("on games the choice did not see)" if result.separability_held_out
            else "in-sample, optimistic: one game per pair, nothing to hold out)"))
    echo("per full run it saves: " + _savings_text(savings))
    if n - len(judged):
        err.print(f"note: {n - len(judged)} question(s) are not judged for every contestant (not judged yet, or "
                  "adaptive judging stopped contestants before them) and were never kept", highlight=False)


def _savings_text(s: dict) -> str:
    parts = [f"{s['judge_calls_saved']:,} judge calls", f"{s['answers_saved']:,} answers"]
    tokens = [t for t in (s["judge_tokens_saved"], s["answer_tokens_saved"]) if t is not None]
    if tokens:
        parts.append(f"≈{sum(tokens):,.0f} tokens" + ("" if len(tokens) == 2 else " (part unknown)"))
    parts.append(f"≈{s['cost_saved']:.4f} in cost" if s["cost_saved"] is not None else "cost unknown")
    wh = [w for w in (s["judge_wh_saved"], s["answer_wh_saved"]) if w is not None]
    parts.append(f"≈{sum(wh):.3g} Wh" + ("" if len(wh) == 2 else " (part unknown)") if wh else "Wh unknown")
    return ", ".join(parts)


def _write_jsonl_atomically(path: Path, records: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w", encoding="utf-8") as f:
        for record in records:
            f.write(json.dumps(record, ensure_ascii=False) + "\n")
    tmp.replace(path)
