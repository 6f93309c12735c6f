"""The web app in Debian's Chromium against its own `make run` system (rankings cached for 1 s,
so a vote shows at once), with axe-core checking every page a test visits."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from risingstars.dev import stack
from risingstars.dev.browser import PHONE, chromium
from risingstars.dev.infra import wait_until

AXE = Path(__file__).resolve().parents[2] / "web" / "node_modules" / "axe-core" / "axe.min.js"
# Impacts that fail a page: axe's "serious" and "critical".
BLOCKING = ("serious", "critical")


@pytest.fixture(scope="module")
def web() -> Iterator[stack.System]:
    with stack.running(env={"RANKINGS_CACHE_SECONDS": "1", "QUEUE_REFRESH_SECONDS": "1"}) as s:
        # make run says "ready" just before its gateway binds the port: wait for the page.
        try:
            wait_until(lambda: _serves(f"{s.url}/"), 30, "make run to serve the app")
        except TimeoutError as exc:
            raise RuntimeError(f"{exc}\n{s.log_tail()}") from None
        yield s


@pytest.fixture(scope="module")
def browser(web):
    with chromium() as b:
        yield b


def _serves(url: str) -> bool:
    try:
        return httpx.get(url, timeout=5).status_code == 200
    except httpx.HTTPError:
        return False


class Page:
    """A Playwright page that records Content-Security-Policy violations and console errors."""

    def __init__(self, page, base_url: str) -> None:
        self.page = page
        self.url = base_url
        self.problems: list[str] = []
        page.on("console", self._console)
        page.on("pageerror", lambda exc: self.problems.append(f"page error: {exc}"))

    def _console(self, message) -> None:
        if message.type == "error" and "Content Security Policy" in message.text:
            self.problems.append(message.text)

    def open(self, route: str, heading: str) -> None:
        self.page.goto(f"{self.url}/{route}")
        self.heading(heading)

    def heading(self, name: str) -> None:
        self.page.get_by_role("heading", name=name, level=1).wait_for()

    def axe(self) -> None:
        """axe-core's serious and critical violations on the page as it is now: none."""
        self.page.wait_for_load_state("networkidle")
        if not self.page.evaluate("typeof window.axe === 'object'"):
            # Evaluated through the DevTools protocol, which the page's CSP does not govern.
            self.page.evaluate(AXE.read_text())
        result = self.page.evaluate("axe.run(document, {resultTypes: ['violations']})")
        blocking = [
            {"id": v["id"], "impact": v["impact"], "nodes": [n["target"] for n in v["nodes"]]}
            for v in result["violations"]
            if v["impact"] in BLOCKING
        ]
        assert not blocking, f"{self.page.url}: {json.dumps(blocking, ensure_ascii=False)}"


@pytest.fixture
def new_page(browser, web):
    contexts = []

    def make(viewport=PHONE) -> Page:
        context = browser.new_context(viewport=viewport, locale="es-CO")
        contexts.append(context)
        return Page(context.new_page(), web.url)

    yield make
    for context in contexts:
        context.close()
