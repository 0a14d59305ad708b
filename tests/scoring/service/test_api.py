"""The scoring API as a process on the real broker, fed `customer-features` built from real orders.

Tenants: `default` (Online Retail slice, with a champion), `other` (Online Retail II slice, with
its own champion) and `third` (customers, no champion).
"""

from __future__ import annotations

import asyncio
import csv
import io
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date

import httpx
import numpy as np
import polars as pl
import pytest

from retention_bundle.bundle import ModelBundle
from retention_scoring.scoring import score_customers
from retention_shared.config import Settings
from retention_shared.embedded_broker import EmbeddedBroker
from retention_shared.features import compute_features
from tests.support.broker import isolated_settings
from tests.support.problems import field_problems, first_problem, problem_of
from tests.support.scoring_service import (
    announce,
    feature_events,
    model_published,
    publish_features,
    store_bundle,
)
from tests.support.stack import running_stack, url
from tests.support.uci_orders import TEST_DATA, load_orders

pytestmark = pytest.mark.slow

KEYS = {
    "default": "key-default",
    "other": "key-other",
    "third": "key-third",
    "ingest-only": "key-ingest",
}
API_KEYS = (
    "key-default:default:read,key-other:other:admin,key-third:third:read,key-ingest:default:ingest"
)


def auth(who: str = "default") -> dict[str, str]:
    return {"Authorization": f"Bearer {KEYS[who]}"}


@dataclass
class Service:
    base: str
    settings: Settings
    expected: pl.DataFrame  # default's customers scored offline at the tenant clock
    version: str


@pytest.fixture(scope="module")
def service(
    kafka: EmbeddedBroker, tmp_path_factory: pytest.TempPathFactory, bundle: ModelBundle
) -> Iterator[Service]:
    directory = tmp_path_factory.mktemp("scoring-api")
    settings = isolated_settings(kafka, directory / "data")
    home = directory / "bentoml"
    tag = store_bundle(bundle, home, directory)
    default = load_orders(TEST_DATA / "online_retail_slice.parquet", tenant="default")
    other = load_orders(TEST_DATA / "online_retail_II_slice.parquet", tenant="other")
    third = default.with_columns(tenant_id=pl.lit("third")).head(200)
    events = feature_events(pl.concat([default, other, third]))
    asyncio.run(publish_features(settings, events))
    with running_stack(
        settings,
        directory / "scoring.log",
        services=("scoring",),
        BENTOML_HOME=str(home),
        RETENTION_API_KEYS=API_KEYS,
        RETENTION_DRIFT_CHECK_MINUTES="0.05",
    ) as stack:
        asyncio.run(announce(settings, model_published("default", tag)))
        asyncio.run(announce(settings, model_published("other", tag)))
        base = url(stack, "scoring")
        expected = _offline(bundle, default)
        with httpx.Client(timeout=30) as client:
            for tenant in ("default", "other"):
                _wait(
                    lambda t=tenant: (
                        client.get(f"{base}/v1/model", headers=auth(t)).status_code == 200
                    )
                )
        yield Service(base, settings, expected, tag.split(":", 1)[1])


def _offline(bundle: ModelBundle, orders: pl.DataFrame) -> pl.DataFrame:
    clock = orders["occurred_at"].max()
    features = compute_features(orders, clock)
    return score_customers(bundle, features)


def _wait(check, timeout: float = 60.0) -> None:
    import time

    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.3)


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=30) as c:
        yield c


def test_a_score_equals_the_offline_score(service: Service, client: httpx.Client) -> None:
    expected = service.expected.sample(25, seed=3)
    for row in expected.iter_rows(named=True):
        got = client.get(f"{service.base}/v1/customers/{row['customer_id']}/score", headers=auth())
        assert got.status_code == 200, got.text
        body = got.json()
        assert body["churn_probability"] == pytest.approx(row["churn_probability"], rel=1e-9)
        assert body["predicted_ltv"] == pytest.approx(row["predicted_ltv"], rel=1e-9, abs=1e-9)
        assert body["ltv_low"] == pytest.approx(row["ltv_low"], rel=1e-9, abs=1e-9)
        assert body["ltv_high"] == pytest.approx(row["ltv_high"], rel=1e-9, abs=1e-9)
        assert (body["risk_band"], body["value_tier"], body["segment"], body["action"]) == (
            row["risk_band"],
            row["value_tier"],
            row["segment"],
            row["action"],
        )
        assert body["model_version"] == service.version
        assert body["expected_orders"] == pytest.approx(row["expected_orders"], rel=1e-9)
        expected_date = row["next_order_by"]
        assert body["next_order_by"] == (expected_date and expected_date.isoformat())
        # Up to three drivers, all pushing the way the score went.
        churn = body["reasons"]["churn"]
        assert 1 <= len(churn) <= 3 and len({r["direction"] for r in churn}) == 1
        # ... which is the side of the typical customer's churn probability the score is on.
        baseline = body["reasons"]["churn_baseline"]
        above = body["churn_probability"] > baseline
        assert above == (churn[0]["direction"] == "raises"), (body["churn_probability"], baseline)
        assert len(body["reasons"]["ltv"]) >= 1


def test_lists_filter_order_and_page_with_a_stable_cursor(
    service: Service, client: httpx.Client
) -> None:
    expected = service.expected.filter(pl.col("risk_band") == "high").sort(
        ["revenue_at_risk", "customer_id"], descending=[True, False]
    )
    seen: list[dict] = []
    cursor = None
    while True:
        params = {"risk_band": "high", "limit": 40} | ({"cursor": cursor} if cursor else {})
        page = client.get(f"{service.base}/v1/customers", params=params, headers=auth())
        assert page.status_code == 200, page.text
        body = page.json()
        assert body["total"] == expected.height
        seen.extend(body["customers"])
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert [c["customer_id"] for c in seen] == expected["customer_id"].to_list()
    assert all(c["risk_band"] == "high" for c in seen)
    np.testing.assert_allclose(
        [c["revenue_at_risk"] for c in seen], expected["revenue_at_risk"].to_numpy(), rtol=1e-9
    )

    vip = client.get(
        f"{service.base}/v1/customers",
        params={"value_tier": "VIP", "min_ltv": 100, "sort": "predicted_ltv"},
        headers=auth(),
    ).json()["customers"]
    want = service.expected.filter(
        (pl.col("value_tier") == "VIP") & (pl.col("predicted_ltv") >= 100)
    ).sort(["predicted_ltv", "customer_id"], descending=[True, False])
    assert [c["customer_id"] for c in vip] == want["customer_id"].to_list()
    segment = service.expected["segment"][0]
    by_segment = client.get(
        f"{service.base}/v1/customers",
        params={"segment": segment, "sort": "customer_id", "limit": 10000},
        headers=auth(),
    ).json()["customers"]
    assert [c["customer_id"] for c in by_segment] == sorted(
        service.expected.filter(pl.col("segment") == segment)["customer_id"].to_list()
    )
    dated = service.expected.filter(pl.col("next_order_by").is_not_null())
    soon = dated["next_order_by"].sort()[dated.height // 2]  # a date, not a datetime
    busy = client.get(
        f"{service.base}/v1/customers",
        params={
            "min_orders": 0.5,
            "next_order_to": soon.isoformat(),
            "sort": "expected_orders",
            "limit": 10000,
        },
        headers=auth(),
    ).json()["customers"]
    want = service.expected.filter(
        (pl.col("expected_orders") >= 0.5) & (pl.col("next_order_by") <= soon)
    ).sort(["expected_orders", "customer_id"], descending=[True, False])
    assert [c["customer_id"] for c in busy] == want["customer_id"].to_list() != []
    assert all(date.fromisoformat(c["next_order_by"]) <= soon for c in busy)


def test_lists_export_as_csv(service: Service, client: httpx.Client) -> None:
    response = client.get(
        f"{service.base}/v1/customers",
        params={"limit": 50},
        headers=auth() | {"Accept": "text/csv"},
    )
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(response.text)))
    top = service.expected.sort(["revenue_at_risk", "customer_id"], descending=[True, False])
    assert [r["customer_id"] for r in rows] == top["customer_id"].head(50).to_list()
    assert float(rows[0]["churn_probability"]) == pytest.approx(top["churn_probability"][0])
    assert response.headers["X-Total-Count"] == str(service.expected.height)
    following = client.get(
        f"{service.base}/v1/customers",
        params={"limit": 50, "cursor": response.headers["X-Next-Cursor"]},
        headers=auth(),
    ).json()["customers"]
    assert [r["customer_id"] for r in following] == top["customer_id"][50:100].to_list()


def test_score_many_by_id_and_by_vector(
    service: Service, client: httpx.Client, bundle: ModelBundle
) -> None:
    ids = service.expected["customer_id"].head(5).to_list()
    response = client.post(
        f"{service.base}/v1/score", json={"customer_ids": [*ids, "nobody"]}, headers=auth()
    )
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    assert [r["found"] for r in results] == [True] * 5 + [False]
    for result, row in zip(results, service.expected.head(5).iter_rows(named=True), strict=False):
        assert result["score"]["churn_probability"] == pytest.approx(row["churn_probability"])

    vectors = [
        {"customer_id": r["customer_id"], "features": {n: r[n] for n in bundle.feature_names}}
        for r in _offline_features(service).head(3).iter_rows(named=True)
    ]
    by_vector = client.post(
        f"{service.base}/v1/score", json={"customers": vectors}, headers=auth()
    ).json()["results"]
    for result, row in zip(by_vector, service.expected.head(3).iter_rows(named=True), strict=True):
        assert result["score"]["churn_probability"] == pytest.approx(row["churn_probability"])
        assert result["score"]["risk_band"] == row["risk_band"]


def _offline_features(service: Service) -> pl.DataFrame:
    orders = load_orders(TEST_DATA / "online_retail_slice.parquet", tenant="default")
    return compute_features(orders, orders["occurred_at"].max())


def test_segments_add_up(service: Service, client: httpx.Client) -> None:
    body = client.get(f"{service.base}/v1/segments", headers=auth()).json()
    assert body["customers"] == service.expected.height
    assert sum(s["customers"] for s in body["segments"]) == service.expected.height
    assert sum(s["revenue_share"] for s in body["segments"]) == pytest.approx(1.0)
    total_risk = sum(s["revenue_at_risk"] for s in body["segments"])
    assert total_risk == pytest.approx(service.expected["revenue_at_risk"].sum())
    assert all(s["action"] for s in body["segments"])


def test_campaign_plan_spends_the_budget_on_the_best_contacts(
    service: Service, client: httpx.Client
) -> None:
    body = {"budget": 100, "cost_per_contact": 5, "save_rate": 0.3, "discount": 0.1}
    plan = client.post(f"{service.base}/v1/campaigns/plan", json=body, headers=auth()).json()
    value = (
        service.expected["churn_probability"] * 0.3 * service.expected["predicted_ltv"] * 0.9 - 5
    )
    best = service.expected.with_columns(value=value).filter(pl.col("value") > 0)
    best = best.sort(["value"], descending=True).head(20)
    assert [c["customer_id"] for c in plan["contacts"]] == best["customer_id"].to_list()
    assert plan["expected"]["cost"] == 5 * len(plan["contacts"])
    assert (
        plan["pessimistic"]["expected_saved_revenue"]
        < plan["expected"]["expected_saved_revenue"]
        < plan["optimistic"]["expected_saved_revenue"]
    )
    filtered = client.post(
        f"{service.base}/v1/campaigns/plan",
        json=body | {"filters": {"risk_band": "low"}},
        headers=auth(),
    ).json()
    low = set(service.expected.filter(pl.col("risk_band") == "low")["customer_id"].to_list())
    assert {c["customer_id"] for c in filtered["contacts"]} <= low


def test_campaign_margin_takes_the_discount_out_of_the_gross_profit(
    service: Service, client: httpx.Client
) -> None:
    body = {"budget": 100, "cost_per_contact": 5, "save_rate": 0.3, "discount": 0.1}
    url = f"{service.base}/v1/campaigns/plan"
    revenue = client.post(url, json=body, headers=auth()).json()
    # The default margin of 1 counts revenue as profit: the answer of a body without a margin.
    assert client.post(url, json=body | {"margin": 1.0}, headers=auth()).json() == revenue
    assert revenue["expected"]["expected_gross_profit"] == pytest.approx(
        revenue["expected"]["expected_saved_revenue"]
    )
    plan = client.post(url, json=body | {"margin": 0.4}, headers=auth()).json()
    kept = service.expected["churn_probability"] * 0.3 * service.expected["predicted_ltv"]
    best = service.expected.with_columns(value=kept * (0.4 - 0.1) - 5).filter(pl.col("value") > 0)
    best = best.sort(["value"], descending=True).head(20)
    assert [c["customer_id"] for c in plan["contacts"]] == best["customer_id"].to_list()
    expected = plan["expected"]
    assert expected["expected_gross_profit"] == pytest.approx(
        expected["expected_saved_revenue"] * 0.3 / 0.9
    )
    assert expected["net_profit"] == pytest.approx(
        expected["expected_gross_profit"] - expected["cost"]
    )
    nobody = client.post(url, json=body | {"margin": 0.1}, headers=auth()).json()
    assert nobody["contacts_total"] == 0 and nobody["expected"]["roi"] is None
    for margin in (0, 1.5, "1"):
        refused = client.post(url, json=body | {"margin": margin}, headers=auth())
        assert refused.status_code == 422
        assert first_problem(refused)[0] == "margin"


def test_campaign_contacts_as_csv_are_the_whole_plan(
    service: Service, client: httpx.Client
) -> None:
    body = {
        "budget": 400,
        "cost_per_contact": 2,
        "save_rate": 0.3,
        "margin": 0.5,
        "filters": {"risk_band": ["high", "medium"]},
        "contacts_limit": 5,
    }
    url = f"{service.base}/v1/campaigns/plan"
    plan = client.post(url, json=body | {"contacts_limit": 10_000}, headers=auth()).json()
    response = client.post(url, json=body, headers=auth() | {"Accept": "text/csv"})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/csv")
    assert response.headers["x-model-version"] == service.version
    rows = list(csv.DictReader(io.StringIO(response.text)))
    # Every contact of the plan, not only the `contacts_limit` the JSON lists.
    assert int(response.headers["x-total-count"]) == plan["contacts_total"] == len(rows) > 5
    assert list(rows[0]) == [
        "customer_id",
        "churn_probability",
        "predicted_ltv",
        "risk_band",
        "value_tier",
        "segment",
        "expected_net_value",
    ]
    for row, contact in zip(rows, plan["contacts"], strict=True):
        assert row["customer_id"] == contact["customer_id"]
        assert row["risk_band"] == contact["risk_band"] in {"high", "medium"}
        assert float(row["expected_net_value"]) == pytest.approx(contact["expected_net_value"])
    empty = client.post(url, json=body | {"budget": 0}, headers=auth() | {"Accept": "text/csv"})
    assert empty.text.splitlines() == [",".join(rows[0])]
    assert empty.headers["x-total-count"] == "0"


def test_model_card(service: Service, client: httpx.Client, bundle: ModelBundle) -> None:
    card = client.get(f"{service.base}/v1/model", headers=auth()).json()
    assert card["model_version"] == service.version
    assert set(card["churn"]["baselines"]) == {"recency", "rfm_logistic", "bgnbd"}
    assert set(card["churn"]["model"]) == {
        "roc_auc",
        "pr_auc",
        "brier",
        "f1",
        "lift_top_decile",
        "roc_auc_active_365d",
    }
    assert set(card["ltv"]["model"]) == {
        "mae",
        "rmse",
        "spearman",
        "normalized_gini",
        "top10_capture",
    }
    assert set(card["churn"]) == {
        "model",
        "baselines",
        "threshold",
        "test_customers",
        "expected_calibration_error",
        "reliability",
        "importance",
    }
    assert set(card["ltv"]) == {
        "model",
        "baselines",
        "objective",
        "interval_coverage_10_90",
        "importance",
    }
    report = bundle.report
    assert card["churn"]["expected_calibration_error"] == pytest.approx(
        report.churn.expected_calibration_error
    )
    assert len(card["churn"]["reliability"]) == 10
    assert list(card["churn"]["importance"]) == list(report.importance.churn)
    assert set(card["ltv"]["importance"]) == set(bundle.feature_names)
    assert card["orders"]["method"] == report.orders.method
    assert set(card["orders"]["baselines"]) == {"bgnbd", "bgnbd_occasions"}
    assert card["windows"]["churn"]["test_cutoff"] == "2011-09-10"
    assert card["windows"]["ltv"]["horizon_days"] == 180
    # Both windows: the evidence above, and the cutoffs the served models were refitted on.
    production = card["production"]
    assert production["refitted"] and production["data_end"] == "2011-12-09"
    assert production["churn"]["training_cutoffs"][-1] == "2011-09-10"
    assert production["ltv"]["training_cutoffs"][-1] == "2011-06-12"
    assert production == bundle.production.model_dump(mode="json")
    assert [s["segment"] for s in card["segments"]] == list(bundle.segmenter.names)
    assert card["drift"]["status"] in {"not checked yet", "stable", "drift"}


def test_tenant_isolation(service: Service, client: httpx.Client) -> None:
    other_orders = load_orders(TEST_DATA / "online_retail_II_slice.parquet", tenant="other")
    only_default = sorted(set(service.expected["customer_id"]) - set(other_orders["customer_id"]))[
        0
    ]
    for path in ("score", "features"):
        theirs = client.get(
            f"{service.base}/v1/customers/{only_default}/{path}", headers=auth("other")
        )
        unknown = client.get(
            f"{service.base}/v1/customers/nobody-{path}/{path}", headers=auth("other")
        )
        assert theirs.status_code == unknown.status_code == 404
        assert theirs.json().keys() == unknown.json().keys()
        assert first_problem(theirs)[0] == first_problem(unknown)[0] == "customer_id"
    listed = client.get(
        f"{service.base}/v1/customers", params={"limit": 10000}, headers=auth("other")
    ).json()["customers"]
    assert only_default not in {c["customer_id"] for c in listed}
    by_id = client.post(
        f"{service.base}/v1/score", json={"customer_ids": [only_default]}, headers=auth("other")
    ).json()["results"]
    assert by_id[0]["found"] is False


def test_without_a_champion_scores_answer_503_and_readyz_names_the_tenant(
    service: Service, client: httpx.Client
) -> None:
    for method, path, body in [
        ("GET", "/v1/customers/17850/score", None),
        ("GET", "/v1/customers", None),
        ("GET", "/v1/segments", None),
        ("GET", "/v1/model", None),
        ("POST", "/v1/score", {"customer_ids": ["17850"]}),
        ("POST", "/v1/campaigns/plan", {"budget": 1, "cost_per_contact": 1, "save_rate": 0.1}),
    ]:
        response = client.request(method, f"{service.base}{path}", json=body, headers=auth("third"))
        assert response.status_code == 503, (path, response.text)
        assert "no champion" in problem_of(response).detail
    assert client.get(
        f"{service.base}/v1/customers/17850/features", headers=auth("third")
    ).status_code in (200, 404)
    ready = client.get(f"{service.base}/readyz")
    assert ready.status_code == 200
    assert "third" in ready.json()["checks"]["champions"]["detail"]


def test_ping_needs_a_key_and_names_its_tenant(service: Service, client: httpx.Client) -> None:
    assert client.get(f"{service.base}/v1/ping").status_code == 401
    assert client.get(f"{service.base}/v1/ping", headers=auth()).json() == {"tenant_id": "default"}


@pytest.mark.parametrize(
    ("method", "path", "body", "who", "status", "field"),
    [
        ("GET", "/v1/customers/x/score", None, None, 401, "Authorization"),
        ("GET", "/v1/customers/x/score", None, "ingest-only", 403, "Authorization"),
        ("GET", "/v1/customers/nobody/score", None, "default", 404, "customer_id"),
        ("GET", "/v1/customers?risk_band=severe", None, "default", 422, "risk_band"),
        ("GET", "/v1/customers?value_tier=gold", None, "default", 422, "value_tier"),
        ("GET", "/v1/customers?min_ltv=-1", None, "default", 422, "min_ltv"),
        ("GET", "/v1/customers?limit=0", None, "default", 422, "limit"),
        ("GET", "/v1/customers?sort=age", None, "default", 422, "sort"),
        ("GET", "/v1/customers?cursor=garbage", None, "default", 422, "cursor"),
        ("POST", "/v1/score", {}, "default", 422, "body"),
        ("POST", "/v1/score", {"customer_ids": "17850"}, "default", 422, "customer_ids"),
        (
            "POST",
            "/v1/score",
            {"customers": [{"features": {"recency_days": 3}}]},
            "default",
            422,
            "customers.0.features.frequency",
        ),
        ("POST", "/v1/score", {"customer_ids": ["a"] * 1001}, "default", 413, "customer_ids"),
        (
            "POST",
            "/v1/campaigns/plan",
            {"budget": 10, "save_rate": 0.2},
            "default",
            422,
            "cost_per_contact",
        ),
        (
            "POST",
            "/v1/campaigns/plan",
            {"budget": 10, "cost_per_contact": 1, "save_rate": 1.5},
            "default",
            422,
            "save_rate",
        ),
    ],
)
def test_every_4xx_names_the_problem(
    service: Service,
    client: httpx.Client,
    method: str,
    path: str,
    body: dict | None,
    who: str | None,
    status: int,
    field: str,
) -> None:
    headers = auth(who) if who else {}
    response = client.request(method, f"{service.base}{path}", json=body, headers=headers)
    assert response.status_code == status, response.text
    fields = [found for found, _ in field_problems(response)]
    assert any(f == field or f.endswith(field) for f in fields), fields


def test_a_cursor_of_other_filters_is_refused(service: Service, client: httpx.Client) -> None:
    first = client.get(f"{service.base}/v1/customers", params={"limit": 5}, headers=auth()).json()
    other = client.get(
        f"{service.base}/v1/customers",
        params={"limit": 5, "risk_band": "high", "cursor": first["next_cursor"]},
        headers=auth(),
    )
    assert other.status_code == 422
    assert first_problem(other)[0] == "cursor"


def test_drift_is_measured_and_published_once_per_model(
    service: Service, client: httpx.Client
) -> None:
    _wait(
        lambda: (
            client.get(f"{service.base}/v1/model", headers=auth()).json()["drift"]["status"]
            != "not checked yet"
        )
    )
    card = client.get(f"{service.base}/v1/model", headers=auth()).json()
    assert set(card["drift"]["psi"]) == set(card["feature_schema"])
    metrics = client.get(f"{service.base}/metrics").text
    assert 'retention_scoring_drift_psi{feature="recency_days",tenant="default"}' in metrics
