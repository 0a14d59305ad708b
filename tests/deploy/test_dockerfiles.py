"""deploy/Dockerfile: one multi-stage uv build for every service (`--build-arg SERVICE=<name>`),
each image slim, non-root and read-only-friendly, with only what its service runs."""

from __future__ import annotations

import ast
import json
import os
import re
import subprocess
import sys
import threading
import tomllib
from collections.abc import Iterator
from functools import cache
from http.server import BaseHTTPRequestHandler, HTTPServer
from importlib.metadata import packages_distributions
from pathlib import Path

import pytest

from tests.deploy.support import CONSOLE, REPO, SERVICES, WEBHOOKS

DOCKERFILE = REPO / "deploy" / "Dockerfile"
# Where each workspace member's sources are, by distribution name.
MEMBERS = {
    "retention-shared": "shared",
    "retention-bundle": "packages/bundle",
    **{f"retention-{name}": f"services/{name}" for name in SERVICES},
}


def stages(text: str) -> list[list[str]]:
    """Instructions (continuations joined, comments dropped) grouped by FROM; the first group
    holds what comes before the first FROM (global ARGs)."""
    logical, current = [], ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        current += line[:-1] + " " if line.endswith("\\") else line
        if not line.endswith("\\"):
            logical.append(current.strip())
            current = ""
    grouped: list[list[str]] = [[]]
    for instruction in logical:
        if instruction.upper().startswith("FROM "):
            grouped.append([])
        grouped[-1].append(instruction)
    return grouped


def named(groups: list[list[str]]) -> dict[str, list[str]]:
    return {g[0].split(" AS ")[1]: g for g in groups[1:] if " AS " in g[0]}


def image_of(name: str) -> list[str]:
    """The instructions that make `name`'s image, SERVICE substituted: the stages from the
    runtime stage down to the first one built on the Python image, base first."""
    groups = named(stages(DOCKERFILE.read_text()))
    chain, stage = [], "runtime"
    while stage in groups:
        chain.append(groups[stage])
        stage = groups[stage][0].split()[1].replace("${SERVICE}", name)
    return [i.replace("${SERVICE}", name) for g in reversed(chain) for i in g]


def env_of(instructions: list[str]) -> dict[str, str]:
    found = {}
    for instruction in instructions:
        if instruction.startswith("ENV "):
            found |= dict(re.findall(r"(\w+)=(\S+)", instruction))
    return found


def test_one_dockerfile_builds_every_service_and_there_are_no_others() -> None:
    groups = stages(DOCKERFILE.read_text())
    assert "ARG SERVICE" in groups[0], "SERVICE is a global ARG, so FROM can use it"
    stage_names = named(groups)
    assert {"uv", "builder", "runtime"} <= set(stage_names)
    assert groups[-1] == ["FROM service-${SERVICE} AS runtime"], "SERVICE picks the image"
    assert {s.removeprefix("service-") for s in stage_names if s.startswith("service-")} == {
        *SERVICES,
        "base",
    }
    assert not [*REPO.glob("services/*/Dockerfile"), *REPO.glob("Dockerfile")], "one Dockerfile"


def test_the_builder_installs_the_service_from_the_lock_and_nothing_else() -> None:
    builder = named(stages(DOCKERFILE.read_text()))["builder"]
    assert "ARG SERVICE" in builder
    syncs = [i for i in builder if "uv sync" in i]
    assert len(syncs) == 2
    assert all(
        "--package retention-${SERVICE}" in i and "--frozen" in i and "--no-dev" in i for i in syncs
    )
    assert any(i.startswith("COPY uv.lock pyproject.toml") for i in builder)
    assert not any("embedded" in i or "--all-extras" in i or "--all-packages" in i for i in builder)


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_image_is_non_root_read_only_friendly_with_healthcheck(name: str) -> None:
    image = image_of(name)
    copies = [i for i in image if i.startswith("COPY")]
    assert copies == ["COPY --from=builder /app/.venv /app/.venv"], "only the venv is copied"
    users = [i for i in image if i.startswith("USER ")]
    assert users, "the image must switch to a non-root USER"
    assert users[-1].split()[1].split(":")[0] not in ("root", "0")
    env = env_of(image)
    assert env["RETENTION_SERVICE"] == name
    assert env["RETENTION_BIND_HOST"] == "0.0.0.0"
    assert env[f"RETENTION_{name.upper()}_PORT"] == str(SERVICES[name])
    assert env["PYTHONDONTWRITEBYTECODE"] == "1", "read-only root: no .pyc writes"
    if name == CONSOLE:
        # No data dir and no model store: only /tmp is written.
        assert "RETENTION_DATA_DIR" not in env and "BENTOML_HOME" not in env
    else:
        assert env["RETENTION_DATA_DIR"] == "/data"
        # Webhooks read no models: no model store.
        assert ("BENTOML_HOME" in env) == (name != WEBHOOKS)
        assert env.get("BENTOML_HOME", "/data/bentoml") == "/data/bentoml"
        assert any("chown -R 10001:10001 /data" in i for i in image), "/data for the user"
    assert f"EXPOSE {SERVICES[name]}" in image
    assert not any("curl" in i or "apt-get" in i for i in image), "nothing extra installed"
    (entrypoint,) = [i for i in image if i.startswith("ENTRYPOINT ")]
    assert json.loads(entrypoint.split(" ", 1)[1]) == ["python", "-m", f"retention_{name}"]


class _Healthy(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200 if self.path == "/healthz" else 404)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def healthz_port() -> Iterator[int]:
    server = HTTPServer(("127.0.0.1", 0), _Healthy)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1]
    server.shutdown()


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_the_healthcheck_asks_healthz_on_the_service_port(name: str, healthz_port: int) -> None:
    """The image's HEALTHCHECK, run as Docker would with the image's environment (the port
    overridden to a local stand-in): it must find /healthz on the service's port."""
    image = image_of(name)
    (healthcheck,) = [i for i in image if i.startswith("HEALTHCHECK ")]
    command = json.loads(healthcheck.split(" CMD ", 1)[1])
    assert command[:2] == ["python", "-c"] and "urllib.request" in command[2]
    env = {**env_of(image), f"RETENTION_{name.upper()}_PORT": str(healthz_port)}
    env = {k: v for k, v in env.items() if not k.startswith(("PATH", "HOME"))}
    done = subprocess.run(
        [sys.executable, *command[1:]],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr


# --- what an image holds against what its service imports ----------------------------------


@cache
def _lock() -> dict[str, list[dict]]:
    """uv.lock's packages by name (a name locked at several versions has several entries)."""
    found: dict[str, list[dict]] = {}
    for package in tomllib.loads((REPO / "uv.lock").read_text())["package"]:
        found.setdefault(package["name"], []).append(package)
    return found


def locked_closure(root: str) -> set[str]:
    """Every distribution `uv sync --package <root>` installs (no dev group, no extras of the
    root; extras its dependencies ask for included)."""
    seen: set[str] = set()
    wanted: list[tuple[str, tuple[str, ...]]] = [(root, ())]
    while wanted:
        name, extras = wanted.pop()
        new = name not in seen
        seen.add(name)
        for package in _lock().get(name, []):
            dependencies = list(package.get("dependencies", [])) if new else []
            for extra in extras:
                dependencies += package.get("optional-dependencies", {}).get(extra, [])
            wanted += [(d["name"], tuple(d.get("extra", []))) for d in dependencies]
    return seen


def _module_file(module: str) -> Path | None:
    """The workspace file of a `retention_*` module, or None (not in the workspace)."""
    package = module.split(".")[0].removeprefix("retention_")
    roots = {
        "shared": "shared",
        "bundle": "packages/bundle",
        **{s: f"services/{s}" for s in SERVICES},
    }
    if package not in roots:
        return None
    base = REPO / roots[package] / "src" / Path(*module.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module)
            found |= {f"{node.module}.{alias.name}" for alias in node.names}
    return found


def reachable(name: str) -> tuple[set[str], set[str]]:
    """Workspace members (by source folder) and third-party top-level packages that the
    service's modules import, following imports through the workspace's modules."""
    todo = list((REPO / "services" / name / "src").rglob("*.py"))
    seen: set[Path] = set()
    members, third_party = set(), set()
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        for module in _imports(path):
            top = module.split(".")[0]
            if top.startswith("retention_"):
                parts = module.split(".")
                for depth in range(1, len(parts) + 1):
                    found = _module_file(".".join(parts[:depth]))
                    if found is not None:
                        todo.append(found)
                        members.add(str(found.relative_to(REPO)).split("/src/")[0])
            elif top not in sys.stdlib_module_names:
                third_party.add(top)
    return members, third_party


def _normal(distribution: str) -> str:
    return re.sub(r"[-_.]+", "-", distribution).lower()


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_the_image_holds_the_workspace_members_the_service_imports_and_no_others(
    name: str,
) -> None:
    """uv installs the members in the service's locked dependencies; those must be exactly the
    members its code reaches (scoring reads bundles through retention-bundle, not the trainer;
    the console reaches the services over HTTP only), so an image never carries code it does not
    run. And the builder copies the sources of each of them."""
    installed = {MEMBERS[d] for d in locked_closure(f"retention-{name}") if d in MEMBERS}
    members, _ = reachable(name)
    assert installed == members
    builder = [
        i.replace("${SERVICE}", name) for i in named(stages(DOCKERFILE.read_text()))["builder"]
    ]
    copied = {i.split()[1].removesuffix("/src") for i in builder if i.split()[1].endswith("/src")}
    pyprojects = {
        i.split()[1].removesuffix("/pyproject.toml")
        for i in builder
        if i.split()[1].endswith("/pyproject.toml")
    }
    assert installed <= copied and installed <= pyprojects


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_the_image_installs_every_library_the_service_imports(name: str) -> None:
    """Each third-party package the service's code reaches (through the workspace modules it
    imports) comes with a distribution in its locked dependencies: nothing the service runs is
    present only because the development environment has everything."""
    _, third_party = reachable(name)
    installed = {_normal(d) for d in locked_closure(f"retention-{name}")}
    distributions = packages_distributions()
    missing = {
        top: distributions.get(top)
        for top in third_party
        if not {_normal(d) for d in distributions.get(top, [top])} & installed
    }
    assert not missing


def test_dockerignore_keeps_secrets_and_local_state_out_of_the_context() -> None:
    lines = [
        line.strip()
        for line in (REPO / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert lines[0] == "*", "allow-list: everything is excluded unless re-included"
    included = {line[1:] for line in lines if line.startswith("!")}
    assert {
        "uv.lock",
        "pyproject.toml",
        "shared/src/",
        "packages/*/src/",
        "services/*/src/",
        "packages/*/pyproject.toml",
    } <= included
    assert "**/.env" in lines and "**/.venv/" in lines
