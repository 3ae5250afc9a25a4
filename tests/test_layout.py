"""The shape of the house, read from the source (ast), so it stays the shape README's "Where
things live" and ARCHITECTURE §3 describe: `app` imports no capability, `schedules` or
`scripts_library` outside the composition root; a capability reaches another only through
its service (or its tables); no import cycle; small modules and functions."""

from __future__ import annotations

import ast
import statistics
from collections.abc import Iterator
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("app", "bots", "schedules", "scripts_library")
COMPOSITION_ROOT = ("app.main", "app.cli")
DOMAIN = ("schedules", "scripts_library")
# bots/ holds the capabilities and `dispatch`, what their handlers use (no capability).
NOT_CAPABILITIES = frozenset({"dispatch"})
# What another capability may import of one: its service (functions) and its models
# (tables read in SQL, e.g. the stats).
CROSSING = frozenset({"service", "models"})
MAX_MODULE_LINES = 400
MAX_FUNCTION_P90 = 30


@cache
def modules() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            found[name] = path
    return found


def _resolve(name: str, importer: str, node: ast.ImportFrom) -> str:
    if not node.level:
        return name
    package = importer.split(".")
    if not modules()[importer].name == "__init__.py":
        package = package[:-1]
    base = package[: len(package) - node.level + 1]
    return ".".join([*base, name] if name else base)


def imports_of(module: str) -> Iterator[str]:
    """The project modules `module` imports (a `from package import name` counts the
    submodule when there is one)."""
    tree = ast.parse(modules()[module].read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield from _known(alias.name)
        elif isinstance(node, ast.ImportFrom):
            target = _resolve(node.module or "", module, node)
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                yield from _known(sub if sub in modules() else target)


def _known(name: str) -> Iterator[str]:
    while name and name not in modules():
        name = name.rpartition(".")[0]
    if name:
        yield name


def _capability(module: str) -> str | None:
    parts = module.split(".")
    if parts[0] != "bots" or len(parts) < 2 or parts[1] in NOT_CAPABILITIES:
        return None
    return parts[1]


def _in(module: str, roots: tuple[str, ...]) -> bool:
    return any(module == root or module.startswith(root + ".") for root in roots)


def test_app_imports_no_capability_nor_domain_package_outside_the_composition_root() -> None:
    wrong = sorted(
        f"{module} imports {imported}"
        for module in modules()
        if _in(module, ("app",)) and not _in(module, COMPOSITION_ROOT)
        for imported in imports_of(module)
        if _capability(imported) is not None or _in(imported, DOMAIN)
    )
    assert wrong == []


def test_a_capability_reaches_another_only_through_its_service_or_its_tables() -> None:
    wrong = sorted(
        f"{module} imports {imported}"
        for module in modules()
        if _capability(module) is not None
        for imported in imports_of(module)
        if _capability(imported) not in (None, _capability(module))
        and imported.split(".")[2:3] not in ([part] for part in CROSSING)
    )
    assert wrong == []


def test_there_is_no_import_cycle() -> None:
    graph = {module: set(imports_of(module)) - {module} for module in modules()}
    cycles: list[list[str]] = []
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(module: str, path: list[str]) -> None:
        state[module] = 1
        for imported in sorted(graph[module]):
            if _in(module, (imported,)):
                continue  # a package's own __init__, reached from inside it
            if state.get(imported) == 1:
                cycles.append([*path[path.index(imported) :], imported])
            elif imported not in state:
                visit(imported, [*path, imported])
        state[module] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    assert cycles == []


def test_no_module_is_over_400_lines() -> None:
    long = {
        name: lines
        for name, path in modules().items()
        if (lines := len(path.read_text(encoding="utf-8").splitlines())) > MAX_MODULE_LINES
    }
    assert long == {}


def test_functions_stay_short() -> None:
    lengths = [
        node.end_lineno - node.lineno + 1
        for path in modules().values()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.end_lineno
    ]
    p90 = statistics.quantiles(lengths, n=10)[-1]
    assert p90 <= MAX_FUNCTION_P90, f"p90 {p90} lines over {len(lengths)} functions"


def test_the_rules_see_the_imports_they_judge() -> None:
    # The checks above mean nothing if the import reader misses the imports they judge.
    assert "bots.checkin" in set(imports_of("app.main"))
    assert "bots.checkin.service" in set(imports_of("bots.qa.handlers"))
    assert "bots.dispatch.router" in set(imports_of("bots.dispatch.rules"))
    assert "app.capability" in set(imports_of("bots.checkin"))
