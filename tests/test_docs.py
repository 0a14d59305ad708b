"""README stays in step with the code it documents."""

import re
from pathlib import Path

from retention_shared.config import Settings
from retention_shared.features import FEATURE_NAMES, feature_table_markdown

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def test_every_setting_is_in_the_configuration_table() -> None:
    # Credentials and TLS files share rows (`..._USERNAME` / `_PASSWORD`); check their stems.
    for name in Settings.model_fields:
        variable = f"RETENTION_{name.upper()}"
        stem = variable.rsplit("_", 1)[0]
        assert f"`{variable}`" in README or f"`{stem}_" in README, f"{variable} is not documented"


def test_feature_table_is_the_registry() -> None:
    assert feature_table_markdown() in README
    assert all(f"`{name}`" in README for name in FEATURE_NAMES)


def test_the_two_set_up_commands_come_first() -> None:
    setup = README.split("## Set-up: two commands", 1)[1].split("##", 1)[0]
    commands = re.findall(r"^uv run [^#\n]*?(?=\s*(?:#|$))", setup, flags=re.MULTILINE)
    assert commands == ["uv run retention demo", "uv run pytest"]
    ci = (ROOT / ".ci" / "run").read_text()
    assert re.search(r"^uv run pytest$", ci, flags=re.MULTILINE), "CI runs README's test command"
