"""Headless Chromium for the app's browser tests: Debian's ``chromium`` driven by Playwright.

Where either is missing the test is skipped, except when ``DETECTOR_REQUIRE_BROWSER=1`` (set by ``.ci/run``),
where it fails. Set ``DETECTOR_SCREENSHOTS=DIR`` to keep the screenshots (otherwise they go to the test's tmp_path).
"""

import os
import shutil
from contextlib import contextmanager
from pathlib import Path

import pytest

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]


def _browser_or_skip():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        sync_playwright = None
    if CHROMIUM and sync_playwright:
        return sync_playwright
    why = "Debian's chromium is not installed" if not CHROMIUM else "playwright is not installed"
    if os.environ.get("DETECTOR_REQUIRE_BROWSER") == "1":
        pytest.fail(f"end-to-end test required but {why}")
    pytest.skip(why)


def screenshots(tmp_path: Path) -> Path:
    """Where a test writes its screenshots: ``DETECTOR_SCREENSHOTS`` or ``tmp_path``."""
    shots = Path(os.environ.get("DETECTOR_SCREENSHOTS", tmp_path))
    shots.mkdir(parents=True, exist_ok=True)
    return shots


@contextmanager
def open_app(url: str):
    """A page of the app at ``url`` in a fresh headless Chromium (1400 x 1300), closed after the block. Skips (or
    fails, see the module) before anything starts when the browser is missing."""
    sync_playwright = _browser_or_skip()
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1300})
            page.goto(url)
            yield page
        finally:
            browser.close()
