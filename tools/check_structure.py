"""Check the house rules on romanxr's shape; run by ``make lint`` and by the test suite.

The rules (see CONTRIBUTING.md):

* no module in ``romanxr/`` longer than ``MAX_LINES`` lines;
* no function above cyclomatic complexity ``MAX_COMPLEXITY`` (as radon counts it);
* no import cycle between modules of romanxr (imports inside functions count too: they
  only postpone a cycle, they do not remove it);
* no private name (``_x``) imported from another package of romanxr (a package is a
  folder; names private to a package stay inside it);
* no run of ``MIN_REPEAT`` or more identical code lines standing in two places (blank lines,
  comments, docstrings, imports and
  function signatures do not count): one piece of code serves where logic repeats.

Usage::

    python tools/check_structure.py [ROOT]      # exit status 1 and a list when a rule breaks
"""

from __future__ import annotations

import ast
import sys
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

MAX_LINES = 600
MAX_COMPLEXITY = 25
MIN_REPEAT = 6


@dataclass
class Report:
    """What broke, one list per rule (all empty when the tree follows the rules)."""

    long_modules: list[tuple[str, int]] = field(default_factory=list)
    complex_functions: list[tuple[str, str, int]] = field(default_factory=list)
    cycles: list[list[str]] = field(default_factory=list)
    private_imports: list[tuple[str, str, str]] = field(default_factory=list)
    repeats: list[tuple[str, int, str, int]] = field(default_factory=list)

    def ok(self) -> bool:
        return not (
            self.long_modules
            or self.complex_functions
            or self.cycles
            or self.private_imports
            or self.repeats
        )

    def lines(self) -> list[str]:
        out = [f"module over {MAX_LINES} lines: {m} ({n})" for m, n in self.long_modules]
        out += [
            f"complexity over {MAX_COMPLEXITY}: {m}.{f} ({c})" for m, f, c in self.complex_functions
        ]
        out += ["import cycle: " + " -> ".join(c) for c in self.cycles]
        out += [
            f"private import: {m} takes {name} from {src}" for m, src, name in self.private_imports
        ]
        out += [f"repeated {MIN_REPEAT}+ lines: {a}:{i} ~ {b}:{j}" for a, i, b, j in self.repeats]
        return out


def modules(root: Path) -> dict[str, Path]:
    """Map dotted module names of ``root/romanxr`` to their files."""
    found = {}
    for path in sorted((root / "romanxr").rglob("*.py")):
        parts = path.relative_to(root).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


def _package(name: str, mods: dict[str, Path]) -> str:
    path = mods.get(name)
    is_package = path is not None and path.name == "__init__.py"
    return name if is_package else name.rpartition(".")[0]


def _resolve(module: str, node: ast.ImportFrom, mods: dict[str, Path]) -> str:
    if not node.level:
        return node.module or ""
    base = _package(module, mods).split(".")
    base = base[: len(base) - node.level + 1]
    return ".".join([*base, node.module] if node.module else base)


def import_graph(mods: dict[str, Path]) -> tuple[dict[str, set[str]], list[tuple[str, str, str]]]:
    """Edges module -> imported romanxr module, and the private cross-package imports."""
    edges: dict[str, set[str]] = defaultdict(set)
    private = []
    for name, path in mods.items():
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                edges[name].update(a.name for a in node.names if a.name in mods)
                continue
            if not isinstance(node, ast.ImportFrom):
                continue
            target = _resolve(name, node, mods)
            if not target.startswith("romanxr"):
                continue
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                if sub in mods:  # `from pkg import module` depends on the module only
                    edges[name].add(sub)
                elif target in mods:  # a name defined in the target module itself
                    edges[name].add(target)
                is_private = alias.name.startswith("_") and not alias.name.startswith("__")
                if is_private and _package(target, mods) != _package(name, mods):
                    private.append((name, target, alias.name))
    return edges, private


def cycles(edges: dict[str, set[str]], nodes: list[str]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found = []
    for start in nodes:
        if start in index:
            continue
        work = [(start, iter(sorted(edges.get(start, ()))))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def complexity(mods: dict[str, Path]) -> list[tuple[str, str, int]]:
    """Functions above MAX_COMPLEXITY, as radon's cyclomatic complexity counts them."""
    from radon.complexity import cc_visit
    from radon.visitors import Function

    high = []
    for name, path in mods.items():
        # cc_visit lists every function and method once (classes come as extra blocks)
        for block in cc_visit(path.read_text()):
            if isinstance(block, Function) and block.complexity > MAX_COMPLEXITY:
                label = f"{block.classname}.{block.name}" if block.classname else block.name
                high.append((name, label, block.complexity))
    return high


def _code_lines(path: Path) -> list[tuple[int, str]]:
    """(number, text) of code lines: no blanks, comments, docstrings, imports, signatures."""
    text = path.read_text()
    skip: set[int] = set()
    for node in ast.walk(ast.parse(text, str(path))):
        if isinstance(node, ast.Import | ast.ImportFrom):
            skip.update(range(node.lineno, (node.end_lineno or node.lineno) + 1))
            continue
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            # a signature declares, like an import: shared parameter lists are not logic
            skip.update(range(node.lineno, node.body[0].lineno))
        body = getattr(node, "body", None)
        if isinstance(body, list) and body and isinstance(body[0], ast.Expr):
            value = body[0].value
            if isinstance(value, ast.Constant) and isinstance(value.value, str):
                skip.update(range(body[0].lineno, (body[0].end_lineno or body[0].lineno) + 1))
    lines = []
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if stripped and not stripped.startswith("#") and number not in skip:
            lines.append((number, stripped))
    return lines


def repeats(mods: dict[str, Path]) -> list[tuple[str, int, str, int]]:
    """Runs of MIN_REPEAT identical code lines found in two places (first place, second place).

    A run counts only when most of its lines say something (more than closing brackets and
    keywords), and overlapping windows of one long repeat are reported once.
    """
    seen: dict[tuple[str, ...], tuple[str, int]] = {}
    found = []
    for name, path in mods.items():
        lines = _code_lines(path)
        last_reported = -1
        for start in range(len(lines) - MIN_REPEAT + 1):
            window = tuple(text for _, text in lines[start : start + MIN_REPEAT])
            if sum(len(text) > 12 for text in window) < MIN_REPEAT // 2 + 1:
                continue
            number = lines[start][0]
            first = seen.setdefault(window, (name, number))
            if first != (name, number) and start > last_reported:
                found.append((first[0], first[1], name, number))
                last_reported = start + MIN_REPEAT - 1
    return found


def check(root: Path) -> Report:
    """Apply every rule to the romanxr package under ``root``."""
    mods = modules(root)
    edges, private = import_graph(mods)
    report = Report(private_imports=private, cycles=cycles(edges, list(mods)))
    for name, path in mods.items():
        count = len(path.read_text().splitlines())
        if count > MAX_LINES:
            report.long_modules.append((name, count))
    report.complex_functions = complexity(mods)
    report.repeats = repeats(mods)
    return report


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    root = Path(args[0]) if args else Path(__file__).resolve().parent.parent
    report = check(root)
    for line in report.lines():
        print(line)
    if report.ok():
        print(f"structure ok: {len(modules(root))} modules")
    return 0 if report.ok() else 1


if __name__ == "__main__":
    raise SystemExit(main())
