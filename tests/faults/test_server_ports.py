"""The harness's servers never answer from another process's port: a free port can be taken
between `free_port()` and the server's bind (found when a fresh-clone `make test` ran beside a
benchmark: a chart boot created its bucket in the benchmark's moto, which then emptied it)."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator

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
