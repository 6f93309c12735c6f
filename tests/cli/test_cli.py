"""The `rising-stars` CLI against the real `make run` system: an account, a login kept and
refreshed, an upload interrupted mid-file and resumed by rerunning the command, the video watched
until processed, a vote and the rankings, all as a player or a script would use them."""

from __future__ import annotations

import json
import os
import stat
import struct
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import pytest
from videos import make_clip

from risingstars.cli import store
from risingstars.cli.__main__ import _status_line
from risingstars.cli.api import Api, ApiError
from risingstars.cli.upload import Uploader

PASSWORD = "a-long-passphrase"
MiB = 1024 * 1024


@pytest.fixture
def cli_env(system, tmp_path, monkeypatch):
    env = {
        "RISING_STARS_URL": system.url,
        "RISING_STARS_CONFIG_DIR": str(tmp_path / "config"),
        "RISING_STARS_PASSWORD": PASSWORD,
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return os.environ.copy()


def cli(env, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run(
        [sys.executable, "-m", "risingstars.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if check:
        assert result.returncode == 0, result.stderr
    return result


@pytest.fixture
def player(cli_env):
    return _signed_up(cli_env, "Ana")


def _signed_up(cli_env, first_name: str) -> str:
    """A new player, logged in with `cli_env`'s configuration; their email."""
    email = f"cli.{uuid.uuid4().hex[:8]}@example.com"
    cli(
        cli_env,
        "signup",
        "--first-name",
        first_name,
        "--last-name",
        "Pérez",
        "--email",
        email,
        "--city",
        "Bogotá",
        "--country",
        "Colombia",
    )
    cli(cli_env, "login", "--email", email)
    return email


@pytest.fixture(scope="module")
def big_clip(tmp_path_factory) -> Path:
    """A valid MP4 of more than one upload part: a real clip plus a trailing `free` box."""
    path = make_clip(tmp_path_factory.mktemp("cli") / "clip.mp4", seconds=21)
    padding = 6 * MiB - path.stat().st_size - 8  # two parts: 5 MiB and 1 MiB
    assert padding > 0
    with path.open("ab") as f:
        f.write(struct.pack(">I4s", 8 + padding, b"free") + bytes(padding))
    return path


def test_tokens_are_kept_private_and_refreshed_before_they_expire(cli_env, player):
    path = store.credentials().path
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    session = store.credentials().get(cli_env["RISING_STARS_URL"])
    session["expires_at"] = time.time()  # as if the access token were about to expire
    store.credentials().put(cli_env["RISING_STARS_URL"], session)

    result = cli(cli_env, "--json", "videos")
    assert json.loads(result.stdout) == []
    renewed = store.credentials().get(cli_env["RISING_STARS_URL"])
    assert renewed["refresh_token"] != session["refresh_token"]
    assert renewed["expires_at"] > time.time() + 600


def test_an_interrupted_upload_resumes_and_the_video_is_processed(
    cli_env, player, big_clip, tmp_path
):
    api = Api(cli_env["RISING_STARS_URL"])
    seen = {"sent": 0}

    def stop_in_the_second_part(n: int) -> None:
        seen["sent"] += n
        if seen["sent"] > 5 * MiB + 256 * 1024:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        Uploader(api).upload(
            big_clip, "Crossover", started=lambda *_: None, advance=stop_in_the_second_part
        )
    (url,) = store.uploads().read().values()
    kept = api.request("HEAD", url, headers={"Tus-Resumable": "1.0.0"})
    assert 5 * MiB <= int(kept.headers["Upload-Offset"]) < big_clip.stat().st_size

    resumed = {}
    result = Uploader(api).upload(
        big_clip,
        "Crossover",
        started=lambda total, done: resumed.update(total=total, done=done),
        advance=lambda n: resumed.update(sent=resumed.get("sent", 0) + n),
    )
    api.close()
    # The server may still be storing the dropped request's bytes when asked first.
    assert resumed["done"] >= int(kept.headers["Upload-Offset"])
    assert resumed["done"] + resumed["sent"] == big_clip.stat().st_size
    assert store.uploads().read() == {}
    video_id = result["video_id"]

    watched = cli(cli_env, "--json", "status", video_id, "--watch", "--timeout", "240")
    seen = [json.loads(line) for line in watched.stdout.splitlines()]
    assert seen[-1]["status"] == "processed", watched.stdout
    # The queue place while it waited (position known, ETA once a service time is measured);
    # none once processed.
    assert seen[-1]["queue"] is None
    for video in seen[:-1]:
        assert set(video["queue"]) == {"position", "eta_seconds"}, video

    own = cli(cli_env, "vote", video_id, check=False)
    assert own.returncode == 1 and "No puedes votar por tu propio video" in own.stderr
    voter_env = {**cli_env, "RISING_STARS_CONFIG_DIR": str(tmp_path / "voter")}
    _signed_up(voter_env, "Beto")
    assert "Voto registrado exitosamente." in cli(voter_env, "vote", video_id).stdout
    again = cli(voter_env, "vote", video_id, check=False)
    assert again.returncode == 1 and "Ya has votado por este video" in again.stderr

    username = json.loads(cli(cli_env, "--json", "public", "--city", "bogota").stdout)
    assert video_id in [v["video_id"] for v in username]

    def ranked() -> bool:
        rows = json.loads(cli(cli_env, "--json", "rankings", "--city", "BOGOTA").stdout)
        return any(r["votes"] >= 1 for r in rows)

    deadline = time.monotonic() + 90
    while not ranked():
        assert time.monotonic() < deadline, "the vote never reached the rankings"


def test_the_upload_command_sends_a_whole_file(cli_env, player, big_clip):
    result = cli(cli_env, "--json", "upload", str(big_clip), "--title", "Tiro libre")
    body = json.loads(result.stdout)
    assert body["message"] == "Video subido correctamente. Procesamiento en curso."
    deleted = cli(cli_env, "--json", "delete", body["video_id"])
    assert json.loads(deleted.stdout)["video_id"] == body["video_id"]


def test_errors_show_the_api_message_and_exit_1(cli_env):
    result = cli(cli_env, "videos", check=False)
    assert result.returncode == 1 and "rising-stars login" in result.stderr
    os.environ["RISING_STARS_PASSWORD"] = "wrong-password-here"
    result = cli(os.environ.copy(), "login", "--email", "nobody@example.com", check=False)
    assert result.returncode == 1 and "Email o contraseña incorrectos" in result.stderr


def test_status_shows_the_queue_place_while_the_video_waits():
    video = {"video_id": "v1", "status": "uploaded", "failure_reason": None}
    place = {"position": 3, "eta_seconds": 95}
    assert _status_line(video | {"queue": place}) == (
        "v1  uploaded  posición en la cola: 3, listo en ~95 s"
    )
    later = {"position": 40, "eta_seconds": 1290}
    assert _status_line(video | {"queue": later}).endswith("cola: 40, listo en ~22 min")
    unmeasured = {"position": 0, "eta_seconds": None}
    assert _status_line(video | {"queue": unmeasured}).endswith("posición en la cola: 0")
    unknown = {"position": None, "eta_seconds": None}
    assert _status_line(video | {"queue": unknown}) == "v1  uploaded"
    assert _status_line(video | {"status": "processed", "queue": None}) == "v1  processed"


def test_transient_answers_are_retried_after_retry_after(tmp_path, monkeypatch):
    """The retry policy alone, against a scripted server: a 503 then the answer."""
    monkeypatch.setenv("RISING_STARS_CONFIG_DIR", str(tmp_path))
    answers = [
        httpx.Response(503, headers={"Retry-After": "2"}, json={"detail": "no disponible"}),
        httpx.Response(200, json=[]),
        httpx.Response(400, json={"detail": "Campo inválido: limit"}),
    ]
    waits: list[float] = []
    api = Api(
        "http://api.invalid",
        sleep=waits.append,
        transport=httpx.MockTransport(lambda _: answers.pop(0)),
    )
    assert api.call("GET", "/api/public/rankings", auth=False) == []
    assert waits == [2.0]
    with pytest.raises(ApiError) as caught:
        api.call("GET", "/api/public/rankings", auth=False)
    assert caught.value.status == 400 and caught.value.detail == "Campo inválido: limit"
    assert waits == [2.0]
