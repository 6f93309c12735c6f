"""A showcase with something in it, made through the public API: players, a processed video of
each, and votes. For the web app's screenshots and its Lighthouse benchmark."""

from __future__ import annotations

import dataclasses
import time
import uuid
from pathlib import Path

import httpx

from risingstars.dev import clips

PASSWORD = "a-long-passphrase"  # noqa: S105 (test accounts on a local system)


@dataclasses.dataclass(frozen=True)
class Player:
    email: str
    username: str
    token: str


def player(c: httpx.Client, first_name: str, city: str = "Bogotá") -> Player:
    tag = uuid.uuid4().hex[:6]
    email = f"{first_name.lower()}.{tag}@example.com"
    r = c.post(
        "/api/auth/signup",
        json={
            "first_name": first_name,
            "last_name": "Pérez",
            "email": email,
            "username": f"{first_name.lower()}_{tag}",
            "password1": PASSWORD,
            "password2": PASSWORD,
            "city": city,
            "country": "Colombia",
        },
    )
    r.raise_for_status()
    r = c.post("/api/auth/login", json={"email": email, "password": PASSWORD})
    r.raise_for_status()
    return Player(email, f"{first_name.lower()}_{tag}", r.json()["access_token"])


def clip(path: Path, seconds: float = 21) -> Path:
    """A real MP4 the API accepts: 1920×1080, `seconds` long, small."""
    if not path.exists():
        clips.make_clip(
            path,
            seconds=seconds,
            size="1920x1080",
            fps=15,
            tone=False,
            video=("-crf", "40", "-pix_fmt", "yuv420p"),
        )
    return path


def upload(c: httpx.Client, who: Player, path: Path, title: str) -> str:
    with path.open("rb") as f:
        r = c.post(
            "/api/videos/upload",
            headers={"Authorization": f"Bearer {who.token}"},
            data={"title": title},
            files={"video_file": (path.name, f, "video/mp4")},
        )
    r.raise_for_status()
    return r.json()["video_id"]


def wait_processed(c: httpx.Client, who: Player, video_ids: list[str], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    auth = {"Authorization": f"Bearer {who.token}"}
    for video_id in video_ids:
        while c.get(f"/api/videos/{video_id}", headers=auth).json()["status"] != "processed":
            if time.monotonic() > deadline:
                raise TimeoutError(f"video {video_id} not processed in {timeout} s")
            time.sleep(0.5)


def showcase(url: str, workdir: Path, timeout: float = 300) -> tuple[Player, list[str]]:
    """Two players of Bogotá and one of Medellín, a processed video each (the first player two),
    votes among them. Returns the first player and the video ids, newest last."""
    with httpx.Client(base_url=url, timeout=120) as c:
        path = clip(workdir / "showcase.mp4")
        ana, beto, caro = player(c, "Ana"), player(c, "Beto"), player(c, "Caro", "Medellín")
        plan = [
            (ana, "Crossover y bandeja"),
            (beto, "Triple desde la esquina"),
            (caro, "Defensa en zona"),
            (ana, "Pase sin mirar"),
        ]
        ids = [upload(c, who, path, title) for who, title in plan]
        for (who, _), video_id in zip(plan, ids, strict=True):
            wait_processed(c, who, [video_id], timeout)
        for voter, video_id in [(beto, ids[0]), (caro, ids[0]), (ana, ids[1]), (beto, ids[3])]:
            auth = {"Authorization": f"Bearer {voter.token}"}
            c.post(f"/api/public/videos/{video_id}/vote", headers=auth).raise_for_status()
        return ana, ids
