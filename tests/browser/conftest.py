"""The browser tests' Chromium: Debian's ``chromium`` package driven by Playwright for Python.

Never a downloaded browser (``playwright install`` is not used and fails here): Playwright launches
``/usr/bin/chromium`` (``$RUNBOOK_CHROMIUM``), headless, with a fresh user-data directory and without any of
its background traffic.  ``make test`` installs the package when it is missing (as root); without it
these tests skip, saying so.  Screenshots go to the test's tmp directory.
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest

CHROMIUM = Path(os.environ.get("RUNBOOK_CHROMIUM", "/usr/bin/chromium"))
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync"]
VIEWPORT = {"width": 1280, "height": 1000}


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    """A headless Chromium context with a fresh profile; every request it makes is in ``.requests``."""
    if not CHROMIUM.exists():
        pytest.skip(f"no {CHROMIUM}: install Debian's chromium (make test does: apt-get install -y chromium)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright (the dev extra) is not installed")
    with sync_api.sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            str(tmp_path_factory.mktemp("chromium-profile")), executable_path=str(CHROMIUM), headless=True,
            args=FLAGS, viewport=VIEWPORT)
        context.requests = []
        context.on("request", lambda r: context.requests.append(r.url))
        try:
            yield context
        finally:
            context.close()
