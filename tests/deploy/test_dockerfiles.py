"""services/*/Dockerfile: multi-stage uv builds into a slim, non-root, read-only-friendly image."""

from __future__ import annotations

import json
import re

import pytest

from tests.deploy.support import CONSOLE, REPO, SERVICES, WEBHOOKS

IMPORT = re.compile(r"^\s*(?:from|import) retention_(\w+)", re.MULTILINE)


def members_imported(name: str) -> set[str]:
    """Workspace members whose packages the service's code imports (shared included)."""
    found = set()
    for path in (REPO / "services" / name / "src").rglob("*.py"):
        found |= set(IMPORT.findall(path.read_text(encoding="utf-8")))
    places = {"shared": "shared", "bundle": "packages/bundle"}
    return {places.get(member, f"services/{member}") for member in found}


def stages(text: str) -> list[list[str]]:
    """Instructions (continuations joined, comments dropped) grouped by FROM."""
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


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_dockerfile_is_multi_stage_non_root_with_healthcheck(name: str) -> None:
    text = (REPO / "services" / name / "Dockerfile").read_text()
    groups = stages(text)
    froms = [g[0] for g in groups[1:]]
    assert len(froms) >= 3, "uv image, builder and runtime stages"
    builder = next(g for g in groups if g and g[0].endswith(" AS builder"))
    runtime = groups[-1]
    assert runtime[0].endswith(" AS runtime")

    syncs = [i for i in builder if "uv sync" in i]
    assert syncs and all(
        f"--package retention-{name}" in i and "--frozen" in i and "--no-dev" in i for i in syncs
    )
    assert any(i.startswith("COPY uv.lock pyproject.toml") for i in builder)
    assert not any("embedded" in i or "--all-extras" in i for i in builder)

    copies = [i for i in runtime if i.startswith("COPY")]
    assert copies == ["COPY --from=builder /app/.venv /app/.venv"], "only the venv is copied"
    users = [i for i in runtime if i.startswith("USER ")]
    assert users, "runtime must switch to a non-root USER"
    user = users[-1].split()[1].split(":")[0]
    assert user not in ("root", "0")
    env = " ".join(i for i in runtime if i.startswith("ENV "))
    assert "RETENTION_BIND_HOST=0.0.0.0" in env
    assert f"RETENTION_{name.upper()}_PORT={SERVICES[name]}" in env
    if name == CONSOLE:
        # No data dir and no model store: nothing under /data, only /tmp is written.
        assert "RETENTION_DATA_DIR" not in env and "BENTOML_HOME" not in env
        assert "/data" not in text
    else:
        assert "RETENTION_DATA_DIR=/data" in env
        # Webhooks read no models: no model store.
        assert ("BENTOML_HOME=/data/bentoml" in env) == (name != WEBHOOKS)
        assert re.search(r"chown -R 10001:10001 /data", text), "/data writable by the service user"
    assert "PYTHONDONTWRITEBYTECODE=1" in env, "read-only root: no .pyc writes"
    assert f"EXPOSE {SERVICES[name]}" in runtime

    (healthcheck,) = [i for i in runtime if i.startswith("HEALTHCHECK ")]
    command = json.loads(healthcheck.split(" CMD ", 1)[1])
    assert command[:2] == ["python", "-c"] and "urllib.request" in command[2]
    assert "/healthz" in command[2]
    assert not any("curl" in i or "apt-get" in i for i in runtime), "nothing extra installed"
    (entrypoint,) = [i for i in runtime if i.startswith("ENTRYPOINT ")]
    assert json.loads(entrypoint.split(" ", 1)[1]) == ["python", "-m", f"retention_{name}"]


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_dockerfile_installs_only_what_the_service_imports(name: str) -> None:
    """The builder copies the sources of the workspace members the service's code imports and
    no others (scoring reads bundles through retention-bundle, not the trainer; the console
    reaches the services over HTTP only), so an image never carries code it does not run."""
    groups = stages((REPO / "services" / name / "Dockerfile").read_text())
    builder = next(g for g in groups if g and g[0].endswith(" AS builder"))
    sources = {
        i.split()[1].removesuffix("/src")
        for i in builder
        if i.startswith("COPY ") and i.split()[1].endswith("/src")
    }
    assert sources == members_imported(name)


def test_dockerignore_keeps_secrets_and_local_state_out_of_the_context() -> None:
    lines = [
        line.strip()
        for line in (REPO / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert lines[0] == "*", "allow-list: everything is excluded unless re-included"
    included = {line[1:] for line in lines if line.startswith("!")}
    assert {"uv.lock", "pyproject.toml", "shared/src/", "services/*/src/"} <= included
    assert "**/.env" in lines and "**/.venv/" in lines
