"""Where the repository and the tests' data slices are, wherever a test file sits."""

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
TEST_DATA = REPO / "tests" / "data"
