"""The backlog of an SQS queue, read with GetQueueAttributes.

One aiobotocore client per (region, endpoint), kept for the operator's lifetime: a reconcile
costs one HTTPS request, not a TLS handshake and a credentials lookup. Credentials come from
the default chain (IRSA's web identity token on EKS). Retries are few and timeouts short: the
reconcile loop retries on its own schedule, and a slow answer is a stale answer.
"""

from __future__ import annotations

import contextlib
import dataclasses
from typing import Any

from aiobotocore.config import AioConfig
from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

from risingstars.kit import aws
from risingstars.operator.spec import QueueRef

ATTRIBUTES = [
    "ApproximateNumberOfMessages",
    "ApproximateNumberOfMessagesNotVisible",
    "ApproximateNumberOfMessagesDelayed",
]


class QueueError(Exception):
    """The queue's attributes could not be read; `reason` is a CamelCase word for conditions."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclasses.dataclass(frozen=True)
class Backlog:
    visible: int
    in_flight: int
    delayed: int

    def total(self, *, count_in_flight: bool, count_delayed: bool) -> int:
        return (
            self.visible
            + (self.in_flight if count_in_flight else 0)
            + (self.delayed if count_delayed else 0)
        )


def _config() -> AioConfig:
    return AioConfig(
        retries={"mode": "standard", "max_attempts": 2},
        connect_timeout=3,
        read_timeout=5,
        max_pool_connections=20,
    )


class QueueReader:
    def __init__(self, *, default_region: str, default_endpoint_url: str | None) -> None:
        self.default_region = default_region
        self.default_endpoint_url = default_endpoint_url
        self._session = aws.session()
        self._stack = contextlib.AsyncExitStack()
        self._clients: dict[tuple[str, str | None], Any] = {}
        self._urls: dict[tuple[str, str | None, str], str] = {}

    async def _client(self, region: str, endpoint_url: str | None) -> Any:
        key = (region, endpoint_url)
        client = self._clients.get(key)
        if client is None:
            client = await self._stack.enter_async_context(
                self._session.create_client(
                    "sqs", region_name=region, endpoint_url=endpoint_url, config=_config()
                )
            )
            self._clients[key] = client
        return client

    async def backlog(self, queue: QueueRef) -> Backlog:
        region = queue.region_or(self.default_region)
        endpoint_url = queue.endpoint_url or self.default_endpoint_url
        try:
            client = await self._client(region, endpoint_url)
            url = queue.url or await self._queue_url(client, region, endpoint_url, queue.name)
            answer = await client.get_queue_attributes(QueueUrl=url, AttributeNames=ATTRIBUTES)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if "NonExistentQueue" in code or "QueueDoesNotExist" in code:
                raise QueueError("QueueNotFound", f"{queue.describe()} does not exist") from exc
            if code in {"AccessDenied", "AccessDeniedException", "InvalidClientTokenId"}:
                raise QueueError("QueueAccessDenied", f"{queue.describe()}: {code}") from exc
            raise QueueError("QueueUnavailable", f"{queue.describe()}: {code or exc}") from exc
        except NoCredentialsError as exc:
            raise QueueError(
                "NoCredentials",
                "no AWS credentials (IRSA, AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, ~/.aws; "
                "any pair does for moto or LocalStack)",
            ) from exc
        except (BotoCoreError, OSError) as exc:
            raise QueueError("QueueUnavailable", f"{queue.describe()}: {exc}") from exc
        attrs = answer.get("Attributes", {})
        try:
            return Backlog(
                visible=int(attrs["ApproximateNumberOfMessages"]),
                in_flight=int(attrs["ApproximateNumberOfMessagesNotVisible"]),
                delayed=int(attrs.get("ApproximateNumberOfMessagesDelayed", 0)),
            )
        except (KeyError, ValueError) as exc:
            raise QueueError(
                "QueueUnavailable", f"{queue.describe()}: bad answer {attrs!r}"
            ) from exc

    async def _queue_url(
        self, client: Any, region: str, endpoint_url: str | None, name: str | None
    ) -> str:
        assert name is not None  # the spec parser requires url or name
        key = (region, endpoint_url, name)
        url = self._urls.get(key)
        if url is None:
            url = (await client.get_queue_url(QueueName=name))["QueueUrl"]
            self._urls[key] = url
        return url

    async def close(self) -> None:
        await self._stack.aclose()
        self._clients.clear()
