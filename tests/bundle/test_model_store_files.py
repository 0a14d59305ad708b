"""A bundle stored from its written files (`save_bundle_files`, what the trainer does with the
training child's output) is the same model as one stored from the object (`save_bundle`)."""

from __future__ import annotations

import json
from pathlib import Path

import bentoml
import pytest

from retention_bundle.bundle import read_bundle, write_bundle
from retention_bundle.model_store import bundle_metadata, save_bundle, save_bundle_files
from tests.support.uci_orders import TEST_DATA


@pytest.fixture
def model_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from bentoml._internal.configuration.containers import BentoMLContainer
    from bentoml._internal.models import ModelStore

    monkeypatch.setenv("BENTOML_HOME", str(tmp_path / "bentoml"))
    BentoMLContainer.model_store.set(ModelStore(tmp_path / "bentoml" / "models"))


def files(directory: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(directory)): p.read_bytes() for p in directory.rglob("*") if p.is_file()
    }


def test_saving_written_files_stores_the_same_bundle(model_store: None, tmp_path: Path) -> None:
    bundle = read_bundle(TEST_DATA / "bundles" / "with-rolling")
    direct = save_bundle(bundle)
    written = tmp_path / "child" / "bundle"
    write_bundle(bundle, written)
    # The metadata crosses the process boundary as JSON.
    metadata = json.loads(json.dumps(bundle_metadata(bundle)))
    copied = save_bundle_files(bundle.tenant, metadata, written)

    assert copied.tag.name == direct.tag.name == "retention-uci"
    assert copied.tag.version != direct.tag.version
    assert bentoml.models.get(copied.tag).info.metadata == direct.info.metadata
    assert bentoml.models.get(copied.tag).info.labels == {"tenant": "uci"}
    stored = files(Path(copied.path))
    bentoml_own = {"model.yaml"}  # its version and creation time
    assert set(stored) - bentoml_own == set(files(written))
    assert {k: v for k, v in stored.items() if k not in bentoml_own} == files(written)
    assert {k: v for k, v in files(Path(direct.path)).items() if k not in bentoml_own} == files(
        written
    )
    assert read_bundle(Path(copied.path)).report.as_json() == bundle.report.as_json()
