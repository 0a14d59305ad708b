"""Tenant-wide answers merged from the shares of sharded replicas (no I/O): each merge over
disjoint shares equals the answer computed over their union — ties and empty shares included."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from retention_scoring.insights import added, kpis, kpis_of, totals
from retention_scoring.segment_merge import SegmentShare, merge_segments
from retention_scoring.segment_points import POINTS_SCHEMA, merged_points, sample_points
from retention_scoring.segment_profiles import (
    QUARTILES,
    ProfileShare,
    merged_profile,
    profile_share,
    segment_profile,
)
from retention_shared.campaigns import CampaignRequest, plan_campaign
from retention_shared.features import FEATURE_NAMES
from retention_shared.score_summaries import segment_table

SEGMENTS = ("Champions", "At risk", "Lost")
ACTIONS = {"Champions": "Reward", "At risk": "Win back", "Lost": "Let go"}


def _population(n: int, seed: int = 3) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Features and scores, row-aligned; values drawn from few levels, so many tie."""
    rng = np.random.default_rng(seed)
    features = pl.DataFrame({name: rng.integers(0, 12, n).astype(float) for name in FEATURE_NAMES})
    p = rng.choice([0.1, 0.4, 0.7, 0.9], n)
    ltv = rng.choice([0.0, 50.0, 120.0, 400.0], n)
    scores = pl.DataFrame(
        {
            "customer_id": [f"c{i:05d}" for i in rng.permutation(n)],
            "segment": rng.choice(SEGMENTS, n),
            "risk_band": np.where(p >= 0.6, "high", np.where(p >= 0.3, "medium", "low")),
            "churn_probability": p,
            "predicted_ltv": ltv,
            "revenue_at_risk": p * ltv,
        }
    )
    return features, scores


def _split(n: int, parts: int, seed: int = 5) -> list[np.ndarray]:
    """Row masks of `parts` disjoint shares (the last one empty), as partitions split them."""
    owner = np.random.default_rng(seed).integers(0, parts - 1, n)
    return [owner == part for part in range(parts)]


def test_insight_totals_of_shares_add_up_to_the_whole() -> None:
    features, scores = _population(3000)
    previous = scores.with_columns(pl.col("revenue_at_risk") * 0.5, pl.col("risk_band").reverse())
    whole = totals(features, scores, previous)
    shares = [
        totals(features.filter(m), scores.filter(m), previous.filter(m)) for m in _split(3000, 4)
    ]
    merged = added(shares)
    assert merged.customers == whole.customers == 3000
    assert (merged.active, merged.active_before, merged.returning) == (
        whole.active,
        whole.active_before,
        whole.returning,
    )
    assert merged.before is not None and whole.before is not None
    assert merged.now.at_risk_customers == whole.now.at_risk_customers
    assert merged.now.revenue_at_risk == pytest.approx(whole.now.revenue_at_risk, rel=1e-12)
    assert merged.before.predicted_revenue == pytest.approx(
        whole.before.predicted_revenue, rel=1e-12
    )
    for one, other in zip(kpis_of(merged), kpis(features, scores, previous), strict=True):
        assert (one.name, one.unit) == (other.name, other.unit)
        assert one.value == pytest.approx(other.value, rel=1e-12)
        assert one.previous == pytest.approx(other.previous, rel=1e-12)
    # A share that could not score with the previous champion: no previous number anywhere.
    shares[1] = totals(features.filter(_split(3000, 4)[1]), scores.filter(_split(3000, 4)[1]), None)
    assert added(shares).before is None
    assert all(k.previous is None for k in kpis_of(added(shares)))


def test_segment_tables_of_shares_merge_into_the_whole_table() -> None:
    features, scores = _population(2000)
    monetary = features["monetary"] - 3.0  # some negative spend: counts as 0 in the shares
    whole = segment_table(scores, monetary, ACTIONS)
    shares = []
    for mask in _split(2000, 3):
        rows = pl.Series(mask)
        share_money = monetary.filter(rows)
        table = segment_table(scores.filter(rows), share_money, ACTIONS)
        revenue = float(share_money.clip(lower_bound=0.0).sum())
        shares.append(SegmentShare(table, int(mask.sum()), revenue))
    merged, customers = merge_segments(shares, list(ACTIONS))
    assert customers == 2000
    assert [r["segment"] for r in merged] == [r["segment"] for r in whole]
    for row, same in zip(merged, whole, strict=True):
        for key, value in row.items():
            assert value == (
                pytest.approx(same[key], rel=1e-12) if isinstance(value, float) else same[key]
            )


@pytest.mark.parametrize("budget", [0.0, 35.0, 400.0, 1e9])
def test_a_plan_over_the_shares_plans_equals_the_plan_over_everyone(budget: float) -> None:
    _, scores = _population(1500)
    request = CampaignRequest(budget=budget, cost_per_contact=1.0, save_rate=0.3, margin=0.6)

    def plan(frame: pl.DataFrame):  # type: ignore[no-untyped-def]
        ids = frame["customer_id"]
        return plan_campaign(
            frame["churn_probability"].to_numpy(),
            frame["predicted_ltv"].to_numpy(),
            request,
            ids_of=lambda rows: ids.gather(rows).to_numpy(),
        )

    whole = plan(scores)
    # Each share sends its chosen candidates; the plan over them is the plan over everyone.
    chosen = []
    for mask in _split(1500, 4):
        share = scores.filter(pl.Series(mask))
        chosen.append(share[plan(share).selected.tolist()])
    union = pl.concat(chosen)
    merged = plan(union)
    assert union["customer_id"].gather(merged.selected).to_list() == (
        scores["customer_id"].gather(whole.selected).to_list()
    )
    assert merged.expected == whole.expected  # the same values summed in the same order
    assert merged.optimistic == whole.optimistic
    # Ties are taken in id order, whatever order the candidates come in.
    if 0 < len(whole.selected) < 1500:
        assert len(np.unique(whole.expected_value)) < len(whole.selected), "ties exercised"
    shuffled = scores.sample(fraction=1.0, shuffle=True, seed=9)
    again = plan(shuffled)
    assert shuffled["customer_id"].gather(again.selected).to_list() == (
        scores["customer_id"].gather(whole.selected).to_list()
    )


def test_the_sample_of_the_shares_samples_is_the_sample_of_everyone() -> None:
    features, scores = _population(5000)
    for limit in (1, 700, 5000, 9000):
        whole = sample_points(scores, features, limit)
        samples = [
            sample_points(scores.filter(pl.Series(m)), features.filter(pl.Series(m)), limit)
            for m in _split(5000, 4)
        ]
        assert samples[-1].is_empty()
        merged = merged_points(samples, limit)
        assert merged.height == min(limit, 5000)
        assert merged.equals(whole)
    empty = merged_points([pl.DataFrame(schema=POINTS_SCHEMA)], 10)
    assert empty.is_empty() and empty.schema == POINTS_SCHEMA


def test_a_profile_of_whole_shares_is_exact() -> None:
    features, scores = _population(1800)
    segments = scores["segment"]
    for segment in (*SEGMENTS, "Nobody"):
        shares = [
            profile_share(features.filter(pl.Series(m)), segments.filter(pl.Series(m)), segment)
            for m in _split(1800, 4)
        ]
        assert all(len(s.values[FEATURE_NAMES[0]]) == s.customers for s in shares)
        shares = [ProfileShare.from_json(s.to_json()) for s in shares]
        assert merged_profile(shares) == segment_profile(features, segments, segment)


def test_a_profile_of_summarized_shares_is_within_a_rank_step() -> None:
    """300,000 customers over 4 shares of unequal size (each summarized at 1,025 ranks):
    every quartile within 1/1024 (+ 1/200,000) of its rank among the members."""
    rng = np.random.default_rng(11)
    n = 300_000
    features = pl.DataFrame(
        {name: rng.lognormal(3.0, 1.2, n) * (1 + i % 3) for i, name in enumerate(FEATURE_NAMES)}
    )
    segments = pl.Series(np.where(rng.random(n) < 0.8, "Lost", "Champions"))
    owner = rng.choice(4, n, p=[0.5, 0.3, 0.15, 0.05])
    rank = 1 / 1024 + 1 / 200_000
    for segment in ("Lost", "Champions"):
        shares = [
            profile_share(
                features.filter(pl.Series(owner == k)),
                segments.filter(pl.Series(owner == k)),
                segment,
            )
            for k in range(4)
        ]
        customers, spreads = merged_profile(shares)
        exact_customers, exact = segment_profile(features, segments, segment)
        assert customers == exact_customers
        members = features.filter(segments == segment)
        worst = 0.0
        for spread, same in zip(spreads, exact, strict=True):
            values = np.sort(members[spread.feature].to_numpy())
            for key, q in QUARTILES.items():
                low, high = np.quantile(values, [q - rank, q + rank])
                got = getattr(spread, key)
                assert low <= got <= high, (segment, spread.feature, key)
                worst = max(worst, abs(got - getattr(same, key)) / getattr(same, key))
        assert worst < 1e-3  # relative, on these distributions: 5·10⁻⁴ (docs/scoring.md)
