"""The operator's own Kubernetes API client, against a small HTTP server standing in for the
API server: credentials from kopf's login, a rotated service account token, errors."""

from __future__ import annotations

import json

import aiohttp.web
import kopf
import pytest

from risingstars.operator.kube import KubeAPI, KubeError


@pytest.fixture
async def api_server():
    seen: list[tuple[str, str, str, str | None, str]] = []
    valid = {"token": "first"}

    async def handle(request: aiohttp.web.Request) -> aiohttp.web.Response:
        body = await request.text()
        auth = request.headers.get("Authorization", "")
        seen.append((request.method, request.path, auth, request.content_type, body))
        if auth != f"Bearer {valid['token']}":
            return aiohttp.web.json_response({"message": "Unauthorized"}, status=401)
        if request.path.endswith("/missing"):
            return aiohttp.web.json_response(
                {"message": 'deployments "missing" not found'}, status=404
            )
        return aiohttp.web.json_response({"spec": {"replicas": 3}})

    app = aiohttp.web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    runner = aiohttp.web.AppRunner(app, access_log=None)
    await runner.setup()
    site = aiohttp.web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    yield url, seen, valid
    await runner.cleanup()


async def test_uses_kopfs_credentials_and_merge_patches(api_server, tmp_path):
    url, seen, _ = api_server
    api = KubeAPI(token_path=tmp_path / "token")
    api.use(kopf.ConnectionInfo(server=url, token="first"))
    try:
        assert (await api.get_deployment("ns", "web"))["spec"]["replicas"] == 3
        await api.scale_deployment("ns", "web", 5)
    finally:
        await api.close()
    method, path, auth, content_type, body = seen[-1]
    assert (method, path, auth) == (
        "PATCH",
        "/apis/apps/v1/namespaces/ns/deployments/web/scale",
        "Bearer first",
    )
    assert content_type == "application/merge-patch+json"
    assert json.loads(body) == {"spec": {"replicas": 5}}


async def test_takes_the_rotated_token_after_a_401(api_server, tmp_path):
    url, seen, valid = api_server
    token_file = tmp_path / "token"
    api = KubeAPI(token_path=token_file)
    api.use(kopf.ConnectionInfo(server=url, token="first"))
    valid["token"] = "second"  # the kubelet rotated it; the API server dropped the old one
    token_file.write_text("second\n")
    try:
        assert (await api.get_deployment("ns", "web"))["spec"]["replicas"] == 3
    finally:
        await api.close()
    assert [auth for _, _, auth, _, _ in seen] == ["Bearer first", "Bearer second"]


async def test_errors_carry_the_status_and_the_servers_message(api_server, tmp_path):
    url, _, _ = api_server
    api = KubeAPI(token_path=tmp_path / "token")
    with pytest.raises(KubeError, match="not logged in"):
        await api.get_deployment("ns", "web")
    api.use(kopf.ConnectionInfo(server=url, token="first"))
    try:
        with pytest.raises(KubeError, match='deployments "missing" not found') as caught:
            await api.get_deployment("ns", "missing")
        assert caught.value.not_found
    finally:
        await api.close()
    unreachable = KubeAPI(token_path=tmp_path / "token")
    unreachable.use(kopf.ConnectionInfo(server="http://127.0.0.1:9", token="first"))
    with pytest.raises(KubeError) as caught:
        await unreachable.get_deployment("ns", "web")
    assert caught.value.status == 0
    await unreachable.close()
