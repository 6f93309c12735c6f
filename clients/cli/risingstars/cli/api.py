"""The API as the CLI uses it: one httpx client, tokens refreshed before they expire (and once
more on a 401), transient answers (429, 503, a dropped connection) retried after the time the
server asks for, and every error turned into `ApiError` with the server's Spanish detail."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx

from risingstars.cli import store

# Refresh this long before the access token expires, so no request carries an expired one.
REFRESH_MARGIN_SECONDS = 60
RETRIES = 4
MAX_RETRY_WAIT_SECONDS = 30.0


class ApiError(Exception):
    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


class NotLoggedIn(ApiError):
    def __init__(self) -> None:
        super().__init__(401, "No ha iniciado sesión: ejecute `rising-stars login`.")


def detail(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("detail"), str):
        return body["detail"]
    return f"HTTP {response.status_code} {response.reason_phrase}".strip()


def _retry_after(response: httpx.Response | None, attempt: int) -> float:
    header = response.headers.get("Retry-After", "") if response is not None else ""
    wait = float(header) if header.isdigit() else 0.5 * 2**attempt
    return min(wait, MAX_RETRY_WAIT_SECONDS)


class Api:
    def __init__(
        self,
        base_url: str,
        *,
        timeout: float = 60.0,
        sleep: Callable[[float], None] = time.sleep,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.http = httpx.Client(base_url=self.base_url, timeout=timeout, transport=transport)
        self.credentials = store.credentials()
        self.sleep = sleep

    def close(self) -> None:
        self.http.close()

    # Tokens -------------------------------------------------------------------------------

    def _session(self) -> dict[str, Any] | None:
        return self.credentials.get(self.base_url)

    def _save_tokens(self, body: dict[str, Any], email: str | None) -> None:
        session = self._session() or {}
        self.credentials.put(
            self.base_url,
            {
                "email": email or session.get("email"),
                "access_token": body["access_token"],
                "refresh_token": body.get("refresh_token") or session.get("refresh_token"),
                "expires_at": time.time() + float(body.get("expires_in", 3600)),
            },
        )

    def login(self, email: str, password: str) -> dict[str, Any]:
        credentials = {"email": email, "password": password}
        body = self.call("POST", "/api/auth/login", auth=False, json=credentials)
        self._save_tokens(body, email)
        return body

    def logout(self) -> None:
        session = self._session()
        if session and session.get("refresh_token"):
            # Already expired or revoked: forgetting it locally is all that is left.
            with contextlib.suppress(ApiError):
                self.call(
                    "POST",
                    "/api/auth/logout",
                    auth=False,
                    json={"refresh_token": session["refresh_token"]},
                )
        self.credentials.put(self.base_url, None)

    def _refresh(self) -> None:
        session = self._session()
        if not session or not session.get("refresh_token"):
            raise NotLoggedIn()
        response = self._send(
            "POST", "/api/auth/refresh", {"json": {"refresh_token": session["refresh_token"]}}
        )
        if response.status_code == 401:
            self.credentials.put(self.base_url, None)
            raise ApiError(401, "La sesión expiró: ejecute `rising-stars login` de nuevo.")
        if response.status_code >= 400:
            raise ApiError(response.status_code, detail(response))
        self._save_tokens(response.json(), None)

    def _access_token(self) -> str:
        session = self._session()
        if not session:
            raise NotLoggedIn()
        if session.get("expires_at", 0) - time.time() < REFRESH_MARGIN_SECONDS:
            self._refresh()
            session = self._session() or {}
        return session["access_token"]

    # Requests -----------------------------------------------------------------------------

    def _send(self, method: str, path: str, kwargs: dict[str, Any]) -> httpx.Response:
        """One request, retried on transient answers; never on a client error. A streamed body
        cannot be sent twice, and a request that may have taken effect is not repeated after a
        dropped connection: those are the caller's to retry."""
        replayable = not isinstance(kwargs.get("content"), Iterator)
        idempotent = method in {"GET", "HEAD", "OPTIONS", "DELETE"}
        response: httpx.Response | None = None
        for attempt in range(RETRIES + 1):
            try:
                response = self.http.request(method, path, **kwargs)
            except httpx.TransportError:
                if attempt == RETRIES or not (replayable and idempotent):
                    raise
                self.sleep(_retry_after(None, attempt))
                continue
            transient = response.status_code in (429, 502, 503, 504)
            if not transient or not replayable or attempt == RETRIES:
                return response
            self.sleep(_retry_after(response, attempt))
        assert response is not None
        return response

    def request(
        self, method: str, path: str, *, auth: bool = True, **kwargs: Any
    ) -> httpx.Response:
        """The response of one call, with the caller's token (refreshed as needed)."""
        refreshed = False
        while True:
            if auth:
                headers = dict(kwargs.pop("headers", None) or {})
                headers["Authorization"] = f"Bearer {self._access_token()}"
                kwargs["headers"] = headers
            response = self._send(method, path, kwargs)
            if response.status_code == 401 and auth and not refreshed:
                # Revoked or rotated keys: one refresh, then the request once more.
                self._refresh()
                refreshed = True
                continue
            return response

    def call(self, method: str, path: str, *, auth: bool = True, **kwargs: Any) -> Any:
        """The JSON answer of one call; an error answer raises ApiError with its detail."""
        response = self.request(method, path, auth=auth, **kwargs)
        if response.status_code >= 400:
            raise ApiError(response.status_code, detail(response))
        return response.json() if response.content else None
