"""Versioned event contracts for every topic (docs/architecture.md, "Events"), serialized as JSON.

Each event carries `event_type` (so one topic may carry several types) and `schema_version`, the
major version of its contract. Minor, additive changes keep the major version and are read by
older consumers (unknown fields are ignored); a consumer rejects an unknown major version to the
dead-letter path instead of guessing, see `decode_event`.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, date, datetime
from enum import StrEnum
from typing import Annotated, Any, Literal, TypeVar

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
)

from retention_shared.safe_text import ID_PATTERN, MAX_ID_LENGTH

SCHEMA_VERSION = 1


def _to_utc(value: datetime) -> datetime:
    try:
        return value.astimezone(UTC)
    except OverflowError:  # e.g. 9999-12-31T23:00-05:00: a ValueError becomes a field error
        raise ValueError("timestamp is outside the representable range in UTC") from None


UtcDatetime = Annotated[AwareDatetime, AfterValidator(_to_utc)]
NonEmptyStr = Annotated[str, Field(min_length=1, max_length=256)]
# Ids as `safe_text` defines them: printable, at most 256 characters.
IdStr = Annotated[str, Field(min_length=1, max_length=MAX_ID_LENGTH, pattern=ID_PATTERN)]

# The contract's own bounds on money and quantities, far above ingest's configurable limits
# (a producer that bypasses ingest meets these): finite, and small enough that an order's total
# in integer millionths (the feature code's money) fits in 64 bits with room to sum.
MAX_EVENT_AMOUNT = 1e12
Amount = Annotated[float, Field(ge=-MAX_EVENT_AMOUNT, le=MAX_EVENT_AMOUNT, allow_inf_nan=False)]


def utc_now() -> datetime:
    return datetime.now(UTC)


class Event(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    schema_version: int = SCHEMA_VERSION

    def to_bytes(self) -> bytes:
        return self.model_dump_json().encode()


# --- transactions -------------------------------------------------------------------------


class OrderKind(StrEnum):
    PURCHASE = "purchase"
    CANCELLATION = "cancellation"


class OrderLine(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    product_id: IdStr
    # Signed as in the source: negative for the lines of a cancellation.
    quantity: Amount
    unit_price: float = Field(gt=0, le=MAX_EVENT_AMOUNT, allow_inf_nan=False)


class OrderEvent(Event):
    """One clean order (or cancellation), keyed `tenant:customer` on `transactions`."""

    event_type: Literal["OrderEvent"] = "OrderEvent"
    # Deterministic from (tenant, order, kind): the same order ingested twice has the same id.
    event_id: IdStr
    tenant_id: IdStr
    order_id: IdStr
    customer_id: IdStr
    occurred_at: UtcDatetime
    kind: OrderKind
    lines: list[OrderLine] = Field(min_length=1)
    # Sum of quantity × unit_price: positive for purchases, negative for cancellations, so
    # summing totals nets cancellations against spend.
    total: Amount
    currency: str | None = None
    country: str | None = None
    # Where it entered: "http", "orders.raw" or "upload:<upload id>".
    source: IdStr
    # Amendments (additive fields): an order sent again with a higher version replaces the
    # earlier one in features, lake and training; 0 for an order never amended.
    version: int = Field(0, ge=0, le=2**53)
    # True on the event that takes an amended order away from the customer it named before
    # (keyed to that customer, so it reaches their partition); readers use only its identity.
    withdrawn: bool = False


class RejectReason(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    code: NonEmptyStr
    field: str | None = None
    message: str = ""


class RejectedRecord(Event):
    """An input that could not become an `OrderEvent` (or an event no consumer could read)."""

    event_type: Literal["RejectedRecord"] = "RejectedRecord"
    tenant_id: str | None = None
    source: NonEmptyStr
    # Where the record can be found again: "upload:<id>:row:<n>", "<topic>:<partition>:<offset>".
    source_id: NonEmptyStr
    record: Any = None
    reasons: list[RejectReason] = Field(min_length=1)
    rejected_at: UtcDatetime = Field(default_factory=utc_now)


# --- features and scores ------------------------------------------------------------------


class HistoryOrder(BaseModel):
    """One order as a scorer keeps it to move window features to a later clock."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    occurred_at: UtcDatetime
    kind: OrderKind
    total: float


class OrderHistorySummary(BaseModel):
    """What a scorer needs to recompute recency-like features against a later clock."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    first_purchase_at: UtcDatetime | None = None
    last_purchase_at: UtcDatetime | None = None
    last_event_at: UtcDatetime | None = None
    purchase_orders: int = 0
    cancellations: int = 0
    # Additive (minor) field: the customer's `compact_history` at the features' as_of, i.e. the
    # orders of the longest feature window plus the first/last purchase and event
    # (retention_shared.features). Empty from producers that predate it.
    orders: list[HistoryOrder] = Field(default_factory=list)


class SourceOffset(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    partition: int
    offset: int


class CustomerFeatures(Event):
    """A customer's current feature vector, keyed `tenant:customer` on compacted `customer-features`."""

    event_type: Literal["CustomerFeatures"] = "CustomerFeatures"
    tenant_id: NonEmptyStr
    customer_id: NonEmptyStr
    as_of: UtcDatetime
    # Feature name → value; names and meanings are defined once by the shared feature definition.
    features: dict[str, float]
    history: OrderHistorySummary
    source: SourceOffset | None = None
    computed_at: UtcDatetime = Field(default_factory=utc_now)


class RiskBand(StrEnum):
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"


class ValueTier(StrEnum):
    LOW = "Low"
    MEDIUM = "Medium"
    HIGH = "High"
    VIP = "VIP"


class ScoreReason(BaseModel):
    """One driver of a score, as the HTTP score (`GET /v1/customers/{id}/score`) gives it."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    feature: str
    text: str
    direction: Literal["raises", "lowers"]  # which way it moves the score it explains
    contribution: float  # in the model's margin units (log-odds for churn, log1p(LTV) for LTV)


class ScoreReasons(BaseModel):
    """The strongest drivers of the churn score and of the predicted value, strongest first."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    churn: list[ScoreReason]
    ltv: list[ScoreReason]
    # None from scorers before it was added.
    churn_baseline: float | None = Field(
        default=None,
        ge=0,
        le=1,
        description="The churn probability of the model's typical customer at this clock, which "
        "the churn reasons raise or lower the score from: with a typical 0.92, a customer at 0.86 "
        "is explained by what lowered it.",
    )


class CustomerScore(Event):
    """Published on `customer-scores` when a customer's risk band, value tier or segment changes.

    Schema 1.1 (additive, so `schema_version` stays 1): `event_id`, `drivers`, `revenue_at_risk`,
    `churn_horizon_days` and `ltv_horizon_days`. They are None only on events published before
    1.1, which the compacted topic keeps for customers whose scores have not changed since.

    Schema 1.2 (additive): `expected_orders` (purchase orders expected over
    `churn_horizon_days`) and `next_order_by` (the UTC date by which the customer has a 50%
    chance of having ordered again; None when that chance stays below 50% within a year). Both
    are None on events published before 1.2.

    Schema 1.3 (additive): `drivers.churn_baseline`, the typical customer's churn probability the
    churn drivers are relative to; None on events published before 1.3.
    """

    event_type: Literal["CustomerScore"] = "CustomerScore"
    # Deterministic (`score_event_id`): the same announcement published twice has the same id,
    # so a consumer drops a duplicate by it.
    event_id: IdStr | None = None
    tenant_id: NonEmptyStr
    customer_id: NonEmptyStr
    churn_probability: float = Field(ge=0, le=1)
    risk_band: RiskBand
    # Days without a purchase that count as churned: what `churn_probability` is about.
    churn_horizon_days: int | None = None
    predicted_ltv: float
    # The 80% interval of the predicted LTV (10% and 90% quantiles), all over `ltv_horizon_days`.
    ltv_low: float
    ltv_high: float
    ltv_horizon_days: int | None = None
    value_tier: ValueTier
    segment: str
    action: str
    # churn_probability x predicted_ltv, as the HTTP score gives it.
    revenue_at_risk: float | None = None
    # Expected purchase orders over `churn_horizon_days`, and the date by which the chance of a
    # next order reaches 50% (None below 50% within a year).
    expected_orders: float | None = Field(None, ge=0, allow_inf_nan=False)
    next_order_by: date | None = None
    # The drivers as sentences that say which score they move (kept for 1.0 consumers)...
    reasons: list[str] = Field(default_factory=list)
    # ...and structured, the same model as the HTTP score's `reasons`.
    drivers: ScoreReasons | None = None
    # Which of risk_band, value_tier, segment changed since the previous score.
    changed: list[str] = Field(default_factory=list)
    model_version: str
    features_as_of: UtcDatetime
    scored_at: UtcDatetime = Field(default_factory=utc_now)


# --- models, drift, retraining ------------------------------------------------------------


class TimeWindow(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    start: UtcDatetime
    end: UtcDatetime


class ModelPublished(Event):
    """A new champion bundle for a tenant is in the model store (`model-events`)."""

    event_type: Literal["ModelPublished"] = "ModelPublished"
    tenant_id: NonEmptyStr
    model_tag: NonEmptyStr  # BentoML tag, "retention-<tenant>:<version>"
    model_version: NonEmptyStr
    run_id: NonEmptyStr
    training_window: TimeWindow
    metrics: dict[str, float] = Field(default_factory=dict)
    published_at: UtcDatetime = Field(default_factory=utc_now)


class ModelRejected(Event):
    """A trained challenger did not beat the champion (`model-events`)."""

    event_type: Literal["ModelRejected"] = "ModelRejected"
    tenant_id: NonEmptyStr
    run_id: NonEmptyStr
    candidate_version: NonEmptyStr
    champion_version: str | None = None
    reason: NonEmptyStr
    candidate_metrics: dict[str, float] = Field(default_factory=dict)
    champion_metrics: dict[str, float] = Field(default_factory=dict)
    rejected_at: UtcDatetime = Field(default_factory=utc_now)


ModelEvent = Annotated[ModelPublished | ModelRejected, Field(discriminator="event_type")]


class DriftKind(StrEnum):
    """What moved: the live feature distributions (scoring's PSI watch), or the served model's
    realized accuracy once its scores reached their horizon (the trainer's outcome monitor)."""

    FEATURES = "features"
    PERFORMANCE = "performance"


class DriftDetected(Event):
    """The champion no longer fits what is happening (`drift-events`): its live feature
    distributions moved away from its reference (`kind` features), or its realized churn
    ROC-AUC fell more than `threshold` (a relative share) below its backtest's (`performance`).

    `kind`, `realized` and `expected` were added in 1.1 (optional: an event without them is a
    features drift)."""

    event_type: Literal["DriftDetected"] = "DriftDetected"
    tenant_id: NonEmptyStr
    model_version: NonEmptyStr
    kind: DriftKind = DriftKind.FEATURES
    # Population stability index per feature; only features over the threshold trigger.
    psi: dict[str, float] = Field(default_factory=dict)
    # Features: the PSI threshold. Performance: the relative ROC-AUC drop that triggers.
    threshold: float
    # Features: the live window compared. Performance: the score date and its horizon's end.
    window: TimeWindow
    # Performance: realized `roc_auc` and `brier` of the scores, and the backtest's (`expected`).
    realized: dict[str, float] = Field(default_factory=dict)
    expected: dict[str, float] = Field(default_factory=dict)
    detected_at: UtcDatetime = Field(default_factory=utc_now)


class RetrainReason(StrEnum):
    UPLOAD = "upload"
    DRIFT = "drift"
    SCHEDULE = "schedule"
    REQUEST = "request"


class RetrainRequested(Event):
    event_type: Literal["RetrainRequested"] = "RetrainRequested"
    tenant_id: NonEmptyStr
    reason: RetrainReason
    detail: str | None = None
    requested_at: UtcDatetime = Field(default_factory=utc_now)


class UploadCompleted(Event):
    """An uploaded file was read to its end and its orders published (`upload-events`, keyed
    `tenant`): what a CRM hears as `upload.completed`. Counts are those of `GET /v1/uploads/{id}`."""

    event_type: Literal["UploadCompleted"] = "UploadCompleted"
    tenant_id: NonEmptyStr
    upload_id: NonEmptyStr
    file: str
    rows_read: int = Field(ge=0)
    accepted: int = Field(ge=0)
    rejected: int = Field(ge=0)
    rejected_by_reason: dict[str, int] = Field(default_factory=dict)
    orders_published: int = Field(ge=0)
    first_order_at: UtcDatetime | None = None
    last_order_at: UtcDatetime | None = None
    completed_at: UtcDatetime = Field(default_factory=utc_now)


# --- scoring replicas -----------------------------------------------------------------------


class LtvSketch(BaseModel):
    """A replica's share of a tenant's predicted LTVs under one model: every value when few,
    else its quantiles at `len(values)` evenly spaced ranks. Merged over replicas it gives the
    tenant-wide value-tier cutoffs."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    model_version: NonEmptyStr
    partitions: list[int]
    count: int = Field(ge=0)
    values: list[float]


class ScoringReplica(Event):
    """A sharded scoring replica says what it serves (`scoring-replicas`, keyed by replica id).

    `partitions` maps each `customer-features` partition the replica has materialized to the
    consumer-group generation it was assigned in: for a partition two replicas announce (during
    a rebalance), the higher generation owns it. `clocks` is each tenant's latest vector time
    the replica holds (µs since the epoch): the tenant clock is the maximum over replicas; `ltv`
    its owned customers' predicted LTVs, from which every replica cuts the same value tiers."""

    event_type: Literal["ScoringReplica"] = "ScoringReplica"
    replica_id: NonEmptyStr
    url: NonEmptyStr
    partitions: dict[int, int] = Field(default_factory=dict)
    clocks: dict[str, int] = Field(default_factory=dict)
    # Per tenant: the predicted LTVs of the partitions this replica owns (value tiers).
    ltv: dict[str, LtvSketch] = Field(default_factory=dict)
    announced_at: UtcDatetime = Field(default_factory=utc_now)


# --- erasure ------------------------------------------------------------------------------


class CustomerErasureRequested(Event):
    """An admin asked to forget a customer (`customer-erasures`, keyed `tenant:customer`).

    Every service removes what it holds of the customer's orders dated up to `requested_at`
    and confirms with `CustomerErased` on `erasure-audit`."""

    event_type: Literal["CustomerErasureRequested"] = "CustomerErasureRequested"
    erasure_id: IdStr
    tenant_id: IdStr
    customer_id: IdStr
    requested_at: UtcDatetime
    # Who asked, never the key itself: "<tenant>/<role>/key:<first 12 hex of SHA-256(key)>".
    requested_by: NonEmptyStr


class CustomerErased(Event):
    """One service instance erased a customer (`erasure-audit`, keyed `tenant`): the audit trail.

    It says who asked, when, for which tenant and what was removed — never the customer's id."""

    event_type: Literal["CustomerErased"] = "CustomerErased"
    erasure_id: IdStr
    tenant_id: IdStr
    service: NonEmptyStr
    instance: NonEmptyStr
    requested_at: UtcDatetime
    requested_by: NonEmptyStr
    # What was removed, e.g. {"orders": 12, "lake_rows": 40}; zeros when nothing was held.
    removed: dict[str, int] = Field(default_factory=dict)
    erased_at: UtcDatetime = Field(default_factory=utc_now)


# --- decoding -----------------------------------------------------------------------------


class EventDecodeError(ValueError):
    """A payload no consumer should guess at; `code` is the reason code for the rejected topic."""

    def __init__(self, code: str, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.field = field
        self.message = message

    def as_reason(self) -> RejectReason:
        return RejectReason(code=self.code, field=self.field, message=self.message)


T = TypeVar("T")


def decode_event(event_type: type[T] | Any, payload: bytes | str) -> T:
    """Parse a JSON payload into `event_type` (a model or an annotated union of models).

    Raises `EventDecodeError` with code `not_json`, `unsupported_schema_version` or `invalid_event`.
    """
    adapter = _adapter(event_type)
    try:  # fast path: pydantic parses the JSON itself; the slow path below names what is wrong
        event = adapter.validate_json(payload)
    except ValidationError:
        pass
    else:
        if getattr(event, "schema_version", SCHEMA_VERSION) == SCHEMA_VERSION:
            parsed: T = event
            return parsed
    try:
        data = json.loads(payload)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise EventDecodeError("not_json", f"payload is not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise EventDecodeError("invalid_event", "payload is not a JSON object")
    version = data.get("schema_version", SCHEMA_VERSION)
    if version != SCHEMA_VERSION:
        raise EventDecodeError(
            "unsupported_schema_version",
            f"schema_version {version!r} is not supported (this consumer reads {SCHEMA_VERSION})",
            field="schema_version",
        )
    try:
        validated: T = adapter.validate_python(data)
        return validated
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(part) for part in first["loc"]) or None
        raise EventDecodeError("invalid_event", first["msg"], field=field) from None


_adapters: dict[Any, TypeAdapter[Any]] = {}


def _adapter(event_type: Any) -> TypeAdapter[Any]:
    if event_type not in _adapters:
        _adapters[event_type] = TypeAdapter(event_type)
    return _adapters[event_type]


def order_event_id(tenant_id: str, order_id: str, kind: OrderKind) -> str:
    """Deterministic event id: re-ingesting the same order yields the same id (consumers dedupe).
    Every version of an order has this id; readers keep the highest version."""
    digest = hashlib.sha256(f"{tenant_id}\x1f{order_id}\x1f{kind.value}".encode()).hexdigest()
    return digest[:32]


ScoreState = tuple[str, str, str]  # (risk_band, value_tier, segment), as announced


def score_event_id(
    tenant_id: str,
    customer_id: str,
    model_version: str,
    features_as_of: datetime,
    previous: ScoreState | None,
    current: ScoreState,
) -> str:
    """Deterministic id of a `CustomerScore` announcement: the same inputs give the same id.

    The inputs are what decides an announcement: whose score, by which model, at which instant,
    from which announced state to which. So a re-publish (a retried batch, a second instance
    announcing the same change) has the id of the first, while a later change has a new one (it
    leaves another state, or happens at a later instant or under another model)."""
    parts = [
        tenant_id,
        customer_id,
        model_version,
        features_as_of.astimezone(UTC).isoformat(),
        *(previous or ("", "", "")),
        *current,
    ]
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:32]


def withdrawal_event_id(event_id: str, customer_id: str, version: int) -> str:
    """The id of the event withdrawing order `event_id` from `customer_id` at `version`."""
    digest = hashlib.sha256(f"{event_id}\x1f{customer_id}\x1f{version}".encode()).hexdigest()
    return digest[:32]


def decode_events(event_type: type[T], payloads: list[bytes]) -> list[T | EventDecodeError]:
    """`decode_event` for a whole batch: one validation pass over all payloads (about 3x cheaper
    per event); only when some payload is bad is each decoded alone, to say which and why."""
    if not payloads:
        return []
    batch = _adapter(list[event_type])  # type: ignore[valid-type]
    try:
        events = batch.validate_json(b"[" + b",".join(payloads) + b"]")
    except ValidationError:
        events = None
    if events is not None and all(e.schema_version == SCHEMA_VERSION for e in events):
        valid: list[T | EventDecodeError] = events
        return valid
    decoded: list[T | EventDecodeError] = []
    for payload in payloads:
        try:
            decoded.append(decode_event(event_type, payload))
        except EventDecodeError as error:
            decoded.append(error)
    return decoded
