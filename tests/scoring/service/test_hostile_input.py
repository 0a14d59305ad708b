"""The scoring API under hostile and careless input, as a process on the real broker.

Tenant `default` holds the customers of the Online Retail slice, five of them renamed to
spreadsheet formulas (as an upstream system could name them); every bad request must answer a
4xx naming the field, or a well-defined answer — never a 5xx — and CSV exports must not carry
formulas.
"""

from __future__ import annotations

import asyncio
import base64
import csv
import hashlib
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import quote

import httpx
import polars as pl
import pytest

from retention_bundle.bundle import ModelBundle
from retention_scoring.scoring import score_customers
from retention_shared.config import Settings
from retention_shared.embedded_broker import EmbeddedBroker
from retention_shared.events import CustomerFeatures, RejectedRecord
from retention_shared.features import compute_features
from retention_shared.topics import Topics
from tests.support.broker import isolated_settings
from tests.support.kafka_reading import read_until
from tests.support.problems import field_problems
from tests.support.scoring_service import (
    announce,
    feature_events,
    model_published,
    publish_features,
    store_bundle,
    wait_for,
)
from tests.support.stack import running_stack, url
from tests.support.uci_orders import TEST_DATA, load_orders

pytestmark = pytest.mark.slow

KEY = "key-hostile"
AUTH = {"Authorization": f"Bearer {KEY}"}
FORMULA_IDS = (
    "=cmd|' /C calc'!A0",
    "@SUM(1)",
    "+1+1",
    '=HYPERLINK("http://evil.example","click")',
    "-2+3",
)
TEXT_COLUMNS = ("customer_id", "risk_band", "value_tier", "segment", "action", "features_as_of")


@dataclass
class Service:
    base: str
    expected: pl.DataFrame  # every customer scored offline at the tenant clock
    features: pl.DataFrame  # their feature vectors at that clock
    settings: Settings


POISONED = ("vector-of-1e308", "history-of-1e308", "esc\x1b[31m-id")


def _poisoned(events: list[CustomerFeatures]) -> list[CustomerFeatures]:
    """Vectors a producer bypassing the features service could send: not one may stop the
    tenant's scoring (1e308 made every population of the tenant fail)."""
    base = min(events, key=lambda e: e.as_of)  # an early clock: its history gets moved
    history = base.history.model_copy(
        update={
            "orders": [order.model_copy(update={"total": 1e308}) for order in base.history.orders]
        }
    )
    return [
        base.model_copy(
            update={"customer_id": POISONED[0], "features": base.features | {"monetary": 1e308}}
        ),
        base.model_copy(update={"customer_id": POISONED[1], "history": history}),
        base.model_copy(update={"customer_id": POISONED[2]}),
    ]


@pytest.fixture(scope="module")
def service(
    kafka: EmbeddedBroker, tmp_path_factory: pytest.TempPathFactory, bundle: ModelBundle
) -> Iterator[Service]:
    directory = tmp_path_factory.mktemp("scoring-hostile")
    settings = isolated_settings(kafka, directory / "data")
    home = directory / "bentoml"
    tag = store_bundle(bundle, home, directory)
    orders = load_orders(TEST_DATA / "online_retail_slice.parquet", tenant="default")
    real_ids = sorted(orders["customer_id"].unique().to_list())[: len(FORMULA_IDS)]
    renamed = orders.with_columns(
        customer_id=pl.col("customer_id").replace(dict(zip(real_ids, FORMULA_IDS, strict=True)))
    )
    events = feature_events(renamed)
    asyncio.run(publish_features(settings, events + _poisoned(events)))
    with running_stack(
        settings,
        directory / "scoring.log",
        services=("scoring",),
        BENTOML_HOME=str(home),
        RETENTION_API_KEYS=f"{KEY}:default:read",
    ) as stack:
        asyncio.run(announce(settings, model_published("default", tag)))
        base = url(stack, "scoring")
        features = compute_features(renamed, renamed["occurred_at"].max())
        expected = score_customers(bundle, features)
        with httpx.Client(timeout=30) as client:
            wait_for(
                lambda: (
                    client.get(f"{base}/v1/customers", headers=AUTH).json().get("total")
                    == expected.height
                ),
                what="every customer scored",
            )
        yield Service(base, expected, features, settings)


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=30) as c:
        yield c


def _names(response: httpx.Response, field: str) -> bool:
    # Query parameters are named as FastAPI locates them ("query.limit").
    return any(found in (field, f"query.{field}") for found, _ in field_problems(response))


# --- vectors on customer-features -------------------------------------------------------------


def test_unscorable_vectors_are_dead_lettered_and_the_tenant_scores_on(
    service: Service, client: httpx.Client
) -> None:
    topic = Topics.with_prefix(service.settings.topic_prefix).transactions_rejected
    records = asyncio.run(
        read_until(service.settings, topic, lambda found: len(found) >= len(POISONED))
    )
    rejected = [RejectedRecord.model_validate_json(r.value) for r in records]
    assert len(rejected) == len(POISONED)
    fields = sorted(reason.field or "" for r in rejected for reason in r.reasons)
    assert fields == ["customer_id", "features.monetary", "history.orders.0.total"]
    assert all(reason.code == "invalid_event" for r in rejected for reason in r.reasons)
    for customer_id in POISONED:
        path = f"/v1/customers/{quote(customer_id, safe='')}/score"
        response = client.get(f"{service.base}{path}", headers=AUTH)
        assert response.status_code == 404, response.text


# --- CSV exports ------------------------------------------------------------------------------


def test_csv_exports_neutralize_formulas_and_keep_numbers(
    service: Service, client: httpx.Client
) -> None:
    response = client.get(
        f"{service.base}/v1/customers",
        params={"limit": 10000, "sort": "customer_id"},
        headers=AUTH | {"Accept": "text/csv"},
    )
    assert response.status_code == 200, response.text
    # `format=csv` is the same export (a spreadsheet user's download link).
    by_format = client.get(
        f"{service.base}/v1/customers",
        params={"limit": 10000, "sort": "customer_id", "format": "csv"},
        headers=AUTH,
    )
    assert by_format.content == response.content
    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert len(rows) == service.expected.height
    ids = {row["customer_id"] for row in rows}
    assert {"'" + formula for formula in FORMULA_IDS} <= ids
    for row in rows:
        for column in TEXT_COLUMNS:
            assert not row[column].startswith(("=", "+", "-", "@", "\t", "\r")), row
    by_id = {row["customer_id"]: row for row in rows}
    for formula in FORMULA_IDS:
        want = service.expected.filter(pl.col("customer_id") == formula).row(0, named=True)
        got = by_id["'" + formula]
        assert float(got["churn_probability"]) == pytest.approx(want["churn_probability"])
        assert float(got["predicted_ltv"]) == pytest.approx(want["predicted_ltv"], abs=1e-9)
    # JSON carries ids as they are: it is not read by spreadsheets, and clients match on them.
    listed = client.get(
        f"{service.base}/v1/customers", params={"limit": 10000}, headers=AUTH
    ).json()["customers"]
    assert set(FORMULA_IDS) <= {c["customer_id"] for c in listed}


# --- POST /v1/score ---------------------------------------------------------------------------


def _vector(service: Service, **changes: object) -> dict:
    row = service.features.row(0, named=True)
    features = {name: row[name] for name in service.features.columns[3:]}
    return {"customer_id": row["customer_id"], "features": features | changes}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"customers": []}, "customers"),
        ({"customer_ids": []}, "customer_ids"),
        ({"customer_ids": ["17850"], "customer": []}, "customer"),
        ({"customer_ids": ["\ud800"]}, "customer_ids.0"),
        ({"customer_ids": ["a\u202eb"]}, "customer_ids.0"),
        ({"customer_ids": ["x" * 257]}, "customer_ids.0"),
        ({"customer_ids": ["17850"], "include_reasons": "yes"}, "include_reasons"),
        ({"customer_ids": [True]}, "customer_ids.0"),
        ({"customers": [{"features": {}, "segment": "x"}]}, "customers.0.segment"),
    ],
)
def test_score_requests_of_the_wrong_shape_name_the_field(
    service: Service, client: httpx.Client, body: dict, field: str
) -> None:
    content = json.dumps(body).encode()  # json.dumps keeps a lone surrogate as \\ud800
    response = client.post(
        f"{service.base}/v1/score",
        content=content,
        headers=AUTH | {"content-type": "application/json"},
    )
    assert response.status_code == 422, response.text
    assert _names(response, field), response.text


@pytest.mark.parametrize(
    "value",
    [1e308, -1e308, 1e16, -1e16, float("nan"), float("inf"), float("-inf"), "12", True, None, []],
)
@pytest.mark.parametrize("feature", ["recency_days", "monetary", "spend_trend"])
def test_a_feature_value_that_cannot_be_scored_is_a_422_naming_it(
    service: Service, client: httpx.Client, feature: str, value: object
) -> None:
    body = {"customers": [_vector(service), _vector(service, **{feature: value})]}
    response = client.post(
        f"{service.base}/v1/score",
        content=json.dumps(body).encode(),  # NaN and Infinity as Python's json writes them
        headers=AUTH | {"content-type": "application/json"},
    )
    assert response.status_code == 422, response.text
    assert _names(response, f"customers.1.features.{feature}"), response.text


def test_extreme_but_finite_feature_values_get_a_well_defined_score(
    service: Service, client: httpx.Client
) -> None:
    names = service.features.columns[3:]
    vectors = [
        _vector(service, **dict.fromkeys(names, value)) for value in (1e15, -1e15, 0.0, 1e-300)
    ]
    response = client.post(f"{service.base}/v1/score", json={"customers": vectors}, headers=AUTH)
    assert response.status_code == 200, response.text
    for result in response.json()["results"]:
        score = result["score"]
        assert 0.0 <= score["churn_probability"] <= 1.0
        assert score["risk_band"] in {"low", "medium", "high"}
        assert score["predicted_ltv"] >= 0 and score["ltv_low"] <= score["ltv_high"]


def test_unknown_and_missing_features_name_the_feature(
    service: Service, client: httpx.Client
) -> None:
    extra = _vector(service, favourite_colour=1.0)
    missing = _vector(service)
    del missing["features"]["frequency"]
    for vector, field in [
        (extra, "customers.0.features.favourite_colour"),
        (missing, "customers.0.features.frequency"),
    ]:
        response = client.post(
            f"{service.base}/v1/score", json={"customers": [vector]}, headers=AUTH
        )
        assert response.status_code == 422 and _names(response, field), response.text


# --- POST /v1/campaigns/plan ------------------------------------------------------------------


def _plan(client: httpx.Client, service: Service, body: dict) -> httpx.Response:
    return client.post(
        f"{service.base}/v1/campaigns/plan",
        content=json.dumps(body).encode(),
        headers=AUTH | {"content-type": "application/json"},
    )


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"budget": 1e308, "cost_per_contact": 1e-308}, "cost_per_contact"),
        ({"cost_per_contact": 0}, "cost_per_contact"),
        ({"cost_per_contact": -5}, "cost_per_contact"),
        ({"cost_per_contact": float("nan")}, "cost_per_contact"),
        ({"budget": -1}, "budget"),
        ({"budget": float("nan")}, "budget"),
        ({"budget": float("inf")}, "budget"),
        ({"save_rate": 1e308}, "save_rate"),
        ({"save_rate": float("nan")}, "save_rate"),
        ({"save_rate": -0.1}, "save_rate"),
        ({"discount": 1e308}, "discount"),
        ({"discount": float("nan")}, "discount"),
        ({"discount": -0.5}, "discount"),
        ({"budget": "lots"}, "budget"),
        ({"budget": True}, "budget"),
        ({"budjet": 10}, "budjet"),
        ({"filters": {"segment": "no such segment"}}, "filters.segment"),
        ({"filters": {"value_tier": "Gold"}}, "filters.value_tier.0"),
        ({"filters": {"risk_band": ["high", "severe"]}}, "filters.risk_band.1"),
        ({"filters": {"risk_band": []}}, "filters.risk_band"),
        ({"contacts_limit": 0}, "contacts_limit"),
    ],
)
def test_campaign_plans_refuse_bad_numbers_naming_the_field(
    service: Service, client: httpx.Client, changes: dict, field: str
) -> None:
    body = {"budget": 100, "cost_per_contact": 5, "save_rate": 0.25, "discount": 0.1} | changes
    response = _plan(client, service, body)
    assert response.status_code == 422, response.text
    assert _names(response, field), response.text


def test_a_huge_budget_plans_every_worthwhile_contact(
    service: Service, client: httpx.Client
) -> None:
    body = {"budget": 1e308, "cost_per_contact": 1e-6, "save_rate": 1.0, "discount": 0.0}
    response = _plan(client, service, body)
    assert response.status_code == 200, response.text
    plan = response.json()
    value = service.expected["churn_probability"] * service.expected["predicted_ltv"] - 1e-6
    worthwhile = int((value > 0).sum())
    assert plan["contacts_total"] == worthwhile
    assert len(plan["contacts"]) == min(worthwhile, 1000)  # the default contacts_limit
    assert plan["expected"]["cost"] == pytest.approx(worthwhile * 1e-6)
    assert plan["expected"]["expected_saved_revenue"] == pytest.approx(
        float(value.filter(value > 0).sum()) + worthwhile * 1e-6
    )
    assert plan["optimistic"]["save_rate"] == 1.0


def test_campaign_filters_take_lists_of_tiers(service: Service, client: httpx.Client) -> None:
    body = {
        "budget": 1e6,
        "cost_per_contact": 1,
        "save_rate": 0.5,
        "filters": {"value_tier": ["High", "VIP"]},
    }
    response = _plan(client, service, body)
    assert response.status_code == 200, response.text
    assert {c["value_tier"] for c in response.json()["contacts"]} <= {"High", "VIP"}
    assert response.json()["candidates"] == int(
        service.expected["value_tier"].is_in(["High", "VIP"]).sum()
    )


# --- GET /v1/customers ------------------------------------------------------------------------


def _cursor(payload: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(payload).encode()).decode().rstrip("=")


def _fingerprint(sort: str = "revenue_at_risk") -> str:
    text = json.dumps([None, None, None, None, sort])
    return hashlib.sha256(text.encode()).hexdigest()[:12]


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"limit": "1e308"}, "limit"),
        ({"limit": "-1"}, "limit"),
        ({"limit": "99999999999999999999999"}, "limit"),
        ({"min_ltv": "nan"}, "min_ltv"),
        ({"min_ltv": "-1e308"}, "min_ltv"),
        ({"min_ltv": "inf"}, "min_ltv"),
        ({"segment": "no such segment"}, "segment"),
        ({"value_tier": "High,Gold"}, "value_tier"),
        ({"risk_band": "high,severe"}, "risk_band"),
        ({"value_tier": ","}, "value_tier"),
        ({"cursor": "%%%"}, "cursor"),
        ({"cursor": "\u202e"}, "cursor"),
        ({"cursor": _cursor({"v": "abc", "c": "1", "q": _fingerprint()})}, "cursor"),
        ({"cursor": _cursor({"v": None, "c": "1", "q": _fingerprint()})}, "cursor"),
        ({"cursor": _cursor({"v": True, "c": "1", "q": _fingerprint()})}, "cursor"),
        ({"cursor": _cursor({"v": 10**400, "c": "1", "q": _fingerprint()})}, "cursor"),
        ({"cursor": _cursor({"v": 1, "c": 5, "q": _fingerprint()})}, "cursor"),
        ({"cursor": _cursor([1, 2, 3])}, "cursor"),
        (
            {"sort": "customer_id", "cursor": _cursor({"v": 1.5, "c": "1", "q": _fingerprint()})},
            "cursor",
        ),
    ],
)
def test_list_parameters_out_of_range_name_the_field(
    service: Service, client: httpx.Client, params: dict, field: str
) -> None:
    response = client.get(f"{service.base}/v1/customers", params=params, headers=AUTH)
    assert response.status_code == 422, response.text
    assert _names(response, field), response.text


def test_a_cursor_of_infinity_is_refused(service: Service, client: httpx.Client) -> None:
    cursor = base64.urlsafe_b64encode(
        f'{{"v": 1e999, "c": "1", "q": "{_fingerprint()}"}}'.encode()
    ).decode()
    response = client.get(f"{service.base}/v1/customers", params={"cursor": cursor}, headers=AUTH)
    assert response.status_code == 422 and _names(response, "cursor"), response.text


def test_tiers_and_bands_take_comma_lists_as_the_readme_shows(
    service: Service, client: httpx.Client
) -> None:
    response = client.get(
        f"{service.base}/v1/customers",
        params={"risk_band": "high,medium", "value_tier": "High,VIP", "limit": 10000},
        headers=AUTH,
    )
    assert response.status_code == 200, response.text
    want = service.expected.filter(
        pl.col("risk_band").is_in(["high", "medium"]) & pl.col("value_tier").is_in(["High", "VIP"])
    )
    body = response.json()
    assert body["total"] == want.height > 0
    assert {c["customer_id"] for c in body["customers"]} == set(want["customer_id"])
    # A repeated parameter means the same as a comma list.
    repeated = client.get(
        f"{service.base}/v1/customers",
        params=[("risk_band", "high"), ("risk_band", "medium"), ("value_tier", "High,VIP")],
        headers=AUTH,
    )
    assert repeated.status_code == 200 and repeated.json()["total"] == want.height


def test_extreme_but_valid_list_parameters_answer_normally(
    service: Service, client: httpx.Client
) -> None:
    for params in ({"min_ltv": "1e308"}, {"min_ltv": "0"}, {"limit": "10000"}):
        response = client.get(f"{service.base}/v1/customers", params=params, headers=AUTH)
        assert response.status_code == 200, (params, response.text)
    assert (
        client.get(
            f"{service.base}/v1/customers", params={"min_ltv": "1e308"}, headers=AUTH
        ).json()["total"]
        == 0
    )


@pytest.mark.parametrize(
    "customer_id", ["%00", "%E2%80%AE", "%ED%A0%80", "x" * 300, "%FF%FE", "%3D1%2B1"]
)
def test_odd_customer_ids_in_paths_are_a_404_or_422(
    service: Service, client: httpx.Client, customer_id: str
) -> None:
    for path in ("score", "features"):
        response = client.get(f"{service.base}/v1/customers/{customer_id}/{path}", headers=AUTH)
        assert response.status_code in (404, 422), response.text
        assert _names(response, "customer_id"), response.text


def test_the_service_is_healthy_after_all_of_it(service: Service, client: httpx.Client) -> None:
    assert client.get(f"{service.base}/healthz").status_code == 200
    assert client.get(f"{service.base}/readyz").status_code == 200
    metrics = client.get(f"{service.base}/metrics").text
    assert 'status="500"' not in metrics
