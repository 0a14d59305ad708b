"""Fixtures of the scoring service tests: one real trained bundle per session."""

from __future__ import annotations

import pytest

from retention_bundle.bundle import ModelBundle
from tests.support.scoring_service import train_bundle


@pytest.fixture(scope="session")
def bundle() -> ModelBundle:
    return train_bundle()
