"""The web app as people use it, in a real Chromium, against the whole system."""

from __future__ import annotations

import re
import uuid
from pathlib import Path

import httpx
import pytest
from videos import make_clip

from risingstars.dev import clips, webseed
from risingstars.dev.browser import DESKTOP, log_in
from risingstars.dev.infra import wait_until
from risingstars.upload import messages

PASSWORD = webseed.PASSWORD
PROCESSED_SECONDS = 240


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    return make_clip(tmp_path_factory.mktemp("web") / "jugada.mp4", seconds=21, size="1920x1080")


@pytest.fixture(scope="module")
def published(web, clip) -> tuple[webseed.Player, str]:
    """Another player's video, uploaded through the API when the module starts so that it is
    processed while the first test works (the first test's own video waits behind it)."""
    with httpx.Client(base_url=web.url, timeout=120) as c:
        owner = webseed.player(c, "Eva")
        return owner, webseed.upload(c, owner, clip, "Tiro libre")


def sign_up(p, first_name: str) -> str:
    """Through the signup form, then the login form it leads to; the new account's username."""
    tag = uuid.uuid4().hex[:8]
    email, username = f"{first_name.lower()}.{tag}@example.com", f"{first_name.lower()}_{tag}"
    p.open("#/registro", "Crear cuenta")
    p.axe()
    page = p.page
    page.get_by_label("Nombre", exact=True).fill(first_name)
    page.get_by_label("Apellido").fill("Gómez")
    page.get_by_label("Correo electrónico").fill(email)
    page.get_by_label("Nombre de usuario (opcional)").fill(username)
    page.get_by_label("Contraseña", exact=True).fill(PASSWORD)
    page.get_by_label("Repite la contraseña").fill(PASSWORD)
    page.get_by_label("Ciudad").fill("Bogotá")
    page.get_by_label("País").fill("Colombia")
    page.get_by_role("button", name="Crear cuenta").click()
    p.heading("Entrar")
    p.axe()
    assert page.get_by_label("Correo electrónico").input_value() == email
    page.get_by_label("Contraseña").fill(PASSWORD)
    page.get_by_role("button", name="Entrar", exact=True).click()
    p.heading("Mis videos")
    p.axe()
    return username


def choose(p, clip: Path, title: str) -> None:
    """The upload form: a title, the file through the browser's file chooser, then Subir."""
    page = p.page
    page.get_by_role("link", name="Subir", exact=True).click()
    p.heading("Subir un video")
    p.axe()
    page.get_by_label("Título").fill(title)
    with page.expect_file_chooser() as chooser:
        page.get_by_label("Archivo de video (MP4)").click()
    chooser.value.set_files(clip)
    page.get_by_role("button", name="Subir", exact=True).click()


def test_signup_upload_process_play_vote_and_rank(new_page, web, clip, published) -> None:
    ana = new_page()
    username = sign_up(ana, "Ana")
    choose(ana, clip, "Mi mejor jugada")
    page = ana.page
    page.locator("#progress-label", has_text="100 %").wait_for()
    assert page.locator("#progress").get_attribute("value") == "100"
    state = page.locator(".upload .state")
    waiting = re.compile(r"En espera: (posición \d+ en la cola|es el siguiente)")
    state.filter(has_text=waiting).wait_for()
    state.filter(has_text="Publicado").wait_for(timeout=PROCESSED_SECONDS * 1000)

    # Mis videos says the same, in words.
    page.get_by_role("link", name="Mis videos").click()
    p_state = page.locator(".mine li", has_text="Mi mejor jugada").locator(".state")
    p_state.filter(has_text="Publicado").wait_for()
    ana.axe()

    mine = page.locator(".mine li", has_text="Mi mejor jugada")
    mine.get_by_role("link", name="Ver video").click()
    ana.heading("Mi mejor jugada")
    ana.axe()
    video_url = page.url
    playing = page.evaluate(
        "v => { v.muted = true; return v.play().then(() => true); }",
        page.locator("video").element_handle(),
    )
    assert playing
    wait_until(
        lambda: page.evaluate("document.querySelector('video').currentTime") > 1,
        30,
        "the video to play",
    )

    # One's own video: refused, in words.
    page.get_by_role("button", name="Votar por este video").click()
    page.locator(".status", has_text=messages.OWN_VOTE).wait_for()

    # Someone else votes: asked to log in only then, back to the video, counted once.
    beto = new_page(DESKTOP)
    with httpx.Client(base_url=web.url, timeout=60) as c:
        voter = webseed.player(c, "Beto")
    beto.page.goto(video_url)
    beto.heading("Mi mejor jugada")
    beto.page.get_by_role("button", name="Votar por este video").click()
    beto.heading("Entrar")
    assert beto.page.get_by_text("Inicia sesión para votar.").is_visible()
    beto.page.get_by_label("Correo electrónico").fill(voter.email)
    beto.page.get_by_label("Contraseña").fill(PASSWORD)
    beto.page.get_by_role("button", name="Entrar", exact=True).click()
    beto.heading("Mi mejor jugada")
    beto.page.get_by_role("button", name="Votar por este video").click()
    beto.page.locator(".status", has_text=messages.VOTED).wait_for()
    beto.page.get_by_role("button", name="Votar por este video").click()
    beto.page.locator(".status", has_text=messages.ALREADY_VOTED).wait_for()

    # The rankings of Bogotá show the vote (they poll; the system caches them for 1 s).
    page.goto(f"{web.url}/#/ranking?ciudad=bogota")
    ana.heading("Ranking de bogota")
    row = page.locator("tbody tr", has_text=username)
    row.wait_for(timeout=30000)
    assert row.locator("td").last.inner_text() == "1"
    ana.axe()

    # The showcase lists it with its thumbnail.
    page.goto(f"{web.url}/#/")
    ana.heading("Vitrina")
    card = page.locator(".card", has_text="Mi mejor jugada")
    card.scroll_into_view_if_needed()
    picture = card.locator("img")
    wait_until(lambda: picture.evaluate("i => i.complete && i.naturalWidth > 0"), 30, "thumbnail")
    ana.axe()
    assert not ana.problems and not beto.problems, ana.problems + beto.problems


@pytest.fixture(scope="module")
def big(tmp_path_factory) -> Path:
    """Three tus requests of 5 MiB (the app's chunk): noise keeps the encoder from shrinking it."""
    big = clips.make_clip(
        tmp_path_factory.mktemp("web") / "grande.mp4",
        seconds=21,
        size="1920x1080",
        fps=5,
        filters="noise=alls=60:allf=t",
        video=("-b:v", "4M", "-maxrate", "4M", "-bufsize", "8M", "-pix_fmt", "yuv420p"),
    )
    assert big.stat().st_size > 10 * 1024 * 1024
    return big


def _logged_in(new_page, web, first_name: str, viewport=None):
    with httpx.Client(base_url=web.url, timeout=60) as c:
        who = webseed.player(c, first_name)
    p = new_page(viewport) if viewport else new_page()
    log_in(p.page, web.url, who.email, PASSWORD)
    return p, who


def test_an_upload_cut_by_the_network_resumes_where_it_stopped(new_page, web, big) -> None:
    p, _ = _logged_in(new_page, web, "Caro")
    page, context = p.page, p.page.context
    seen: list[tuple[str, str | None]] = []
    cut = []

    def tus(route) -> None:
        request = route.request
        offset = request.headers.get("upload-offset")
        seen.append((request.method, offset))
        if request.method == "PATCH" and int(offset or 0) > 0 and not cut:
            # The network goes away while the second piece is on its way.
            cut.append(int(offset))
            context.set_offline(True)
            route.abort("internetdisconnected")
            return
        route.continue_()

    page.route("**/api/videos/tus/**", tus)
    choose(p, big, "Subida interrumpida")
    page.locator(".status", has_text="Sin conexión").wait_for()
    shown = int(page.locator("#progress-label").inner_text().rstrip(" %"))
    assert 0 < shown < 100
    context.set_offline(False)
    done = page.locator(".status", has_text="Video subido correctamente")
    try:
        done.wait_for(timeout=120000)
    except Exception:
        said = page.locator(".upload").inner_text()
        raise AssertionError(f"not resumed; the page says {said!r}; requests {seen}") from None
    assert page.locator("#progress-label").inner_text() == "100 %"

    # One upload created; after the cut the client asked where the server was (HEAD) and went
    # on from the offset it had reached, not from zero.
    methods = [m for m, _ in seen]
    assert methods.count("POST") == 1, seen
    after = seen[seen.index(("PATCH", str(cut[0]))) + 1 :]
    assert after[0][0] == "HEAD", seen
    assert after[1] == ("PATCH", str(cut[0])), seen
    assert not p.problems, p.problems


def test_an_upload_resumes_after_a_reload_with_the_same_file(new_page, web, big) -> None:
    p, _ = _logged_in(new_page, web, "Gabi")
    page = p.page
    seen: list[tuple[str, str | None]] = []
    cut: list[int] = []
    reloaded: list[bool] = []

    def tus(route) -> None:
        request = route.request
        offset = request.headers.get("upload-offset")
        seen.append((request.method, offset))
        if request.method == "PATCH" and int(offset or 0) > 0 and not reloaded:
            # The second piece never arrives before the page is reloaded.
            cut.append(int(offset))
            route.abort("connectionreset")
            return
        route.continue_()

    page.route("**/api/videos/tus/**", tus)
    choose(p, big, "Tras recargar")
    wait_until(lambda: page.evaluate("true") and cut, 60, "the first piece to be stored")
    reloaded.append(True)
    page.reload()
    # The session survives the reload (the refresh token in this tab), the file is chosen again.
    p.heading("Subir un video")
    before = len(seen)
    page.get_by_label("Título").fill("Tras recargar")
    page.get_by_label("Archivo de video (MP4)").set_input_files(big)
    page.get_by_role("button", name="Subir", exact=True).click()
    page.locator(".status", has_text="Video subido correctamente").wait_for(timeout=120000)
    after = seen[before:]
    assert [m for m, _ in seen].count("POST") == 1, seen
    assert after[0][0] == "HEAD" and after[1] == ("PATCH", str(cut[0])), seen
    assert not p.problems, p.problems


def test_a_refused_file_shows_the_contracts_reason(new_page, web, tmp_path) -> None:
    short = make_clip(tmp_path / "corto.mp4", seconds=5, size="1920x1080")
    p, _ = _logged_in(new_page, web, "Dora")
    choose(p, short, "Demasiado corto")
    problem = p.page.get_by_role("alert").filter(has_text="duración")
    problem.wait_for()
    assert problem.inner_text() == messages.bad_duration(5.0, 20, 60)
    p.axe()


def test_keyboard_alone_reaches_the_vote_and_the_upload(new_page, web, clip, published) -> None:
    owner, video_id = published
    with httpx.Client(base_url=web.url, timeout=120) as c:
        webseed.wait_processed(c, owner, [video_id], PROCESSED_SECONDS)
        voter = webseed.player(c, "Fer")
    p = new_page(DESKTOP)
    page = p.page
    kb = page.keyboard

    def tab_to(predicate: str, what: str, limit: int = 60) -> None:
        for _ in range(limit):
            kb.press("Tab")
            script = f"(() => {{ const e = document.activeElement; return {predicate}; }})()"
            if page.evaluate(script):
                return
        raise AssertionError(f"Tab never reached {what}")

    p.open("#/", "Vitrina")
    tab_to(f"e.getAttribute('href') === '#/v/{video_id}'", "the video's card")
    kb.press("Enter")
    p.heading("Tiro libre")
    tab_to("e.textContent === 'Votar por este video'", "the vote button")
    kb.press("Enter")
    p.heading("Entrar")
    tab_to("e.name === 'email'", "the email field")
    kb.type(voter.email)
    kb.press("Tab")
    kb.type(PASSWORD)
    kb.press("Enter")
    p.heading("Tiro libre")
    tab_to("e.textContent === 'Votar por este video'", "the vote button")
    kb.press("Enter")
    page.locator(".status", has_text=messages.VOTED).wait_for()

    tab_to("e.getAttribute('href') === '#/subir'", "the upload link")
    kb.press("Enter")
    p.heading("Subir un video")
    tab_to("e.name === 'title'", "the title field")
    kb.type("Con el teclado")
    kb.press("Tab")
    with page.expect_file_chooser() as chooser:
        kb.press("Space")
    chooser.value.set_files(clip)
    kb.press("Tab")
    kb.press("Enter")
    page.locator("#progress-label", has_text="100 %").wait_for()
    page.locator(".status", has_text="Video subido correctamente").wait_for()
    assert not p.problems, p.problems
