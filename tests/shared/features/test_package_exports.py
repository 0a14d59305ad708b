"""The features package: every exported name resolves, and the registry alone loads no polars."""

from __future__ import annotations

import subprocess
import sys

import retention_shared.features as features


def test_every_exported_name_is_its_modules_object() -> None:
    for name in features.__all__:
        value = getattr(features, name)
        module = features._LAZY.get(name, "registry")
        source = sys.modules[f"retention_shared.features.{module}"]
        assert value is getattr(source, name), name


def test_an_unknown_name_is_an_attribute_error() -> None:
    try:
        features.no_such_feature_helper  # noqa: B018
    except AttributeError as error:
        assert "no_such_feature_helper" in str(error)
    else:
        raise AssertionError("an unknown name resolved")


def test_the_registry_loads_without_polars_and_the_computation_with_it() -> None:
    script = (
        "import sys\n"
        "from retention_shared.features import FEATURES\n"
        "assert FEATURES and 'polars' not in sys.modules, 'registry pulled polars'\n"
        "from retention_shared.features import compute_features\n"
        "assert 'polars' in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", script], check=True)
