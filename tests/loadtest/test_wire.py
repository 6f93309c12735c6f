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
