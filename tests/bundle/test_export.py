"""Model export to S3 and import elsewhere: a real bundle, two BentoML stores, moto over HTTP.

BentoML fixes its store location (BENTOML_HOME) when it starts, so each store lives in its own
Python process: one saves and exports the bundle, the other imports and scores it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from retention_bundle.bundle import write_bundle
from retention_bundle.export import exported_model_url
from retention_bundle.predict import score
from retention_shared.config import Settings
from retention_shared.features import compute_features
from retention_trainer.pipeline import TrainingRun, train_and_backtest
from retention_trainer.training_set import cutoff_instant
from tests.support.moto_s3 import client, moto_s3, new_bucket
from tests.support.paths import REPO
from tests.support.uci_orders import TEST_DATA, load_orders

CHURN_TEST = date(2011, 9, 10)

EXPORT = """
import json, sys
from pathlib import Path
from retention_shared.config import Settings
from retention_bundle.bundle import read_bundle
from retention_bundle.export import export_model
from retention_bundle.model_store import save_bundle

model = save_bundle(read_bundle(Path(sys.argv[1])))
url = export_model(f"{model.tag.name}:latest", Settings())
print(json.dumps({"tag": str(model.tag), "url": url}))
"""

IMPORT = """
import json, sys
import bentoml
from retention_shared.config import Settings
from retention_bundle.export import ExportedModelNotFound, import_model
from retention_bundle.model_store import load_bundle
from retention_bundle.predict import score
import polars as pl

tag, features, out = sys.argv[1:4]
try:
    bentoml.models.get(tag)
    raise SystemExit("the model is already in the fresh store")
except bentoml.exceptions.NotFound:
    pass
import_model(tag, Settings())
import_model(tag, Settings())  # again: already there, nothing to do
score(load_bundle(tag), pl.read_parquet(features)).write_parquet(out)
try:
    import_model(tag.split(":")[0] + ":neverexported", Settings())
    missing = None
except ExportedModelNotFound as error:
    missing = str(error)
print(json.dumps({"models": [str(m.tag) for m in bentoml.models.list()], "missing": missing}))
"""


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    with moto_s3() as endpoint:
        yield endpoint


@pytest.fixture(scope="module")
def run() -> TrainingRun:
    orders = load_orders(TEST_DATA / "online_retail_II_slice.parquet")
    return train_and_backtest(
        orders, churn_test_cutoff=CHURN_TEST, ltv_test_cutoff=date(2011, 6, 12), rolling_origins=0
    )


def _in_store(code: str, store: Path, env: dict[str, str], *args: str) -> dict:
    done = subprocess.run(
        [sys.executable, "-c", code, *args],
        env={**os.environ, **env, "BENTOML_HOME": str(store)},
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_an_exported_bundle_imports_into_another_store_and_scores_the_same(
    run: TrainingRun, s3_endpoint: str, tmp_path: Path
) -> None:
    bucket = new_bucket(s3_endpoint)
    env = {
        "RETENTION_MODEL_EXPORT_URL": f"s3://{bucket}/exports/models",
        "RETENTION_S3_ENDPOINT_URL": s3_endpoint,
    }
    write_bundle(run.bundle, tmp_path / "bundle")
    exported = _in_store(EXPORT, tmp_path / "store-a", env, str(tmp_path / "bundle"))
    name, version = exported["tag"].split(":")
    key = f"exports/models/{name}/{version}.bentomodel"
    assert exported["url"] == f"s3://{bucket}/{key}"
    assert client(s3_endpoint).head_object(Bucket=bucket, Key=key)["ContentLength"] > 0

    orders = load_orders(TEST_DATA / "online_retail_II_slice.parquet")
    features = compute_features(orders, cutoff_instant(CHURN_TEST))
    features = features.filter(pl.col("frequency") >= 1)
    features.write_parquet(tmp_path / "features.parquet")
    imported = _in_store(
        IMPORT,
        tmp_path / "store-b",
        env,
        exported["tag"],
        str(tmp_path / "features.parquet"),
        str(tmp_path / "scores.parquet"),
    )
    assert imported["models"] == [exported["tag"]]
    assert imported["missing"] == (
        f"no exported model {name}:neverexported at "
        f"s3://{bucket}/exports/models/{name}/neverexported.bentomodel"
    )
    assert_frame_equal(pl.read_parquet(tmp_path / "scores.parquet"), score(run.bundle, features))


def test_export_locations_need_a_url_and_an_exact_version() -> None:
    settings = Settings(model_export_url="s3://models")
    assert exported_model_url("retention-acme:abc123", settings) == (
        "s3://models/retention-acme/abc123.bentomodel"
    )
    with pytest.raises(ValueError, match="exact version"):
        exported_model_url("retention-acme:latest", settings)
    with pytest.raises(ValueError, match="RETENTION_MODEL_EXPORT_URL"):
        exported_model_url("retention-acme:abc123", Settings(model_export_url=None))
