"""The bundle package stands between the trainer and scoring: scoring reads bundles without the
trainer, and the bundle package needs neither service (docs/architecture.md, principle 1).

Checked twice: statically, every import statement in the sources (a lazy import inside a function
included), and at run time, importing every module in a fresh interpreter and looking at what
`sys.modules` then holds (an import through another package included).
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from tests.support.paths import REPO

# Package → (its sources, the top-level packages it must never import).
FORBIDDEN = {
    "retention_bundle": (
        REPO / "packages" / "bundle" / "src",
        {"retention_trainer", "retention_scoring"},
    ),
    "retention_scoring": (REPO / "services" / "scoring" / "src", {"retention_trainer"}),
}

IMPORT_EVERYTHING = """
import importlib, json, pkgutil, sys
package = importlib.import_module(sys.argv[1])
for found in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
    if not found.name.endswith(".__main__"):
        importlib.import_module(found.name)
print(json.dumps(sorted({name.split(".")[0] for name in sys.modules})))
"""


def imported_packages(path: Path) -> set[str]:
    """Top-level packages a module's import statements name (relative imports are its own)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            found |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
    return found


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_no_import_statement_names_a_forbidden_package(package: str) -> None:
    sources, forbidden = FORBIDDEN[package]
    modules = sorted((sources / package).rglob("*.py"))
    assert modules, f"no sources of {package} under {sources}"
    offenders = {
        str(path.relative_to(REPO)): sorted(imported_packages(path) & forbidden)
        for path in modules
        if imported_packages(path) & forbidden
    }
    assert not offenders


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_importing_every_module_loads_no_forbidden_package(package: str) -> None:
    done = subprocess.run(
        [sys.executable, "-c", IMPORT_EVERYTHING, package],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    loaded = set(json.loads(done.stdout.strip().splitlines()[-1]))
    assert package in loaded
    assert not loaded & FORBIDDEN[package][1]


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_no_forbidden_package_is_a_dependency(package: str) -> None:
    sources, forbidden = FORBIDDEN[package]
    project = tomllib.loads((sources.parent / "pyproject.toml").read_text())["project"]
    names = {
        dependency.split("[")[0].split(">")[0].split("=")[0].strip().replace("-", "_")
        for dependency in project["dependencies"]
    }
    assert not names & forbidden


def test_the_scan_sees_a_lazy_import(tmp_path: Path) -> None:
    module = tmp_path / "lazy.py"
    module.write_text("def load():\n    from retention_trainer.pipeline import x\n    return x\n")
    assert imported_packages(module) == {"retention_trainer"}
