"""Peak memory and throughput of answer collection against the fake OpenAI-compatible server.

    python bench/bench_collect.py [--sizes 10000,30000,100000] [--repeat 3] [--concurrency 64] [--server fake|lean]
    python bench/bench_collect.py --quick        # seconds: 500 answers, one run, no verdict

For every size N the script writes a question set and a run config into a temporary folder and runs only the
answers stage (`python -m arena_eval.cli answers --no-progress`) in a fresh child process, so that each run's
peak RSS is that child's own (read from os.wait4's rusage, the same counter as `/usr/bin/time -v`). The fake
server (tests/fake_server.py, no latency, no faults; or with --server lean bench/lean_fake_server.py, which
needs a fraction of the CPU) runs in a separate process for the whole benchmark, so its memory and CPU are not
counted, though on a small machine it competes with the client for the cores. This process itself stays small
(the question set's heap is measured in a child of its own): a child inherits its parent's RSS high-water mark
in ru_maxrss across fork + exec, so a big parent would show up as the child's peak.

Every run starts from an empty output folder, so all N answers are requested and stored (no cache hits);
with --cached the measured runs instead re-run on a filled store (the resume path: nothing is requested).
With --contestants K (default 1) the set has N/K questions and K contestants answer all of them.

Verdict: answer collection is "flat" when the median peak RSS at the largest N is below --max-ratio (default
1.5) times the median peak RSS at the smallest N. A question set loaded from a file is not held in memory:
it is validated in one streaming pass (8 bytes a question while loading, for the duplicate-id check) and
re-read from the file on each iteration; the script still measures what the loaded set holds (q heap) and
reports how much of the growth it explains. POSIX only (os.wait4, resource).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import resource
import select
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from dataclasses import dataclass
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
SERVERS = {  # --server: the test suite's aiohttp fake, or the raw-asyncio one that leaves the client more CPU
    "fake": ROOT / "tests" / "fake_server.py",
    "lean": ROOT / "bench" / "lean_fake_server.py",
}
CONFIG_NAME = "bench-collect"
MIB = 1024 * 1024

# A prompt of about 150 characters, like a short chat question (the id makes every prompt distinct).
PROMPT = ("Question {i}: explain, in a few sentences and with one concrete example, how topic number {t} "
          "relates to everyday engineering practice and why it matters.")


@dataclass
class RunResult:
    n: int
    wall_s: float  # spawn to exit: interpreter start, imports, question loading, collection, shutdown
    run_s: float  # inside the pipeline: runs.started_at → runs.finished_at in arena.db
    cpu_s: float  # the child's user + system CPU time
    peak_rss: int  # bytes, the whole child process
    collect_rss: int | None  # bytes, peak so far when the last answer was stored (Linux only), else None
    early_rss: int | None  # bytes, RSS when a tenth of the answers was stored (Linux only), else None
    answers: int  # rows in the answers table afterwards
    db_bytes: int


# --- the fake server -----------------------------------------------------------------------------------------

def start_server(latency: float, kind: str = "fake", timeout: float = 30.0) -> tuple[subprocess.Popen, int]:
    cmd = [sys.executable, str(SERVERS[kind]), "--port", "0", "--latency", str(latency)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, start_new_session=True)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"fake server exited with code {proc.returncode} before printing its port")
        ready, _, _ = select.select([proc.stdout], [], [], 0.2)
        if ready:
            line = proc.stdout.readline()
            if line.startswith("PORT "):
                return proc, int(line.split()[1])
    stop_process(proc)
    raise RuntimeError(f"fake server printed no PORT line within {timeout:g}s")


def stop_process(proc: subprocess.Popen) -> None:
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


# --- inputs --------------------------------------------------------------------------------------------------

def write_questions(path: Path, n: int) -> None:
    with path.open("w", encoding="utf-8") as handle:
        for i in range(n):
            handle.write(json.dumps({"id": f"q{i:07d}", "prompt": PROMPT.format(i=i, t=i % 997)}) + "\n")


def write_config(folder: Path, questions: Path, port: int, contestants: int, concurrency: int) -> Path:
    endpoint = {"provider": "openai", "base_url": f"http://127.0.0.1:{port}/v1",
                "retry_initial_s": 0.05, "retry_max_s": 1.0, "max_attempts": 6}
    names = [f"c{k}" for k in range(contestants)]
    data = {
        "name": CONFIG_NAME,
        "questions": str(questions),
        "output": str(folder / "out"),
        "baseline": names[0],
        # Required by the schema; the answers stage never calls the judge.
        "judge": {**endpoint, "model": "judge-model"},
        "contestants": [{**endpoint, "name": name, "model": f"model-{name}", "concurrency": concurrency}
                        for name in names],
    }
    path = folder / "config.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def question_set_bytes(path: Path) -> int:
    """Python heap held by the loaded question set once loading is done (the pipeline keeps no per-question
    index of its own; a file set holds a few hundred bytes, whatever its size).

    Measured in a child of its own: loading a large set here would raise this process's RSS, and a child forked
    from a big parent inherits the parent's high-water mark in its ru_maxrss (the kernel carries the old
    address space's peak across exec), which would then pass for the measured run's own peak."""
    out = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--measure-questions", str(path)],
                         capture_output=True, text=True, cwd=ROOT, check=True)
    return int(out.stdout.split()[-1])


def _print_question_set_bytes(path: Path) -> None:
    if str(ROOT) not in sys.path:  # the same arena_eval as the children, which run from ROOT
        sys.path.insert(0, str(ROOT))
    from arena_eval.questions import load_questions

    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        questions = load_questions(path)
        held = tracemalloc.get_traced_memory()[0] - before
        del questions
    finally:
        tracemalloc.stop()
    print(held)


# --- one run -------------------------------------------------------------------------------------------------

def maxrss_bytes(usage: resource.struct_rusage) -> int:
    return usage.ru_maxrss if sys.platform == "darwin" else usage.ru_maxrss * 1024  # Linux reports KiB


def proc_status_kib(pid: int, key: str) -> int | None:
    """A `VmHWM`/`VmRSS` line of /proc/<pid>/status in KiB (Linux); None where there is none."""
    try:
        with open(f"/proc/{pid}/status") as handle:
            for line in handle:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def stored_answers(db: Path) -> int | None:
    """Answers the running child has stored so far (read-only; 0 while the database does not exist yet,
    None when it cannot be read just now)."""
    if not db.exists():
        return 0
    try:
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=0.5)
        try:
            return con.execute("SELECT COUNT(*) FROM answers").fetchone()[0]
        finally:
            con.close()
    except sqlite3.Error:
        return None


def run_answers(config: Path, output: Path, n: int, timeout: float, cached: bool = False, poll_s: float = 1.0) -> RunResult:
    """One answers stage in a child process. cached=False: from an empty output folder (all N requested);
    cached=True: on the folder a previous run filled (all N already stored, nothing requested)."""
    if not cached:
        shutil.rmtree(output, ignore_errors=True)
    cmd = [sys.executable, "-m", "arena_eval.cli", "answers", "--config", str(config), "--no-progress"]
    log = output.parent / "child.log"
    with log.open("w") as stream:
        started = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=stream, stderr=subprocess.STDOUT, cwd=ROOT)
        db = output / CONFIG_NAME / "arena.db"
        collect_kib = early_kib = None
        next_poll, last, top_rate = started + poll_s, (started, 0), 0.0
        try:
            while True:  # os.wait4 gives this child's own rusage (RUSAGE_CHILDREN would be the max over all)
                pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
                if pid:
                    break
                now = time.perf_counter()
                if now - started > timeout:
                    proc.kill()
                    raise RuntimeError(f"N={n}: the answers stage ran past {timeout:g}s")
                if not cached and collect_kib is None and now >= next_poll:
                    # Peak RSS once every answer is stored: collection proper, without the end-of-stage
                    # bookkeeping that follows it (read as soon as possible, hence the fast polls near the end).
                    hwm, rss = proc_status_kib(proc.pid, "VmHWM"), proc_status_kib(proc.pid, "VmRSS")
                    stored = stored_answers(db)
                    if stored is None:  # e.g. the schema is not written yet: look again soon
                        next_poll = now + 0.05
                        continue
                    if early_kib is None and stored >= n / 10:
                        early_kib = rss
                    if stored >= n:
                        collect_kib = hwm
                    # The fastest rate seen so far, not the last one: near the end a finished contestant
                    # or a pause can make the last interval look slow while the child is about to exit.
                    top_rate = max(top_rate, (stored - last[1]) / max(now - last[0], 1e-3))
                    last = (now, stored)
                    next_poll = now + (0.05 if n - stored < 2 * top_rate * poll_s else poll_s)
                time.sleep(0.02)
        except BaseException:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            raise
        wall = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)  # keep Popen from waiting again
    if proc.returncode != 0:
        tail = log.read_text(errors="replace")[-2000:]
        raise RuntimeError(f"N={n}: answers stage exited with {proc.returncode}:\n{tail}")
    with sqlite3.connect(db) as con:
        answers = con.execute("SELECT COUNT(*) FROM answers").fetchone()[0]
        errors = con.execute("SELECT COUNT(*) FROM errors").fetchone()[0]
        start, finish, summary = con.execute(
            "SELECT started_at, finished_at, summary_json FROM runs ORDER BY started_at DESC").fetchone()
    con.close()
    counts = json.loads(summary)
    got = counts["answers_cached" if cached else "answers_new"]
    if answers != n or errors or got != n:
        raise RuntimeError(f"N={n}: expected {n} {'stored' if cached else 'new'} answers and no errors; the run "
                           f"reports {counts}, the database holds {answers} answers and {errors} errors")
    db_bytes = sum(p.stat().st_size for p in db.parent.glob("arena.db*"))
    peak = maxrss_bytes(usage)
    # VmHWM and ru_maxrss are the same high-water mark read at different times; the kernel's per-thread RSS
    # counters make them differ by a few hundred KiB at most, so never report more than the final peak.
    return RunResult(n, wall, finish - start, usage.ru_utime + usage.ru_stime, peak,
                     min(collect_kib * 1024, peak) if collect_kib is not None else None,
                     early_kib * 1024 if early_kib is not None else None, answers, db_bytes)


# --- report --------------------------------------------------------------------------------------------------

def code_line() -> str:
    """Which arena_eval the children import: the checkout beside this script (python -m from its root)."""
    def git(*args: str) -> str:
        try:
            return subprocess.run(["git", "-C", str(ROOT), *args], capture_output=True, text=True, timeout=10).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return ""

    commit = git("rev-parse", "--short", "HEAD") or "unknown commit"
    dirty = git("status", "--porcelain", "--untracked-files=no", "--", "arena_eval")
    return f"code: {ROOT / 'arena_eval'} at {commit}{' with uncommitted changes' if dirty else ''}"


def machine_line() -> str:
    import httpx
    import openai

    return (f"machine: {platform.platform()}, {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
            f"Python {platform.python_version()}, openai {openai.__version__}, httpx {httpx.__version__}, "
            f"{datetime.datetime.now().astimezone().isoformat(timespec='seconds')}")


def load_now() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "n/a"


def median(values: list[float]) -> float:
    return statistics.median(values)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="10000,30000,100000", help="answers per run, comma separated")
    parser.add_argument("--repeat", type=int, default=3, help="runs per size; the table shows medians")
    parser.add_argument("--concurrency", type=int, default=64, help="requests in flight per contestant")
    parser.add_argument("--contestants", type=int, default=1, help="K contestants x N/K questions (default 1)")
    parser.add_argument("--latency", type=float, default=0.0, help="fake server delay per request, seconds")
    parser.add_argument("--server", choices=sorted(SERVERS), default="fake",
                        help="fake: tests/fake_server.py (aiohttp); lean: bench/lean_fake_server.py (raw asyncio, "
                             "a fraction of the CPU per request: use it for 1M answers on a small machine)")
    parser.add_argument("--quick", action="store_true", help="a smoke run: 500 answers, one run (no verdict)")
    parser.add_argument("--cached", action="store_true",
                        help="measure a re-run where every answer is already stored (resume path; a first, "
                             "unmeasured run per size fills the store)")
    parser.add_argument("--max-ratio", type=float, default=1.5, help="flat: peak RSS(max N) < this x peak RSS(min N)")
    parser.add_argument("--timeout", type=float, default=3600.0, help="seconds allowed for one run")
    parser.add_argument("--workdir", type=Path, help="where to write inputs and outputs (default: a temp folder)")
    parser.add_argument("--measure-questions", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--keep", action="store_true", help="keep the work folder")
    args = parser.parse_args()

    if args.measure_questions:
        _print_question_set_bytes(args.measure_questions)
        return 0
    if args.quick:
        args.sizes, args.repeat = "500", 1
    sizes = sorted({int(s.replace("_", "")) for s in args.sizes.split(",") if s.strip()})
    if not sizes or min(sizes) < args.contestants or args.repeat < 1 or args.contestants < 1:
        parser.error("need sizes >= contestants >= 1 and --repeat >= 1")
    for n in sizes:
        if n % args.contestants:
            parser.error(f"size {n} is not a multiple of --contestants {args.contestants}")

    work = args.workdir or Path(tempfile.mkdtemp(prefix="bench_collect_"))
    work.mkdir(parents=True, exist_ok=True)
    server = None
    results: dict[int, list[RunResult]] = {}
    inputs: dict[int, tuple[int, int]] = {}  # n → (question file bytes, question set heap bytes)
    interrupted = False
    load_before, code = load_now(), code_line()
    try:
        server, port = start_server(args.latency, args.server)
        print(f"{args.server} server pid {server.pid} on port {port}; work folder {work}", file=sys.stderr)
        for n in sizes:
            folder = work / f"n{n}"
            folder.mkdir(exist_ok=True)
            questions = folder / "questions.jsonl"
            write_questions(questions, n // args.contestants)
            config = write_config(folder, questions, port, args.contestants, args.concurrency)
            inputs[n] = (questions.stat().st_size, question_set_bytes(questions))
            results[n] = []
            if args.cached:
                run_answers(config, folder / "out", n, args.timeout)
                print(f"N={n}: store filled", file=sys.stderr)
            for r in range(args.repeat):
                result = run_answers(config, folder / "out", n, args.timeout, cached=args.cached)
                results[n].append(result)
                print(f"N={n} run {r + 1}/{args.repeat}: wall {result.wall_s:.1f}s, in-run {result.run_s:.1f}s, "
                      f"cpu {result.cpu_s:.1f}s, peak RSS {result.peak_rss / MIB:.1f} MiB, collect RSS "
                      f"{result.collect_rss / MIB if result.collect_rss else float('nan'):.1f} MiB", file=sys.stderr)
    except KeyboardInterrupt:
        interrupted = True
        print("interrupted; reporting the runs finished so far", file=sys.stderr)
    finally:
        if server is not None:
            stop_process(server)
        if not args.keep and args.workdir is None:
            shutil.rmtree(work, ignore_errors=True)

    done = [n for n in sizes if results.get(n)]
    if not done:
        return 1
    print(machine_line())
    print(code)
    print(f"load average before/after: {load_before} / {load_now()} (other work on the machine skews the timings)")
    print(f"setup: {args.contestants} contestant(s) x N/{args.contestants} questions, concurrency {args.concurrency} "
          f"per contestant, {args.server} server (latency {args.latency:g}s) in its own process; medians of {args.repeat} "
          f"run(s) per size; {'re-runs with every answer already stored' if args.cached else 'every answer new'}")
    print("wall = the whole child process (start-up and imports included); in-run = inside the pipeline (runs "
          "table); peak RSS = the child's maximum; collect RSS = its maximum when the last answer was stored")
    header = (f"{'N':>7} {'wall s':>7} {'in-run s':>8} {'ans/s':>6} {'ans/s run':>9} {'CPU ms/ans':>10} "
              f"{'peak RSS MiB':>12} {'growth':>7} {'collect RSS MiB':>15} {'growth':>7} "
              f"{'q file MiB':>10} {'q heap MiB':>10} {'arena.db MiB':>12}")
    print(header)
    print("-" * len(header))

    def med(n: int, attr: str) -> float | None:
        values = [v for r in results[n] if (v := getattr(r, attr)) is not None]
        return median(values) if values else None

    lo, hi = done[0], done[-1]
    for n in done:
        wall, run_s, cpu, rss, collect = (med(n, a) for a in ("wall_s", "run_s", "cpu_s", "peak_rss", "collect_rss"))
        base_collect = med(lo, "collect_rss")
        collect_cells = (f"{collect / MIB:>15.1f} {collect / base_collect:>6.2f}x" if collect and base_collect
                         else f"{'-':>15} {'-':>7}")
        print(f"{n:>7} {wall:>7.1f} {run_s:>8.1f} {n / wall:>6.0f} {n / run_s:>9.0f} {1000 * cpu / n:>10.2f} "
              f"{rss / MIB:>12.1f} {rss / med(lo, 'peak_rss'):>6.2f}x {collect_cells} "
              f"{inputs[n][0] / MIB:>10.1f} {inputs[n][1] / MIB:>10.1f} {med(n, 'db_bytes') / MIB:>12.1f}")

    if len(done) < 2:
        print("verdict: need at least two sizes to judge growth")
        return 1 if interrupted else 0
    rss_lo, rss_hi = med(lo, "peak_rss"), med(hi, "peak_rss")
    ratio = rss_hi / rss_lo
    question_growth = (inputs[hi][1] - inputs[lo][1]) / (hi - lo)
    print(f"growth {lo} -> {hi} answers: peak RSS {(rss_hi - rss_lo) / MIB:+.1f} MiB = "
          f"{(rss_hi - rss_lo) / (hi - lo):.0f} bytes per extra answer; the loaded question set accounts for "
          f"{question_growth:.0f} bytes per extra question (q heap column)")
    c_lo, c_hi = med(lo, "collect_rss"), med(hi, "collect_rss")
    if c_lo and c_hi:
        print(f"collect RSS {lo} -> {hi}: {(c_hi - c_lo) / MIB:+.1f} MiB = {(c_hi - c_lo) / (hi - lo):.0f} bytes per "
              f"extra answer ({c_hi / c_lo:.2f}x); after collection, at N={hi}: {(rss_hi - c_hi) / MIB:+.1f} MiB "
              "(end-of-stage bookkeeping)")
    for n in done:
        early, collect = med(n, "early_rss"), med(n, "collect_rss")
        if early and collect:
            print(f"N={n}: RSS went from {early / MIB:.1f} MiB (10% of the answers stored) to a peak of "
                  f"{collect / MIB:.1f} MiB at 100%: {(collect - early) / (0.9 * n):.0f} bytes per answer collected")
    flat = ratio < args.max_ratio
    print(f"verdict: {'FLAT' if flat else 'NOT FLAT'}: peak RSS at N={hi} is {ratio:.2f}x the peak at N={lo} "
          f"({'<' if flat else '>='} {args.max_ratio:g}x allowed)")
    if c_lo and c_hi:  # informational: the same test on collection alone (the exit code follows the verdict)
        c_flat = c_hi / c_lo < args.max_ratio
        print(f"collection alone: {'FLAT' if c_flat else 'NOT FLAT'}: collect RSS at N={hi} is {c_hi / c_lo:.2f}x "
              f"the one at N={lo}")
    return 1 if interrupted else (0 if flat else 2)


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # a terminated benchmark still stops its server
    sys.exit(main())
