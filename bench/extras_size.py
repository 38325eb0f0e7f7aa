"""Install size of the core package and of each optional extra, and a check that the core pulls none of them.

    python bench/extras_size.py [--extras core,mlflow,...] [--set NAME=REQ[,REQ...]]... [--json FILE] [--quick]

Method (pip from the package index this machine's pip is configured for, constraints included):
1. an empty venv (`python -m venv`): the size of its site-packages (pip itself) is subtracted from the core's;
2. the core: a fresh venv, `pip install <this checkout>` (a wheel built by hatchling, every dependency from the
   index); its packages (pip, setuptools and wheel left out) and their size on disk;
3. each extra of pyproject.toml (read from the file, self-references such as `arena-eval[energy]` expanded) and each
   `--set` (any requirements, e.g. `--set inspect=inspect-ai`): `pip install --dry-run --report` in the core venv
   says which packages the extra adds to the core install (new ones, and core packages it would move to another
   version), and those exact versions are installed with `--no-deps --target` into a folder of their own, whose
   size is the extra's increment. The core venv is left as it was, so every extra is measured against the same
   core, and extras are not added up in any one environment;
4. the check: no package named by an extra (other than the core's own dependencies) nor any of KNOWN_OPTIONAL is
   installed by the core; the script exits 1 if one is.
Sizes are disk usage (allocated blocks, as `du` counts them) in MB (10^6 bytes), with the apparent size beside it.
The temporary folders are removed at the end. Each run downloads (or takes from pip's cache) everything the core
and the extras need and unpacks it: minutes of network and CPU; run it on a quiet machine.

--quick: read pyproject.toml and print what would be measured; nothing is installed.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]

ROOT = Path(__file__).resolve().parents[1]
# Optional packages the core must never pull, whatever the extras say today (their names as pip normalises them).
KNOWN_OPTIONAL = ("inspect-ai", "mlflow", "mlflow-skinny", "zeus", "zeus-ml", "ppi-python", "datasets", "codecarbon",
                  "ecologits", "nvidia-ml-py", "xllamacpp", "sentence-transformers", "torch", "selenium", "pytest")
_NOT_COUNTED = {"pip", "setuptools", "wheel"}
_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(\[([^\]]*)\])?")


def normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def read_project(path: Path) -> tuple[str, list[str], dict[str, list[str]]]:
    data = tomllib.loads(path.read_text(encoding="utf-8"))["project"]
    return data["name"], list(data.get("dependencies", [])), dict(data.get("optional-dependencies", {}))


def expand(extra: str, project: str, extras: dict[str, list[str]], seen: set[str] | None = None) -> list[str]:
    """An extra's requirements with `project[other]` replaced by the other extras' requirements."""
    seen = seen if seen is not None else set()
    if extra in seen:
        return []
    seen.add(extra)
    out = []
    for requirement in extras[extra]:
        match = _NAME.match(requirement)
        if match and normalise(match.group(1)) == normalise(project):
            for other in (match.group(3) or "").split(","):
                if other.strip():
                    out += expand(other.strip(), project, extras, seen)
        else:
            out.append(requirement)
    return out


def requirement_name(requirement: str) -> str:
    match = _NAME.match(requirement)
    return normalise(match.group(1)) if match else requirement


def disk_usage(paths: list[Path]) -> tuple[int, int]:
    """(allocated bytes, apparent bytes) of every file under `paths`, each inode counted once."""
    seen, blocks, apparent = set(), 0, 0
    for top in paths:
        for folder, _, files in os.walk(top):
            for name in files:
                st = os.lstat(os.path.join(folder, name))
                if (st.st_dev, st.st_ino) in seen:
                    continue
                seen.add((st.st_dev, st.st_ino))
                blocks += st.st_blocks * 512
                apparent += st.st_size
    return blocks, apparent


def sizes_by_distribution(site: Path) -> dict[str, int]:
    """Each distribution's allocated bytes, from the files its RECORD lists (relative to `site`)."""
    out = {}
    for info in site.glob("*.dist-info"):
        record = info / "RECORD"
        name = normalise(info.name[: -len(".dist-info")].rsplit("-", 1)[0])  # NAME-VERSION.dist-info
        total = 0
        if record.exists():
            for line in record.read_text(encoding="utf-8", errors="replace").splitlines():
                relative = line.split(",", 1)[0]
                path = site / relative
                if relative and path.is_file():
                    total += os.lstat(path).st_blocks * 512
        out[name] = total
    return out


def run(command: list[str], **kwargs) -> subprocess.CompletedProcess:
    done = subprocess.run(command, capture_output=True, text=True, **kwargs)
    if done.returncode != 0:
        raise SystemExit(f"failed ({done.returncode}): {' '.join(command)}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return done


def new_venv(folder: Path) -> tuple[Path, Path]:
    """A fresh venv: its python and its site-packages."""
    run([sys.executable, "-m", "venv", str(folder)])
    python = folder / "bin" / "python"
    site = Path(run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"]).stdout.strip())
    return python, site


def installed(python: Path) -> dict[str, str]:
    listed = json.loads(run([str(python), "-m", "pip", "list", "--format", "json"]).stdout)
    return {normalise(p["name"]): p["version"] for p in listed}


def added_by(python: Path, requirements: list[str], scratch: Path) -> list[dict]:
    """What `pip install REQUIREMENTS` would add to the environment of `python`: name, version, replaced version."""
    report = scratch / "report.json"
    run([str(python), "-m", "pip", "install", "--dry-run", "--quiet", "--report", str(report), *requirements])
    have = installed(python)
    out = []
    for item in json.loads(report.read_text())["install"]:
        name, version = normalise(item["metadata"]["name"]), item["metadata"]["version"]
        out.append({"name": name, "version": version, "replaces": have.get(name)})
    return out


def mb(n: int) -> str:
    return f"{n / 1e6:,.1f}"


def measure(args: argparse.Namespace) -> int:
    project, core_requirements, extras = read_project(ROOT / "pyproject.toml")
    chosen = [e.strip() for e in args.extras.split(",") if e.strip()] if args.extras else ["core", *extras]
    unknown = [e for e in chosen if e != "core" and e not in extras]
    if unknown:
        raise SystemExit(f"unknown extra(s) {', '.join(unknown)}; pyproject.toml has: {', '.join(extras)}")
    sets = {}
    for given in args.set:
        name, _, requirements = given.partition("=")
        sets[name.strip()] = [r.strip() for r in requirements.split(",") if r.strip()]
    core_names = {requirement_name(r) for r in core_requirements}
    optional = sorted(({requirement_name(r) for e in extras for r in expand(e, project, extras)} - core_names)
                      | set(KNOWN_OPTIONAL) | {requirement_name(r) for rs in sets.values() for r in rs})
    print(f"python {sys.version.split()[0]} on {sys.platform}; pip from: "
          f"{run([sys.executable, '-m', 'pip', 'config', 'list']).stdout.strip().replace(chr(10), '; ') or 'PyPI'}")
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    plan = {e: ([f"{project} core: {len(core_requirements)} requirements"] if e == "core"
                else expand(e, project, extras)) for e in chosen}
    plan.update(sets)
    for name, requirements in plan.items():
        print(f"  {name}: {', '.join(requirements)}")
    print(f"optional packages the core must not pull: {', '.join(optional)}")
    if args.quick:
        print(f"{'set':<14} {'packages':>8} {'MB on disk':>11}   (--quick: nothing installed)")
        return 0

    results: dict[str, dict] = {}
    work = Path(tempfile.mkdtemp(prefix="extras-size-"))
    try:
        started = time.monotonic()
        _, empty_site = new_venv(work / "empty")
        empty_blocks, empty_apparent = disk_usage([empty_site])
        python, site = new_venv(work / "core")
        run([str(python), "-m", "pip", "install", "--quiet", str(ROOT)])
        core_blocks, core_apparent = disk_usage([site])
        packages = {n: v for n, v in installed(python).items() if n not in _NOT_COUNTED and n != normalise(project)}
        by_dist = sizes_by_distribution(site)
        results["core"] = {"packages": len(packages), "bytes": core_blocks - empty_blocks,
                           "apparent_bytes": core_apparent - empty_apparent, "seconds": time.monotonic() - started,
                           "largest": sorted(((n, by_dist.get(n, 0)) for n in packages), key=lambda x: -x[1])[:8]}
        pulled = sorted(set(packages) & set(optional))
        results["core"]["optional_pulled"] = pulled
        for name in [e for e in chosen if e != "core"] + list(sets):
            started = time.monotonic()
            requirements = [f"{ROOT}[{name}]"] if name in extras and name not in sets else sets[name]
            scratch = work / f"extra-{name}"
            scratch.mkdir()
            adds = [a for a in added_by(python, requirements, scratch) if a["name"] != normalise(project)]
            target = scratch / "target"
            if adds:
                run([str(python), "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(target),
                     *[f"{a['name']}=={a['version']}" for a in adds]])
            blocks, apparent = disk_usage([target]) if adds else (0, 0)
            by_dist = sizes_by_distribution(target) if adds else {}
            results[name] = {"requirements": requirements if name in sets else expand(name, project, extras),
                             "packages": len(adds), "bytes": blocks, "apparent_bytes": apparent,
                             "replaces_core": [f"{a['name']} {a['replaces']} → {a['version']}" for a in adds
                                               if a["replaces"]],
                             "seconds": time.monotonic() - started,
                             "largest": sorted(((a["name"], by_dist.get(a["name"], 0)) for a in adds),
                                               key=lambda x: -x[1])[:8]}
            shutil.rmtree(target, ignore_errors=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"\n{'set':<14} {'packages':>8} {'MB on disk':>11} {'MB apparent':>12} {'s':>6}   largest (MB on disk)")
    for name, r in results.items():
        label = name if name == "core" else f"+{name}"
        largest = ", ".join(f"{n} {mb(b)}" for n, b in r["largest"])
        print(f"{label:<14} {r['packages']:>8} {mb(r['bytes']):>11} {mb(r['apparent_bytes']):>12} "
              f"{r['seconds']:>6.0f}   {largest}")
        if r.get("replaces_core"):
            print(f"{'':<14} moves core packages: {', '.join(r['replaces_core'])}")
    print("(+name: what the extra adds to the core install)")
    pulled = results["core"]["optional_pulled"]
    print("core pulls none of the optional packages" if not pulled
          else f"the core install pulls optional packages: {', '.join(pulled)}")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
    return 1 if pulled else 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--extras", help="comma-separated: core and extras of pyproject.toml (default: all)")
    parser.add_argument("--set", action="append", default=[], metavar="NAME=REQ[,REQ]",
                        help="also measure a set of requirements against the core, e.g. inspect=inspect-ai")
    parser.add_argument("--json", help="write the figures to this file")
    parser.add_argument("--quick", action="store_true", help="print what would be measured; install nothing")
    sys.exit(measure(parser.parse_args()))


if __name__ == "__main__":
    main()
