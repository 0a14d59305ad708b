"""A run's training happens in a child process of the trainer (retention_trainer.runs.child).

On the real broker, with the trainer as a real process: the trainer process never maps
scikit-learn (the child does), a child killed with SIGKILL mid-run makes a `failed` run naming
the signal while the trainer stays up and trains the next request, and a trainer stopped during
a run leaves no training child behind.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import httpx
import pytest

from retention_cli.stack import Stack
from retention_shared.embedded_broker import EmbeddedBroker
from tests.support.stack import API_KEY, FINISHED, SLICE, auth, stack_of_its_own, upload_file, url

pytestmark = pytest.mark.slow

CHILD_MODULE = b"retention_trainer.runs.child_main"
T = TypeVar("T")


def eventually(check: Callable[[], T | None], what: str, timeout: float = 180) -> T:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:  # None, False or an empty list: not yet
            return found
        time.sleep(0.2)
    raise TimeoutError(what)


def training_children(parent: int) -> list[int]:
    """The live training child processes of `parent` (from /proc: ppid and command line)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:  # gone meanwhile
            continue
        fields = stat.rsplit(")", 1)[1].split()
        state, ppid = fields[0], int(fields[1])
        if ppid == parent and state != "Z" and CHILD_MODULE in cmdline:
            found.append(int(entry.name))
    return found


def maps(pid: int) -> str:
    return Path(f"/proc/{pid}/maps").read_text()


def runs(stack: Stack) -> list[dict]:
    response = httpx.get(f"{url(stack, 'trainer')}/v1/runs", headers=auth(API_KEY))
    assert response.status_code == 200, response.text
    return response.json()["runs"]


def finished(stack: Stack, run_id: str) -> dict | None:
    run = next((r for r in runs(stack) if r["run_id"] == run_id), None)
    return run if run is not None and run["status"] in FINISHED else None


def retrain(stack: Stack) -> str:
    response = httpx.post(f"{url(stack, 'trainer')}/v1/retrain", headers=auth(API_KEY))
    assert response.status_code == 202, response.text
    return response.json()["run_id"]


def test_a_killed_training_child_fails_its_run_and_the_trainer_carries_on(
    kafka: EmbeddedBroker, tmp_path: Path
) -> None:
    with stack_of_its_own(
        kafka, tmp_path, "trainer-child", services=("ingest", "trainer")
    ) as stack:
        trainer = next(s for s in stack.running if s.name == "trainer").process
        upload_file(stack, SLICE, API_KEY, timeout=60)  # its RetrainRequested starts a run
        [child] = eventually(lambda: training_children(trainer.pid), "no training child")
        # The child loads the training libraries; the trainer process never does.
        eventually(lambda: "sklearn" in maps(child), "the child never loaded scikit-learn", 60)
        assert "xgboost" in maps(trainer.pid)  # bundles are read here (outcome monitor)
        assert "sklearn" not in maps(trainer.pid)
        assert "scipy/optimize" not in maps(trainer.pid)

        [running] = [r for r in runs(stack) if r["status"] == "running"]
        os.kill(child, signal.SIGKILL)
        killed = eventually(lambda: finished(stack, running["run_id"]), "killed run unfinished")
        assert killed["status"] == "failed"
        assert "killed by SIGKILL" in killed["message"], killed["message"]
        assert trainer.poll() is None
        assert training_children(trainer.pid) == []

        # The trainer is still serving and trains the next request to the end.
        second = retrain(stack)
        published = eventually(lambda: finished(stack, second), "second run unfinished", 300)
        assert published["status"] == "published", published["message"]
        assert published["timings"]["child_start"] > 0
        assert {"lake_read", "churn", "ltv", "gate", "refit", "publish"} <= set(
            published["timings"]
        )
        assert "sklearn" not in maps(trainer.pid)
        assert training_children(trainer.pid) == []

        # Stopped during a run, the trainer takes its child with it.
        third = retrain(stack)
        [child] = eventually(lambda: training_children(trainer.pid), "no third training child")
        assert next(r for r in runs(stack) if r["run_id"] == third)["status"] == "running"
        trainer.terminate()
        trainer.wait(60)
        eventually(
            lambda: not Path(f"/proc/{child}").exists(), "the child outlived the trainer", 30
        )
