"""Third-party tus 1.0 clients against the real system (`make run`, through its one URL):
tuspy (Python) and tus-js-client (under Node.js), each stopped mid-file, then resumed from
where the server says it is, and the video processed."""

from __future__ import annotations

import json
import struct
import subprocess
import uuid
from pathlib import Path

import httpx
import pytest
from tusclient import client as tus_client
from tusclient.storage.filestorage import FileStorage
from videos import make_clip

from risingstars.dev.infra import wait_until

HERE = Path(__file__).parent
MiB = 1024 * 1024
TUS = {"Tus-Resumable": "1.0.0"}


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    """A real MP4 padded to 7 MiB with a trailing `free` box: two S3 parts, four tus chunks."""
    path = make_clip(tmp_path_factory.mktemp("tus") / "clip.mp4", seconds=21)
    padding = 7 * MiB - path.stat().st_size - 8
    with path.open("ab") as f:
        f.write(struct.pack(">I4s", 8 + padding, b"free") + bytes(padding))
    return path


@pytest.fixture
def token(system) -> str:
    email = f"tus.{uuid.uuid4().hex[:8]}@example.com"
    with httpx.Client(base_url=system.url, timeout=60) as c:
        r = c.post("/api/auth/signup", json={
            "first_name": "Ana", "last_name": "Pérez", "email": email,
            "password1": "a-long-passphrase", "password2": "a-long-passphrase",
            "city": "Cali", "country": "Colombia"})  # fmt: skip
        assert r.status_code == 201, r.text
        r = c.post("/api/auth/login", json={"email": email, "password": "a-long-passphrase"})
        return r.json()["access_token"]


def offset_of(system, url: str, token: str) -> httpx.Response:
    return httpx.head(url, headers={**TUS, "Authorization": f"Bearer {token}"}, timeout=30)


def wait_processed(system, video_id: str, token: str) -> None:
    auth = {"Authorization": f"Bearer {token}"}

    def processed() -> bool:
        r = httpx.get(f"{system.url}/api/videos/{video_id}", headers=auth, timeout=30)
        assert r.status_code == 200 and r.json()["status"] not in {"failed", "rejected"}, r.text
        return r.json()["status"] == "processed"

    wait_until(processed, 300, "the video to be processed")


def test_tuspy_stopped_mid_file_resumes(system, token, clip, tmp_path) -> None:
    tus = tus_client.TusClient(
        f"{system.url}/api/videos/tus/", headers={"Authorization": f"Bearer {token}"}
    )
    storage = FileStorage(str(tmp_path / "tuspy.json"))

    def uploader():
        return tus.uploader(
            file_path=str(clip), chunk_size=2 * MiB, metadata={"title": "Desde tuspy"},
            store_url=True, url_storage=storage,
        )  # fmt: skip

    first = uploader()
    first.upload_chunk()
    first.upload_chunk()
    del first  # the process that held it is gone; only the stored URL remains

    second = uploader()
    assert second.offset == 4 * MiB  # asked the server (HEAD), which any replica answers
    second.upload()
    done = offset_of(system, second.url, token)
    assert done.headers["Upload-Offset"] == str(clip.stat().st_size)
    wait_processed(system, done.headers["Video-Id"], token)


def test_tus_js_client_killed_mid_file_resumes(system, token, clip, tmp_path) -> None:
    store = tmp_path / "tus-js.json"
    args = ["node", str(HERE / "upload.js"), str(clip), f"{system.url}/api/videos/tus/", token,
            str(store)]  # fmt: skip
    # SIGKILL once 3 MiB went out (on loopback the socket may already hold the whole request).
    killed = subprocess.run([*args, str(3 * MiB)], capture_output=True, text=True, timeout=120)
    assert killed.returncode == -9, killed.stderr
    (remembered,) = json.loads(store.read_text()).values()
    kept = int(offset_of(system, remembered["uploadUrl"], token).headers["Upload-Offset"])
    assert 2 * MiB <= kept < clip.stat().st_size

    resumed = subprocess.run(args, capture_output=True, text=True, timeout=120)
    assert resumed.returncode == 0, resumed.stderr
    result = json.loads(resumed.stdout.strip().splitlines()[-1])
    assert result["url"] == remembered["uploadUrl"]
    assert result["video_id"]
    wait_processed(system, result["video_id"], token)
