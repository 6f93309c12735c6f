"""aiobotocore clients configured one way for every service: region, optional endpoint (moto,
LocalStack), bounded standard retries, credentials from the default chain (IRSA on EKS)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

from aiobotocore.config import AioConfig
from aiobotocore.session import get_session

from risingstars.kit.settings import AWSSettings


def client_config(*, max_pool_connections: int = 50, **overrides: Any) -> AioConfig:
    return AioConfig(
        retries={"mode": "standard", "max_attempts": 4},
        connect_timeout=5,
        read_timeout=60,
        max_pool_connections=max_pool_connections,
        # Path-style works with every S3 emulator and with real S3. Bodies are not SHA-256
        # hashed for the signature: over HTTPS botocore already skips it when the body carries
        # a checksum (CRC32 by default), and over plain HTTP (moto) it would hash every byte.
        s3={"addressing_style": "path", "payload_signing_enabled": False},
        **overrides,
    )


@contextlib.asynccontextmanager
async def client(
    service_name: str, settings: AWSSettings, config: AioConfig | None = None
) -> AsyncIterator[Any]:
    session = get_session()
    async with session.create_client(
        service_name,
        region_name=settings.aws_region,
        endpoint_url=settings.aws_endpoint_url or None,
        config=config or client_config(),
    ) as c:
        yield c
