"""`GET /v1/segments/migration` on the running stack, checked against an independent computation.

The expected matrix is built here from the slice's orders as ingest's own cleaning makes them,
`compute_features` at each date's clock (one call per clock, not the endpoint's multi-cutoff
pass) and the champion bundle's segmenter read from the stack's BentoML store.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path

import httpx
import polars as pl
import pytest

from retention_bundle.bundle import read_bundle
from retention_bundle.models.segmenter import Segmenter
from retention_cli.stack import Stack
from retention_ingest.file_ingest import ingest_file
from retention_shared.features import compute_features, orders_from_event_columns
from tests.support.problems import field_problems
from tests.support.stack import auth, url
from tests.support.uci_orders import TEST_DATA

NOT_YET = "Not yet a customer"
SLICE = TEST_DATA / "online_retail_slice.parquet"  # what `loaded_stack` uploaded


@pytest.fixture(scope="module")
def orders(tmp_path_factory: pytest.TempPathFactory) -> pl.DataFrame:
    work = tmp_path_factory.mktemp("migration")
    result = ingest_file(SLICE, tenant_id="default", source="expected", work_dir=work)
    return orders_from_event_columns(result.events().collect())


def migration(stack: Stack, key: str | None = None, **dates: str) -> httpx.Response:
    params = {"from" if name == "start" else "to": value for name, value in dates.items()}
    return httpx.get(
        f"{url(stack, 'trainer')}/v1/segments/migration",
        params=params,
        headers=auth(key) if key else auth(),
        timeout=60,
    )


def champion_segmenter(analytics_work: Path, version: str) -> Segmenter:
    return read_bundle(
        analytics_work / "bentoml" / "models" / "retention-default" / version
    ).segmenter


def by_hand(
    orders: pl.DataFrame, segmenter: Segmenter, start: date, end: date
) -> tuple[dict[tuple[str, str], tuple[int, float]], int, int]:
    """(from, to) → (customers, net spend at `to`), customers at `from`, customers at `to`."""
    latest = orders["occurred_at"].max()

    def segments(day: date) -> dict[str, tuple[str, float]]:
        # The end of the day, but not after the latest order (the tenant clock).
        clock = min(datetime.combine(day + timedelta(days=1), time(0), tzinfo=UTC), latest)
        features = compute_features(orders, clock)
        names = segmenter.segment_names(features)
        return dict(
            zip(features["customer_id"], zip(names, features["monetary"], strict=True), strict=True)
        )

    before, after = segments(start), segments(end)
    flows: dict[tuple[str, str], list[float]] = defaultdict(list)
    for customer, (segment, spend) in after.items():
        flows[(before.get(customer, (NOT_YET, 0.0))[0], segment)].append(spend)
    return {pair: (len(s), sum(s)) for pair, s in flows.items()}, len(before), len(after)


@pytest.mark.parametrize(
    "dates",
    [{}, {"start": "2011-03-01", "to": "2011-06-30"}],
    ids=["default-range", "explicit-range"],
)
def test_the_matrix_is_the_champions_segmenter_on_point_in_time_features(
    loaded_stack: Stack, analytics_work: Path, orders: pl.DataFrame, dates: dict[str, str]
) -> None:
    response = migration(loaded_stack, **dates)
    assert response.status_code == 200, response.text
    body = response.json()
    runs = httpx.get(f"{url(loaded_stack, 'trainer')}/v1/runs", headers=auth()).json()["runs"]
    published = next(run for run in runs if run["status"] == "published")
    assert body["model_version"] == published["model_tag"].split(":")[1]
    # The default range: 90 days up to the latest order's day.
    start = date.fromisoformat(dates.get("start", "2011-09-10"))
    end = date.fromisoformat(dates.get("to", "2011-12-09"))
    assert (body["tenant_id"], body["from"], body["to"]) == (
        "default",
        start.isoformat(),
        end.isoformat(),
    )

    segmenter = champion_segmenter(analytics_work, body["model_version"])
    assert body["segments"] == [NOT_YET, *segmenter.names]
    expected, at_start, at_end = by_hand(orders, segmenter, start, end)
    found = {(f["from"], f["to"]): (f["customers"], f["revenue"]) for f in body["flows"]}
    assert found.keys() == expected.keys()
    for pair, (customers, revenue) in expected.items():
        assert found[pair] == (customers, pytest.approx(revenue, abs=0.01)), pair
    assert all(f["customers"] > 0 for f in body["flows"])
    # Counts add up at both ends.
    assert (body["customers_at_from"], body["customers_at_to"]) == (at_start, at_end)
    assert sum(f["customers"] for f in body["flows"] if f["from"] != NOT_YET) == at_start
    assert sum(f["customers"] for f in body["flows"]) == at_end
    assert Counter(f["from"] for f in body["flows"])[NOT_YET] > 0  # some customers arrived


def test_dates_before_all_orders_count_everyone_as_not_yet_a_customer(
    loaded_stack: Stack, orders: pl.DataFrame
) -> None:
    empty = migration(loaded_stack, start="2001-01-01", to="2002-01-01").json()
    assert (empty["flows"], empty["customers_at_from"], empty["customers_at_to"]) == ([], 0, 0)
    arrived = migration(loaded_stack, start="0001-01-01").json()
    assert {f["from"] for f in arrived["flows"]} == {NOT_YET}
    assert arrived["customers_at_to"] == orders["customer_id"].n_unique()


def test_a_tenant_without_a_champion_gets_409_and_nothing_of_another_tenant(
    loaded_stack: Stack,
) -> None:
    for dates in ({}, {"start": "2011-01-01", "to": "2011-12-09"}):
        response = migration(loaded_stack, key="e2e-other", **dates)
        assert response.status_code == 409, response.text
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json() == {
            "type": "about:blank",
            "title": "Conflict",
            "status": 409,
            "detail": "model: no champion model yet; train one first",
            "errors": [{"field": "model", "problem": "no champion model yet; train one first"}],
        }


@pytest.mark.parametrize(
    ("dates", "field"),
    [
        ({"start": "2011-13-01"}, "from"),
        ({"to": "09/12/2011"}, "to"),
        ({"start": "20110301"}, "from"),
        ({"start": "٢٠١١-٠٣-٠١"}, "from"),  # digits, but not ASCII ones
        ({"start": "2011-02-30"}, "from"),
        ({"start": "2011-06-30", "to": "2011-03-01"}, "from"),
        ({"start": "2011-06-30", "to": "2011-06-30"}, "from"),
        ({"to": "2011-12-10"}, "to"),  # after the latest order: no data there yet
        ({"start": "2011-12-09"}, "from"),  # not before the default `to`
    ],
)
def test_bad_dates_are_422_naming_the_field(
    loaded_stack: Stack, dates: dict[str, str], field: str
) -> None:
    response = migration(loaded_stack, **dates)
    assert response.status_code == 422, response.text
    assert [found for found, _ in field_problems(response)] == [field]


def test_the_route_needs_a_key(loaded_stack: Stack) -> None:
    response = httpx.get(f"{url(loaded_stack, 'trainer')}/v1/segments/migration")
    assert response.status_code == 401
