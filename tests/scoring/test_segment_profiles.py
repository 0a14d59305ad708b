"""A segment's feature quartiles (no I/O), against numpy's percentiles."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from retention_scoring.segment_profiles import segment_profile
from retention_shared.features import FEATURE_NAMES, FEATURES


def _population(n: int) -> tuple[pl.DataFrame, pl.Series]:
    rng = np.random.default_rng(7)
    features = pl.DataFrame({name: rng.gamma(2.0, 30.0, n) for name in FEATURE_NAMES})
    segments = pl.Series("segment", rng.choice(["Champions", "At risk", "Lost"], n))
    return features, segments


def test_each_feature_has_numpys_quartiles_over_the_segment_only() -> None:
    features, segments = _population(301)
    for segment in ("Champions", "At risk", "Lost"):
        customers, spreads = segment_profile(features, segments, segment)
        mask = (segments == segment).to_numpy()
        assert customers == mask.sum() > 50
        assert [s.feature for s in spreads] == list(FEATURE_NAMES)
        for spread in spreads:
            values = features[spread.feature].to_numpy()[mask]
            p25, median, p75 = np.percentile(values, [25, 50, 75])
            assert spread.p25 == pytest.approx(p25, rel=1e-12)
            assert spread.median == pytest.approx(median, rel=1e-12)
            assert spread.p75 == pytest.approx(p75, rel=1e-12)


def test_an_even_count_interpolates_and_an_empty_segment_has_no_values() -> None:
    features = pl.DataFrame({name: [1.0, 2.0, 4.0, 10.0, 99.0] for name in FEATURE_NAMES})
    segments = pl.Series(["A", "A", "A", "A", "B"])
    customers, spreads = segment_profile(features, segments, "A")
    assert customers == 4
    assert (spreads[0].p25, spreads[0].median, spreads[0].p75) == (1.75, 3.0, 5.5)
    customers, spreads = segment_profile(features, segments, "C")
    assert customers == 0 and len(spreads) == len(FEATURE_NAMES)
    assert all(s.p25 is s.median is s.p75 is None for s in spreads)


def test_every_feature_has_its_own_words() -> None:
    labels = [f.label for f in FEATURES]
    assert all(labels) and len(set(labels)) == len(labels)
