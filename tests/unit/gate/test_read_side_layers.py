"""The read side reads the store: ``farm.release``, ``farm.gate`` and ``dashboards`` import
neither the engine, nor the search, nor the worker, and ``farm.gate`` has no import cycle.

Imports are read with ``ast``, at module level, inside functions and under ``TYPE_CHECKING``
alike (a lazy import is still a dependency)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).parents[3]
READ_SIDE = ("farm/release", "farm/gate", "dashboards")
FORBIDDEN = ("farm.engine", "farm.search", "farm.worker")
#: Exceptions to the rule: (file, imported module). None.
PENDING: set[tuple[str, str]] = set()


def imports(path: Path) -> set[str]:
    """Every module ``path`` imports from (``from a.b import c`` counts ``a.b``)."""
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            out.add(node.module)
    return out


def test_the_read_side_imports_no_engine_search_or_worker() -> None:
    found = set()
    for folder in READ_SIDE:
        for path in sorted((ROOT / folder).rglob("*.py")):
            where = str(path.relative_to(ROOT))
            for module in imports(path):
                if module.startswith(FORBIDDEN) and (where, module) not in PENDING:
                    found.add((where, module))
    assert not found


def test_the_gate_package_has_no_import_cycle() -> None:
    modules = {p.stem: p for p in (ROOT / "farm/gate").glob("*.py") if p.stem != "__init__"}
    edges = {
        name: {m.split(".")[2] for m in imports(path) if m.startswith("farm.gate.")} & set(modules)
        for name, path in modules.items()
    }

    def reaches(start: str, goal: str, seen: set[str]) -> bool:
        return any(n == goal or reaches(n, goal, seen | {n}) for n in edges[start] - seen)

    assert [m for m in modules if reaches(m, m, set())] == []
    assert "checks" not in edges["confirm"]  # the cycle the review found, broken
