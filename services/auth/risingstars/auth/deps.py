"""FastAPI dependencies: what the routes need from the application state and the request."""

from __future__ import annotations

import asyncpg
from fastapi import Request

from risingstars.auth.keys import KeyRing
from risingstars.auth.passwords import Hasher
from risingstars.auth.sessions import Issuer
from risingstars.auth.settings import Settings


def pool(request: Request) -> asyncpg.Pool:
    return request.app.state.pool


def settings(request: Request) -> Settings:
    return request.app.state.settings


def hasher(request: Request) -> Hasher:
    return request.app.state.hasher


def issuer(request: Request) -> Issuer:
    return request.app.state.issuer


def keyring(request: Request) -> KeyRing:
    return request.app.state.keyring


def client_ip(request: Request) -> str:
    # uvicorn replaces the peer with X-Forwarded-For only for trusted proxies
    # (FORWARDED_ALLOW_IPS), so a client cannot pick the address that throttling counts.
    return request.client.host if request.client else "unknown"
