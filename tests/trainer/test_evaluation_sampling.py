"""The evaluation cap on a real slice (470 customers): the earlier rolling origins and the
bootstrap evaluate a deterministic sample, the test cutoff's numbers stay on everyone."""

from __future__ import annotations

from datetime import date

import numpy as np
import polars as pl
import pytest
from pydantic import ValidationError

from retention_bundle.backtest_report import OriginResult
from retention_shared.config import Settings
from retention_trainer.evaluation.baselines import recency_scores
from retention_trainer.evaluation.metrics import roc_auc
from retention_trainer.evaluation.rolling import OriginScores, rolling_summary
from retention_trainer.pipeline import TrainingRun, train_and_backtest
from retention_trainer.sampling import (
    DEFAULT_MAX_CUSTOMERS,
    DEFAULT_MAX_EVALUATION_CUSTOMERS,
    evaluation_sample,
    sample_customers,
    sampled_rows,
)
from retention_trainer.training_set import training_examples
from tests.support.uci_orders import TEST_DATA, load_orders

CAP = 300
SLICE = TEST_DATA / "online_retail_II_slice.parquet"


@pytest.fixture(scope="module")
def orders() -> pl.DataFrame:
    return load_orders(SLICE)


@pytest.fixture(scope="module")
def everyone(orders: pl.DataFrame) -> TrainingRun:
    return train_and_backtest(orders, resamples=300)


@pytest.fixture(scope="module")
def judged(orders: pl.DataFrame) -> TrainingRun:
    return train_and_backtest(orders, resamples=300, max_evaluation_customers=CAP)


def test_the_evaluation_sample_follows_the_training_rule(orders: pl.DataFrame) -> None:
    tenant = orders["tenant_id"][0]
    sample = evaluation_sample(orders, tenant, CAP)
    assert sample is not None and len(sample) == CAP
    assert evaluation_sample(orders.reverse(), tenant, CAP) == sample
    # Same keys as the training sample: a training sample under a smaller cap is inside it.
    training = sample_customers(orders, tenant, 200)[0]
    assert training is not None and training < sample
    for cap in (470, 0, None):
        assert evaluation_sample(orders, tenant, cap) is None
    with pytest.raises(ValueError, match="max_evaluation_customers"):
        evaluation_sample(orders, tenant, -1)


def test_the_test_cutoff_is_judged_on_everyone(everyone: TrainingRun, judged: TrainingRun) -> None:
    # What the gate decides on, and the published model, do not move.
    assert judged.report.churn == everyone.report.churn
    # The Gamma-Gamma baseline's fit moves in the 7th digit from run to run (row order of a
    # group-by), with or without a cap: compared to that precision.
    _assert_close(judged.report.ltv.model_dump(), everyone.report.ltv.model_dump())
    assert judged.report.ltv.model == everyone.report.ltv.model
    assert judged.churn_test.equals(everyone.churn_test)
    first = [r for r in judged.report.rolling_origin if _at_test_cutoff(judged, r)]
    assert len(first) == 2
    theirs = [r for r in everyone.report.rolling_origin if _at_test_cutoff(everyone, r)]
    _assert_close([r.model_dump() for r in first], [r.model_dump() for r in theirs])
    assert judged.report.rolling is not None and everyone.report.rolling is not None
    for task in ("churn", "ltv"):
        for metric, entry in judged.report.rolling.metrics[task].items():
            theirs = everyone.report.rolling.metrics[task][metric]
            assert entry.model_by_origin[0] == pytest.approx(theirs.model_by_origin[0], rel=1e-9)


def test_earlier_origins_are_evaluated_on_the_sample(
    orders: pl.DataFrame, everyone: TrainingRun, judged: TrainingRun
) -> None:
    sample = evaluation_sample(orders, orders["tenant_id"][0], CAP)
    windows = judged.report.windows.churn
    earlier = [
        r
        for r in judged.report.rolling_origin
        if r.task == "churn" and r.test_cutoff != windows.test_cutoff
    ]
    assert earlier, "the slice holds earlier origins"
    for result in earlier:
        at_origin = training_examples(
            orders,
            [result.test_cutoff],
            churn_horizon_days=windows.horizon_days,
            ltv_horizon_days=judged.report.windows.ltv.horizon_days,
        )
        on_sample = sampled_rows(at_origin, sample)
        assert 0 < on_sample.height < at_origin.height
        # The unfitted baseline's ROC-AUC is the sample's, not everyone's.
        churned = on_sample["churned"].to_numpy()
        assert result.baselines["recency"] == pytest.approx(
            roc_auc(churned, recency_scores(on_sample)), abs=1e-12
        )
        theirs = next(
            r
            for r in everyone.report.rolling_origin
            if r.task == "churn" and r.test_cutoff == result.test_cutoff
        )
        assert theirs.baselines["recency"] == pytest.approx(
            roc_auc(at_origin["churned"].to_numpy(), recency_scores(at_origin)), abs=1e-12
        )


def test_the_report_records_the_evaluation_sample(
    everyone: TrainingRun, judged: TrainingRun
) -> None:
    recorded = judged.report.as_json()["sampling"]
    assert recorded["evaluation_sampled"] is True
    assert recorded["evaluated_customers"] == CAP
    assert recorded["max_evaluation_customers"] == CAP
    assert recorded["sampled"] is False  # the training cap (50,000) is not reached
    assert "bootstrap intervals used a sample of 300 customers" in judged.markdown
    unsampled = everyone.report.as_json()["sampling"]
    assert unsampled["evaluation_sampled"] is False and unsampled["evaluated_customers"] == 470
    assert "bootstrap intervals used a sample" not in everyone.markdown


def test_the_bootstrap_resamples_only_the_flagged_customers() -> None:
    rng = np.random.default_rng(7)
    n = 400
    actual = rng.integers(0, 2, n).astype(float)
    model = np.clip(actual * 0.3 + rng.random(n) * 0.7, 0, 1)
    baseline = rng.random(n)
    keep = np.arange(n) % 3 != 0

    def origin(
        scores: dict[str, np.ndarray], y: np.ndarray, flags: np.ndarray | None
    ) -> OriginScores:
        return OriginScores(
            origin=date(2011, 6, 12),
            actual=y,
            scores=scores,
            thresholds={"model": 0.5, "recency": 0.5},
            active=np.ones(y.size, dtype=bool),
            resampled=flags,
        )

    full = {"model": model, "recency": baseline}
    flagged = rolling_summary(
        {"churn": [origin(full, actual, keep)]}, origin_every_days=30, resamples=200
    )
    subset = rolling_summary(
        {"churn": [origin({k: v[keep] for k, v in full.items()}, actual[keep], None)]},
        origin_every_days=30,
        resamples=200,
    )
    plain = rolling_summary(
        {"churn": [origin(full, actual, None)]}, origin_every_days=30, resamples=200
    )
    for metric, entry in flagged["metrics"]["churn"].items():
        # The interval is the flagged customers' bootstrap, the point values everyone's.
        assert entry["diff_interval_90"] == subset["metrics"]["churn"][metric]["diff_interval_90"]
        assert entry["model_by_origin"] == plain["metrics"]["churn"][metric]["model_by_origin"]
    assert (
        flagged["metrics"]["churn"]["roc_auc"]["diff_interval_90"]
        != plain["metrics"]["churn"]["roc_auc"]["diff_interval_90"]
    )
    with pytest.raises(ValueError, match="resampled"):
        rolling_summary(
            {"churn": [origin(full, actual, keep[:10])]}, origin_every_days=30, resamples=10
        )


def test_the_setting_defaults_to_the_pipeline_cap(monkeypatch: pytest.MonkeyPatch) -> None:
    assert Settings().trainer_max_evaluation_customers == DEFAULT_MAX_EVALUATION_CUSTOMERS
    assert DEFAULT_MAX_EVALUATION_CUSTOMERS >= DEFAULT_MAX_CUSTOMERS  # holds the training sample
    monkeypatch.setenv("RETENTION_TRAINER_MAX_EVALUATION_CUSTOMERS", "0")
    assert Settings().trainer_max_evaluation_customers == 0
    monkeypatch.setenv("RETENTION_TRAINER_MAX_EVALUATION_CUSTOMERS", "-1")
    with pytest.raises(ValidationError, match="trainer_max_evaluation_customers"):
        Settings()


def _at_test_cutoff(run: TrainingRun, result: OriginResult) -> bool:
    return result.test_cutoff == getattr(run.report.windows, result.task).test_cutoff


def _assert_close(mine: object, theirs: object) -> None:
    """Equal, floats to 1e-6 relative."""
    a, b = _flat(mine), _flat(theirs)
    assert a.keys() == b.keys()
    floats = [k for k, v in a.items() if isinstance(v, float)]
    assert {k: a[k] for k in floats} == pytest.approx({k: b[k] for k in floats}, rel=1e-6)
    assert {k: v for k, v in a.items() if k not in floats} == {
        k: v for k, v in b.items() if k not in floats
    }


def _flat(value: object, path: str = "") -> dict[str, object]:
    """Nested dicts and lists as one {path: leaf} dict (pytest.approx compares flat ones)."""
    if isinstance(value, dict):
        return {
            k: v for key, item in value.items() for k, v in _flat(item, f"{path}.{key}").items()
        }
    if isinstance(value, list):
        return {
            k: v for i, item in enumerate(value) for k, v in _flat(item, f"{path}[{i}]").items()
        }
    return {path: value}
