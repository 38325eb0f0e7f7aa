"""The code's layout stays as docs/design.md §7 describes it: stages import only earlier stages."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_the_package_has_no_import_cycles():
    done = subprocess.run([sys.executable, str(ROOT / "bench" / "import_graph.py"), "--check"],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "cycles among load and deferred imports: none" in done.stdout


def test_the_report_and_the_leaderboard_never_reach_back_into_the_pipeline():
    for module in ("report.py", "leaderboard.py", "dispatch.py", "answer_sets.py", "stream.py"):
        source = (ROOT / "arena_eval" / module).read_text()
        assert "from .pipeline" not in source and "import pipeline" not in source, module


# --- the layers of docs/design.md §7 ----------------------------------------------------------------------------

sys.path.insert(0, str(ROOT / "bench"))
import import_graph  # noqa: E402  (bench/ is not a package)

PACKAGE = ROOT / "arena_eval"
DESIGN = ROOT / "docs" / "design.md"

# Imports that go up a row today, each with the issue item that removes it. Keep this list short: when the item
# lands, its entries go (test_the_known_upward_imports_still_exist says which).
# Upward imports tolerated for now, each naming what removes it (issue 26 item 1 removed the last two: RunScope
# moved to context.py and the tally out of leaderboard.py).
KNOWN_UPWARD: dict[tuple[str, str], str] = {}


def layout():
    modules, edges = import_graph.import_edges(PACKAGE)
    rows = import_graph.design_rows(DESIGN)
    layers, unplaced, stale = import_graph.assign_layers(PACKAGE, modules, rows)
    return modules, edges, rows, layers, unplaced, stale


def test_every_module_of_the_package_has_a_row_in_the_design_layout_table():
    _, _, _, _, unplaced, stale = layout()
    assert unplaced == [], f"add these modules to a row of docs/design.md §7 (the code layout table): {unplaced}"
    assert stale == [], f"docs/design.md §7 names paths that are not modules under arena_eval/ any more: {stale}"


def test_a_module_imports_only_modules_of_its_own_row_or_an_earlier_one():
    modules, edges, rows, layers, _, _ = layout()
    upward = [e for e in import_graph.upward_imports(edges, layers) if (e.source, e.target) not in KNOWN_UPWARD]
    described = [f"{modules[e.source].relative_to(ROOT)}:{e.line} imports {e.target} ({e.kind}): "
                 f"{rows[layers[e.source]][0]!r} is above {rows[layers[e.target]][0]!r}" for e in upward]
    assert described == [], ("a lower stage reaches up to a higher one; pass data down instead, or move the module "
                             "(and its row in docs/design.md §7):\n" + "\n".join(described))


def test_the_known_upward_imports_still_exist():
    _, edges, _, layers, _, _ = layout()
    upward = {(e.source, e.target) for e in import_graph.upward_imports(edges, layers)}
    gone = sorted(set(KNOWN_UPWARD) - upward)
    assert gone == [], f"these upward imports are gone: remove them from KNOWN_UPWARD in tests/test_layout.py: {gone}"


def test_the_layer_check_sees_imports_inside_functions_and_catches_one_that_goes_up(tmp_path):
    # A two-row design and a package whose first-row module imports the second row's inside a function.
    package = tmp_path / "pkg"
    (package / "sub").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "low.py").write_text("def later():\n    from .high import thing\n    return thing\n")
    (package / "high.py").write_text("from . import low\nthing = low\n")
    (package / "sub" / "__init__.py").write_text("")
    (package / "sub" / "deep.py").write_text("from ..low import later\n")
    (package / "sub" / "special.py").write_text("from ..high import thing\n")
    design = tmp_path / "design.md"
    design.write_text("## 7. Code layout\n\n| stage | module | sections |\n|---|---|---|\n"
                      "| base | `low.py` (the `Low` class), `sub/` | §1 |\n"
                      "| top | `high.py`, `sub/special.py`, `__init__.py` | §2 |\n\n## 8. Next\n\n| x | `other.py` |\n")
    modules, edges = import_graph.import_edges(package)
    rows = import_graph.design_rows(design)
    assert [stage for stage, _ in rows] == ["base", "top"]
    layers, unplaced, stale = import_graph.assign_layers(package, modules, rows)
    assert (unplaced, stale) == ([], [])
    assert layers == {"pkg": 1, "pkg.low": 0, "pkg.high": 1, "pkg.sub": 0, "pkg.sub.deep": 0, "pkg.sub.special": 1}
    upward = import_graph.upward_imports(edges, layers)
    assert [(e.source, e.target, e.kind, e.line) for e in upward] == [("pkg.low", "pkg.high", "deferred", 2)]
