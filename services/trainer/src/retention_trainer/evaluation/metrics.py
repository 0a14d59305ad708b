"""Backtest metrics for churn scores and LTV predictions: plain arrays in, floats out.

One function per metric, plus :func:`churn_metrics` and :func:`ltv_metrics`, which return the
report's metric dicts with exactly the keys :data:`CHURN_METRIC_KEYS` and
:data:`LTV_METRIC_KEYS`.

Conventions, the same for every function:

- **Validation.** Inputs must be 1-D, non-empty, of equal length and finite; churn labels must
  be 0/1 (or bool); probabilities (Brier) must be in ``[0, 1]``. Otherwise ``ValueError``.
- **Degenerate truth raises.** When the *actual* outcome cannot measure the metric — one class
  only for ROC-AUC / PR-AUC / F1-threshold selection, no churner for the lift, constant actual
  values for Spearman / normalized Gini, total actual revenue ``<= 0`` for the capture — the
  function raises ``ValueError`` with the reason. No metric ever returns NaN.
- **Degenerate predictions are scored.** A constant (no-information) prediction gets the value
  a random ordering would get in expectation: ROC-AUC 0.5, PR-AUC = prevalence, lift 1,
  Spearman 0, normalized Gini 0, top-10% capture 0.1.
- **Ties are order-independent.** Ranking metrics treat tied scores as a random order and
  return its expectation: average ranks (ROC-AUC, Spearman, Gini), and at the top-10% boundary
  tied customers contribute pro rata (lift, capture). Shuffling the input never changes a value.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

# scikit-learn and SciPy are imported by the functions that need them: the trainer process
# measures realized ROC-AUC and Brier (outcomes.py) and must not load either (runs/child.py).

__all__ = [
    "CHURN_METRIC_KEYS",
    "LTV_METRIC_KEYS",
    "brier",
    "churn_metrics",
    "f1_at_threshold",
    "lift_top_decile",
    "ltv_metrics",
    "mae",
    "normalized_gini",
    "pr_auc",
    "rmse",
    "roc_auc",
    "select_threshold",
    "spearman",
    "top10_capture",
]

CHURN_METRIC_KEYS: tuple[str, ...] = ("roc_auc", "pr_auc", "brier", "f1", "lift_top_decile")
LTV_METRIC_KEYS: tuple[str, ...] = ("mae", "rmse", "spearman", "normalized_gini", "top10_capture")

TOP_FRACTION = 0.1


# --- validation -----------------------------------------------------------------------------


def _values(name: str, values: ArrayLike) -> NDArray[np.float64]:
    arr = np.asarray(values, dtype=float)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {arr.shape}")
    if arr.size == 0:
        raise ValueError(f"{name} is empty")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} must be finite (no NaN or inf)")
    return arr


def _pair(
    first: tuple[str, ArrayLike], second: tuple[str, ArrayLike]
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    a, b = _values(*first), _values(*second)
    if a.size != b.size:
        raise ValueError(f"{first[0]} and {second[0]} differ in length: {a.size} != {b.size}")
    return a, b


def _labels(y_true: ArrayLike, y_score: ArrayLike) -> tuple[NDArray[np.int64], NDArray]:
    y, score = _pair(("y_true", y_true), ("y_score", y_score))
    if not np.all((y == 0) | (y == 1)):
        raise ValueError("y_true must hold 0/1 labels (1 = churned)")
    return y.astype(np.int64), score


def _both_classes(y: NDArray[np.int64], metric: str) -> None:
    if y.min() == y.max():
        only = "churners" if y[0] == 1 else "non-churners"
        raise ValueError(f"{metric} is undefined when y_true holds only {only}")


def _top_fraction_sum(values: NDArray, scores: NDArray, fraction: float) -> float:
    """Expected sum of ``values`` over the ``fraction·n`` highest ``scores``.

    The top ``k = fraction·n`` (not rounded) units of customer weight are taken from the
    highest score down; a group of tied scores at the boundary, or a fractional last place,
    contributes pro rata — the expectation over random orderings of the ties.
    """
    n = scores.size
    k = fraction * n
    order = np.argsort(-scores, kind="stable")
    sorted_scores, sorted_values = scores[order], values[order]
    starts = np.r_[0, np.flatnonzero(np.diff(sorted_scores)) + 1]
    counts = np.diff(np.r_[starts, n])
    sums = np.add.reduceat(sorted_values, starts)
    before = np.cumsum(counts) - counts
    taken = np.clip(k - before, 0.0, counts)
    return float(np.sum(sums * taken / counts))


# --- churn ----------------------------------------------------------------------------------


def roc_auc(y_true: ArrayLike, y_score: ArrayLike) -> float:
    """Area under the ROC curve (as ``sklearn.metrics.roc_auc_score``): P(score of a random
    churner > score of a random non-churner), ties counting one half. Needs both classes.

    The Mann-Whitney form on average ranks, in NumPy alone."""
    y, score = _labels(y_true, y_score)
    _both_classes(y, "ROC-AUC")
    positives = y == 1
    n_pos, n_neg = int(positives.sum()), int((~positives).sum())
    rank_sum = float(_average_ranks(score)[positives].sum())
    return (rank_sum - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)


def _average_ranks(values: NDArray[np.float64]) -> NDArray[np.float64]:
    """1-based ranks, tied values sharing their average rank (``scipy.stats.rankdata``)."""
    order = np.argsort(values, kind="mergesort")
    ordered = values[order]
    starts = np.concatenate(([0], np.flatnonzero(np.diff(ordered)) + 1))
    ends = np.append(starts[1:], values.size)
    ranks = np.empty(values.size, dtype=float)
    ranks[order] = np.repeat((starts + ends + 1) / 2.0, ends - starts)
    return ranks


def pr_auc(y_true: ArrayLike, y_score: ArrayLike) -> float:
    r"""Average precision (``sklearn.metrics.average_precision_score``), the PR-AUC estimate
    :math:`\sum_n (R_n - R_{n-1}) P_n` over score thresholds. Needs both classes."""
    y, score = _labels(y_true, y_score)
    _both_classes(y, "PR-AUC")
    from sklearn import metrics as skm

    return float(skm.average_precision_score(y, score))


def brier(y_true: ArrayLike, y_prob: ArrayLike) -> float:
    r"""Brier score :math:`\frac1n\sum_i (p_i - y_i)^2` of churn probabilities in ``[0, 1]``.

    Lower is better; defined for one class too. Scores that are not probabilities (a recency
    rank, say) must be calibrated first: ``ValueError`` otherwise.
    """
    y, prob = _labels(y_true, y_prob)
    if np.any((prob < 0) | (prob > 1)):
        raise ValueError("brier needs probabilities in [0, 1]")
    return float(np.mean((prob - y) ** 2))


def f1_at_threshold(y_true: ArrayLike, y_score: ArrayLike, threshold: float) -> float:
    r"""F1 of the decision ``churn = score >= threshold``:
    :math:`F_1 = \frac{2TP}{2TP + FP + FN}`, and 0 when that is 0/0 (nobody churns and
    nobody is flagged)."""
    y, score = _labels(y_true, y_score)
    if not np.isfinite(threshold):
        raise ValueError(f"threshold must be finite, got {threshold}")
    flagged = score >= threshold
    tp = float(np.sum(flagged & (y == 1)))
    fp = float(np.sum(flagged & (y == 0)))
    fn = float(np.sum(~flagged & (y == 1)))
    denominator = 2 * tp + fp + fn
    return 2 * tp / denominator if denominator > 0 else 0.0


def select_threshold(y_true: ArrayLike, y_score: ArrayLike) -> float:
    """The decision threshold that maximizes F1 on a validation set.

    Candidates are the distinct scores (``churn = score >= threshold``), scanned with
    ``sklearn.metrics.precision_recall_curve``; among thresholds with the same best F1 the
    highest wins (the fewest customers flagged for the same F1, i.e. the cheapest campaign).
    Use it on the validation cutoff, then report :func:`f1_at_threshold` on the test cutoff
    with the threshold fixed. Needs both classes.
    """
    y, score = _labels(y_true, y_score)
    _both_classes(y, "F1 threshold selection")
    from sklearn import metrics as skm

    precision, recall, thresholds = skm.precision_recall_curve(y, score)
    precision, recall = precision[:-1], recall[:-1]  # the last point has no threshold
    total = precision + recall
    f1 = np.divide(2 * precision * recall, total, out=np.zeros_like(total), where=total > 0)
    best = np.flatnonzero(f1 == f1.max())
    return float(thresholds[best].max())


def lift_top_decile(y_true: ArrayLike, y_score: ArrayLike) -> float:
    """Churn rate among the 10% highest scores divided by the overall churn rate.

    The top decile is ``0.1·n`` customers, ties at the boundary counted pro rata (module
    docstring), so a constant score has lift exactly 1. Needs at least one churner.
    """
    y, score = _labels(y_true, y_score)
    if y.sum() == 0:
        raise ValueError("lift_top_decile is undefined when y_true holds no churner")
    top_rate = _top_fraction_sum(y.astype(float), score, TOP_FRACTION) / (TOP_FRACTION * y.size)
    return float(top_rate / y.mean())


def churn_metrics(y_true: ArrayLike, y_prob: ArrayLike, threshold: float) -> dict[str, float]:
    """All churn metrics of a test set, keyed by :data:`CHURN_METRIC_KEYS`.

    ``y_prob`` are churn probabilities (they feed the Brier score); ``threshold`` is the one
    chosen on validation with :func:`select_threshold`.
    """
    return {
        "roc_auc": roc_auc(y_true, y_prob),
        "pr_auc": pr_auc(y_true, y_prob),
        "brier": brier(y_true, y_prob),
        "f1": f1_at_threshold(y_true, y_prob, threshold),
        "lift_top_decile": lift_top_decile(y_true, y_prob),
    }


# --- LTV ------------------------------------------------------------------------------------


def mae(y_true: ArrayLike, y_pred: ArrayLike) -> float:
    r"""Mean absolute error :math:`\frac1n\sum_i |y_i - \hat y_i|`."""
    actual, predicted = _pair(("y_true", y_true), ("y_pred", y_pred))
    return float(np.mean(np.abs(actual - predicted)))


def rmse(y_true: ArrayLike, y_pred: ArrayLike) -> float:
    r"""Root mean squared error :math:`\sqrt{\frac1n\sum_i (y_i - \hat y_i)^2}`."""
    actual, predicted = _pair(("y_true", y_true), ("y_pred", y_pred))
    return float(np.sqrt(np.mean((actual - predicted) ** 2)))


def spearman(y_true: ArrayLike, y_pred: ArrayLike) -> float:
    """Spearman rank correlation (``scipy.stats.spearmanr``, average ranks for ties).

    0 for a constant prediction (it carries no ranking); ``ValueError`` for constant actuals.
    """
    actual, predicted = _pair(("y_true", y_true), ("y_pred", y_pred))
    if np.ptp(actual) == 0:
        raise ValueError("spearman is undefined when every actual value is the same")
    if np.ptp(predicted) == 0:
        return 0.0
    from scipy import stats

    return float(stats.spearmanr(actual, predicted).statistic)


def _gini(actual: NDArray, ordering: NDArray) -> float:
    r"""Gini of ``actual`` ordered by ``ordering`` (descending), ties averaged:

    :math:`G = \frac{\sum_i a_i R_i}{n \sum_i a_i} - \frac{n+1}{2n}`, with :math:`R_i` the
    ascending average rank of ``ordering``. It equals the classic
    ``mean(cumulative share of actual down the ordering) − (n+1)/(2n)``, and since it is linear
    in the ranks, average ranks give its expectation over random orders of ties.
    """
    n = actual.size
    ranks = _average_ranks(np.asarray(ordering, dtype=float))
    return float(np.sum(actual * ranks) / (n * np.sum(actual)) - (n + 1) / (2 * n))


def normalized_gini(y_true: ArrayLike, y_pred: ArrayLike) -> float:
    """Gini of the actual values ordered by prediction / Gini of the perfect ordering.

    1 for a perfect ranking, 0 for a constant (or random) one, negative for a reversed one.
    For 0/1 actuals it equals ``2·ROC-AUC − 1``. Needs a positive actual total and actual
    values that are not all equal (``ValueError``).
    """
    actual, predicted = _pair(("y_true", y_true), ("y_pred", y_pred))
    if np.sum(actual) <= 0:
        raise ValueError("normalized_gini needs a positive total of actual values")
    if np.ptp(actual) == 0:
        raise ValueError("normalized_gini is undefined when every actual value is the same")
    return _gini(actual, predicted) / _gini(actual, actual)


def top10_capture(y_true: ArrayLike, y_pred: ArrayLike) -> float:
    """Share of the total actual value held by the 10% of customers with the highest prediction.

    The top 10% is ``0.1·n`` customers, ties at the boundary counted pro rata (module
    docstring); a constant prediction captures 0.1. Needs a positive actual total.
    """
    actual, predicted = _pair(("y_true", y_true), ("y_pred", y_pred))
    total = float(np.sum(actual))
    if total <= 0:
        raise ValueError("top10_capture needs a positive total of actual values")
    return _top_fraction_sum(actual, predicted, TOP_FRACTION) / total


def ltv_metrics(y_true: ArrayLike, y_pred: ArrayLike) -> dict[str, float]:
    """All LTV metrics of a test set, keyed by :data:`LTV_METRIC_KEYS`."""
    return {
        "mae": mae(y_true, y_pred),
        "rmse": rmse(y_true, y_pred),
        "spearman": spearman(y_true, y_pred),
        "normalized_gini": normalized_gini(y_true, y_pred),
        "top10_capture": top10_capture(y_true, y_pred),
    }
