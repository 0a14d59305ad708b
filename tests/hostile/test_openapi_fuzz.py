"""Schemathesis against each service's own OpenAPI document, on the running stack.

A bounded number of generated requests per operation — valid ones and ones that break the
schema — with an admin key of a tenant that has customers and a champion; none may answer a
server error. 503 is allowed only where it is the honest answer and says to retry (ingest when
the broker does not confirm in time). Every error answer, 4xx or 5xx, must be an RFC 9457 problem:
`application/problem+json` conforming to `Problem`, its `status` the HTTP status and `title` the
status' phrase (tests/support/problems.py).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode

from retention_cli.stack import Stack
from retention_shared.config import Settings
from retention_shared.embedded_broker import EmbeddedBroker
from tests.support.broker import isolated_settings
from tests.support.problems import problem_of
from tests.support.scoring_service import feature_events, serve_champion, train_bundle
from tests.support.stack import auth, running_stack, url
from tests.support.uci_orders import TEST_DATA, load_orders

pytestmark = pytest.mark.slow
EXAMPLES = 40


@pytest.fixture(scope="module")
def stack(kafka: EmbeddedBroker, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """The stack with customers and a champion, so scoring's routes get past "no model yet"."""
    work = tmp_path_factory.mktemp("fuzz")
    settings: Settings = isolated_settings(kafka, work / "data")
    with running_stack(settings, work / "services.log", RETENTION_RETRAIN_EVERY_HOURS="0") as s:
        orders = load_orders(TEST_DATA / "online_retail_II_slice.parquet")
        serve_champion(
            settings,
            url(s, "scoring"),
            auth(),
            train_bundle(),
            feature_events(orders),
            Path(s.env["BENTOML_HOME"]),
            work,
        )
        yield s


FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(HealthCheck),
)


def bad_answers(stack: Stack, service: str) -> list[str]:
    """Every generated request per operation of `service` that answered a server error, or an
    error that is not a problem."""
    base = url(stack, service)
    schema = schemathesis.openapi.from_url(f"{base}/openapi.json")
    found: list[str] = []
    operations = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        operations += 1
        cases = st.one_of(
            operation.as_strategy(GenerationMode.POSITIVE),
            operation.as_strategy(GenerationMode.NEGATIVE),
        )

        @given(case=cases)
        @FUZZ
        def call(case: schemathesis.Case) -> None:
            response = _as_httpx(case.call(base_url=base, headers=auth(), timeout=30))
            status = response.status_code
            honest_503 = status == 503 and response.headers.get("Retry-After")
            shown = f"{case.method} {case.formatted_path} {case.query or ''} -> {status}"
            if status >= 500 and not honest_503:
                found.append(f"{shown}: {response.text[:200]}")
            if status >= 400:
                try:
                    problem_of(response)
                except (AssertionError, ValueError) as not_a_problem:
                    found.append(f"{shown}: not a problem ({not_a_problem}): {response.text[:200]}")

        call()
    assert operations > 2, f"{service}: only {operations} operations in its OpenAPI document"
    return found


def _as_httpx(response: schemathesis.Response) -> httpx.Response:
    # Schemathesis keys headers in lower case with a list of values: httpx's are looked up
    # case-insensitively, as tests/support/problems.py and the Retry-After check expect.
    # The content is already decoded: drop content-encoding so httpx does not decode it again.
    headers = [
        (name, value)
        for name, values in response.headers.items()
        if name != "content-encoding"
        for value in values
    ]
    return httpx.Response(response.status_code, headers=headers, content=response.content)


@pytest.mark.parametrize("service", ["ingest", "features", "trainer", "scoring"])
def test_no_generated_request_gets_a_server_error_or_an_error_not_a_problem(
    stack: Stack, service: str
) -> None:
    assert bad_answers(stack, service) == []
