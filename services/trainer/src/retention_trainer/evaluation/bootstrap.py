"""Paired bootstrap of a metric difference between two scorers on the same customers.

**Method.** A bootstrap resample draws ``n`` customers with replacement from the ``n`` test
customers of an origin: row ``b`` of an index matrix ``rng.integers(0, n, (B, n))``. Both scorers
(the model and a baseline) are scored on the *same* rows of that matrix — a paired bootstrap, so
the noise the two share (which customers happened to be in the test set) cancels in their
difference. Over several origins, each origin is resampled on its own (a stratified bootstrap,
one stratum per origin) and the difference is averaged over origins; the 5th and 95th
percentiles of that averaged difference over ``B`` resamples are the 90% percentile interval.

References: B. Efron and R. Tibshirani, *An Introduction to the Bootstrap* (Chapman & Hall,
1993), ch. 13 (percentile intervals); T. Berg-Kirkpatrick, D. Burkett and D. Klein, "An
Empirical Investigation of Statistical Significance in NLP", EMNLP 2012 (the paired bootstrap
for comparing two systems on one test set).

**Vectorized.** A row of the index matrix is turned into counts ``w[b, i]`` (how often customer
``i`` was drawn), and every metric is computed as a *weighted* metric with those counts: a
customer drawn twice weighs two. That equals the metric of the duplicated sample exactly, ties
included, but needs no sort per resample: each score vector is sorted once, its tie groups found
once, and every resample is a few cumulative sums over a ``(B, groups)`` matrix. The metric
conventions are those of :mod:`retention_trainer.evaluation.metrics` (average ranks for ties,
ties pro rata at the top-10% boundary, Spearman 0 for a constant prediction); a resample on which
a metric is undefined (one class only, say) gives NaN and is left out of the percentiles.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import ArrayLike, NDArray

from retention_trainer.evaluation.calibration import CALIBRATION_BINS
from retention_trainer.evaluation.metrics import TOP_FRACTION

__all__ = [
    "BATCH_METRICS",
    "HIGHER_IS_BETTER",
    "PairedSample",
    "ScoredSample",
    "batch_metric",
    "paired_bootstrap",
    "resample_counts",
]

Floats = NDArray[np.float64]

# Direction of every metric the backtest reports: the "best" baseline and the reading of an
# interval depend on it.
HIGHER_IS_BETTER: dict[str, bool] = {
    "roc_auc": True,
    "pr_auc": True,
    "brier": False,
    "ece": False,
    "f1": True,
    "lift_top_decile": True,
    "roc_auc_active_365d": True,
    "mae": False,
    "rmse": False,
    "spearman": True,
    "normalized_gini": True,
    "top10_capture": True,
}

# Resamples are scored this many at a time: (chunk, n) float matrices stay a few MB.
_CHUNK = 128


def resample_counts(rng: np.random.Generator, n: int, resamples: int) -> Floats:
    """``(resamples, n)`` counts: row ``b`` says how often each of the ``n`` customers is in
    bootstrap resample ``b`` (drawn as an index matrix, ``n`` draws with replacement per row)."""
    index = rng.integers(0, n, size=(resamples, n))
    flat = (index + (np.arange(resamples) * n)[:, None]).ravel()
    return np.bincount(flat, minlength=resamples * n).reshape(resamples, n).astype(np.float64)


class _Groups:
    """A score vector's tie groups in ascending score order, found once for every resample.

    Resample matrices are ``(B, n)``; sums over tie groups are read off a cumulative sum along
    the sorted customers at each group's end, which costs the same for any number of groups
    (``np.add.reduceat`` slows down badly when most groups hold one customer).
    """

    def __init__(self, scores: Floats) -> None:
        self.order = np.argsort(scores, kind="stable")
        ordered = scores[self.order]
        changes = np.flatnonzero(np.diff(ordered)) + 1
        self.distinct = changes.size == scores.size - 1
        self.ends = np.r_[changes - 1, scores.size - 1]
        # Group of each customer (in the original order), for mapping group values back.
        group_of_sorted = np.cumsum(np.r_[0, np.diff(ordered) != 0])
        self.group = np.empty_like(group_of_sorted)
        self.group[self.order] = group_of_sorted

    def sums(self, matrix: Floats) -> Floats:
        """Per resample (row), the sum of ``matrix`` (``(B, n)``) over each tie group, in
        ascending score order: ``(B, groups)``."""
        ordered = np.take(matrix, self.order, axis=1)
        if self.distinct:
            return ordered
        running = np.take(np.cumsum(ordered, axis=1), self.ends, axis=1)
        return np.diff(running, axis=1, prepend=0.0)

    def average_ranks(self, counts: Floats) -> Floats:
        """Each customer's average rank (1-based, ties averaged) in each resample, from the
        resamples' group ``counts`` (``sums(w)``): ``(B, n)``."""
        ranks = np.cumsum(counts, axis=1)
        ranks -= (counts - 1.0) / 2.0
        return np.take(ranks, self.group, axis=1)


@dataclass
class ScoredSample:
    """One scorer on one origin's customers: what a batch metric reads."""

    actual: Floats
    scores: Floats
    threshold: float | None = None  # the churn decision threshold (F1), chosen on validation
    active: NDArray[np.bool_] | None = None  # customers of ``roc_auc_active_365d``
    _groups: _Groups | None = field(default=None, repr=False)
    _actual_groups: _Groups | None = field(default=None, repr=False)
    # Group sums of the last resample matrix seen: every metric of a chunk reads the same ones.
    _cached: tuple[Floats, dict[str, Floats]] | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        self.actual = np.asarray(self.actual, dtype=np.float64)
        self.scores = np.asarray(self.scores, dtype=np.float64)
        if self.actual.shape != self.scores.shape or self.actual.ndim != 1:
            raise ValueError("actual and scores must be 1-D arrays of one length")
        if self.active is not None:
            self.active = np.asarray(self.active, dtype=bool)

    @property
    def groups(self) -> _Groups:
        if self._groups is None:
            self._groups = _Groups(self.scores)
        return self._groups

    @property
    def actual_groups(self) -> _Groups:
        if self._actual_groups is None:
            self._actual_groups = _Groups(self.actual)
        return self._actual_groups

    def group_sums(self, w: Floats, what: str) -> Floats:
        """``(B, groups)`` sums per score tie group of the resamples ``w``: of the counts
        (``counts``), of counts × actual (``actual``), of both over the active customers only
        (``active_counts``, ``active_actual``), or the counts per tie group of the actual
        values (``rank_counts``)."""
        if self._cached is None or self._cached[0] is not w:
            self._cached = (w, {})
        cache = self._cached[1]
        if what not in cache:
            if what == "counts":
                cache[what] = self.groups.sums(w)
            elif what == "actual":
                cache[what] = self.groups.sums(w * self.actual)
            elif what == "rank_counts":
                cache[what] = self.actual_groups.sums(w)
            else:
                if self.active is None:
                    raise ValueError("roc_auc_active_365d needs the active customers")
                values = w * self.active
                cache["active_counts"] = self.groups.sums(values)
                cache["active_actual"] = self.groups.sums(values * self.actual)
        return cache[what]


def _ratio(numerator: Floats, denominator: Floats) -> Floats:
    """numerator / denominator, NaN where the denominator is not positive (undefined)."""
    out = np.full(np.broadcast(numerator, denominator).shape, np.nan)
    return np.divide(numerator, denominator, out=out, where=denominator > 0)


def _weighted(w: Floats, values: Floats) -> Floats:
    """Per resample, the count-weighted sum of per-customer ``values`` (einsum, not BLAS: a
    matrix-vector product's threads only fight the other work on a loaded machine)."""
    return np.einsum("bn,n->b", w, values)


def _rows_dot(a: Floats, b: Floats) -> Floats:
    return np.einsum("bg,bg->b", a, b)


def _auc(counts: Floats, positives: Floats) -> Floats:
    # Mann-Whitney: P(churner's score > non-churner's), ties one half, weights = counts.
    negatives = counts - positives
    below = np.cumsum(negatives, axis=1)
    below -= 0.5 * negatives
    return _ratio(_rows_dot(positives, below), positives.sum(axis=1) * negatives.sum(axis=1))


def _roc_auc(s: ScoredSample, w: Floats) -> Floats:
    return _auc(s.group_sums(w, "counts"), s.group_sums(w, "actual"))


def _roc_auc_active(s: ScoredSample, w: Floats) -> Floats:
    return _auc(s.group_sums(w, "active_counts"), s.group_sums(w, "active_actual"))


def _pr_auc(s: ScoredSample, w: Floats) -> Floats:
    # Average precision: sum over thresholds (distinct scores, high to low) of ΔRecall·Precision.
    positives = s.group_sums(w, "actual")[:, ::-1]
    counts = np.cumsum(s.group_sums(w, "counts")[:, ::-1], axis=1)
    precision = np.cumsum(positives, axis=1)
    np.divide(precision, counts, out=precision, where=counts > 0)
    return _ratio(_rows_dot(positives, precision), positives.sum(axis=1))


def _brier(s: ScoredSample, w: Floats) -> Floats:
    return _ratio(_weighted(w, (s.scores - s.actual) ** 2), w.sum(axis=1))


def _ece(s: ScoredSample, w: Floats) -> Floats:
    # evaluation.calibration's ECE with customers counted w times: Σ_b |Σ w·p − Σ w·y| / Σ w over
    # its ten equal-width bins (n_b/n · |mean p − rate| = |Σ p − Σ y| / n within a bin).
    bins = np.minimum((s.scores * CALIBRATION_BINS).astype(int), CALIBRATION_BINS - 1)
    members = np.eye(CALIBRATION_BINS)[bins]
    gaps = (w * (s.scores - s.actual)) @ members
    return _ratio(np.abs(gaps).sum(axis=1), w.sum(axis=1))


def _f1(s: ScoredSample, w: Floats) -> Floats:
    if s.threshold is None:
        raise ValueError("f1 needs the decision threshold")
    flagged = (s.scores >= s.threshold).astype(float)
    tp = _weighted(w, (flagged * s.actual))
    fp = _weighted(w, (flagged * (1.0 - s.actual)))
    fn = _weighted(w, ((1.0 - flagged) * s.actual))
    denominator = 2 * tp + fp + fn
    return np.divide(2 * tp, denominator, out=np.zeros_like(tp), where=denominator > 0)


def _top_actual(s: ScoredSample, w: Floats) -> Floats:
    """Per resample, the expected sum of the actual values over the top ``TOP_FRACTION`` of the
    (weighted) customers by score, a tie group at the boundary taken pro rata."""
    counts = s.group_sums(w, "counts")[:, ::-1]
    sums = s.group_sums(w, "actual")[:, ::-1]
    k = TOP_FRACTION * counts.sum(axis=1, keepdims=True)
    # Share of each group inside the top: 1 above the boundary, pro rata on it, 0 below.
    taken = k - np.cumsum(counts, axis=1)
    taken += counts
    np.clip(taken, 0.0, counts, out=taken)
    np.divide(taken, counts, out=taken, where=counts > 0)
    return _rows_dot(sums, taken)


def _lift(s: ScoredSample, w: Floats) -> Floats:
    return _ratio(_top_actual(s, w), TOP_FRACTION * (_weighted(w, s.actual)))


def _mae(s: ScoredSample, w: Floats) -> Floats:
    return _ratio(_weighted(w, np.abs(s.actual - s.scores)), w.sum(axis=1))


def _rmse(s: ScoredSample, w: Floats) -> Floats:
    return np.sqrt(_ratio(_weighted(w, (s.actual - s.scores) ** 2), w.sum(axis=1)))


def _ranks(s: ScoredSample, w: Floats) -> tuple[Floats, Floats]:
    """Average ranks of the scores and of the actual values within each resample: ``(B, n)``."""
    return (
        s.groups.average_ranks(s.group_sums(w, "counts")),
        s.actual_groups.average_ranks(s.group_sums(w, "rank_counts")),
    )


def _spearman(s: ScoredSample, w: Floats) -> Floats:
    predicted, actual = _ranks(s, w)
    # The mean rank of a resample of m customers is (m + 1) / 2 whatever the ties.
    middle = (w.sum(axis=1, keepdims=True) + 1) / 2
    predicted -= middle
    actual -= middle
    weighted = w * predicted
    covariance = _rows_dot(weighted, actual)
    var_predicted = _rows_dot(weighted, predicted)
    var_actual = _rows_dot(w * actual, actual)
    value = np.divide(
        covariance,
        np.sqrt(var_predicted * var_actual),
        out=np.zeros_like(covariance),  # a constant prediction carries no ranking: 0
        where=var_predicted > 0,
    )
    return np.where(var_actual > 0, value, np.nan)


def _gini(weighted_actual: Floats, ranks: Floats, n: Floats, total: Floats) -> Floats:
    return _ratio(_rows_dot(weighted_actual, ranks), n * total) - (n + 1) / (2 * n)


def _normalized_gini(s: ScoredSample, w: Floats) -> Floats:
    predicted, actual = _ranks(s, w)
    weighted_actual = w * s.actual
    n, total = w.sum(axis=1), weighted_actual.sum(axis=1)
    value = _ratio(
        _gini(weighted_actual, predicted, n, total), _gini(weighted_actual, actual, n, total)
    )
    return np.where(total > 0, value, np.nan)


def _top10_capture(s: ScoredSample, w: Floats) -> Floats:
    return _ratio(_top_actual(s, w), _weighted(w, s.actual))


BATCH_METRICS: dict[str, Callable[[ScoredSample, Floats], Floats]] = {
    "roc_auc": _roc_auc,
    "pr_auc": _pr_auc,
    "brier": _brier,
    "ece": _ece,
    "f1": _f1,
    "lift_top_decile": _lift,
    "roc_auc_active_365d": _roc_auc_active,
    "mae": _mae,
    "rmse": _rmse,
    "spearman": _spearman,
    "normalized_gini": _normalized_gini,
    "top10_capture": _top10_capture,
}


def batch_metric(name: str, sample: ScoredSample, counts: ArrayLike) -> Floats:
    """The metric ``name`` on every resample: ``counts`` is ``(B, n)`` (or ``(n,)``), how often
    each customer is drawn; all ones is the metric of the sample itself."""
    w = np.atleast_2d(np.asarray(counts, dtype=np.float64))
    return BATCH_METRICS[name](sample, w)


@dataclass(frozen=True)
class PairedSample:
    """The model and one baseline on the same customers of one origin."""

    model: ScoredSample
    baseline: ScoredSample

    def __post_init__(self) -> None:
        if not np.array_equal(self.model.actual, self.baseline.actual):
            raise ValueError("a paired sample needs the same customers (actual values) for both")


def paired_bootstrap(
    metrics: Sequence[str],
    origins: Sequence[dict[str, PairedSample]],
    *,
    resamples: int = 1000,
    seed: int = 0,
) -> dict[str, Floats]:
    """``B = resamples`` bootstrap draws of mean over origins of (model − baseline), per metric.

    ``origins[o][metric]`` is the pair to compare for that metric at origin ``o`` (the baseline
    may differ per metric: the best one). Every origin gets its own resamples (its own stream
    of ``seed``), shared by all metrics and both scorers of a pair. Returns ``{metric: (B,)}``;
    take ``np.nanpercentile(draws, [5, 95])`` for the 90% interval.
    """
    if resamples < 1:
        raise ValueError("resamples must be positive")
    streams = np.random.SeedSequence(seed).spawn(len(origins))
    total = {m: np.zeros(resamples) for m in metrics}
    for pairs, stream in zip(origins, streams, strict=True):
        rng = np.random.default_rng(stream)
        n = next(iter(pairs.values())).model.actual.size
        for start in range(0, resamples, _CHUNK):
            w = resample_counts(rng, n, min(_CHUNK, resamples - start))
            for m in metrics:
                pair = pairs[m]
                difference = BATCH_METRICS[m](pair.model, w) - BATCH_METRICS[m](pair.baseline, w)
                total[m][start : start + len(w)] += difference
    return {m: values / len(origins) for m, values in total.items()}
