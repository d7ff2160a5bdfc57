"""The layer rule: the API, like every role, reaches the others only through the kernel
``storyreel/``. Checked on the source, so an import inside a function counts too."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def imported_roots(source: str) -> set[str]:
    """The top-level package of every absolute import in ``source``, wherever it stands."""
    roots: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            roots |= {alias.name.partition(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            roots.add(node.module.partition(".")[0])
    return roots


def offenders(package: str, forbidden: set[str]) -> dict[str, set[str]]:
    found = {}
    for path in sorted((ROOT / package).rglob("*.py")):
        wrong = imported_roots(path.read_text()) & forbidden
        if wrong:
            found[str(path.relative_to(ROOT))] = wrong
    return found


def test_the_checker_sees_every_kind_of_import() -> None:
    source = (
        "import activities.keys\n"
        "from workflows import policies\n"
        "def later():\n"
        "    from activities.planning import plan_scenes\n"
        "from . import sibling\n"
    )
    assert imported_roots(source) == {"activities", "workflows"}


def test_the_api_imports_neither_activities_nor_workflows() -> None:
    assert list((ROOT / "api").rglob("*.py")), "no api/ sources found"
    assert offenders("api", {"activities", "workflows", "worker"}) == {}


def test_the_kernel_imports_no_role() -> None:
    assert offenders("storyreel", {"activities", "workflows", "api", "worker"}) == {}


def test_activities_and_workflows_reach_neither_the_api_nor_the_worker() -> None:
    assert offenders("activities", {"workflows", "api", "worker"}) == {}
    assert offenders("workflows", {"api", "worker"}) == {}
