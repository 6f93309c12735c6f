"""The whole system as `make run` starts it, used through the one local URL as a client would:
sign up, log in, upload a real video, see it processed, vote, and find it in the rankings."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import httpx
import jwt
import pytest
from videos import make_clip

from risingstars.dev import stack, webseed
from risingstars.dev.infra import wait_until


def _signup_and_login(c: httpx.Client, first_name: str) -> tuple[str, str]:
    """A new account's email and access token."""
    player = webseed.player(c, first_name)
    return player.email, player.token


def test_one_url_serves_the_whole_flow(system, tmp_path: Path) -> None:
    with httpx.Client(base_url=system.url, timeout=60) as c:
        email, token = _signup_and_login(c, "Ana")
        auth = {"Authorization": f"Bearer {token}"}
        me = c.get("/api/auth/me", headers=auth)
        assert me.status_code == 200 and me.json()["email"] == email

        # The published JWKS verifies the token with a generic JWT library.
        jwks = jwt.PyJWKSet.from_dict(c.get("/.well-known/jwks.json").json())
        kid = jwt.get_unverified_header(token)["kid"]
        key = next(k for k in jwks.keys if k.key_id == kid)
        claims = jwt.decode(token, key.key, algorithms=["EdDSA"], audience="rising-stars-api")
        assert claims["username"] == me.json()["username"]

        clip = make_clip(tmp_path / "clip.mp4", seconds=21, size="1920x1080")
        with clip.open("rb") as f:
            r = c.post(
                "/api/videos/upload",
                headers=auth,
                data={"title": "Crossover"},
                files={"video_file": ("clip.mp4", f, "video/mp4")},
            )
        assert r.status_code == 201, r.text
        video_id = r.json()["video_id"]
        assert r.json()["task_id"] == video_id

        def processed() -> bool:
            return c.get(f"/api/videos/{video_id}", headers=auth).json()["status"] == "processed"

        wait_until(processed, 240, "the video to be processed")
        detail = c.get(f"/api/videos/{video_id}", headers=auth).json()
        assert detail["processed_url"] and detail["processed_at"]
        output = httpx.get(detail["processed_url"], timeout=60)
        assert output.status_code == 200 and output.content[4:8] == b"ftyp"

        public = c.get("/api/public/videos", params={"city": "bogota"}).json()
        assert video_id in [v["video_id"] for v in public]
        # Not for one's own video; another player votes once.
        assert c.post(f"/api/public/videos/{video_id}/vote", headers=auth).status_code == 400
        _, voter_token = _signup_and_login(c, "Beto")
        voter = {"Authorization": f"Bearer {voter_token}"}
        r = c.post(f"/api/public/videos/{video_id}/vote", headers=voter)
        assert r.status_code == 200, r.text
        assert c.post(f"/api/public/videos/{video_id}/vote", headers=voter).status_code == 400

        def ranked() -> bool:
            rows = c.get("/api/public/rankings", params={"city": "BOGOTA"}).json()
            return any(r["username"] == claims["username"] and r["votes"] == 1 for r in rows)

        wait_until(ranked, 90, "the vote to show in the rankings")


def test_unknown_paths_get_a_json_404(system) -> None:
    r = httpx.get(f"{system.url}/nowhere")
    assert r.status_code == 404 and r.json()["detail"]


def _session(proc: subprocess.Popen) -> dict[int, str]:
    """The processes `make run` started (its session), by pid, with their command lines."""
    listed = subprocess.run(
        ["pgrep", "-a", "-s", str(os.getpgid(proc.pid))], capture_output=True, text=True
    ).stdout.splitlines()
    return {int(line.split(" ", 1)[0]): line.split(" ", 1)[-1] for line in listed}


def test_make_run_starts_the_upload_worker_as_its_own_process(system) -> None:
    commands = _session(system.proc).values()
    assert any(c.endswith("-m risingstars.upload worker") for c in commands), commands
    assert any(c.endswith("-m risingstars.upload") for c in commands), commands


def test_ctrl_c_stops_everything() -> None:
    # Its own `make run`: stopping the shared one would depend on running last.
    with stack.running() as own:
        url, proc = own.url, own.proc
        children = [pid for pid in _session(proc) if pid != proc.pid]
        assert len(children) >= 4  # the services, moto (PostgreSQL may run in its own session)
        proc.send_signal(signal.SIGINT)
        assert proc.wait(60) == 0  # raises TimeoutExpired if it does not stop
        wait_until(lambda: not any(_alive(p) for p in children), 30, "every child to exit")
        with pytest.raises(httpx.HTTPError):
            httpx.get(f"{url}/api/public/rankings", timeout=2)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    status = Path(f"/proc/{pid}/status")
    return status.exists() and "zombie" not in status.read_text()
