"""Bundles in the BentoML model store: ``retention-<tenant>:<version>``, whose files are the
bundle's (:mod:`retention_bundle.bundle`).

The model's BentoML metadata repeats the feature schema, windows, headline metrics, threshold,
objective and reference distributions, so a listing of the store says what each model is without
reading its files.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import bentoml

from retention_bundle.backtest_report import BacktestReport
from retention_bundle.bundle import (
    BUNDLE_FORMAT,
    ModelBundle,
    read_bundle,
    read_segmenter,
    write_bundle,
)
from retention_bundle.models.segmenter import Segmenter

__all__ = [
    "bundle_metadata",
    "load_bundle",
    "load_segmenter",
    "model_name",
    "save_bundle",
    "save_bundle_files",
]


def _headline(report: BacktestReport) -> dict[str, object]:
    return {
        "churn": report.churn.model.model_dump(mode="json"),
        "ltv": report.ltv.model.model_dump(mode="json"),
    }


def model_name(tenant: str) -> str:
    """The BentoML model name of a tenant's bundles."""
    return f"retention-{tenant}"


def bundle_metadata(bundle: ModelBundle) -> dict[str, Any]:
    """The BentoML metadata of a bundle's model (JSON values only)."""
    return {
        "format": BUNDLE_FORMAT,
        "feature_schema": list(bundle.feature_names),
        "windows": bundle.windows.model_dump(mode="json"),
        "metrics": _headline(bundle.report),
        "churn_threshold": bundle.churn.threshold,
        "ltv_objective": bundle.ltv.objective,
        "reference_distributions": bundle.reference,
    }


def save_bundle(bundle: ModelBundle) -> bentoml.Model:
    """Create ``retention-<tenant>:<new version>`` in the BentoML model store."""
    with bentoml.models.create(
        name=model_name(bundle.tenant),
        labels={"tenant": bundle.tenant},
        metadata=bundle_metadata(bundle),
    ) as model:
        write_bundle(bundle, Path(model.path))
    return model


def save_bundle_files(tenant: str, metadata: dict[str, Any], directory: Path) -> bentoml.Model:
    """Like `save_bundle`, from a bundle already written to ``directory`` (`write_bundle`) and
    its `bundle_metadata`: the files are copied, not read, so no model is loaded."""
    with bentoml.models.create(
        name=model_name(tenant), labels={"tenant": tenant}, metadata=metadata
    ) as model:
        shutil.copytree(directory, model.path, dirs_exist_ok=True)
    return model


def load_bundle(tag: str) -> ModelBundle:
    """Load a bundle from the BentoML store by tag (``retention-<tenant>:<version|latest>``)."""
    return read_bundle(Path(bentoml.models.get(tag).path))


def load_segmenter(tag: str) -> Segmenter:
    """Only the segmenter of a stored bundle: ``segmenter.json``, no boosters read."""
    return read_segmenter(Path(bentoml.models.get(tag).path))
