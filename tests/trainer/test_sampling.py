"""Customer sampling on a real slice (470 customers): a deterministic sample of exactly the cap,
the same in another process, recorded in the report; training on the sample, evaluation on all."""

from __future__ import annotations

import json
import subprocess
import sys

import polars as pl
import pytest
from pydantic import ValidationError

from retention_shared.config import Settings
from retention_trainer.pipeline import TrainingRun, train_and_backtest
from retention_trainer.refit import refit_for_production
from retention_trainer.run_report import build_run_report
from retention_trainer.sampling import (
    DEFAULT_MAX_CUSTOMERS,
    HASH_RULE,
    sample_customers,
    sampled_orders,
)
from retention_trainer.training_set import training_examples
from tests.support.uci_orders import TEST_DATA, load_orders

CAP = 200
SLICE = TEST_DATA / "online_retail_II_slice.parquet"


@pytest.fixture(scope="module")
def orders() -> pl.DataFrame:
    return load_orders(SLICE)


@pytest.fixture(scope="module")
def everyone(orders: pl.DataFrame) -> TrainingRun:
    # The default cap (50,000) is far above the slice's customers.
    return train_and_backtest(orders)


@pytest.fixture(scope="module")
def capped(orders: pl.DataFrame) -> TrainingRun:
    return train_and_backtest(orders, max_customers=CAP)


def test_the_sample_is_exactly_the_cap_and_deterministic(orders: pl.DataFrame) -> None:
    tenant = orders["tenant_id"][0]
    sample, sampling = sample_customers(orders, tenant, CAP)
    assert sample is not None and len(sample) == CAP
    assert sample <= set(orders["customer_id"].to_list())
    assert sample_customers(orders.reverse(), tenant, CAP)[0] == sample  # row order is irrelevant
    assert sampling.sampled and sampling.trained_customers == CAP
    assert sampling.customers == orders["customer_id"].n_unique() == 470
    assert sampling.share == pytest.approx(CAP / 470) and sampling.rule == HASH_RULE
    # The key includes the tenant: another tenant with the same customers draws another sample.
    assert sample_customers(orders, "other", CAP)[0] != sample
    # A larger cap keeps the smaller cap's customers (the smallest keys first).
    larger = sample_customers(orders, tenant, CAP + 50)[0]
    assert larger is not None and sample < larger


def test_another_process_draws_the_same_sample(orders: pl.DataFrame) -> None:
    script = (
        "import json; from retention_trainer.sampling import sample_customers; "
        "from tests.support.uci_orders import load_orders, TEST_DATA; "
        "o = load_orders(TEST_DATA / 'online_retail_II_slice.parquet'); "
        f"print(json.dumps(sorted(sample_customers(o, o['tenant_id'][0], {CAP})[0])))"
    )
    # A different hash seed in the child: the rule must not depend on Python's salted hash.
    out = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        check=True,
        env={"PYTHONHASHSEED": "12345", "PATH": ""},
    )
    sample = sample_customers(orders, orders["tenant_id"][0], CAP)[0]
    assert sample is not None and json.loads(out.stdout) == sorted(sample)


def test_no_sampling_at_or_below_the_cap(orders: pl.DataFrame, everyone: TrainingRun) -> None:
    for cap in (470, 0, None):
        sample, sampling = sample_customers(orders, "uci", cap)
        assert sample is None and not sampling.sampled and sampling.share == 1.0
        assert sampling.trained_customers == sampling.customers == 470
    with pytest.raises(ValueError, match="max_customers"):
        sample_customers(orders, "uci", -1)
    recorded = everyone.report.as_json()["sampling"]
    assert recorded == {
        "sampled": False,
        "customers": 470,
        "trained_customers": 470,
        "share": 1.0,
        "max_customers": 50_000,
        "rule": None,
        "evaluation_sampled": False,
        "evaluated_customers": 470,
        "max_evaluation_customers": 50_000,
    }
    assert "Training used all 470 customers (at or below the cap of 50,000)." in everyone.markdown


def test_the_report_records_the_sample(capped: TrainingRun, orders: pl.DataFrame) -> None:
    recorded = json.loads(json.dumps(capped.report.as_json()))["sampling"]
    assert recorded["sampled"] is True and recorded["trained_customers"] == CAP
    assert recorded["customers"] == 470 and recorded["max_customers"] == CAP
    assert "Training used a sample of 200 of 470 customers (42.6%" in capped.markdown
    facts = build_run_report(capped, orders)
    assert facts.facts["sampling"] == recorded
    assert "Training used a sample of 200 of 470 customers" in facts.markdown


def test_models_train_on_the_sample_and_are_evaluated_on_everyone(
    orders: pl.DataFrame, capped: TrainingRun, everyone: TrainingRun
) -> None:
    sample = sample_customers(orders, "uci", CAP)[0]
    report, full = capped.report, everyone.report
    for task, section, full_section in (
        ("churn", report.churn, full.churn),
        ("ltv", report.ltv, full.ltv),
    ):
        window = getattr(report.windows, task)
        on_sample = training_examples(
            sampled_orders(orders, sample),
            window.training_cutoffs,
            churn_horizon_days=report.windows.churn.horizon_days,
            ltv_horizon_days=report.windows.ltv.horizon_days,
        )
        # Exactly the sampled customers' examples, fewer than everyone's.
        assert section.training_rows == on_sample.height < full_section.training_rows
        assert set(on_sample["customer_id"].to_list()) <= sample
        # The test customers are everyone's, as without a cap.
        assert section.test_customers == full_section.test_customers
    assert capped.churn_test.height == everyone.churn_test.height
    assert not set(capped.churn_test["customer_id"].to_list()) <= sample
    assert report.orders is not None and full.orders is not None
    assert report.orders.test_customers == full.orders.test_customers
    # Rolling origins too: the same origins, with metrics on the same customers (the baselines
    # that fit nothing score identically).
    assert [r.test_cutoff for r in report.rolling_origin] == [
        r.test_cutoff for r in full.rolling_origin
    ]
    for mine, theirs in zip(report.rolling_origin, full.rolling_origin, strict=True):
        unfitted = "recency" if mine.task == "churn" else "past_spend_scaled"
        assert mine.baselines[unfitted] == theirs.baselines[unfitted]


def test_the_production_refit_trains_on_the_same_sample(
    orders: pl.DataFrame, capped: TrainingRun
) -> None:
    served = refit_for_production(capped, orders)
    assert served.production is not None and served.production.refitted
    sample = sample_customers(orders, "uci", CAP)[0]
    window = served.production.churn
    on_sample = training_examples(
        sampled_orders(orders, sample),
        window.training_cutoffs,
        churn_horizon_days=window.horizon_days,
        ltv_horizon_days=served.production.ltv.horizon_days,
    )
    assert window.training_rows == on_sample.height


def test_the_setting_defaults_to_the_pipeline_cap(monkeypatch: pytest.MonkeyPatch) -> None:
    # The setting lives in shared (which cannot import the trainer): the two defaults must agree.
    assert Settings().trainer_max_customers == DEFAULT_MAX_CUSTOMERS
    monkeypatch.setenv("RETENTION_TRAINER_MAX_CUSTOMERS", "3000")
    assert Settings().trainer_max_customers == 3000
    monkeypatch.setenv("RETENTION_TRAINER_MAX_CUSTOMERS", "-1")
    with pytest.raises(ValidationError, match="trainer_max_customers"):
        Settings()
