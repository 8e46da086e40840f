"""Fixtures of the end-to-end tests."""

from __future__ import annotations

import pytest

from tests.e2e.browser import chromium


@pytest.fixture(scope="session")
def browser():
    """Chromium (the system's) launched once by playwright; only the site's tests ask for it."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=chromium())
        yield launched
        launched.close()
