"""The tests mirror the source tree, and share helpers only through `tests.support`.

`tests/<package>/` holds the tests of one workspace package (a service's process-level tests in
its `service/` subfolder); `tests/analytics`, `tests/e2e`, `tests/chaos` and `tests/hostile` run
the whole stack. A test module may import helpers from `tests.support` or from its own folder,
never from a test module or a conftest, so moving one test cannot break another.
"""

from __future__ import annotations

import ast
from pathlib import Path

from tests.support.paths import REPO

TESTS = REPO / "tests"
PACKAGE_TESTS = {
    "shared": "shared/src/retention_shared",
    "bundle": "packages/bundle/src/retention_bundle",
    "ingest": "services/ingest/src/retention_ingest",
    "features": "services/features/src/retention_features",
    "trainer": "services/trainer/src/retention_trainer",
    "scoring": "services/scoring/src/retention_scoring",
    "webhooks": "services/webhooks/src/retention_webhooks",
    "console": "services/console/src/retention_console",
    "cli": "src/retention_cli",
}


def test_every_package_has_its_tests_folder() -> None:
    for tests, source in PACKAGE_TESTS.items():
        assert (REPO / source / "__init__.py").is_file(), source
        assert (TESTS / tests / "__init__.py").is_file(), f"tests/{tests}/ for {source}"


def test_every_workspace_package_is_mapped() -> None:
    packages = {p.parent.name for p in REPO.glob("services/*/pyproject.toml")}
    packages |= {p.parent.name for p in REPO.glob("packages/*/pyproject.toml")}
    packages |= {"shared", "cli"}
    assert packages == set(PACKAGE_TESTS)


def _imported_test_modules(path: Path) -> set[str]:
    imported: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("tests."):
            imported.add(node.module)
        elif isinstance(node, ast.Import):
            imported |= {alias.name for alias in node.names if alias.name.startswith("tests.")}
    return imported


def test_helpers_come_from_support_or_the_own_folder() -> None:
    wrong: dict[str, list[str]] = {}
    for path in TESTS.rglob("*.py"):
        own = ".".join(path.relative_to(REPO).parent.parts)
        for module in _imported_test_modules(path):
            last = module.rsplit(".", 1)[-1]
            shared = module.startswith("tests.support.")
            local = module.rsplit(".", 1)[0] == own
            if last.startswith("test_") or last == "conftest" or not (shared or local):
                wrong.setdefault(str(path.relative_to(REPO)), []).append(module)
    assert wrong == {}
