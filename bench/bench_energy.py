"""What energy bookkeeping adds to the wall time of a run: 10k requests with and without an energy window.

    python bench/bench_energy.py [--requests 10000] [--repeat 5] [--meter codecarbon]

The fake OpenAI-compatible server (tests/fake_server.py) runs in its own process. Each measured run is a fresh
`arena-eval answers` child on an empty output folder, with one contestant of `--requests` questions:
- off: an ordinary API contestant (no device lock, no window);
- on: the same endpoint marked `local: true`, so it takes the device lock and its batch is metered by
  `--meter` (idle measurement switched off, since that is a deliberate pause, not overhead).
The run time is read from the store (runs.started_at → finished_at), which leaves out interpreter start-up.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import sqlite3
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def start_server() -> tuple[subprocess.Popen, int]:
    server = subprocess.Popen([sys.executable, str(ROOT / "tests" / "fake_server.py"), "--port", "0"],
                              stdout=subprocess.PIPE, text=True)
    line = server.stdout.readline()
    if not line.startswith("PORT "):
        server.kill()
        raise SystemExit(f"fake server did not start: {line!r}")
    return server, int(line.split()[1])


def run_once(folder: Path, port: int, n: int, metered: bool, meter: str) -> tuple[float, dict]:
    questions = folder / "q.jsonl"
    if not questions.exists():
        with questions.open("w") as handle:
            for i in range(n):
                handle.write(json.dumps({"id": f"q{i}", "prompt": f"Question {i}: why does topic {i % 97} matter?"}) + "\n")
    out = folder / ("on" if metered else "off")
    subprocess.run(["rm", "-rf", str(out)], check=True)
    endpoint = {"provider": "openai", "base_url": f"http://127.0.0.1:{port}/v1", "concurrency": 64}
    contestant = {**endpoint, "name": "c", "model": "m"}
    if metered:
        contestant["local"] = True
    config = {"name": "bench-energy", "questions": str(questions), "output": str(out), "baseline": "c",
              "judge": {**endpoint, "model": "judge"}, "contestants": [contestant],
              "energy": {"meter": meter if metered else "none", "idle_seconds": 0}}
    path = folder / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    child = subprocess.run([sys.executable, "-m", "arena_eval.cli", "answers", "--config", str(path), "--no-progress"],
                           capture_output=True, text=True)
    if child.returncode != 0:
        raise SystemExit(f"run failed ({child.returncode}):\n{child.stderr[-2000:]}")
    with sqlite3.connect(out / "bench-energy" / "arena.db") as db:
        started, finished = db.execute("SELECT started_at, finished_at FROM runs").fetchone()
        windows = db.execute("SELECT method, energy_j, duration_s FROM energy_windows WHERE role='contestant'").fetchall()
        answers = db.execute("SELECT COUNT(*) FROM answers").fetchone()[0]
    if answers != n:
        raise SystemExit(f"expected {n} answers, got {answers}")
    return finished - started, {"windows": windows}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--meter", default="codecarbon", choices=["codecarbon", "rapl", "nvml", "none"])
    args = parser.parse_args()
    server, port = start_server()
    times: dict[str, list[float]] = {"off": [], "on": []}
    last = {}
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for _ in range(args.repeat):
                for mode in ("off", "on"):  # interleaved, so drifts in machine load hit both alike
                    seconds, info = run_once(Path(tmp), port, args.requests, mode == "on", args.meter)
                    times[mode].append(seconds)
                    last[mode] = info
    finally:
        server.kill()
        server.wait()
    off, on = statistics.median(times["off"]), statistics.median(times["on"])
    print(f"# bench_energy  {datetime.datetime.now():%Y-%m-%d %H:%M}  {platform.platform()}  "
          f"{os.cpu_count()} cpus  python {platform.python_version()}")
    print(f"requests per run: {args.requests}, repeats: {args.repeat}, meter: {args.meter}")
    print(f"without energy window: median {off:.2f} s  (runs: {', '.join(f'{t:.2f}' for t in times['off'])})")
    print(f"with energy window:    median {on:.2f} s  (runs: {', '.join(f'{t:.2f}' for t in times['on'])})")
    print(f"overhead: {100 * (on - off) / off:+.2f}% of the wall time (target: under 1%)")
    print(f"last metered window (method, J, s): {last['on']['windows']}")


if __name__ == "__main__":
    main()
