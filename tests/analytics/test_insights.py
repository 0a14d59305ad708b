"""`GET /v1/insights` on the running stack, against what scoring serves and the slice's orders.

The KPIs the model decides are recomputed from the served action list, the activity KPIs from
the slice's own orders (as ingest cleans them) with the shared feature definition at the tenant
clock, and the segment rows must be `GET /v1/segments`' own. The comparison with a previous
champion runs in process on the stack's trained bundle and a recalibrated copy of it, so the
shared stack keeps its one champion (the other analytics tests read it).
"""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import datetime
from pathlib import Path

import httpx
import polars as pl
import pytest
from fastapi import FastAPI

from retention_bundle.bundle import ModelBundle, read_bundle
from retention_bundle.predict import score
from retention_cli.stack import Stack
from retention_ingest.file_ingest import ingest_file
from retention_scoring.api import insights as insights_api
from retention_scoring.champions import Champions
from retention_scoring.population import Populations
from retention_scoring.state import ScoringState, tenant_clock
from retention_scoring.store import FeatureStore
from retention_shared.auth import ApiKeys
from retention_shared.config import Settings
from retention_shared.features import compute_features, orders_from_event_columns
from retention_shared.score_summaries import RISK_CUTOFFS
from tests.support.narrative_check import check_narrative
from tests.support.problems import first_problem, problem_of
from tests.support.scoring_service import feature_events, model_published
from tests.support.stack import READ_KEY, SLICE, auth, url

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def slice_orders(tmp_path_factory: pytest.TempPathFactory) -> pl.DataFrame:
    """The slice's orders as ingest cleans them (what the stack's features were computed from)."""
    work = tmp_path_factory.mktemp("insights")
    result = ingest_file(SLICE, tenant_id="default", source="expected", work_dir=work)
    return orders_from_event_columns(result.events().collect())


@pytest.fixture(scope="module")
def answer(loaded_stack: Stack) -> dict:
    response = httpx.get(f"{url(loaded_stack, 'scoring')}/v1/insights", headers=auth(READ_KEY))
    assert response.status_code == 200, response.text
    return response.json()


def _kpis(answer: dict, field: str = "value") -> dict:
    return {kpi["name"]: kpi[field] for kpi in answer["kpis"]}


def _at(answer: dict) -> datetime:
    return datetime.fromisoformat(answer["as_of"].replace("Z", "+00:00"))


def test_model_kpis_equal_the_served_scores(loaded_stack: Stack, answer: dict) -> None:
    scoring = url(loaded_stack, "scoring")
    listed = httpx.get(f"{scoring}/v1/customers", params={"limit": 10_000}, headers=auth()).json()
    assert listed["next_cursor"] is None
    rows = listed["customers"]
    kpis = _kpis(answer)
    assert kpis["customers"] == listed["total"] == len(rows) > 100
    assert kpis["at_risk_customers"] == sum(r["risk_band"] == "high" for r in rows)
    assert kpis["revenue_at_risk"] == pytest.approx(sum(r["revenue_at_risk"] for r in rows))
    assert kpis["predicted_revenue"] == pytest.approx(sum(r["predicted_ltv"] for r in rows))
    # The clock of the answer is the one every served score was computed at.
    assert {r["features_as_of"] for r in rows} == {answer["as_of"]}
    model = httpx.get(f"{scoring}/v1/model", headers=auth()).json()
    assert answer["model_version"] == listed["model_version"] == model["model_version"]
    assert answer["tenant_id"] == "default"
    one = httpx.get(f"{scoring}/v1/customers/{rows[0]['customer_id']}/score", headers=auth())
    assert answer["ltv_horizon_days"] == one.json()["ltv_horizon_days"]
    # One champion so far: nothing to compare with.
    assert answer["previous_model_version"] is None and answer["previous_problem"] is None
    assert all(kpi["previous"] is None for kpi in answer["kpis"])
    assert [k["name"] for k in answer["kpis"]] == [
        "customers",
        "active_customers",
        "at_risk_customers",
        "revenue_at_risk",
        "retention_rate",
        "predicted_revenue",
    ]


def test_activity_kpis_equal_the_slices_own_orders(
    answer: dict, slice_orders: pl.DataFrame
) -> None:
    at_clock = compute_features(slice_orders, _at(answer))
    recent = at_clock["orders_90d"] > 0
    before = (at_clock["orders_180d"] - at_clock["orders_90d"]) > 0
    kpis = _kpis(answer)
    assert kpis["customers"] == at_clock.height
    assert kpis["active_customers"] == int(recent.sum())
    assert kpis["retention_rate"] == pytest.approx((recent & before).sum() / before.sum())
    assert answer["active_days"] == 90


def test_segments_are_the_segment_table(loaded_stack: Stack, answer: dict) -> None:
    segments = httpx.get(f"{url(loaded_stack, 'scoring')}/v1/segments", headers=auth()).json()
    rows = [
        {k: v for k, v in r.items() if k != "revenue_at_risk_share"} for r in answer["segments"]
    ]
    assert rows == segments["segments"]
    total = sum(r["revenue_at_risk"] for r in answer["segments"])
    shares = [r["revenue_at_risk_share"] for r in answer["segments"]]
    assert shares == pytest.approx([r["revenue_at_risk"] / total for r in answer["segments"]])


def test_every_number_of_the_narrative_is_in_the_answer(answer: dict) -> None:
    check_narrative(answer)
    print("\n".join(s["text"] for s in answer["narrative"]))  # the docs' snapshot


def test_another_tenant_gets_no_numbers_of_this_one(loaded_stack: Stack) -> None:
    # Tenant `other` has neither customers nor a model: 503 as every score route, and says why.
    response = httpx.get(f"{url(loaded_stack, 'scoring')}/v1/insights", headers=auth("e2e-other"))
    assert response.status_code == 503 and response.headers["retry-after"]
    assert "no champion" in problem_of(response).detail


@pytest.mark.parametrize(
    ("headers", "status"),
    [({}, 401), ({"Authorization": "Bearer nope"}, 401), ({"Authorization": "Basic x"}, 401)],
)
def test_without_a_valid_key_is_a_401(loaded_stack: Stack, headers: dict, status: int) -> None:
    response = httpx.get(f"{url(loaded_stack, 'scoring')}/v1/insights", headers=headers)
    assert response.status_code == status
    assert first_problem(response)[0] == "Authorization"


# --- a previous champion, in process ---------------------------------------------------------


def _stack_bundle(stack: Stack, version: str) -> ModelBundle:
    found = list(Path(stack.env["BENTOML_HOME"]).glob(f"models/*/{version}/bundle.json"))
    assert len(found) == 1, found
    return read_bundle(found[0].parent)


def _recalibrated(bundle: ModelBundle, shift: float) -> ModelBundle:
    """The same bundle with the churn calibration's intercept moved: another model."""
    a, b, c = bundle.churn.stack
    return dataclasses.replace(
        bundle, churn=dataclasses.replace(bundle.churn, stack=(a, b, c + shift))
    )


def _in_process(bundles: dict[str, ModelBundle], events: list) -> FastAPI:
    """Scoring's insights route over its real state, champions loaded from `bundles` by tag."""

    async def load(tag: str) -> tuple[ModelBundle, datetime]:
        return bundles[tag], datetime.now().astimezone()

    settings = Settings(api_keys="k:default:read,o:other:read,e:empty:read")
    state = ScoringState(
        settings=settings,
        store=FeatureStore(),
        champions=Champions(load=load),
        populations=Populations(tenant_clock(settings)),
    )
    state.store.apply((event, 0) for event in events)
    app = FastAPI()
    app.include_router(insights_api.router)
    app.state.api_keys = ApiKeys.from_settings(settings)
    app.state.scoring = state
    return app


async def _serve(state: ScoringState, tenant_id: str, tag: str) -> None:
    state.champions.announce(model_published(tenant_id, tag))
    for _ in range(100):
        champion = state.champions.get(tenant_id)
        if champion is not None and champion.tag == tag:
            return
        await asyncio.sleep(0.01)
    raise TimeoutError(f"{tag} not swapped in")


def test_insights_compare_with_the_previous_champion(
    loaded_stack: Stack, answer: dict, slice_orders: pl.DataFrame
) -> None:
    current = _stack_bundle(loaded_stack, answer["model_version"])
    previous = _recalibrated(current, -1.0)  # less churn predicted before
    events = feature_events(slice_orders)
    # Tenant `other`: three of the same customers, under its own champion.
    others = [e.model_copy(update={"tenant_id": "other"}) for e in events[:3]]
    app = _in_process(
        {
            "retention-default:old": previous,
            "retention-default:new": current,
            "retention-other:one": current,
            "retention-empty:one": current,
        },
        events + others,
    )

    async def scenario() -> tuple[dict, dict, dict]:
        state: ScoringState = app.state.scoring
        await _serve(state, "default", "retention-default:old")
        await _serve(state, "default", "retention-default:new")  # "old" becomes the previous one
        await _serve(state, "other", "retention-other:one")
        await _serve(state, "empty", "retention-empty:one")
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://scoring") as client:
            mine = (await client.get("/v1/insights", headers=auth("k"))).json()
            theirs = (await client.get("/v1/insights", headers=auth("o"))).json()
            empty = (await client.get("/v1/insights", headers=auth("e"))).json()
        await state.champions.stop()
        return mine, theirs, empty

    mine, theirs, empty = asyncio.run(scenario())
    assert (mine["model_version"], mine["previous_model_version"]) == ("new", "old")
    # Same model, same features: the in-process values are the stack's.
    assert _kpis(mine) == pytest.approx(_kpis(answer))
    # The previous champion's values, recomputed here with the bundle itself.
    at_clock = compute_features(slice_orders, _at(answer))
    scored = score(previous, at_clock)
    probability, ltv = scored["churn_probability"], scored["ltv"]
    before = _kpis(mine, "previous")
    assert before["at_risk_customers"] == int((probability >= RISK_CUTOFFS[1]).sum())
    assert before["at_risk_customers"] < _kpis(mine)["at_risk_customers"]
    assert before["revenue_at_risk"] == pytest.approx(float((probability * ltv).sum()))
    assert before["predicted_revenue"] == pytest.approx(float(ltv.sum()))
    for name in ("customers", "active_customers", "retention_rate"):
        assert before[name] == _kpis(mine)[name]
    check_narrative(mine)
    assert "up from" in mine["narrative"][2]["text"]
    # Tenant `other` sees its own three customers and no previous model.
    assert (theirs["tenant_id"], _kpis(theirs)["customers"]) == ("other", 3)
    assert theirs["previous_model_version"] is None
    # A tenant with a model and no customers (all erased, say): zeros, and one sentence.
    assert _kpis(empty) == {
        "customers": 0,
        "active_customers": 0,
        "at_risk_customers": 0,
        "revenue_at_risk": 0.0,
        "retention_rate": None,
        "predicted_revenue": 0.0,
    }
    assert empty["as_of"] is None and len(empty["narrative"]) == 1
    check_narrative(empty)
