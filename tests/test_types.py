"""The shared package and the model bundle type-check under mypy --strict.

Every service imports them, so a wrong type there breaks all of them at once; the services
themselves are checked by their tests. The configuration (strict, the pydantic plugin, the
untyped libraries) is `[tool.mypy]` in pyproject.toml.
"""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_shared_and_bundle_pass_mypy_strict() -> None:
    run = subprocess.run(
        [sys.executable, "-m", "mypy"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert "no issues found" in run.stdout
