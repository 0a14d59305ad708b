"""Segment names stay with the same customers across retrains."""

from __future__ import annotations

from datetime import date

import polars as pl

from retention_bundle.models.segmenter import PERSONAS
from retention_trainer.fitting.segmenter import fit_segmenter
from retention_trainer.training_set import training_examples
from tests.support.uci_orders import TEST_DATA, load_orders


def test_names_are_personas_and_stable_across_retrains() -> None:
    orders = load_orders(TEST_DATA / "online_retail_II_slice.parquet")
    examples = training_examples(orders, [date(2011, 8, 11), date(2011, 9, 10)])
    first = fit_segmenter(examples.filter(pl.col("cutoff") == date(2011, 8, 11)))
    assert set(first.names) <= set(PERSONAS) and len(set(first.names)) == len(first.names)
    later = examples.filter(pl.col("cutoff") == date(2011, 9, 10))
    second = fit_segmenter(later, previous=first, seed=3)
    # Each retrained centroid carries the name of the old centroid nearest to it.
    old = first.raw_centroids()
    for name, centroid in zip(second.names, second.raw_centroids(), strict=True):
        if name in first.names:
            nearest = ((old - centroid) ** 2).sum(axis=1).argmin()
            assert first.names[nearest] == name
    # Retraining on the same data with another seed keeps every name.
    same = fit_segmenter(
        examples.filter(pl.col("cutoff") == date(2011, 8, 11)), previous=first, seed=5
    )
    assert same.names == first.names
