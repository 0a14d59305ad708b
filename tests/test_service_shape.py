"""Every service has the same rooms (docs/architecture.md, "Code layout"), so a reader who knows
one service finds their way in the next: `app.py` that only wires, the routes' dependencies in
`deps.py`, its own errors in `errors.py`, its Prometheus metrics in `telemetry.py`."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.paths import REPO

SERVICES = sorted(path.name for path in (REPO / "services").iterdir() if (path / "src").is_dir())
# A module that wires and nothing else fits on a screen.
MAX_APP_LINES = 60
# The console's routes render pages, not an API: its HTTP package is `pages/`.
HTTP_PACKAGE = {"console": "pages"}
# Top-level names that meant two things: `metrics` (Prometheus, next to the trainer's
# evaluation/metrics.py of ROC-AUC and friends), `running` (retention_shared.features.running
# defines the running totals a service only caches).
AMBIGUOUS_MODULES = {"metrics.py", "running.py"}


def package(service: str) -> Path:
    return REPO / "services" / service / "src" / f"retention_{service}"


def test_every_service_is_checked() -> None:
    assert set(SERVICES) == {"console", "features", "ingest", "scoring", "trainer", "webhooks"}


@pytest.mark.parametrize("service", SERVICES)
def test_app_only_wires(service: str) -> None:
    lines = (package(service) / "app.py").read_text(encoding="utf-8").splitlines()
    assert len(lines) <= MAX_APP_LINES, f"{service}/app.py has {len(lines)} lines"


@pytest.mark.parametrize("service", SERVICES)
@pytest.mark.parametrize("module", ["telemetry.py", "errors.py"])
def test_has_its_own_module(service: str, module: str) -> None:
    assert (package(service) / module).is_file()


@pytest.mark.parametrize("service", SERVICES)
def test_routes_take_their_dependencies_from_deps(service: str) -> None:
    http = package(service) / HTTP_PACKAGE.get(service, "api")
    assert (http / "deps.py").is_file()
    # Routes reach the app's state through deps.py only.
    reaching = [
        path.name
        for path in http.glob("*.py")
        if path.name != "deps.py" and "request.app.state" in path.read_text(encoding="utf-8")
    ]
    assert not reaching, f"{service}: {reaching} read request.app.state outside deps.py"


@pytest.mark.parametrize("service", SERVICES)
def test_no_ambiguous_module_names(service: str) -> None:
    found = [
        str(path.relative_to(package(service)))
        for path in package(service).glob("*.py")
        if path.name in AMBIGUOUS_MODULES
    ]
    assert not found
