"""The phases of the load test, as (time, users) points for the Locust shape.

- `seed`: the client's plan (its JMeter Ultimate Thread Group): sanity, 5 users for 1 min; then
  100, 200 and 300 users, each ramped up in 120 s, held 300 s, ramped down in 60 s.
- `capacity`: the contract's capacity search: smoke (5 users, 1 min); ramp 0→X in 3 min and hold
  5 min for X = 100, 200, 300 … until p95 or errors break the SLO; then 80 % of X sustained.
- `smoke`: a few users for a few seconds (the test inside `make test`).
`scale` multiplies every duration (1 = the plans as written)."""

from __future__ import annotations

import dataclasses
from typing import Any


@dataclasses.dataclass(frozen=True)
class WebPhase:
    name: str
    points: list[tuple[float, int]]
    windows: dict[str, tuple[float, float]]

    @property
    def seconds(self) -> float:
        return self.points[-1][0]

    @property
    def users(self) -> int:
        return max(u for _, u in self.points)

    def spec(self, **settings: Any) -> dict[str, Any]:
        return {
            "name": self.name,
            "points": [list(p) for p in self.points],
            "windows": {k: list(v) for k, v in self.windows.items()},
            **settings,
        }


def ultimate(name: str, users: int, ramp: float, hold: float, down: float) -> WebPhase:
    """JMeter's Ultimate Thread Group row: 0→users in `ramp` s, held `hold` s, down in `down`."""
    points = [(0.0, 0 if ramp else users), (ramp, users), (ramp + hold, users)]
    if down:
        points.append((ramp + hold + down, 0))
    windows = {"ramp": (0.0, ramp), "hold": (ramp, ramp + hold)}
    if down:
        windows["down"] = (ramp + hold, ramp + hold + down)
    return WebPhase(name, points, windows)


def seed(scale: float, tag: str = "", only: list[int] | None = None) -> list[WebPhase]:
    """`only`: some of the scaling phases (100, 200, 300), without the sanity phase."""
    s = scale
    phases = [] if only else [ultimate(f"sanity{tag}", 5, 0, 60 * s, 0)]
    users = only or [100, 200, 300]
    phases += [ultimate(f"seed-{u}{tag}", u, 120 * s, 300 * s, 60 * s) for u in users]
    return phases


def capacity_step(users: int, scale: float, tag: str = "", sustained: bool = False) -> WebPhase:
    hold = (600 if sustained else 300) * scale
    name = f"capacity-{'sustained-' if sustained else ''}{users}{tag}"
    return ultimate(name, users, 180 * scale, hold, 0)


def capacity_smoke(scale: float, tag: str = "") -> WebPhase:
    return ultimate(f"capacity-smoke{tag}", 5, 0, 60 * scale, 0)


def smoke(seconds: float, users: int = 3) -> list[WebPhase]:
    return [ultimate("smoke", users, 0, seconds, 0)]
