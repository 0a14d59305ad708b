"""The trainer's HTTP API under hostile and careless input, as a process on the real broker:
every bad request is a 4xx naming the field, never a 5xx, and the service stays healthy."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest

from retention_cli.stack import Stack
from retention_shared.embedded_broker import EmbeddedBroker
from tests.support.broker import isolated_settings
from tests.support.problems import field_problems
from tests.support.stack import auth, running_stack, url

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def trainer(kafka: EmbeddedBroker, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    work = tmp_path_factory.mktemp("trainer-hostile")
    settings = isolated_settings(kafka, work / "data")
    with running_stack(
        settings, work / "trainer.log", services=("trainer",), RETENTION_RETRAIN_EVERY_HOURS="0"
    ) as stack:
        yield stack


def _retrain(stack: Stack, content: bytes) -> httpx.Response:
    return httpx.post(
        f"{url(stack, 'trainer')}/v1/retrain",
        content=content,
        headers=auth() | {"content-type": "application/json"},
        timeout=30,
    )


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"reason": "\ud800"}, "reason"),
        ({"reason": "a\x00b"}, "reason"),
        ({"reason": "x" * 501}, "reason"),
        ({"reason": 12}, "reason"),
        ({"cutoff_every_days": True}, "cutoff_every_days"),
        ({"cutoff_every_days": 1e308}, "cutoff_every_days"),
        ({"cutoff_every_days": "30"}, "cutoff_every_days"),
        ({"cutoff_every_days": float("nan")}, "cutoff_every_days"),
        ({"cutoff_every_days": 6}, "cutoff_every_days"),
        ({"cutof_every_days": 30}, "cutof_every_days"),
        ([], "body"),
    ],
)
def test_bad_retrain_requests_name_the_field(trainer: Stack, body: object, field: str) -> None:
    response = _retrain(trainer, json.dumps(body).encode())
    assert response.status_code == 422, response.text
    assert any(found == field for found, _ in field_problems(response)), response.text


def test_a_reason_in_any_language_is_kept(trainer: Stack) -> None:
    reason = "Réentraînement — 再訓練\nafter the upload"
    response = _retrain(trainer, json.dumps({"reason": reason}).encode())
    assert response.status_code == 202, response.text
    run = httpx.get(
        f"{url(trainer, 'trainer')}/v1/runs/{response.json()['run_id']}", headers=auth()
    ).json()
    assert run["triggers"][0]["detail"] == reason


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/v1/runs?limit=1e308", 422),
        ("/v1/runs?limit=0", 422),
        ("/v1/runs?limit=99999999999999999999", 422),
        ("/v1/runs/%00", 404),
        ("/v1/runs/%ED%A0%80", 404),
        ("/v1/runs/" + "x" * 5000, 404),
    ],
)
def test_odd_reads_are_4xx(trainer: Stack, path: str, status: int) -> None:
    response = httpx.get(f"{url(trainer, 'trainer')}{path}", headers=auth(), timeout=30)
    assert response.status_code == status, response.text
    assert httpx.get(f"{url(trainer, 'trainer')}/healthz").status_code == 200
