"""Debian's Chromium driven by Playwright: never a downloaded browser."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 800}


@contextlib.contextmanager
def chromium() -> Iterator:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        # No sandbox: the tests and CI run as root, which Chromium's sandbox refuses.
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            yield browser
        finally:
            browser.close()


def log_in(page, base_url: str, email: str, password: str) -> None:
    """Through the login form, as a person does."""
    page.goto(f"{base_url}/#/entrar")
    page.get_by_label("Correo electrónico").fill(email)
    page.get_by_label("Contraseña").fill(password)
    page.get_by_role("button", name="Entrar", exact=True).click()
    page.get_by_role("heading", name="Mis videos").wait_for()
