"""Real headless Chromium for the console's browser tests: Playwright from PyPI driving Debian's
`chromium` package (no browser download). `.ci/run` installs it and sets
RETENTION_REQUIRE_BROWSER=1, so in CI a missing browser fails instead of skipping."""

from __future__ import annotations

import shutil
from pathlib import Path

from playwright.sync_api import Page


def chromium_path() -> str | None:
    return shutil.which("chromium") or next(
        (p for p in ("/usr/bin/chromium", "/usr/bin/chromium-browser") if Path(p).exists()), None
    )


class Screens:
    """Numbered screenshots of a browser run, in `directory` (RETENTION_SCREENSHOT_DIR when
    set, e.g. to refresh docs/console/); every step of the tour saves one."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        self.taken: list[Path] = []

    def take(self, page: Page, name: str, *, full_page: bool = False) -> Path:
        path = self.directory / f"{name}.png"
        page.screenshot(path=str(path), full_page=full_page)
        self.taken.append(path)
        return path


def sign_in(page: Page, console_url: str, key: str) -> None:
    page.goto(f"{console_url}/signin")
    page.get_by_label("API key").fill(key)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{console_url}/**")
