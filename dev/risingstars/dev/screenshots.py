"""`make screenshots`: every page of the web app at a phone's and a desktop's width, on a
`make run` system seeded through the API, as PNGs in the given directory (docs/web/)."""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from risingstars.dev import stack, webseed
from risingstars.dev.browser import DESKTOP, PHONE, chromium, log_in
from risingstars.dev.infra import wait_until


def pages(video_id: str) -> list[tuple[str, str, str, bool]]:
    """(file name, route, the heading that says the page is ready, seen logged in)."""
    return [
        ("vitrina", "#/", "Vitrina", False),
        ("video", f"#/v/{video_id}", "Crossover y bandeja", False),
        ("ranking", "#/ranking", "Ranking", False),
        ("entrar", "#/entrar", "Entrar", False),
        ("registro", "#/registro", "Crear cuenta", False),
        ("mis-videos", "#/mis-videos", "Mis videos", True),
        ("subir", "#/subir", "Subir un video", True),
    ]


def settle(page, name: str) -> None:
    """Wait for what a person would see on the page: rows, pictures, the video's first frame."""
    if name == "ranking":
        page.locator("tbody tr").first.wait_for()
    if name == "vitrina":
        # Pictures load as their cards come near the screen: bring each card there.
        for picture in page.locator(".card img").all():
            picture.scroll_into_view_if_needed()
        loaded = "[...document.images].every(i => i.complete && i.naturalWidth)"
        wait_until(lambda: page.evaluate(loaded), 30, "the thumbnails")
        page.evaluate("window.scrollTo(0, 0)")
    if name == "video":
        ready = "document.querySelector('video').readyState >= 1"
        wait_until(lambda: page.evaluate(ready), 30, "the video's first frame")


def main(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    with (
        tempfile.TemporaryDirectory() as work,
        stack.running(env={"RANKINGS_CACHE_SECONDS": "1"}) as system,
        chromium() as browser,
    ):
        ana, ids = webseed.showcase(system.url, Path(work))
        for label, viewport in (("phone", PHONE), ("desktop", DESKTOP)):
            context = browser.new_context(viewport=viewport, locale="es-CO")
            page = context.new_page()
            for name, route, heading, logged_in in pages(ids[0]):
                if logged_in and page.get_by_role("button", name="Salir").count() == 0:
                    log_in(page, system.url, ana.email, webseed.PASSWORD)
                page.goto(f"{system.url}/{route}")
                page.get_by_role("heading", name=heading, level=1).wait_for()
                page.wait_for_load_state("networkidle")
                settle(page, name)
                path = out / f"{name}-{label}.png"
                page.screenshot(path=path, full_page=True)
                print(path)
            context.close()


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "docs/web"))
