import json
from datetime import UTC, datetime, timedelta, timezone

import pytest

from retention_shared.events import (
    SCHEMA_VERSION,
    CustomerFeatures,
    CustomerScore,
    DriftDetected,
    EventDecodeError,
    ModelEvent,
    ModelPublished,
    ModelRejected,
    OrderEvent,
    OrderHistorySummary,
    OrderKind,
    OrderLine,
    RejectedRecord,
    RejectReason,
    RetrainRequested,
    ScoreReason,
    ScoreReasons,
    TimeWindow,
    decode_event,
    order_event_id,
    score_event_id,
)

LONDON_SUMMER = timezone(timedelta(hours=1))


def an_order(**changes: object) -> OrderEvent:
    fields: dict[str, object] = {
        "event_id": order_event_id("acme", "536365", OrderKind.PURCHASE),
        "tenant_id": "acme",
        "order_id": "536365",
        "customer_id": "17850",
        "occurred_at": datetime(2011, 6, 1, 9, 30, tzinfo=LONDON_SUMMER),
        "kind": OrderKind.PURCHASE,
        "lines": [OrderLine(product_id="85123A", quantity=6, unit_price=2.55)],
        "total": 15.3,
        "source": "http",
    }
    fields.update(changes)
    return OrderEvent(**fields)


def test_every_event_round_trips_through_json_with_its_version() -> None:
    window = TimeWindow(
        start=datetime(2010, 1, 1, tzinfo=UTC),
        end=datetime(2011, 1, 1, tzinfo=UTC),
    )
    events = [
        an_order(),
        RejectedRecord(
            source="upload:1",
            source_id="upload:1:row:7",
            record={"a": 1},
            reasons=[RejectReason(code="missing_customer_id", field="customer_id")],
        ),
        CustomerFeatures(
            tenant_id="acme",
            customer_id="1",
            as_of=window.end,
            features={"recency_days": 3.5},
            history=OrderHistorySummary(),
        ),
        CustomerScore(
            tenant_id="acme",
            customer_id="1",
            churn_probability=0.7,
            risk_band="high",
            predicted_ltv=120.0,
            ltv_low=40.0,
            ltv_high=300.0,
            value_tier="High",
            segment="At risk",
            action="Win back",
            model_version="v1",
            features_as_of=window.end,
            event_id=score_event_id(
                "acme", "1", "v1", window.end, None, ("high", "High", "At risk")
            ),
            churn_horizon_days=90,
            ltv_horizon_days=180,
            revenue_at_risk=84.0,
            drivers=ScoreReasons(
                churn=[
                    ScoreReason(
                        feature="recency_days",
                        text="no order for 143 days",
                        direction="raises",
                        contribution=0.8,
                    )
                ],
                ltv=[],
            ),
        ),
        ModelPublished(
            tenant_id="acme",
            model_tag="retention-acme:v1",
            model_version="v1",
            run_id="r1",
            training_window=window,
            metrics={"churn_roc_auc": 0.8},
        ),
        ModelRejected(
            tenant_id="acme", run_id="r2", candidate_version="v2", reason="churn AUC 0.79 < 0.80"
        ),
        DriftDetected(
            tenant_id="acme",
            model_version="v1",
            psi={"recency_days": 0.31},
            threshold=0.2,
            window=window,
        ),
        RetrainRequested(tenant_id="acme", reason="upload"),
    ]
    for event in events:
        decoded = decode_event(type(event), event.to_bytes())
        assert decoded == event
        assert decoded.schema_version == SCHEMA_VERSION


def test_times_are_normalized_to_utc() -> None:
    order = an_order()
    assert order.occurred_at == datetime(2011, 6, 1, 8, 30, tzinfo=UTC)
    assert order.occurred_at.utcoffset() == timedelta(0)


def test_naive_times_are_refused_in_events() -> None:
    with pytest.raises(ValueError, match="timezone"):
        an_order(occurred_at=datetime(2011, 6, 1, 9, 30))


def test_model_events_topic_carries_two_types() -> None:
    rejected = ModelRejected(tenant_id="acme", run_id="r2", candidate_version="v2", reason="worse")
    assert isinstance(decode_event(ModelEvent, rejected.to_bytes()), ModelRejected)


def test_unknown_major_version_is_rejected_not_guessed() -> None:
    payload = an_order().model_dump(mode="json") | {"schema_version": 2}
    with pytest.raises(EventDecodeError) as error:
        decode_event(OrderEvent, json.dumps(payload))
    assert error.value.code == "unsupported_schema_version"
    assert error.value.field == "schema_version"


def test_unreadable_payloads_get_reason_codes_naming_the_field() -> None:
    with pytest.raises(EventDecodeError) as not_json:
        decode_event(OrderEvent, b"\xff{not json")
    assert not_json.value.code == "not_json"

    payload = an_order().model_dump(mode="json")
    payload["lines"][0]["unit_price"] = 0
    with pytest.raises(EventDecodeError) as invalid:
        decode_event(OrderEvent, json.dumps(payload))
    assert invalid.value.code == "invalid_event"
    assert invalid.value.field == "lines.0.unit_price"


def test_a_time_beyond_the_utc_range_is_an_invalid_event_not_a_crash() -> None:
    payload = an_order().model_dump(mode="json") | {"occurred_at": "9999-12-31T23:00:00-05:00"}
    with pytest.raises(EventDecodeError) as error:
        decode_event(OrderEvent, json.dumps(payload))
    assert error.value.code == "invalid_event"
    assert error.value.field == "occurred_at"


def test_minor_additions_are_read_by_older_consumers() -> None:
    payload = an_order().model_dump(mode="json") | {"loyalty_tier": "gold"}
    assert decode_event(OrderEvent, json.dumps(payload)) == an_order()


def test_event_ids_are_deterministic_and_distinguish_kind_and_tenant() -> None:
    purchase = order_event_id("acme", "536365", OrderKind.PURCHASE)
    assert purchase == order_event_id("acme", "536365", OrderKind.PURCHASE)
    assert purchase != order_event_id("acme", "536365", OrderKind.CANCELLATION)
    assert purchase != order_event_id("other", "536365", OrderKind.PURCHASE)


def test_a_score_event_id_is_the_same_for_the_same_announcement_and_new_for_another() -> None:
    at = datetime(2011, 12, 9, 12, tzinfo=UTC)
    before, after = ("low", "Medium", "Loyal"), ("high", "Medium", "At risk")
    first = score_event_id("acme", "17850", "v1", at, before, after)
    # The same instant written in another zone is the same announcement.
    assert first == score_event_id(
        "acme", "17850", "v1", at.astimezone(LONDON_SUMMER), before, after
    )
    assert len(first) == 32 and int(first, 16) >= 0
    others = {
        score_event_id("other", "17850", "v1", at, before, after),
        score_event_id("acme", "12583", "v1", at, before, after),
        score_event_id("acme", "17850", "v2", at, before, after),
        score_event_id("acme", "17850", "v1", at + timedelta(days=1), before, after),
        score_event_id("acme", "17850", "v1", at, None, after),
        score_event_id("acme", "17850", "v1", at, after, before),
    }
    assert first not in others and len(others) == 6


def test_a_score_event_of_schema_1_0_is_read_with_the_1_1_fields_empty() -> None:
    """customer-scores is compacted: a customer whose score has not changed since the upgrade
    still has a 1.0 event there, which must stay readable."""
    old = {
        "event_type": "CustomerScore",
        "schema_version": 1,
        "tenant_id": "acme",
        "customer_id": "1",
        "churn_probability": 0.7,
        "risk_band": "high",
        "predicted_ltv": 120.0,
        "ltv_low": 40.0,
        "ltv_high": 300.0,
        "value_tier": "High",
        "segment": "At risk",
        "action": "Win back",
        "reasons": ["no order for 143 days (raises churn risk)"],
        "changed": ["risk_band"],
        "model_version": "v1",
        "features_as_of": "2011-12-09T00:00:00Z",
        "scored_at": "2011-12-09T00:00:01Z",
    }
    event = decode_event(CustomerScore, json.dumps(old))
    assert event.reasons == old["reasons"]
    assert (event.event_id, event.drivers, event.revenue_at_risk) == (None, None, None)
    assert (event.churn_horizon_days, event.ltv_horizon_days) == (None, None)
