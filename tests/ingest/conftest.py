from __future__ import annotations

from pathlib import Path

import pytest

from tests.ingest.reference import UCI_I, UCI_II, Expected, expected_from_parquet
from tests.support.paths import TEST_DATA

SLICES = {
    "online_retail": (TEST_DATA / "online_retail_slice.parquet", UCI_I, "uci_online_retail"),
    "online_retail_II": (
        TEST_DATA / "online_retail_II_slice.parquet",
        UCI_II,
        "uci_online_retail_ii",
    ),
}
_expected: dict[str, Expected] = {}


@pytest.fixture(params=sorted(SLICES))
def retail_slice(request: pytest.FixtureRequest) -> tuple[Path, Expected, str]:
    """(path, independently computed expectation, layout) for each real data slice."""
    path, columns, layout = SLICES[request.param]
    if request.param not in _expected:
        _expected[request.param] = expected_from_parquet(path, columns)
    return path, _expected[request.param], layout
