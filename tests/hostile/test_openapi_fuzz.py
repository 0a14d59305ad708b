"""Schemathesis against each service's own OpenAPI document, on the running stack.

A bounded number of generated requests per operation — valid ones and ones that break the
schema — with an admin key of a tenant that has customers and a champion; none may answer a
server error. 503 is allowed only where it is the honest answer and says to retry (ingest when
the broker does not confirm in time).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode

from retention_cli.stack import Stack
from retention_shared.config import Settings
from retention_shared.embedded_broker import EmbeddedBroker
from tests.conftest import isolated_settings
from tests.scoring_service.support import feature_events, serve_champion, train_bundle
from tests.stack_support import auth, running_stack, url
from tests.uci_orders import TEST_DATA, load_orders

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


def server_errors(stack: Stack, service: str) -> list[str]:
    """Every generated request per operation of `service` that answered a server error."""
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
            response = case.call(base_url=base, headers=auth(), timeout=30)
            status = response.status_code
            honest_503 = status == 503 and response.headers.get("Retry-After")
            if status >= 500 and not honest_503:
                found.append(
                    f"{case.method} {case.formatted_path} {case.query or ''} -> {status}: "
                    f"{response.text[:200]}"
                )

        call()
    assert operations > 2, f"{service}: only {operations} operations in its OpenAPI document"
    return found


@pytest.mark.parametrize("service", ["ingest", "features", "trainer", "scoring"])
def test_no_generated_request_gets_a_server_error(stack: Stack, service: str) -> None:
    assert server_errors(stack, service) == []
