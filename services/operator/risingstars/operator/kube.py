"""The few Kubernetes API calls the reconciler makes itself (kopf makes its own for the
QueueScalers): read a Deployment, patch its scale subresource, list its pods, annotate a pod.

It connects with the credentials kopf's login produced (service account in the cluster, a
kubeconfig elsewhere), so both always talk to the same server as the same identity.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import aiohttp
import kopf

MERGE_PATCH = "application/merge-patch+json"
SERVICE_ACCOUNT_TOKEN = Path("/var/run/secrets/kubernetes.io/serviceaccount/token")


class KubeError(Exception):
    """The API answered with an error, or could not be reached (status 0)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status

    @property
    def not_found(self) -> bool:
        return self.status == 404


def selector_string(selector: Mapping[str, Any]) -> str:
    """A Deployment's `spec.selector` as the labelSelector query parameter."""
    parts = [f"{k}={v}" for k, v in sorted((selector.get("matchLabels") or {}).items())]
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr["key"], expr["operator"], expr.get("values") or []
        if op == "In":
            parts.append(f"{key} in ({','.join(values)})")
        elif op == "NotIn":
            parts.append(f"{key} notin ({','.join(values)})")
        elif op == "Exists":
            parts.append(key)
        elif op == "DoesNotExist":
            parts.append(f"!{key}")
    return ",".join(parts)


class KubeAPI:
    def __init__(
        self, *, timeout_seconds: float = 10.0, token_path: Path = SERVICE_ACCOUNT_TOKEN
    ) -> None:
        self._token_path = token_path
        self._info: kopf.ConnectionInfo | None = None
        self._session: aiohttp.ClientSession | None = None
        # sock_connect, not connect: waiting for a pooled connection under load is no fault.
        self._timeout = aiohttp.ClientTimeout(total=timeout_seconds, sock_connect=3)
        self._retired: list[aiohttp.ClientSession] = []

    def use(self, info: kopf.ConnectionInfo) -> None:
        """New credentials from kopf's login (also after a re-login on 401)."""
        if self._session is not None:
            # Requests in flight on the old session finish; new ones use the new credentials.
            self._retired.append(self._session)
        self._info = info
        self._session = None

    def _open(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            info = self._info
            if info is None:
                raise KubeError(0, "not logged in to the Kubernetes API yet")
            ssl = info.as_ssl_context() if info.server.startswith("https") else None
            self._session = aiohttp.ClientSession(
                base_url=info.server.rstrip("/") + "/",
                headers={**info.as_http_headers(), "User-Agent": "risingstars-operator"},
                connector=aiohttp.TCPConnector(ssl=ssl, limit=50),
                timeout=self._timeout,
                trust_env=info.trust_env,
            )
        return self._session

    def _reload_token(self) -> bool:
        """The kubelet rotates projected service account tokens in place: after a 401, take
        the current one (kopf re-logs in on its own 401s)."""
        info = self._info
        if info is None or not info.token or not self._token_path.exists():
            return False
        token = self._token_path.read_text().strip()
        if not token or token == info.token:
            return False
        self.use(dataclasses.replace(info, token=token))
        return True

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        body: Any = None,
    ) -> dict[str, Any]:
        try:
            return await self._request(method, path, params=params, body=body)
        except KubeError as exc:
            if exc.status == 401 and self._reload_token():
                return await self._request(method, path, params=params, body=body)
            raise

    async def _request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None,
        body: Any,
    ) -> dict[str, Any]:
        session = self._open()
        headers = {"Content-Type": MERGE_PATCH} if method == "PATCH" else {}
        data = json.dumps(body) if body is not None else None
        try:
            async with session.request(
                method, path.lstrip("/"), params=params, data=data, headers=headers
            ) as response:
                text = await response.text()
                if response.status >= 400:
                    try:
                        message = json.loads(text).get("message") or text
                    except ValueError:
                        message = text
                    raise KubeError(
                        response.status, f"{method} {path}: {response.status} {message}"
                    )
                return json.loads(text) if text else {}
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise KubeError(0, f"{method} {path}: {exc!r}") from exc

    async def get_deployment(self, namespace: str, name: str) -> dict[str, Any]:
        return await self.request("GET", f"/apis/apps/v1/namespaces/{namespace}/deployments/{name}")

    async def scale_deployment(self, namespace: str, name: str, replicas: int) -> None:
        await self.request(
            "PATCH",
            f"/apis/apps/v1/namespaces/{namespace}/deployments/{name}/scale",
            body={"spec": {"replicas": replicas}},
        )

    async def list_pods(self, namespace: str, selector: str) -> list[dict[str, Any]]:
        answer = await self.request(
            "GET", f"/api/v1/namespaces/{namespace}/pods", params={"labelSelector": selector}
        )
        return list(answer.get("items") or [])

    async def annotate_pod(self, namespace: str, name: str, annotations: Mapping[str, str]) -> None:
        await self.request(
            "PATCH",
            f"/api/v1/namespaces/{namespace}/pods/{name}",
            body={"metadata": {"annotations": dict(annotations)}},
        )

    async def patch_status(self, path: str, status: Mapping[str, Any]) -> None:
        """Merge `status` into the status subresource of the object at `path`."""
        await self.request("PATCH", f"{path}/status", body={"status": dict(status)})

    async def close(self) -> None:
        for session in [*self._retired, self._session]:
            if session is not None and not session.closed:
                await session.close()
        self._retired.clear()
        self._session = None
