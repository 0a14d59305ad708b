"""`GET /v1/runs` pages like the other lists (`limit`, `cursor`, `next_cursor`), newest first, on
the trainer process: the pages joined are the one-request list, a cursor is this list's only."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest

from retention_cli.stack import Stack
from retention_shared.cursors import encode_cursor
from retention_shared.embedded_broker import EmbeddedBroker
from tests.support.broker import isolated_settings
from tests.support.problems import first_problem
from tests.support.stack import auth, running_stack, url

pytestmark = pytest.mark.slow

RUNS = 5


def _runs(stack: Stack, **params: object) -> httpx.Response:
    return httpx.get(f"{url(stack, 'trainer')}/v1/runs", params=params, headers=auth(), timeout=30)


@pytest.fixture(scope="module")
def trainer(kafka: EmbeddedBroker, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """A trainer with `RUNS` finished runs of tenant `default` (an empty lake: each is skipped
    at once), asked one after the other so none joins another's follow-up."""
    work = tmp_path_factory.mktemp("trainer-runs")
    settings = isolated_settings(kafka, work / "data")
    with running_stack(
        settings, work / "trainer.log", services=("trainer",), RETENTION_RETRAIN_EVERY_HOURS="0"
    ) as stack:
        for number in range(RUNS):
            asked = httpx.post(
                f"{url(stack, 'trainer')}/v1/retrain",
                json={"reason": f"run {number}"},
                headers=auth(),
                timeout=30,
            )
            assert asked.status_code == 202, asked.text
            deadline = time.monotonic() + 60
            while _runs(stack, limit=1).json()["runs"][0]["status"] in ("queued", "running"):
                assert time.monotonic() < deadline, "a run did not finish"
                time.sleep(0.2)
        yield stack


def test_pages_of_runs_joined_are_the_whole_list_newest_first(trainer: Stack) -> None:
    whole = _runs(trainer, limit=500).json()
    assert whole["next_cursor"] is None and len(whole["runs"]) == RUNS
    reasons = [run["triggers"][0]["detail"] for run in whole["runs"]]
    assert reasons == [f"run {number}" for number in reversed(range(RUNS))]
    seen, cursor, pages = [], None, 0
    while True:
        page = _runs(trainer, limit=2, **({"cursor": cursor} if cursor else {}))
        assert page.status_code == 200, page.text
        seen += page.json()["runs"]
        pages, cursor = pages + 1, page.json()["next_cursor"]
        if cursor is None:
            break
    assert pages == 3 and seen == whole["runs"]


@pytest.mark.parametrize(
    "cursor",
    [
        "garbage",
        encode_cursor("uploads", ("2024-01-01", "u1")),  # another list's cursor
        encode_cursor("runs", ("7",)),  # the key of the wrong type
    ],
)
def test_a_cursor_not_of_this_list_is_a_422_naming_it(trainer: Stack, cursor: str) -> None:
    response = _runs(trainer, cursor=cursor)
    assert response.status_code == 422, response.text
    assert first_problem(response)[0] == "cursor"
