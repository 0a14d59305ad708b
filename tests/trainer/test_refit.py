"""The production refit on a real slice: the served models have seen the latest complete labels,
the held-out evidence is untouched, and a history too short to shift serves the evidence model."""

from __future__ import annotations

import dataclasses
import itertools
from datetime import timedelta
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from retention_bundle.bundle import ModelBundle, read_bundle, write_bundle
from retention_bundle.predict import score
from retention_trainer.fitting.purchase import fit_purchase_model
from retention_trainer.fitting.seasonal import seasonal_cutoff
from retention_trainer.pipeline import TrainingRun, train_and_backtest
from retention_trainer.refit import refit_for_production, render_windows
from retention_trainer.run_report import build_run_report
from retention_trainer.runs.candidate import gate
from retention_trainer.training_set import cutoff_instant, last_event_date, training_examples
from tests.support.uci_orders import TEST_DATA, load_orders


@pytest.fixture(scope="module")
def orders() -> pl.DataFrame:
    return load_orders(TEST_DATA / "online_retail_II_slice.parquet")


@pytest.fixture(scope="module")
def run(orders: pl.DataFrame) -> TrainingRun:
    # Default test cutoffs (data end − horizon), as the trainer runs.
    return train_and_backtest(orders, rolling_origins=0)


@pytest.fixture(scope="module")
def served(run: TrainingRun, orders: pl.DataFrame) -> ModelBundle:
    return refit_for_production(run, orders)


def test_the_served_models_last_training_cutoff_is_data_end_minus_horizon(
    run: TrainingRun, orders: pl.DataFrame, served: ModelBundle
) -> None:
    production = served.production
    assert production is not None and production.refitted
    end = last_event_date(orders)
    assert production.data_end == end == production.purchase_model_cutoff
    for task, evidence in (("churn", run.report.windows.churn), ("ltv", run.report.windows.ltv)):
        window = getattr(production, task)
        horizon = timedelta(days=evidence.horizon_days)
        assert window.horizon_days == evidence.horizon_days
        assert window.training_cutoffs[-1] == end - horizon
        # Every label window ends by the data end; the same spacing as the evidence cutoffs.
        assert all(c + horizon <= end for c in window.training_cutoffs)
        cutoffs = window.training_cutoffs
        gaps = {(b - a).days for a, b in itertools.pairwise(cutoffs)}
        assert gaps == {evidence.every_days}
        # The evidence model's labels all end before its test cutoff, so the refit sees more.
        assert window.training_cutoffs[-1] > evidence.training_cutoffs[-1]
        assert set(evidence.training_cutoffs) <= set(window.training_cutoffs)
    assert production.churn.training_rows > run.report.churn.training_rows
    assert production.ltv.training_rows > run.report.ltv.training_rows


def test_the_refit_keeps_the_evidence_and_the_settings(
    run: TrainingRun, served: ModelBundle
) -> None:
    evidence = run.bundle
    # The held-out report is the one the gate decided on, to the byte.
    assert served.report == run.report
    assert served.report.as_json() == run.report.as_json()
    assert served.markdown == run.markdown
    # Same choices made on validation; new trees fitted on more rows.
    assert served.churn.stack == evidence.churn.stack
    assert served.churn.threshold == evidence.churn.threshold
    assert served.churn.booster.num_boosted_rounds() == evidence.churn.booster.num_boosted_rounds()
    assert served.ltv.objective == evidence.ltv.objective
    assert served.ltv.stack == evidence.ltv.stack
    assert served.ltv.point.num_boosted_rounds() == evidence.ltv.point.num_boosted_rounds()
    assert served.ltv.interval.num_boosted_rounds() == evidence.ltv.interval.num_boosted_rounds()
    # The conformal calibration is the validation cutoff's: the refit has no held-out rows.
    assert served.ltv.interval_offsets == evidence.ltv.interval_offsets
    assert served.ltv.interval_base == evidence.ltv.interval_base
    assert served.segmenter is evidence.segmenter
    assert evidence.orders is not None and served.orders is not None
    assert served.orders.method == evidence.orders.method
    assert served.orders.scaled_dates == evidence.orders.scaled_dates
    assert served.orders.bgnbd != evidence.orders.bgnbd  # fitted at data end, not the test cutoff
    if evidence.orders.booster is not None:
        assert served.orders.booster is not None
        rounds = evidence.orders.booster.num_boosted_rounds()
        assert served.orders.booster.num_boosted_rounds() == rounds
    refitted = score(served, run.churn_test)["churn_probability"].to_numpy()
    before = run.churn_predictions["churn_probability"].to_numpy()
    assert not np.allclose(refitted, before)
    assert ((refitted >= 0) & (refitted <= 1)).all()


def test_the_production_record_survives_the_bundle_files(
    run: TrainingRun, served: ModelBundle, tmp_path: Path
) -> None:
    write_bundle(served, tmp_path)
    again = read_bundle(tmp_path)
    assert again.production == served.production
    assert again.report.as_json() == served.report.as_json()
    # The evidence models travel beside the refit and score as they did for the gate.
    held_out = score(again.held_out(), run.churn_test)["churn_probability"].to_numpy()
    np.testing.assert_allclose(held_out, run.churn_predictions["churn_probability"], rtol=1e-6)
    assert again.held_out().production == served.production
    assert not np.allclose(score(again, run.churn_test)["churn_probability"].to_numpy(), held_out)


def test_a_later_gate_judges_the_champion_by_its_evidence_models(
    run: TrainingRun, served: ModelBundle
) -> None:
    # The refit saw the test labels; its evidence models did not. Against itself as champion the
    # candidate ties on its own held-out numbers, so the champion stays.
    decision = gate(run, served)
    assert decision.champion is not None
    assert decision.champion.as_dict() == decision.candidate.as_dict()
    assert decision.candidate.roc_auc == pytest.approx(run.report.churn.model.roc_auc)
    assert not decision.promote


def test_the_run_report_states_both_windows(
    run: TrainingRun, orders: pl.DataFrame, served: ModelBundle
) -> None:
    assert served.production is not None
    report = build_run_report(dataclasses.replace(run, bundle=served), orders)
    assert report.facts["production"] == served.production.model_dump(mode="json")
    churn_test = run.report.windows.churn.test_cutoff.isoformat()
    assert f"Churn in the 90 days after {churn_test}" in report.markdown
    assert f"on outcomes up to {served.production.data_end}" in report.markdown
    last = served.production.churn.training_cutoffs[-1]
    assert f"churn training cutoffs up to {last}" in report.markdown
    # A run that serves nothing new (`retention backtest`, a rejection) says nothing of it.
    assert "outcomes up to" not in build_run_report(run, orders).markdown


def test_the_backtest_command_prints_both_windows(run: TrainingRun, served: ModelBundle) -> None:
    assert served.production is not None
    table = render_windows(run.report.windows, served.production)
    for task in ("churn", "ltv"):
        held_out, refit = getattr(run.report.windows, task), getattr(served.production, task)
        row = next(line for line in table.splitlines() if line.startswith(f"| {task} |"))
        assert f"to {held_out.training_cutoffs[-1]} | {held_out.test_cutoff} |" in row
        assert f"to {refit.training_cutoffs[-1]} | {refit.training_rows:,} |" in row


def test_a_history_too_short_to_shift_serves_the_evidence_model(
    run: TrainingRun, orders: pl.DataFrame
) -> None:
    # Data ending at the churn validation cutoff: the churn cutoffs whose labels are complete
    # are exactly the evidence model's training cutoffs, so there is nothing new to learn from.
    churn = run.report.windows.churn
    short = orders.filter(pl.col("occurred_at") < cutoff_instant(churn.validation_cutoff))
    served = refit_for_production(run, short)
    production = served.production
    assert production is not None and not production.refitted
    assert "not refitted" in production.reason and "churn" in production.reason
    assert production.churn.training_cutoffs == churn.training_cutoffs
    assert production.ltv.training_cutoffs == run.report.windows.ltv.training_cutoffs
    assert production.churn.training_rows == run.report.churn.training_rows
    assert served.churn is run.bundle.churn and served.ltv is run.bundle.ltv
    assert served.report == run.report


def test_the_served_ltv_level_is_measured_a_year_before_data_end(
    run: TrainingRun, orders: pl.DataFrame, served: ModelBundle
) -> None:
    """The served model scores from data end, so its seasonal level is that season's, seen a
    year earlier on the refit's own cutoffs: recomputed, not the test cutoff's."""
    end = last_event_date(orders)
    production = served.production
    assert production is not None
    season = seasonal_cutoff(end, production.ltv.training_cutoffs, 15)
    assert season is not None and abs((end - timedelta(days=365) - season).days) <= 15
    at_season = training_examples(
        orders, {season}, churn_horizon_days=90, ltv_horizon_days=production.ltv.horizon_days
    )
    unleveled = dataclasses.replace(served.ltv, level=1.0)
    point = unleveled.point_spend(
        served.matrix(at_season),
        fit_purchase_model(at_season).expected_spend(at_season, served.ltv.horizon_days),
    )
    actual = at_season["future_spend"].clip(lower_bound=0).sum()
    assert served.ltv.level == pytest.approx(actual / point.sum(), rel=1e-6)
    assert served.ltv.level != run.bundle.ltv.level
