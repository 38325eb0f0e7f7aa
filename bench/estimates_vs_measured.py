"""How far arena-eval's energy estimate for API models (EcoLogits) is from measured GPU energy.

    python bench/estimates_vs_measured.py lm-arena-chat.json [gpqa.json ...] [--batch-sizes 64,256] [--all]

Reads task files of the ML.ENERGY leaderboard (github.com/ml-energy/leaderboard, public/data/tasks/*.json: one
entry per measured configuration of a model, GPU, GPU count and batch size) from local copies; it never
downloads them (run it without arguments to see how to get one). For every configuration whose model EcoLogits
knows, it puts beside the measured energy the estimate arena-eval itself makes for an API model
(`arena_eval.energy.ecologits_estimate.estimate_api_energy`, §3.5.4 of docs/design.md), per request and per output
token, and prints a markdown table with the ratio estimate / measured (above 1: the estimate is higher).

What goes into the estimate, since the leaderboard publishes averages per configuration, not requests:
- output tokens: the configuration's mean output length (`avg_output_len`), rounded to a whole token;
- latency: the mean time a request spends in the server, by Little's law: mean requests in the running batch
  (`avg_batch_size`) × output tokens per request ÷ output tokens per second (`output_throughput_tokens_per_sec`).
EcoLogits' GPU term is linear in the tokens and its server term linear in the latency (until it reaches the
latency EcoLogits models itself), so the estimate at the means is the mean of per-request estimates as long as
no request is slower than that modelled latency.

The measured side is what the leaderboard reports: steady-state GPU energy of all the configuration's GPUs (Zeus),
per request (`energy_per_request_joules`) and per output token (`energy_per_token_joules`); no CPU, host or
data-centre overhead. The estimate includes EcoLogits' share of the host server and the provider's PUE, so the
table also shows EcoLogits' GPU term alone (the GPUs EcoLogits assumes × its per-GPU energy), the part that
corresponds to what was measured.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import statistics
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

LEADERBOARD = "https://github.com/ml-energy/leaderboard"
HOW_TO_OBTAIN = f"""\
This script reads a local copy of an ML.ENERGY leaderboard task file; it does not download it.
Get one (the file carries no licence, so keep it outside this repository), for example:

    git clone --depth 1 {LEADERBOARD} /tmp/ml-energy-leaderboard
    python bench/estimates_vs_measured.py /tmp/ml-energy-leaderboard/public/data/tasks/lm-arena-chat.json

or, for one pinned commit:

    curl -LO https://raw.githubusercontent.com/ml-energy/leaderboard/<commit>/public/data/tasks/lm-arena-chat.json

docs/energy-estimates.md names the commit behind its published table (7885788e)."""

# Leaderboard models EcoLogits does not list, estimated as a listed model of the same architecture (EcoLogits'
# estimate depends only on the parameter counts): Llama 3.3 70B is a further-trained Llama 3.1 70B (70.55 B).
SAME_ARCHITECTURE = {
    "meta-llama/Llama-3.3-70B-Instruct": "meta-llama/Llama-3.1-70B-Instruct",
}

FIELDS = ("model_id", "gpu_model", "num_gpus", "max_num_seqs", "avg_batch_size", "avg_output_len",
          "output_throughput_tokens_per_sec", "energy_per_request_joules", "energy_per_token_joules")


class LeaderboardFileError(ValueError):
    """A task file this script cannot read: the message names the file, the entry and the field."""


@dataclass(frozen=True)
class Comparison:
    """One measured configuration beside arena-eval's estimate for the same model and requests."""

    task: str
    model: str  # the leaderboard's model id
    estimated_as: str  # the name arena-eval was asked to estimate (differs for SAME_ARCHITECTURE)
    gpu: str
    num_gpus: int
    precision: str
    batch_size: int  # the server's configured maximum (vLLM max_num_seqs)
    avg_batch_size: float  # the measured mean running batch
    output_tokens: float
    latency_s: float
    measured_j: float
    measured_j_per_token: float
    estimate_j: float
    estimate_tokens: int  # the whole number of output tokens the estimate was made for
    ecologits_gpus: int | None  # how many GPUs EcoLogits assumes the model needs
    ecologits_gpu_j: float | None  # EcoLogits' GPU term alone (no host share, no PUE)

    @property
    def estimate_j_per_token(self) -> float:
        return self.estimate_j / self.estimate_tokens

    @property
    def ratio(self) -> float:
        """Estimate ÷ measurement per request; per output token it is the same up to rounding the tokens."""
        return self.estimate_j / self.measured_j

    @property
    def ratio_per_token(self) -> float:
        return self.estimate_j_per_token / self.measured_j_per_token

    @property
    def gpu_ratio(self) -> float | None:
        return None if self.ecologits_gpu_j is None else self.ecologits_gpu_j / self.measured_j


def request_latency_s(avg_batch_size: float, output_tokens: float, throughput_tokens_per_s: float) -> float:
    """Mean time in the server per request (Little's law): requests in flight ÷ requests completed per second."""
    return avg_batch_size * output_tokens / throughput_tokens_per_s


def load_configurations(path: Path) -> tuple[str, list[dict]]:
    """The task's name and its configurations, each checked for the fields this script reads."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise LeaderboardFileError(f"{path}: no such file.\n\n{HOW_TO_OBTAIN}") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise LeaderboardFileError(f"{path}: not a readable JSON file ({exc})") from None
    if not isinstance(data, dict) or not isinstance(data.get("configurations"), list):
        raise LeaderboardFileError(f"{path}: expected an object with a 'configurations' list (an ML.ENERGY "
                                   "leaderboard task file, public/data/tasks/<task>.json)")
    for index, entry in enumerate(data["configurations"]):
        where = f"{path}: configurations[{index}]"
        if not isinstance(entry, dict):
            raise LeaderboardFileError(f"{where} is not an object")
        for field in FIELDS:
            value = entry.get(field)
            if field in ("model_id", "gpu_model"):
                if not isinstance(value, str) or not value:
                    raise LeaderboardFileError(f"{where}: field {field!r} must be a non-empty string, got {value!r}")
            elif isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
                    or value <= 0:
                raise LeaderboardFileError(f"{where}: field {field!r} must be a positive number, got {value!r}")
    return str(data.get("task") or path.stem), data["configurations"]


def _ecologits_gpu_part(estimated_as: str, tokens: int, latency_s: float) -> tuple[int | None, float | None]:
    """EcoLogits' assumed GPU count and its GPU energy (J) for the request, without host share or PUE."""
    try:
        from ecologits.impacts.llm import compute_llm_impacts_dag
        from ecologits.model_repository import ParametersMoE, models

        from arena_eval.energy.ecologits_estimate import resolve_model

        resolved = resolve_model(estimated_as)
        if resolved is None:
            return None, None
        model = models.find_model(provider=resolved[0], model_name=resolved[1])
        params = model.architecture.parameters
        total, active = (params.total, params.active) if isinstance(params, ParametersMoE) else (params, params)
        dag = compute_llm_impacts_dag(
            model_active_parameter_count=active, model_total_parameter_count=total, output_token_count=tokens,
            request_latency=latency_s, if_electricity_mix_adpe=0, if_electricity_mix_pe=0,
            if_electricity_mix_gwp=0, if_electricity_mix_wue=0, datacenter_pue=1, datacenter_wue=0)
        gpus = int(dag["gpu_required_count"])
        return gpus, gpus * float(dag["gpu_energy"]) * 3.6e6
    except Exception:  # EcoLogits internals moved or a parameter range: the column stays empty, the table does not
        return None, None


def compare(entry: dict, task: str) -> Comparison | None:
    """The comparison for one configuration, or None when EcoLogits has no estimate for its model."""
    import warnings

    from arena_eval.energy.ecologits_estimate import UnknownModelWarning, estimate_api_energy

    model = entry["model_id"]
    estimated_as = SAME_ARCHITECTURE.get(model, model)
    tokens = float(entry["avg_output_len"])
    latency = request_latency_s(entry["avg_batch_size"], tokens, entry["output_throughput_tokens_per_sec"])
    whole_tokens = max(1, round(tokens))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UnknownModelWarning)
        reading = estimate_api_energy(estimated_as, whole_tokens, latency)
    if reading.energy_j is None:
        if reading.error and "not installed" in reading.error:
            raise SystemExit("this script needs EcoLogits, as arena-eval's estimate does: "
                             "pip install 'arena-eval[energy]'")
        return None
    gpus, gpu_j = _ecologits_gpu_part(estimated_as, whole_tokens, latency)
    return Comparison(
        task=task, model=model, estimated_as=estimated_as, gpu=entry["gpu_model"], num_gpus=int(entry["num_gpus"]),
        precision=str(entry.get("weight_precision", "")), batch_size=int(entry["max_num_seqs"]),
        avg_batch_size=float(entry["avg_batch_size"]), output_tokens=tokens, latency_s=latency,
        measured_j=float(entry["energy_per_request_joules"]),
        measured_j_per_token=float(entry["energy_per_token_joules"]),
        estimate_j=reading.energy_j, estimate_tokens=whole_tokens, ecologits_gpus=gpus, ecologits_gpu_j=gpu_j)


def _short(model: str) -> str:
    return model.split("/", 1)[-1]


def _fmt(value: float | None, spec: str) -> str:
    return "–" if value is None else format(value, spec)


def render_table(rows: list[Comparison]) -> str:
    """The markdown table: one line per configuration, grouped by model, GPU and batch size."""
    lines = [
        "| model | task | GPUs (EcoLogits) | batch max / mean | out tokens | latency s | measured J/req | "
        "estimate J/req | measured J/tok | estimate J/tok | estimate ÷ measured | EcoLogits GPU term ÷ measured |",
        "|---|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        name = _short(r.model) + ("" if r.estimated_as == r.model else f" (as {_short(r.estimated_as)})")
        gpus = f"{r.num_gpus}× {r.gpu} {r.precision} ({_fmt(r.ecologits_gpus, 'd')})"
        lines.append(
            f"| {name} | {r.task} | {gpus} | {r.batch_size} / {r.avg_batch_size:.0f} | {r.output_tokens:.0f} | "
            f"{r.latency_s:.1f} | {r.measured_j:.0f} | {r.estimate_j:.0f} | {r.measured_j_per_token:.3f} | "
            f"{r.estimate_j_per_token:.3f} | **{r.ratio:.2f}×** | {_fmt(r.gpu_ratio, '.2f')}× |")
    return "\n".join(lines)


def geometric_mean(values: list[float]) -> float:
    return math.exp(statistics.fmean(math.log(v) for v in values))


def render_summary(rows: list[Comparison]) -> str:
    """Per GPU and batch size: the geometric mean of estimate ÷ measured over models, and its range."""
    groups: dict[tuple[str, int], list[Comparison]] = {}
    for r in rows:
        groups.setdefault((r.gpu, r.batch_size), []).append(r)
    lines = ["| GPU | batch max | configurations | estimate ÷ measured, geometric mean | range | "
             "GPU term ÷ measured, geometric mean |", "|---|---:|---:|---:|---:|---:|"]
    for (gpu, batch), group in sorted(groups.items()):
        ratios = [r.ratio for r in group]
        gpu_ratios = [g for g in (r.gpu_ratio for r in group) if g is not None]
        gpu_mean = _fmt(geometric_mean(gpu_ratios) if gpu_ratios else None, ".2f")
        lines.append(f"| {gpu} | {batch} | {len(group)} | {geometric_mean(ratios):.2f}× | "
                     f"{min(ratios):.2f}–{max(ratios):.2f}× | {gpu_mean}× |")
    return "\n".join(lines)


def collect(paths: list[Path], batch_sizes: set[int] | None, gpus: set[str] | None
            ) -> tuple[list[Comparison], list[str], list[str]]:
    """Comparisons for every known model's configuration in `paths` (None: every batch size or GPU), the models
    skipped because EcoLogits does not know them, and one provenance line per file."""
    rows: list[Comparison] = []
    unknown: set[str] = set()
    provenance = []
    for path in paths:
        task, configurations = load_configurations(path)
        provenance.append(f"{path.name}: task {task}, {len(configurations)} configurations, "
                          f"sha256 {hashlib.sha256(path.read_bytes()).hexdigest()[:16]}")
        for entry in configurations:
            if batch_sizes is not None and int(entry["max_num_seqs"]) not in batch_sizes:
                continue
            if gpus is not None and entry["gpu_model"] not in gpus:
                continue
            row = compare(entry, task)
            if row is None:
                unknown.add(entry["model_id"])
            else:
                rows.append(row)
    rows.sort(key=lambda r: (r.model, r.task, r.gpu, r.num_gpus, r.precision, r.batch_size))
    return rows, sorted(unknown), provenance


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=HOW_TO_OBTAIN)
    parser.add_argument("files", nargs="*", type=Path, help="local copies of leaderboard task files")
    parser.add_argument("--batch-sizes", default="64,256",
                        help="configured batch sizes (max_num_seqs) to show, comma-separated (default 64,256)")
    parser.add_argument("--all", action="store_true", help="every batch size the files hold")
    parser.add_argument("--gpus", default=None, help="GPU models to show, comma-separated (default all: H100,B200)")
    args = parser.parse_args(argv)
    if not args.files:
        print(HOW_TO_OBTAIN)
        return 2
    try:
        batch_sizes = None if args.all else {int(x) for x in args.batch_sizes.split(",") if x.strip()}
    except ValueError:
        parser.error(f"--batch-sizes: expected whole numbers separated by commas, got {args.batch_sizes!r}")
    gpus = {x.strip() for x in args.gpus.split(",") if x.strip()} if args.gpus else None
    try:
        rows, unknown, provenance = collect(args.files, batch_sizes, gpus)
    except LeaderboardFileError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    from arena_eval.energy.ecologits_estimate import _tool_version

    print(f"Measured: ML.ENERGY leaderboard ({LEADERBOARD}); " + "; ".join(provenance))
    print(f"Estimated: arena-eval's EcoLogits path ({_tool_version()}), per request from the output tokens and latency")
    print()
    if not rows:
        print("No configuration of a model EcoLogits knows at these batch sizes and GPUs.")
    else:
        print(render_table(rows))
        print()
        print(render_summary(rows))
    if unknown:
        print()
        print(f"Not estimated (EcoLogits does not know them): {', '.join(unknown)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
