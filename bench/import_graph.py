"""Module-to-module import graph of the arena_eval package, and its cycles.

    python bench/import_graph.py                          # counts, and every cycle
    python bench/import_graph.py --focus arena_eval.rating --focus arena_eval.energy   # + those modules' edges
    python bench/import_graph.py --check                  # exit 1 when there is a cycle
    python bench/import_graph.py --check --load-only      # only the imports that run when a module loads
    python bench/import_graph.py --design docs/design.md  # the layers from that file's §7 table (the default)

The source is read with `ast`; nothing is imported. Every .py file under the package is a module (a package is
its __init__.py). An edge A -> B is an import in A of module B of the same package: `import arena_eval.b`,
`from .b import name` (to `b`, or to `b.name` when that is a module), `from . import b`. Edges are of three kinds:

- load: at module level (class bodies included), run when A is imported. A cycle of these can fail at import
  time, depending on which of its modules is imported first.
- deferred: inside a function, run when it is called. Still a dependency: a cycle through one is a lower layer
  reaching up to a higher one, though not an import failure.
- typing: under `if TYPE_CHECKING:`, never run; left out of the cycles.

Importing `a.b.c` also runs `a/b/__init__.py` first; that implicit edge is not drawn, or every package whose
__init__ re-exports its modules would be a cycle.

Layers: docs/design.md §7 has a table whose rows, in order, are the stages; a row's backticked paths ending in
`.py` or `/` (relative to the package) are its modules, a folder standing for every module under it except
those a row names more precisely. A load or deferred import of a module of a later row is an upward import;
they are listed after the cycles (tests/test_layout.py fails on them, and on a module without a row).
"""

from __future__ import annotations

import argparse
import ast
import re
import sys
from collections import deque
from dataclasses import dataclass
from pathlib import Path

KINDS = ("load", "deferred", "typing")  # strongest first: an edge imported twice keeps the strongest kind


@dataclass(frozen=True)
class Edge:
    source: str
    target: str
    kind: str
    line: int


def module_names(root: Path) -> dict[str, Path]:
    """Dotted module name -> file, for every .py file under the package directory `root`."""
    modules = {}
    for path in sorted(root.rglob("*.py")):
        parts = path.relative_to(root.parent).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        modules[".".join(parts)] = path
    return modules


def _resolve(module: str, is_package: bool, node: ast.ImportFrom) -> str | None:
    """The absolute module a `from ... import` names, None when it climbs out of the package."""
    if node.level == 0:
        return node.module
    parts = module.split(".")
    if not is_package:
        parts = parts[:-1]  # a relative import starts from the module's package
    if node.level - 1 > len(parts) - 1:
        return None
    base = parts[: len(parts) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


class _Imports(ast.NodeVisitor):
    def __init__(self, module: str, is_package: bool, modules: dict[str, Path]):
        self.module, self.is_package, self.modules = module, is_package, modules
        self.edges: list[Edge] = []
        self.functions = 0
        self.typing = 0

    def _kind(self) -> str:
        return "typing" if self.typing else "deferred" if self.functions else "load"

    def _add(self, target: str, line: int) -> None:
        # The longest known module that `target` starts with (`import a.b.name` names module a.b).
        while target and target not in self.modules:
            target = target.rpartition(".")[0]
        if target and target != self.module:
            self.edges.append(Edge(self.module, target, self._kind(), line))

    def visit_FunctionDef(self, node: ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda) -> None:
        self.functions += 1
        self.generic_visit(node)
        self.functions -= 1

    visit_AsyncFunctionDef = visit_Lambda = visit_FunctionDef

    def visit_If(self, node: ast.If) -> None:
        if not _is_type_checking(node.test):
            self.generic_visit(node)
            return
        self.typing += 1
        for child in node.body:
            self.visit(child)
        self.typing -= 1
        for child in node.orelse:
            self.visit(child)

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            self._add(alias.name, node.lineno)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        base = _resolve(self.module, self.is_package, node)
        if base is None:
            return
        for alias in node.names:
            name = f"{base}.{alias.name}"
            self._add(name if alias.name != "*" and name in self.modules else base, node.lineno)


def import_edges(root: Path) -> tuple[dict[str, Path], list[Edge]]:
    """Every module of the package at `root` and one edge per (importer, imported), of its strongest kind."""
    modules = module_names(root)
    strongest: dict[tuple[str, str], Edge] = {}
    for module, path in modules.items():
        visitor = _Imports(module, path.name == "__init__.py", modules)
        visitor.visit(ast.parse(path.read_text(encoding="utf-8"), filename=str(path)))
        for edge in visitor.edges:
            key = (edge.source, edge.target)
            if key not in strongest or KINDS.index(edge.kind) < KINDS.index(strongest[key].kind):
                strongest[key] = edge
    return modules, sorted(strongest.values(), key=lambda e: (e.source, e.target))


def strongly_connected(nodes: list[str], edges: list[Edge]) -> list[list[str]]:
    """Groups of modules that all reach each other (Tarjan), those with a cycle only, each sorted."""
    successors: dict[str, list[str]] = {node: [] for node in nodes}
    for edge in edges:
        successors[edge.source].append(edge.target)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups = []
    for start in nodes:
        if start in index:
            continue
        # Iterative DFS: (node, iterator over its successors).
        work = [(start, iter(successors[start]))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            for child in children:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(successors[child])))
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    group = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        group.append(member)
                        if member == node:
                            break
                    if len(group) > 1:
                        groups.append(sorted(group))
    return sorted(groups)


def shortest_cycle(group: list[str], edges: list[Edge]) -> list[Edge]:
    """A shortest cycle through the group's first module, staying inside the group."""
    inside = set(group)
    out: dict[str, list[Edge]] = {}
    for edge in edges:
        if edge.source in inside and edge.target in inside:
            out.setdefault(edge.source, []).append(edge)
    start = group[0]
    came_by: dict[str, Edge] = {}
    queue = deque([start])
    while queue:
        node = queue.popleft()
        for edge in out.get(node, []):
            if edge.target == start:
                path = [edge]
                while path[0].source != start:
                    path.insert(0, came_by[path[0].source])
                return path
            if edge.target not in came_by:
                came_by[edge.target] = edge
                queue.append(edge.target)
    raise AssertionError("a strongly connected group always has a cycle")


# --- layers (docs/design.md §7) ----------------------------------------------------------------------------------

_PATH = re.compile(r"`([A-Za-z0-9_./]+(?:\.py|/))`")


def design_rows(design: Path) -> list[tuple[str, list[str]]]:
    """(stage, paths) for each row of the table in the design's "## 7." section, in order."""
    text = design.read_text(encoding="utf-8")
    section = re.search(r"^## 7\..*?(?=^## |\Z)", text, flags=re.M | re.S)
    if section is None:
        raise ValueError(f"{design}: no '## 7.' section (the code layout table)")
    rows = []
    for line in section.group(0).splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if not line.startswith("|") or len(cells) < 2 or cells[0] in ("stage", "") or set(cells[0]) <= set("-: "):
            continue
        rows.append((cells[0], _PATH.findall(cells[1])))
    if not rows:
        raise ValueError(f"{design}: §7 has no table rows")
    return rows


def _path_module(root: Path, path: str) -> str:
    """`records.py` -> arena_eval.records, `providers/` -> arena_eval.providers, `__init__.py` -> arena_eval."""
    parts = [root.name, *Path(path.rstrip("/")).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def assign_layers(root: Path, modules: dict[str, Path], rows: list[tuple[str, list[str]]]) -> tuple[
        dict[str, int], list[str], list[str]]:
    """module -> row index (the row naming it most precisely), the modules no row names, and the table's paths
    that name no module."""
    named: dict[str, int] = {}
    stale = []
    for index, (_, paths) in enumerate(rows):
        for path in paths:
            module = _path_module(root, path)
            if module not in modules:
                stale.append(path)
            named.setdefault(module, index)
    layers: dict[str, int] = {}
    for module in modules:
        # The longest prefix the table names: energy.config over energy/.
        candidates = [m for m in named if module == m or module.startswith(m + ".")]
        if candidates:
            layers[module] = named[max(candidates, key=len)]
    return layers, [m for m in modules if m not in layers], stale


def upward_imports(edges: list[Edge], layers: dict[str, int]) -> list[Edge]:
    """Load and deferred imports of a module of a later row than the importer's."""
    return [e for e in edges if e.kind != "typing" and e.source in layers and e.target in layers
            and layers[e.target] > layers[e.source]]


def _where(edge: Edge, modules: dict[str, Path], root: Path) -> str:
    return f"{modules[edge.source].relative_to(root.parent)}:{edge.line}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", type=Path, default=Path(__file__).resolve().parents[1] / "arena_eval",
                        help="package directory (default: this checkout's arena_eval/)")
    parser.add_argument("--focus", action="append", default=[], metavar="MODULE",
                        help="also list the edges of this module and the modules under it (repeatable)")
    parser.add_argument("--load-only", action="store_true",
                        help="cycles of load-time imports only (default: load and deferred)")
    parser.add_argument("--check", action="store_true", help="exit 1 when there is a cycle")
    parser.add_argument("--design", type=Path, default=Path(__file__).resolve().parents[1] / "docs" / "design.md",
                        help="the design whose §7 table gives the layers (default: this checkout's docs/design.md)")
    args = parser.parse_args(argv)

    root = args.root.resolve()
    modules, edges = import_edges(root)
    counts = {kind: sum(e.kind == kind for e in edges) for kind in KINDS}
    print(f"{root.name}: {len(modules)} modules, {len(edges)} import edges "
          f"({', '.join(f'{n} {kind}' for kind, n in counts.items())})")

    for prefix in args.focus:
        if prefix not in modules:
            parser.error(f"--focus {prefix}: no such module under {root}")
        print(f"\n{prefix}:")
        for module in (m for m in modules if m == prefix or m.startswith(prefix + ".")):
            mine = [e for e in edges if e.source == module]
            targets = ", ".join(e.target + ("" if e.kind == "load" else f" ({e.kind})") for e in mine)
            print(f"  {module} -> {targets or '(nothing in the package)'}")

    kinds = ("load",) if args.load_only else ("load", "deferred")
    considered = [e for e in edges if e.kind in kinds]
    groups = strongly_connected(list(modules), considered)
    print(f"\ncycles among {' and '.join(kinds)} imports: {len(groups) or 'none'}")
    for group in groups:
        print(f"  {len(group)} modules reach each other: {', '.join(group)}")
        for edge in shortest_cycle(group, considered):
            print(f"    {edge.source} -> {edge.target}  ({edge.kind}, {_where(edge, modules, root)})")

    if args.design.exists():
        rows = design_rows(args.design)
        layers, unplaced, stale = assign_layers(root, modules, rows)
        upward = upward_imports(edges, layers)
        print(f"\nlayers ({args.design.name} §7, {len(rows)} rows): {len(upward) or 'no'} upward imports")
        for edge in upward:
            print(f"  {edge.source} ({rows[layers[edge.source]][0]}) -> {edge.target} ({rows[layers[edge.target]][0]})"
                  f"  ({edge.kind}, {_where(edge, modules, root)})")
        if unplaced:
            print(f"  modules without a row: {', '.join(unplaced)}")
        if stale:
            print(f"  paths in the table that name no module: {', '.join(stale)}")
    return 1 if args.check and groups else 0


if __name__ == "__main__":
    sys.exit(main())
