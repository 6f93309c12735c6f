"""aiobotocore clients configured one way for every service: region, optional endpoint (moto,
LocalStack), bounded standard retries, credentials from the default chain (IRSA on EKS)."""

from __future__ import annotations

import contextlib
import functools
import gzip
import json
import os
from collections.abc import AsyncIterator
from typing import Any, ClassVar

from aiobotocore.config import AioConfig
from aiobotocore.session import AioSession, get_session
from botocore.loaders import Loader

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


class PlainJSONFiles:
    """botocore's data files (service models, endpoints) loaded into plain dicts. botocore's
    own file loader builds OrderedDicts, which cost about 4 MB more for the S3 model alone;
    dicts keep their order anyway."""

    OPENERS: ClassVar = ((".json", open), (".json.gz", gzip.open))

    def exists(self, path: str) -> bool:
        return any(os.path.isfile(path + ext) for ext, _ in self.OPENERS)

    def load_file(self, path: str) -> Any:
        for ext, opener in self.OPENERS:
            if os.path.isfile(path + ext):
                with opener(path + ext, "rb") as f:
                    return json.loads(f.read())
        return None


@functools.cache
def session() -> AioSession:
    """The process's one botocore session. Each session loads botocore's endpoint, partition
    and default-configuration data again (about 7 MB more per client when every client had
    its own), and caches the service models its clients load."""
    s = get_session()
    data_path = s.get_config_variable("data_path")  # AWS_DATA_PATH, as botocore reads it
    extra = [os.path.expanduser(p) for p in data_path.split(os.pathsep)] if data_path else []
    s.register_component(
        "data_loader", Loader(extra_search_paths=extra, file_loader=PlainJSONFiles())
    )
    return s


@contextlib.asynccontextmanager
async def client(
    service_name: str, settings: AWSSettings, config: AioConfig | None = None
) -> AsyncIterator[Any]:
    async with session().create_client(
        service_name,
        region_name=settings.aws_region,
        endpoint_url=settings.aws_endpoint_url or None,
        config=config or client_config(),
    ) as c:
        yield c


# -- what AWS answered ------------------------------------------------------------------------

# Every way S3 says "no such object or multipart upload": HEAD answers a bare "404" (it has no
# body to name the error), GET "NoSuchKey", ListParts/Complete/Abort "NoSuchUpload", and some
# emulators "NotFound".
NOT_FOUND = frozenset({"404", "NoSuchKey", "NoSuchUpload", "NotFound"})


def error_code(exc: BaseException) -> str:
    """The service's error code of a botocore ClientError ("" for any other exception)."""
    response = getattr(exc, "response", None)
    if not isinstance(response, dict):
        return ""
    return str(response.get("Error", {}).get("Code", ""))


def is_not_found(exc: BaseException) -> bool:
    return error_code(exc) in NOT_FOUND


async def redrive_policy(sqs: Any, queue_url: str) -> dict[str, Any] | None:
    """An SQS queue's redrive policy (`deadLetterTargetArn`, `maxReceiveCount`), None if none."""
    response = await sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["RedrivePolicy"])
    policy = response.get("Attributes", {}).get("RedrivePolicy")
    return json.loads(policy) if policy else None


async def dead_letter_url(sqs: Any, queue_url: str | None) -> str:
    """An SQS queue's dead-letter queue ("" when it has none)."""
    policy = await redrive_policy(sqs, queue_url) if queue_url else None
    if policy is None:
        return ""
    name = policy["deadLetterTargetArn"].rsplit(":", 1)[-1]
    return (await sqs.get_queue_url(QueueName=name))["QueueUrl"]
