"""The harness's servers: never one answering from another process's port (a free port can be
taken between `free_port()` and the server's bind), and moto's settings given to its process
alone (chart boots start one per overlay from concurrent threads: through os.environ one
overlay's moto started with another's endpoint names, the failure a fresh-clone `make test`
met)."""

from __future__ import annotations

import http.server
import os
import threading
from collections.abc import Iterator

import boto3
import httpx
import pytest

from risingstars.dev import infra


class _AnswersEverything(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def foreign() -> Iterator[int]:
    """A port held by another server that answers any request with 200."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _AnswersEverything)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


def test_moto_on_a_taken_port_fails_instead_of_adopting_the_other_server(foreign) -> None:
    with pytest.raises(RuntimeError, match="exited"):
        moto = infra.start_moto(port=foreign)
        infra.stop(moto.proc)


def test_moto_on_a_free_port_taken_meanwhile_moves_to_another(foreign, monkeypatch) -> None:
    ports = iter([foreign])
    real = infra.free_port
    monkeypatch.setattr(infra, "free_port", lambda: next(ports, None) or real())
    moto = infra.start_moto()
    try:
        assert moto.port != foreign
        assert infra.listening(moto.proc.pid, moto.port)
    finally:
        infra.stop(moto.proc)


def test_moto_takes_its_environment_without_changing_this_process(monkeypatch) -> None:
    # Chart boots start a moto per overlay from concurrent threads, each with its own endpoint
    # names: set in os.environ, one overlay's moto started with another's and read the pods'
    # host as a bucket name (HeadBucket 404).
    monkeypatch.delenv("MOTO_S3_CUSTOM_ENDPOINTS", raising=False)
    name = "http://aws.example.test:4566"
    moto = infra.start_moto(env={"MOTO_S3_CUSTOM_ENDPOINTS": name})
    try:
        assert "MOTO_S3_CUSTOM_ENDPOINTS" not in os.environ
        s3 = boto3.client(
            "s3", endpoint_url=moto.url, region_name="us-east-1",
            aws_access_key_id="test", aws_secret_access_key="test",
        )  # fmt: skip
        s3.create_bucket(Bucket="videos")
        # Addressed by its endpoint name, path-style: the bucket, not a bucket called "aws".
        head = httpx.head(
            f"{moto.url}/videos", headers={"Host": "aws.example.test:4566"}, timeout=10
        )
        assert head.status_code == 200
    finally:
        infra.stop(moto.proc)
