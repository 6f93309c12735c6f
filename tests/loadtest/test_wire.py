"""The load test's client profiles, on a simulated clock: a link-limited client never sends
faster than its rate and never makes up for time the server held it back; a stalling client
pauses once after the head."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from loadtest.wire import CHUNK, Profile, paced


class Clock:
    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def send(profile: Profile, size: int, held: dict[int, float]) -> tuple[float, int]:
    """Consume the body; the `held` chunk indexes take that long to send (back-pressure)."""
    clock = Clock()
    sent = 0
    for i, chunk in enumerate(paced([b"x" * size], profile, clock.sleep, clock)):
        clock.now += held.get(i, 0.0)
        sent += len(chunk)
    return clock.now, sent


def test_link_profile_sends_at_its_rate() -> None:
    rate = CHUNK * 10.0  # 10 chunks a second
    elapsed, sent = send(Profile("link", rate=rate), CHUNK * 50, {})
    assert sent == CHUNK * 50
    assert abs(elapsed - 5.0) < 1e-6


def test_time_lost_to_back_pressure_is_never_made_up() -> None:
    rate = CHUNK * 10.0
    # The server holds the 10th chunk for 2 s: on a real link those 2 s are simply lost.
    elapsed, _ = send(Profile("link", rate=rate), CHUNK * 50, {9: 2.0})
    assert abs(elapsed - (5.0 - 0.1 + 2.0)) < 1e-6


def test_stall_profile_pauses_once_after_the_head() -> None:
    clock = Clock()
    profile = Profile("stall", head=100_000, pause=7.0)
    chunks = list(paced([b"x" * (CHUNK * 4)], profile, clock.sleep, clock))
    assert sum(len(c) for c in chunks) == CHUNK * 4
    assert clock.sleeps == [7.0]
    assert len(chunks[0]) + len(chunks[1]) == 100_000  # the head, then the pause


def test_full_profile_never_sleeps() -> None:
    clock = Clock()
    chunks = list(paced([b"a" * 10, b"b" * (3 << 20)], Profile("full"), clock.sleep, clock))
    assert b"".join(chunks) == b"a" * 10 + b"b" * (3 << 20)
    assert clock.sleeps == []


class FlakyStorage:
    """A local HTTP server standing in for S3's part PUTs: answers each PUT by the next item of
    `script` ("500", "reset": close the socket unanswered, "200"), after reading the body."""

    def __init__(self, script: list[str]) -> None:
        import socket
        import threading

        self.script = list(script)
        self.bodies: list[int] = []
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}/part?n=1"
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        import socket

        while self.script:
            conn, _ = self.sock.accept()
            with conn:
                conn.settimeout(10)
                stream = conn.makefile("rb")
                while self.script:
                    head = b""
                    while not head.endswith(b"\r\n\r\n"):
                        line = stream.readline()
                        if not line:
                            break
                        head += line
                    if not head:
                        break
                    length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
                    self.bodies.append(len(stream.read(length)))
                    answer = self.script.pop(0)
                    if answer == "reset":
                        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\1\0\0\0\0\0\0\0")
                        stream.close()  # the last reference: the socket closes now, with a RST
                        break
                    status = {"200": "200 OK", "500": "500 Internal Server Error"}[answer]
                    conn.sendall(f"HTTP/1.1 {status}\r\nContent-Length: 0\r\n\r\n".encode())


def test_a_part_put_is_retried_on_a_5xx_and_a_reset_as_sdks_do() -> None:
    from loadtest import wire

    storage = FlakyStorage(["500", "reset", "200"])
    pauses: list[float] = []
    client = wire.Client(timeout=10)
    try:
        response = wire.put_retried(
            client, storage.url, lambda: iter([memoryview(b"x" * 1000)]), 1000, pauses.append
        )
    finally:
        client.close()
    assert response.status == 200
    assert storage.bodies == [1000, 1000, 1000]  # the whole part, each time
    assert pauses == [0.5, 1.0]


def test_a_part_put_that_keeps_failing_is_reported() -> None:
    from loadtest import wire

    storage = FlakyStorage(["500", "500"])
    client = wire.Client(timeout=10)
    try:
        response = wire.put_retried(
            client, storage.url, lambda: iter([memoryview(b"x" * 10)]), 10, lambda _: None,
            attempts=2,
        )  # fmt: skip
    finally:
        client.close()
    assert response.status == 500
