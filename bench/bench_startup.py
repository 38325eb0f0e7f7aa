"""Start-up cost of the command line: CPU time of whole `arena-eval` processes, spawn to exit.

    python bench/bench_startup.py [--repeat 5] [--code OTHER_CHECKOUT ...] [--quick]

Measured, each in a fresh child process, the commands interleaved (and the checkouts too, with --code):
- `--help`: the command list, nothing loaded that no command needs;
- `validate --config F`: the config, its question set, the judges' templates, the key check and the plan;
- `run --config F --no-progress` on a stored folder: 2 contestants x 20 questions whose answers and verdicts
  are all stored (filled once from the fake server, which is then stopped), so the run resumes, scores
  (1000 bootstrap rounds) and writes its files and report without a request.
CPU is the child's own user + system time (os.wait4), the figure that other work on a small machine disturbs
least; the median, min and max over --repeat runs are printed, with the median wall time beside them.

--code DIR adds another checkout (e.g. `git worktree add /tmp/before <commit>`) measured the same way, its
arena_eval first on the path and DIR as the working directory, so that before and after run side by side.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

import harness
import yaml

CONFIG_NAME = "bench-startup"


def write_inputs(folder: Path, base_url: str, questions: int) -> Path:
    qfile = folder / "questions.jsonl"
    with qfile.open("w", encoding="utf-8") as handle:
        for i in range(questions):
            handle.write(json.dumps({"id": f"q{i:04d}", "prompt": f"Question {i}: name one prime above {i}."}) + "\n")
    endpoint = {"provider": "openai", "base_url": base_url, "retry_initial_s": 0.05, "retry_max_s": 0.2,
                "max_attempts": 2}
    config = {
        "name": CONFIG_NAME,
        "questions": str(qfile),
        "output": str(folder / "out"),
        "baseline": "c0",
        "judge": {**endpoint, "model": "judge-model"},
        "contestants": [{**endpoint, "name": n, "model": f"model-{n}"} for n in ("c0", "c1")],
    }
    path = folder / "config.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return path


def code_env(code: Path) -> dict[str, str]:
    env = harness.child_env()
    env["PYTHONPATH"] = str(code) + (":" + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env["PYTHONWARNINGS"] = "ignore"  # EcoLogits' unknown-model warnings are not start-up
    return env


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=5, help="runs per command and checkout (default 5)")
    parser.add_argument("--questions", type=int, default=20, help="questions of the stored run (default 20)")
    parser.add_argument("--code", type=Path, action="append", default=[],
                        help="another checkout to measure side by side (repeatable)")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds allowed for one child")
    parser.add_argument("--quick", action="store_true", help="one run of --help and validate: a smoke test")
    args = parser.parse_args()
    if args.quick:
        args.repeat, args.questions = 1, 5
    codes = [harness.ROOT, *(c.resolve() for c in args.code)]
    for code in codes[1:]:
        if not (code / "arena_eval").is_dir():
            parser.error(f"--code {code}: no arena_eval package there")

    load_before = harness.load_average()
    work = Path(tempfile.mkdtemp(prefix="bench_startup_"))
    cli = [sys.executable, "-m", "arena_eval.cli"]
    results: dict[tuple[str, Path], list[harness.ChildRun]] = {}
    try:
        commands = {"--help": ["--help"]}
        if args.quick:  # no stored run: the fake server and the filling run take most of a quick run's time
            config = write_inputs(work, "http://127.0.0.1:9/v1", args.questions)
            commands["validate"] = ["validate", "--config", str(config)]
        else:
            with harness.ServerProcess("fake", 0.0) as server:
                config = write_inputs(work, server.base_url, args.questions)
                fill = harness.run_child([*cli, "run", "--config", str(config), "--no-progress"], args.timeout,
                                         env=code_env(harness.ROOT))
                if fill.returncode != 0:
                    raise RuntimeError(f"filling run exited with {fill.returncode}:\n{fill.output[-3000:]}")
            commands["validate"] = ["validate", "--config", str(config)]
            commands["run (all stored)"] = ["run", "--config", str(config), "--no-progress"]
        for r in range(args.repeat):  # interleaved: a change of load on the machine hits every row alike
            for name, argv in commands.items():
                for code in codes:
                    child = harness.run_child([*cli, *argv], args.timeout, cwd=code, env=code_env(code))
                    if child.returncode != 0:
                        raise RuntimeError(f"{name} ({code}) exited with {child.returncode}:\n{child.output[-3000:]}")
                    if name.startswith("run") and "0 new" not in child.output:
                        raise RuntimeError(f"{name} ({code}) did new work; the folder should be all stored:\n"
                                           f"{child.output[-2000:]}")
                    results.setdefault((name, code), []).append(child)
            print(f"repeat {r + 1}/{args.repeat} done", file=sys.stderr)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    med = harness.median
    print(harness.machine_line())
    print(harness.code_line())
    print(f"load average before/after: {load_before} / {harness.load_average()} (1, 5, 15 min; other work on the "
          "machine competes for the cores)")
    print(f"medians of {args.repeat} run(s) per command and checkout; CPU = the child's user + system time")
    print(f"{'command':<18} {'median CPU s':>12} {'min':>6} {'max':>6} {'wall s':>7}  checkout")
    for (name, code), runs in results.items():
        cpu = [run.cpu_s for run in runs]
        print(f"{name:<18} {med(cpu):>12.3f} {min(cpu):>6.3f} {max(cpu):>6.3f} {med([r.wall_s for r in runs]):>7.3f}  "
              f"{'this checkout' if code == harness.ROOT else code}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
