"""Backtest metrics: hand-computed cases, scikit-learn/scipy equivalents, ties, degenerate input."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats
from sklearn import metrics as skm

from retention_trainer.evaluation import metrics as m

Y = np.array([0, 0, 1, 1])
S = np.array([0.1, 0.4, 0.35, 0.8])


@pytest.fixture
def tied_churn() -> tuple[np.ndarray, np.ndarray]:
    """1,000 customers, 30% churners, scores rounded to one decimal: plenty of ties."""
    rng = np.random.default_rng(0)
    y = (rng.random(1000) < 0.3).astype(int)
    score = np.clip(np.round(0.3 + 0.3 * y + rng.normal(0, 0.2, 1000), 1), 0, 1)
    return y, score


@pytest.fixture
def tied_ltv() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(1)
    actual = np.where(rng.random(500) < 0.4, 0.0, rng.lognormal(4, 1, 500))
    predicted = np.round(actual * rng.lognormal(0, 0.8, 500) + rng.exponential(20, 500), -1)
    return actual, predicted


# --- churn: hand-computed -------------------------------------------------------------------


def test_churn_hand_computed() -> None:
    assert m.roc_auc(Y, S) == pytest.approx(0.75)  # 3 of 4 churner/non-churner pairs in order
    assert m.pr_auc(Y, S) == pytest.approx((1 + 2 / 3) / 2)  # precision 1 at R=.5, 2/3 at R=1
    assert m.brier([0, 1, 1], [0.1, 0.9, 0.8]) == pytest.approx((0.01 + 0.01 + 0.04) / 3)
    y, s = [1, 1, 0, 0, 1], [0.9, 0.2, 0.6, 0.1, 0.7]
    assert m.f1_at_threshold(y, s, 0.5) == pytest.approx(2 * 2 / (2 * 2 + 1 + 1))  # TP2 FP1 FN1
    assert m.f1_at_threshold(y, s, 0.7) == pytest.approx(2 * 2 / (2 * 2 + 0 + 1))  # >= counts


def test_lift_hand_computed() -> None:
    y = np.array([1, 1] + [1, 1, 1] + [0] * 15)  # 20 customers, 5 churners (25%)
    score = np.linspace(1, 0, 20)  # the top 2 (10%) are churners
    assert m.lift_top_decile(y, score) == pytest.approx(1.0 / 0.25)
    # 25 customers: the top decile is 2.5 customers, the third counts one half.
    y25, s25 = np.array([1, 0, 1] + [0] * 22), np.linspace(1, 0, 25)
    assert m.lift_top_decile(y25, s25) == pytest.approx(((1 + 0 + 0.5) / 2.5) / (2 / 25))


def test_top10_capture_hand_computed() -> None:
    actual = np.array([100.0, 50, 25, 25, 0, 0, 0, 0, 0, 0])
    assert m.top10_capture(actual, [9, 8, 7, 6, 5, 4, 3, 2, 1, 0]) == pytest.approx(0.5)
    assert m.top10_capture(actual, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]) == pytest.approx(0.0)
    # The two best predictions tie: the single top slot holds half of each in expectation.
    assert m.top10_capture(actual, [9, 0, 0, 9, 0, 0, 0, 0, 0, 0]) == pytest.approx(
        (100 + 25) / 2 / 200
    )


def test_ltv_hand_computed() -> None:
    actual, predicted = np.array([0.0, 10, 20, 70]), np.array([5.0, 5, 30, 50])
    assert m.mae(actual, predicted) == pytest.approx((5 + 5 + 10 + 20) / 4)
    assert m.rmse(actual, predicted) == pytest.approx(np.sqrt((25 + 25 + 100 + 400) / 4))
    assert m.normalized_gini(actual, actual) == pytest.approx(1.0)
    assert m.normalized_gini(actual, -actual) == pytest.approx(-1.0)
    # Gini = Σ a·rank / (n Σ a) − (n+1)/(2n); the tie between the first two averages the ranks.
    n, total = 4, 100.0
    gini_pred = (0 * 1.5 + 10 * 1.5 + 20 * 3 + 70 * 4) / (n * total) - (n + 1) / (2 * n)
    gini_best = (0 * 1 + 10 * 2 + 20 * 3 + 70 * 4) / (n * total) - (n + 1) / (2 * n)
    assert m.normalized_gini(actual, predicted) == pytest.approx(gini_pred / gini_best)


# --- against scikit-learn / scipy, with ties ------------------------------------------------


def test_churn_metrics_match_sklearn(tied_churn: tuple[np.ndarray, np.ndarray]) -> None:
    y, score = tied_churn
    assert m.roc_auc(y, score) == pytest.approx(skm.roc_auc_score(y, score))
    assert m.pr_auc(y, score) == pytest.approx(skm.average_precision_score(y, score))
    assert m.brier(y, score) == pytest.approx(skm.brier_score_loss(y, score))
    for threshold in (0.2, 0.45, 0.6):
        expected = skm.f1_score(y, score >= threshold)
        assert m.f1_at_threshold(y, score, threshold) == pytest.approx(expected)


def test_ltv_metrics_match_sklearn_and_scipy(tied_ltv: tuple[np.ndarray, np.ndarray]) -> None:
    actual, predicted = tied_ltv
    assert m.mae(actual, predicted) == pytest.approx(skm.mean_absolute_error(actual, predicted))
    assert m.rmse(actual, predicted) == pytest.approx(
        np.sqrt(skm.mean_squared_error(actual, predicted))
    )
    assert m.spearman(actual, predicted) == pytest.approx(
        stats.spearmanr(actual, predicted).statistic
    )


def _kaggle_gini(actual: np.ndarray, predicted: np.ndarray) -> float:
    """The classic Gini: sort by prediction (descending), mean cumulative share minus (n+1)/2n."""
    ordered = actual[np.argsort(-predicted, kind="stable")]
    n = actual.size
    return float(np.cumsum(ordered).sum() / ordered.sum() / n - (n + 1) / (2 * n))


def test_normalized_gini_matches_the_classic_definition_without_ties() -> None:
    rng = np.random.default_rng(2)
    actual = rng.lognormal(3, 1, 300)
    predicted = actual * rng.lognormal(0, 1, 300)  # continuous: no ties
    expected = _kaggle_gini(actual, predicted) / _kaggle_gini(actual, actual)
    assert m.normalized_gini(actual, predicted) == pytest.approx(expected)


def test_normalized_gini_on_binary_actuals_is_2auc_minus_1(
    tied_churn: tuple[np.ndarray, np.ndarray],
) -> None:
    y, score = tied_churn  # ties in the prediction are handled like ROC-AUC's one half
    assert m.normalized_gini(y.astype(float), score) == pytest.approx(
        2 * skm.roc_auc_score(y, score) - 1
    )


def test_select_threshold_maximizes_f1(tied_churn: tuple[np.ndarray, np.ndarray]) -> None:
    y, score = tied_churn
    threshold = m.select_threshold(y, score)
    by_threshold = {t: m.f1_at_threshold(y, score, t) for t in np.unique(score)}
    best = max(by_threshold.values())
    assert m.f1_at_threshold(y, score, threshold) == pytest.approx(best)
    assert threshold == max(t for t, f1 in by_threshold.items() if f1 == pytest.approx(best))


def test_select_threshold_prefers_the_highest_of_equal_f1() -> None:
    # Flagging >= 0.8 or >= 0.3 both give F1 = 2/3; the higher threshold flags fewer customers.
    y, score = [1, 0, 1, 0, 0, 0], [0.8, 0.5, 0.3, 0.3, 0.1, 0.1]
    assert m.f1_at_threshold(y, score, 0.8) == pytest.approx(m.f1_at_threshold(y, score, 0.3))
    assert m.select_threshold(y, score) == pytest.approx(0.8)


def test_ranking_metrics_do_not_depend_on_input_order(
    tied_churn: tuple[np.ndarray, np.ndarray], tied_ltv: tuple[np.ndarray, np.ndarray]
) -> None:
    y, score = tied_churn
    actual, predicted = tied_ltv
    perm_c = np.random.default_rng(3).permutation(y.size)
    perm_l = np.random.default_rng(4).permutation(actual.size)
    assert m.churn_metrics(y[perm_c], score[perm_c], 0.5) == pytest.approx(
        m.churn_metrics(y, score, 0.5)
    )
    assert m.ltv_metrics(actual[perm_l], predicted[perm_l]) == pytest.approx(
        m.ltv_metrics(actual, predicted)
    )


def test_constant_predictions_score_as_no_information(
    tied_churn: tuple[np.ndarray, np.ndarray], tied_ltv: tuple[np.ndarray, np.ndarray]
) -> None:
    y, _ = tied_churn
    flat = np.full(y.size, 0.3)
    assert m.roc_auc(y, flat) == pytest.approx(0.5)
    assert m.pr_auc(y, flat) == pytest.approx(y.mean())
    assert m.lift_top_decile(y, flat) == pytest.approx(1.0)
    actual, _ = tied_ltv
    flat_ltv = np.full(actual.size, 42.0)
    assert m.spearman(actual, flat_ltv) == 0.0
    assert m.normalized_gini(actual, flat_ltv) == pytest.approx(0.0)
    assert m.top10_capture(actual, flat_ltv) == pytest.approx(0.1)


# --- the report dicts -----------------------------------------------------------------------


def test_metric_dicts_have_exactly_the_report_keys(
    tied_churn: tuple[np.ndarray, np.ndarray], tied_ltv: tuple[np.ndarray, np.ndarray]
) -> None:
    churn = m.churn_metrics(*tied_churn, threshold=0.5)
    ltv = m.ltv_metrics(*tied_ltv)
    assert tuple(churn) == m.CHURN_METRIC_KEYS == (
        "roc_auc", "pr_auc", "brier", "f1", "lift_top_decile",
    )  # fmt: skip
    assert tuple(ltv) == m.LTV_METRIC_KEYS == (
        "mae", "rmse", "spearman", "normalized_gini", "top10_capture",
    )  # fmt: skip
    for value in (*churn.values(), *ltv.values()):
        assert isinstance(value, float) and np.isfinite(value)


# --- degenerate and invalid input -----------------------------------------------------------


@pytest.mark.parametrize("labels", [np.zeros(10, int), np.ones(10, int)])
def test_one_class_raises_a_clear_error(labels: np.ndarray) -> None:
    score = np.linspace(0, 1, 10)
    for metric in (m.roc_auc, m.pr_auc, m.select_threshold):
        with pytest.raises(ValueError, match="only"):
            metric(labels, score)
    with pytest.raises(ValueError, match="only"):
        m.churn_metrics(labels, score, 0.5)
    # Defined for one class: Brier and F1 (0 when there is nothing to find and nothing flagged).
    assert m.brier(labels, score) == pytest.approx(np.mean((score - labels) ** 2))
    assert m.f1_at_threshold(np.zeros(10), score, 2.0) == 0.0


def test_lift_needs_a_churner_and_is_1_when_everyone_churns() -> None:
    score = np.linspace(0, 1, 10)
    with pytest.raises(ValueError, match="no churner"):
        m.lift_top_decile(np.zeros(10), score)
    assert m.lift_top_decile(np.ones(10), score) == pytest.approx(1.0)


def test_degenerate_actual_values_raise() -> None:
    with pytest.raises(ValueError, match="every actual value is the same"):
        m.spearman([5.0, 5.0, 5.0], [1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="every actual value is the same"):
        m.normalized_gini([5.0, 5.0, 5.0], [1.0, 2.0, 3.0])
    for metric in (m.normalized_gini, m.top10_capture):
        with pytest.raises(ValueError, match="positive total"):
            metric([0.0, 0.0, 0.0], [1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="undefined"):
        m.ltv_metrics([0.0, 0.0, 0.0], [1.0, 2.0, 3.0])


@pytest.mark.parametrize(
    ("y", "score", "message"),
    [
        ([0, 1, 2], [0.1, 0.2, 0.3], "0/1"),
        ([0, 1], [0.1, 0.2, 0.3], "differ in length"),
        ([0, 1, 1], [0.1, np.nan, 0.3], "finite"),
        ([], [], "empty"),
        ([[0, 1]], [[0.1, 0.2]], "1-D"),
    ],
)
def test_invalid_churn_input_raises(y: list, score: list, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        m.roc_auc(y, score)


def test_brier_needs_probabilities() -> None:
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        m.brier([0, 1], [0.2, 1.5])
