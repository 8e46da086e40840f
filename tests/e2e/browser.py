"""Chromium for the site's tests, driven by playwright: the system's browser (Debian's package; .ci/run
installs it), and a page that aborts and records every http(s) request and records console errors,
so a test can assert that a page works offline with a clean console. The `browser` fixture is in
tests/e2e/conftest.py."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest


def chromium() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        pytest.fail("Chromium is missing: install it with `apt-get install -y chromium` (Debian; .ci/run does)", pytrace=False)
    return path


class Visit:
    """A browser page whose http(s) requests are aborted and recorded, as are console errors."""

    def __init__(self, browser, site: Path):
        self.site, self.requests, self.errors = site, [], []
        self.context = browser.new_context(viewport={"width": 1400, "height": 900})
        self.context.route("**/*", self._route)
        self.page = self.context.new_page()
        self.page.on("console", lambda message: message.type in ("error", "warning") and self.errors.append(message.text))
        self.page.on("pageerror", lambda error: self.errors.append(str(error)))

    def _route(self, route):
        if route.request.url.startswith(("http://", "https://")):
            self.requests.append(route.request.url)
            route.abort()
        else:
            route.continue_()

    def open(self, relative: str):
        self.page.goto((self.site / relative).as_uri())
        self.page.wait_for_load_state("load")
        return self.page

    def rows(self, table: str) -> list[list[str]]:
        """The visible rows of a table, cell texts."""
        return self.page.eval_on_selector_all(f"#{table} tbody tr:not([hidden])",
                                              "rows => rows.map(r => Array.from(r.cells, c => c.textContent.trim()))")

    def column(self, table: str, name: str) -> list[str]:
        """One column of a table's visible rows, by its header's name."""
        headers = self.page.eval_on_selector_all(f"#{table} thead th", "hs => hs.map(h => h.dataset.name)")
        return [row[headers.index(name)] for row in self.rows(table)]
