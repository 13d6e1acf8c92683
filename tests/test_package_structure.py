"""The package's shape: no import cycle, nothing in the library imports the CLI, small tools and functions.

The imports are read from the source with ``ast`` (every ``import`` statement, inside functions and under
``TYPE_CHECKING`` included), so a cycle that only shows at run time on some code path is caught too.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = "reskd_lightning"
SRC = Path(__file__).resolve().parents[1] / "src" / PACKAGE

#: A function may be longer than this when a comment starting with ``# long:`` says why (just above its
#: ``def``, or on one of the first lines of its body).
MAX_FUNCTION_LINES = 80
MAX_TOOL_LINES = 250


def module_name(path: Path) -> str:
    parts = path.relative_to(SRC.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(SRC.rglob("*.py"))}


def is_package(name: str) -> bool:
    return MODULES[name].name == "__init__.py"


def absolute(name: str, level: int, importer: str) -> str:
    """The absolute module name of ``from <level dots><name> import ...`` written in ``importer``."""
    if level == 0:
        return name
    base = importer.split(".") if is_package(importer) else importer.split(".")[:-1]
    base = base[: len(base) - (level - 1)]
    return ".".join(base + ([name] if name else []))


def imports_of(name: str) -> set[str]:
    """The package's modules that ``name`` imports (a ``from pkg import sub`` counts as importing ``pkg.sub``)."""
    tree = ast.parse(MODULES[name].read_text(), filename=str(MODULES[name]))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            source = absolute(node.module or "", node.level, name)
            targets = [f"{source}.{alias.name}" if f"{source}.{alias.name}" in MODULES else source for alias in node.names]
        else:
            continue
        for target in targets:
            # `import a.b.c` imports a, a.b and a.b.c; keep the deepest one of ours
            while target and target not in MODULES:
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    return found


GRAPH = {name: imports_of(name) for name in MODULES}


def cycle_from(start: str) -> list[str] | None:
    """A cycle through ``start``, as the modules on it, or None."""
    stack = [(start, [start])]
    seen: set[str] = set()
    while stack:
        node, path = stack.pop()
        for nxt in sorted(GRAPH[node]):
            if nxt == start:
                return path + [start]
            if nxt not in seen:
                seen.add(nxt)
                stack.append((nxt, path + [nxt]))
    return None


def test_the_walk_sees_the_package() -> None:
    assert f"{PACKAGE}.module" in MODULES and f"{PACKAGE}.cli" in MODULES
    assert f"{PACKAGE}.module" in GRAPH[f"{PACKAGE}.cli"] or any(
        f"{PACKAGE}.module" in GRAPH[m] for m in GRAPH[f"{PACKAGE}.cli"]
    )


def test_no_import_cycle_in_the_package() -> None:
    cycles = {tuple(c) for name in MODULES if (c := cycle_from(name))}
    assert not cycles, "import cycles:\n" + "\n".join(" -> ".join(c) for c in sorted(cycles))


def test_nothing_in_the_library_imports_the_cli() -> None:
    importers = [name for name, targets in GRAPH.items() if f"{PACKAGE}.cli" in targets]
    assert importers == []


def long_functions(path: Path) -> list[str]:
    lines = path.read_text().splitlines()
    tree = ast.parse("\n".join(lines))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            length = node.end_lineno - node.lineno + 1  # type: ignore[operator]
            first = min([node.lineno] + [d.lineno for d in node.decorator_list])
            near = lines[max(0, first - 3) : node.lineno + 3]
            if length > MAX_FUNCTION_LINES and not any(line.strip().startswith("# long:") for line in near):
                found.append(f"{path.relative_to(SRC.parent)}:{node.lineno} {node.name} ({length} lines)")
    return found


def test_no_function_is_over_80_lines_unless_a_comment_says_why() -> None:
    too_long = [f for path in MODULES.values() for f in long_functions(path)]
    assert too_long == [], "functions over 80 lines without a `# long:` comment: " + ", ".join(too_long)


@pytest.mark.parametrize("name", sorted(n for n in MODULES if n.startswith(f"{PACKAGE}.tools.")))
def test_each_tool_file_is_small(name: str) -> None:
    assert len(MODULES[name].read_text().splitlines()) <= MAX_TOOL_LINES
