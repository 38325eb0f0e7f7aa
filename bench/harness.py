"""What the benchmark scripts share: a fake server in its own process, child runs measured with os.wait4, and
a description of the machine and the code that was measured.

Scripts import it as `harness` (they run as `python bench/<script>.py`, so bench/ is on sys.path).
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import resource
import select
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # scripts that import arena_eval in process measure this checkout, not another install
    sys.path.insert(1, str(ROOT))
SERVERS = {
    "fake": ROOT / "tests" / "fake_server.py",  # aiohttp, fault injection, answers that echo the prompt
    "lean": ROOT / "bench" / "lean_fake_server.py",  # raw asyncio, a fraction of the CPU per request
}
MIB = 1024 * 1024


class ServerProcess:
    """A fake OpenAI-compatible server (`kind` in SERVERS) in its own process group, stopped on exit."""

    def __init__(self, kind: str = "fake", latency: float = 0.0, timeout: float = 30.0):
        cmd = [sys.executable, str(SERVERS[kind]), "--port", "0", "--latency", str(latency)]
        self.kind, self.latency = kind, latency
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                                     start_new_session=True)
        self.port = self._read_port(timeout)

    def _read_port(self, timeout: float) -> int:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.kind} server exited with code {self.proc.returncode} before printing its port")
            ready, _, _ = select.select([self.proc.stdout], [], [], 0.2)
            if ready:
                line = self.proc.stdout.readline()
                if line.startswith("PORT "):
                    return int(line.split()[1])
        self.stop()
        raise RuntimeError(f"{self.kind} server printed no PORT line within {timeout:g}s")

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def cpu_seconds(self) -> float | None:
        """User + system CPU the server process has used so far (Linux /proc; None elsewhere)."""
        try:
            fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return None
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime in ticks

    def stop(self) -> None:
        if self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def __enter__(self) -> ServerProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


@dataclass
class ChildRun:
    returncode: int
    wall_s: float  # spawn to exit
    cpu_s: float  # the child's own user + system time (its children excluded)
    peak_rss: int  # bytes
    output: str  # stdout and stderr together


def run_child(cmd: list[str], timeout: float, cwd: Path = ROOT, env: dict | None = None) -> ChildRun:
    """Run `cmd` and measure that process alone: os.wait4 gives its own rusage, where RUSAGE_CHILDREN would
    add up every child so far and report the largest peak of them all. Keep the calling process small: the
    kernel carries the parent's RSS high-water mark across fork + exec into the child's ru_maxrss."""
    log = Path(os.environ.get("TMPDIR", "/tmp")) / f"bench-child-{os.getpid()}-{time.monotonic_ns()}.log"
    with log.open("w+") as stream:
        started = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=stream, stderr=subprocess.STDOUT, cwd=cwd, env=env)
        try:
            while True:
                pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
                if pid:
                    break
                if time.perf_counter() - started > timeout:
                    raise TimeoutError(f"{' '.join(cmd[:4])}... ran past {timeout:g}s")
                time.sleep(0.01)
        except BaseException:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            raise
        wall = time.perf_counter() - started
        proc.returncode = os.waitstatus_to_exitcode(status)  # keep Popen from waiting again
        stream.seek(0)
        output = stream.read()
    log.unlink(missing_ok=True)
    return ChildRun(proc.returncode, wall, usage.ru_utime + usage.ru_stime, maxrss_bytes(usage), output)


def maxrss_bytes(usage: resource.struct_rusage) -> int:
    return usage.ru_maxrss if sys.platform == "darwin" else usage.ru_maxrss * 1024  # Linux reports KiB


def self_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)  # every thread of this process
    return usage.ru_utime + usage.ru_stime


def median(values: list[float]) -> float:
    return statistics.median(values)


# --- what was measured, where ----------------------------------------------------------------------------------

def machine_line() -> str:
    return (f"machine: {platform.platform()}, {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
            f"Python {platform.python_version()}, "
            f"{datetime.datetime.now().astimezone().isoformat(timespec='seconds')}")


def load_average() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "n/a"


def code_line() -> str:
    """The arena_eval the children import: the checkout beside this script (they run with it as cwd)."""
    def git(*args: str) -> str:
        try:
            return subprocess.run(["git", "-C", str(ROOT), *args], capture_output=True, text=True, timeout=10).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return ""

    commit = git("rev-parse", "--short", "HEAD") or "unknown commit"
    dirty = git("status", "--porcelain", "--untracked-files=no", "--", "arena_eval")
    return f"code: {ROOT / 'arena_eval'} at {commit}{' with uncommitted changes' if dirty else ''}"


def child_env() -> dict[str, str]:
    """The children's environment: this checkout first on the path, litellm kept offline."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), *filter(None, [env.get("PYTHONPATH")])])
    env.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    return env


# --- a measured pipeline run inside a child process --------------------------------------------------------------

def arena_child_cmd(config: Path, stages: tuple[str, ...], result: Path, profile: Path | None = None) -> list[str]:
    """The command for `timed_arena_run` in a fresh interpreter (see `python bench/harness.py --help`)."""
    cmd = [sys.executable, str(Path(__file__).resolve()), str(config), ",".join(stages), str(result)]
    return cmd + (["--profile", str(profile)] if profile else [])


def timed_arena_run(config_path: str, stages: tuple[str, ...], result_path: str, profile_path: str | None) -> None:
    """Import everything, then time `Arena.run(stages)` alone (wall and this process's CPU, all threads) and
    write {run_s, run_cpu_s, complete, summary} as JSON. With a profile path, cProfile covers the run only."""
    import json
    from dataclasses import asdict

    import arena_eval.providers.openai_compat  # noqa: F401  (provider imports are start-up, not the run)
    from arena_eval.config import load_config
    from arena_eval.pipeline import Arena

    arena = Arena(load_config(config_path))
    profiler = None
    if profile_path:
        import cProfile

        profiler = cProfile.Profile()
    cpu0, t0 = self_cpu_seconds(), time.perf_counter()
    if profiler:
        profiler.enable()
    result = arena.run_sync(stages)
    if profiler:
        profiler.disable()
    run_s, run_cpu = time.perf_counter() - t0, self_cpu_seconds() - cpu0
    if profiler:
        profiler.dump_stats(profile_path)
    Path(result_path).write_text(json.dumps({"run_s": run_s, "run_cpu_s": run_cpu, "complete": result.summary.complete,
                                             "summary": asdict(result.summary)}, default=str))


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description="Run Arena.run(STAGES) on CONFIG and write its timing to RESULT.")
    parser.add_argument("config")
    parser.add_argument("stages", help="comma separated, e.g. answers,judge")
    parser.add_argument("result")
    parser.add_argument("--profile", help="write cProfile stats of the run to this file")
    cli = parser.parse_args()
    timed_arena_run(cli.config, tuple(cli.stages.split(",")), cli.result, cli.profile)


def write_loopback_config(folder: Path, base_url: str, *, name: str, prompt: str, contestants: int, questions: int,
                          concurrency: int, file_name: str = "config.yaml", **extra: object) -> Path:
    """A run config for a benchmark against a loopback fake server: `questions` generated prompts (`prompt` with
    {i} and {t}), contestants c0 (the baseline) … c{n-1} and a judge on one OpenAI-compatible endpoint with quick
    retries; `extra` adds top-level keys (e.g. rating)."""
    import yaml

    qfile = folder / "questions.jsonl"
    with qfile.open("w", encoding="utf-8") as handle:
        for i in range(questions):
            handle.write(json.dumps({"id": f"q{i:05d}", "prompt": prompt.format(i=i, t=i % 97)}) + "\n")
    endpoint = {"provider": "openai", "base_url": base_url, "concurrency": concurrency,
                "retry_initial_s": 0.05, "retry_max_s": 1.0, "max_attempts": 6}
    names = [f"c{k}" for k in range(contestants)]
    config = {
        "name": name,
        "questions": str(qfile),
        "output": str(folder / "out"),
        "baseline": names[0],
        "judge": {**endpoint, "model": "judge-model"},
        "contestants": [{**endpoint, "name": n, "model": f"model-{n}"} for n in names],
        **extra,
    }
    path = folder / file_name
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return path
