"""The web component's HTTP side: what it serves, its caching and its security headers."""

from __future__ import annotations

import gzip
from pathlib import Path

import httpx
import pytest

from risingstars.web.app import create_app
from risingstars.web.settings import Settings

INDEX = b'<!doctype html><script type="module" src="/assets/app.0123456789ab.js"></script>'
SCRIPT = b"export const answer = 42;\n" * 50


@pytest.fixture
async def client(tmp_path: Path):
    (tmp_path / "assets").mkdir()
    (tmp_path / "index.html").write_bytes(INDEX)
    (tmp_path / "assets" / "app.0123456789ab.js").write_bytes(SCRIPT)
    (tmp_path / "assets" / "app.0123456789ab.js.gz").write_bytes(gzip.compress(SCRIPT))
    settings = Settings(web_root=str(tmp_path), web_media_sources="http://media.test")
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app)
        async with httpx.AsyncClient(transport=transport, base_url="http://web") as c:
            yield c


async def test_the_index_is_revalidated_and_locked_down(client) -> None:
    r = await client.get("/")
    assert r.status_code == 200 and r.content == INDEX
    assert r.headers["cache-control"] == "no-cache"
    assert r.headers["content-type"].startswith("text/html")
    csp = r.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp
    assert "default-src 'none'" in csp and "frame-ancestors 'none'" in csp
    assert "media-src 'self' http://media.test" in csp
    assert r.headers["x-content-type-options"] == "nosniff"
    again = await client.get("/", headers={"If-None-Match": r.headers["etag"]})
    assert again.status_code == 304 and not again.content


async def test_hashed_assets_are_cached_for_good_and_sent_compressed(client) -> None:
    r = await client.get("/assets/app.0123456789ab.js", headers={"Accept-Encoding": "gzip"})
    assert r.status_code == 200 and r.content == SCRIPT  # httpx decodes the gzip body
    assert r.headers["content-encoding"] == "gzip"
    assert int(r.headers["content-length"]) < len(SCRIPT)
    assert r.headers["cache-control"] == "public, max-age=31536000, immutable"
    assert r.headers["content-type"].startswith("text/javascript")
    plain = await client.get("/assets/app.0123456789ab.js", headers={"Accept-Encoding": "identity"})
    assert "content-encoding" not in plain.headers and plain.content == SCRIPT


@pytest.mark.parametrize("path", ["/assets/missing.js", "/assets/..%2Findex.html", "/other"])
async def test_anything_else_is_a_json_404(client, path: str) -> None:
    r = await client.get(path)
    assert r.status_code == 404
    assert set(r.json()) == {"detail", "code"}


def test_no_build_no_start(tmp_path: Path) -> None:
    from risingstars.web import files

    with pytest.raises(files.MissingBuild):
        create_app(Settings(web_root=str(tmp_path)))
