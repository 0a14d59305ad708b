"""Bundles written before this package existed still load, score and keep their report's JSON.

`tests/data/bundles/` holds two real bundles written by the trainer of their time
(tests/data/README.md): one from before the rolling evaluation (its report has no `rolling`) and
one with it. Reading either gives the typed report; writing it again gives the same report JSON,
so a bundle read and re-saved loses nothing.
"""

from __future__ import annotations

import json
import math
import shutil
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest

from retention_bundle.backtest_report import BacktestReport
from retention_bundle.bundle import BUNDLE_FORMAT, read_bundle, write_bundle
from retention_bundle.predict import churn_contributions, score
from retention_shared.features import compute_features
from tests.support.uci_orders import TEST_DATA, load_orders

STORED = TEST_DATA / "bundles"
CHURN_TEST = date(2011, 9, 10)


def _as_json(value: Any) -> Any:
    """A document as JSON would hold it today: NaN and infinities as null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _as_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_as_json(v) for v in value]
    return value


@pytest.fixture(scope="module")
def features() -> pl.DataFrame:
    orders = load_orders(TEST_DATA / "online_retail_II_slice.parquet")
    # The churn test cutoff's instant: the end of that day, UTC.
    frame = compute_features(orders, datetime(2011, 9, 11, tzinfo=UTC))
    return frame.filter(pl.col("frequency") >= 1)


@pytest.mark.parametrize("name", ["before-rolling", "with-rolling"])
def test_a_stored_bundle_loads_scores_and_explains(name: str, features: pl.DataFrame) -> None:
    bundle = read_bundle(STORED / name)
    assert bundle.tenant == "uci"
    assert isinstance(bundle.report, BacktestReport)
    assert (bundle.report.rolling is None) == (name == "before-rolling")
    assert bundle.windows.churn.test_cutoff == CHURN_TEST
    assert bundle.windows.churn.horizon_days == 90
    assert bundle.report.churn.model.roc_auc > 0.8
    assert set(bundle.report.churn.baselines) == {"recency", "rfm_logistic", "bgnbd"}
    scored = score(bundle, features)
    assert scored.height == features.height
    p = scored["churn_probability"].to_numpy()
    assert np.all((p > 0) & (p < 1))
    assert (scored["ltv_low"] <= scored["ltv"]).all() and (
        scored["ltv"] <= scored["ltv_high"]
    ).all()
    assert set(scored["segment"]) <= set(bundle.segmenter.names)
    contributions = churn_contributions(bundle, features)
    logit = contributions.select(*bundle.feature_names, "base").sum_horizontal().to_numpy()
    np.testing.assert_allclose(1 / (1 + np.exp(-logit)), p, rtol=1e-5)


@pytest.mark.parametrize("name", ["before-rolling", "with-rolling"])
def test_writing_a_stored_bundle_again_keeps_its_document(name: str, tmp_path: Path) -> None:
    stored = json.loads((STORED / name / "bundle.json").read_text())
    write_bundle(read_bundle(STORED / name), tmp_path)
    written = json.loads((tmp_path / "bundle.json").read_text())
    assert written["format"] == stored["format"] == BUNDLE_FORMAT
    assert list(written) == list(stored)
    # The report and the windows: the same JSON, key for key and in the same order.
    assert json.dumps(written["report"]) == json.dumps(_as_json(stored["report"]))
    assert written["windows"] == stored["windows"] == stored["report"]["windows"]
    assert ("rolling" in written["report"]) == ("rolling" in stored["report"])
    assert "notes" not in written["report"]


def test_an_undefined_metric_written_as_nan_reads_as_none_and_is_written_as_null(
    tmp_path: Path,
) -> None:
    """Bundles wrote a metric the data could not define as the NaN literal; it reads back as
    None, and is written as null (valid JSON, which an API answer must be)."""
    shutil.copytree(STORED / "with-rolling", tmp_path / "nan")
    document = json.loads((tmp_path / "nan" / "bundle.json").read_text())
    document["report"]["churn"]["model"]["roc_auc_active_365d"] = math.nan
    document["report"]["rolling"]["metrics"]["churn"]["f1"]["diff_interval_90"] = [math.nan] * 2
    (tmp_path / "nan" / "bundle.json").write_text(json.dumps(document))
    assert "NaN" in (tmp_path / "nan" / "bundle.json").read_text()

    bundle = read_bundle(tmp_path / "nan")
    assert bundle.report.churn.model.roc_auc_active_365d is None
    write_bundle(bundle, tmp_path / "again")
    text = (tmp_path / "again" / "bundle.json").read_text()
    assert "NaN" not in text
    again = read_bundle(tmp_path / "again")
    assert again.report.churn.model.roc_auc_active_365d is None
    assert again.report.rolling is not None
    assert again.report.rolling.metrics["churn"]["f1"].diff_interval_90 == (None, None)


@pytest.mark.parametrize("name", ["before-rolling", "with-rolling"])
def test_a_stored_bundle_keeps_its_ltv_method(name: str, tmp_path: Path) -> None:
    """Bundles before the Poisson stack and the conformal interval predict as they always did:
    a log1p least-squares stack and the raw quantile booster; written again, they say so and
    score the same."""
    bundle = read_bundle(STORED / name)
    assert bundle.ltv.link == "log1p"
    assert (bundle.ltv.interval_base, bundle.ltv.interval_offsets) == ("quantiles", (0.0, 0.0))
    write_bundle(bundle, tmp_path)
    ltv = json.loads((tmp_path / "bundle.json").read_text())["ltv"]
    assert ltv["stack"]["link"] == "log1p"
    assert ltv["interval_calibration"]["base"] == "quantiles"
    again = read_bundle(tmp_path)
    assert (again.ltv.link, again.ltv.interval_offsets) == ("log1p", (0.0, 0.0))


def test_a_bundle_with_an_unknown_ltv_link_is_refused(tmp_path: Path) -> None:
    shutil.copytree(STORED / "with-rolling", tmp_path / "odd")
    document = json.loads((tmp_path / "odd" / "bundle.json").read_text())
    document["ltv"]["stack"]["link"] = "sqrt"
    (tmp_path / "odd" / "bundle.json").write_text(json.dumps(document))
    with pytest.raises(ValueError, match="unknown LTV stack link 'sqrt'"):
        read_bundle(tmp_path / "odd")
