"""The processor's test rig: clips generated with the real ffmpeg, the processor run in-process
(its app lifespan) or as `python -m risingstars.processor`, and helpers that read the queues,
the bucket and the decoded pictures."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import struct
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest
from polling import eventually
from prometheus_client import REGISTRY

from risingstars.dev import clips, infra
from risingstars.kit import aws as kit_aws
from risingstars.kit.settings import AWSSettings
from risingstars.processor import media
from risingstars.processor.app import create_app
from risingstars.processor.settings import ASSETS, Settings

FFMPEG = media.locate_ffmpeg(os.environ.get("FFMPEG_PATH") or None)


def _recipes(cache: clips.Cache) -> dict[str, Callable[[Path], object]]:
    qhd = ("-b:v", "1M", "-pix_fmt", "yuv420p")
    return {
        # 2560x1440, 45 s, with audio (the main case); cheap to make and decode.
        "qhd_45s_audio": lambda p: clips.make_clip(
            p, seconds=45, size="2560x1440", tone=True, video=qhd
        ),
        "short_12s": lambda p: clips.make_clip(p, seconds=12),
        "medium_20s": lambda p: clips.make_clip(p, seconds=20, size="1920x1080", video=qhd),
        "four_three": lambda p: clips.square_pattern(p, size="1440x1080", square=600),
        "portrait": lambda p: clips.square_pattern(p, size="1080x1920", square=800),
        "half_second": lambda p: clips.make_clip(p, seconds=0.5),
        "tiny": lambda p: clips.make_clip(p, size="320x240", video=(), faststart=True),
        "audio_only": clips.audio_only,
        # Sound with cover art: a picture stream, but no video.
        "cover_art": lambda p: clips.audio_only(p, cover=ASSETS / "card.png"),
        "not_a_video": lambda p: p.write_bytes(os.urandom(200_000)),
        "undecodable": lambda p: clips.garble_media_data(cache.get("tiny"), p),
    }


class Clips(clips.Cache):
    """Input videos, generated once per session on first use."""

    def __init__(self, root: Path) -> None:
        super().__init__(root, _recipes(self))


@pytest.fixture(name="clips", scope="session")
def clips_fixture(tmp_path_factory: pytest.TempPathFactory) -> Clips:
    return Clips(tmp_path_factory.mktemp("clips"))


def metric(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


@dataclasses.dataclass
class Rig:
    """One test's bucket and queues, with clients and helpers around them."""

    resources: infra.AWSResources
    endpoint: str
    s3: Any
    sqs: Any
    clips: Clips
    work_dir: Path

    def settings(self, **overrides: Any) -> Settings:
        values: dict[str, Any] = dict(
            s3_bucket=self.resources.bucket,
            jobs_queue_url=self.resources.jobs_queue_url,
            events_queue_url=self.resources.events_queue_url,
            aws_endpoint_url=self.endpoint,
            drain_seconds=0.0,
            shutdown_timeout_seconds=10.0,
            visibility_timeout_seconds=30,
            heartbeat_seconds=1.0,
            retry_base_seconds=1.0,
            retry_max_seconds=2.0,
            receive_wait_seconds=1,
            work_dir=str(self.work_dir),
        )
        values.update(overrides)
        settings = Settings(**values)
        settings.validate()
        return settings

    def env(self, **overrides: str) -> dict[str, str]:
        """The environment of a processor started as a process."""
        env = dict(os.environ)
        env.update(infra.AWS_DUMMY_ENV)
        env.update(
            AWS_ENDPOINT_URL=self.endpoint,
            S3_BUCKET=self.resources.bucket,
            JOBS_QUEUE_URL=self.resources.jobs_queue_url,
            EVENTS_QUEUE_URL=self.resources.events_queue_url,
            PORT=str(infra.free_port()),
            DRAIN_SECONDS="0",
            HEARTBEAT_SECONDS="1",
            RETRY_BASE_SECONDS="1",
            RETRY_MAX_SECONDS="2",
            RECEIVE_WAIT_SECONDS="1",
            WORK_DIR=str(self.work_dir),
            LOG_LEVEL="info",
        )
        env.update(overrides)
        return env

    @contextlib.asynccontextmanager
    async def running(self, settings: Settings | None = None) -> AsyncIterator[Any]:
        app = create_app(settings or self.settings())
        async with app.router.lifespan_context(app):
            yield app

    async def put_source(self, clip: str | Path, video_id: str | None = None) -> str:
        video_id = video_id or str(uuid.uuid4())
        path = clip if isinstance(clip, Path) else self.clips.get(clip)
        await self.s3.put_object(
            Bucket=self.resources.bucket, Key=f"originals/{video_id}.mp4", Body=path.read_bytes()
        )
        return video_id

    @staticmethod
    def job(video_id: str) -> dict[str, str]:
        return {
            "type": "process",
            "video_id": video_id,
            "source_key": f"originals/{video_id}.mp4",
            "processed_key": f"processed/{video_id}.mp4",
            "thumbnail_key": f"processed/{video_id}.jpg",
        }

    async def send(self, body: dict[str, Any] | str) -> None:
        text = body if isinstance(body, str) else json.dumps(body)
        await self.sqs.send_message(QueueUrl=self.resources.jobs_queue_url, MessageBody=text)

    async def submit(self, clip: str | Path) -> str:
        video_id = await self.put_source(clip)
        await self.send(self.job(video_id))
        return video_id

    async def events(
        self, count: int, *, timeout: float = 180, started: bool = False
    ) -> list[dict[str, Any]]:
        """The next `count` events (consumed from the events queue); the `started` report of
        each attempt is skipped unless `started`."""
        found: list[dict[str, Any]] = []
        deadline = time.monotonic() + timeout
        while len(found) < count:
            if time.monotonic() > deadline:
                raise AssertionError(f"got {len(found)} of {count} events: {found}")
            response = await self.sqs.receive_message(
                QueueUrl=self.resources.events_queue_url,
                MaxNumberOfMessages=10,
                WaitTimeSeconds=1,
            )
            for message in response.get("Messages", []):
                event = json.loads(message["Body"])
                if started or event.get("type") != "started":
                    found.append(event)
                await self.sqs.delete_message(
                    QueueUrl=self.resources.events_queue_url,
                    ReceiptHandle=message["ReceiptHandle"],
                )
        return found

    async def no_more_events(self, seconds: float = 2) -> list[dict[str, Any]]:
        """Whatever else arrives within `seconds` (for asserting there is nothing), but the
        `started` reports of attempts."""
        response = await self.sqs.receive_message(
            QueueUrl=self.resources.events_queue_url,
            MaxNumberOfMessages=10,
            WaitTimeSeconds=int(seconds),
        )
        events = [json.loads(m["Body"]) for m in response.get("Messages", [])]
        return [e for e in events if e.get("type") != "started"]

    async def queue_counts(self, url: str | None = None) -> tuple[int, int]:
        """(visible, in flight) messages of the jobs queue (or `url`)."""
        attributes = (
            await self.sqs.get_queue_attributes(
                QueueUrl=url or self.resources.jobs_queue_url,
                AttributeNames=[
                    "ApproximateNumberOfMessages",
                    "ApproximateNumberOfMessagesNotVisible",
                ],
            )
        )["Attributes"]
        return (
            int(attributes["ApproximateNumberOfMessages"]),
            int(attributes["ApproximateNumberOfMessagesNotVisible"]),
        )

    async def keys(self, prefix: str = "") -> list[str]:
        response = await self.s3.list_objects_v2(Bucket=self.resources.bucket, Prefix=prefix)
        return sorted(o["Key"] for o in response.get("Contents", []))

    async def download(self, key: str, target: Path) -> Path:
        response = await self.s3.get_object(Bucket=self.resources.bucket, Key=key)
        async with response["Body"] as body:
            target.write_bytes(await body.read())
        return target

    def scratch(self) -> list[str]:
        return sorted(p.name for p in self.work_dir.iterdir())


@contextlib.asynccontextmanager
async def aws_clients(endpoint: str) -> AsyncIterator[tuple[Any, Any]]:
    settings = AWSSettings(aws_endpoint_url=endpoint)
    async with (
        kit_aws.client("s3", settings) as s3,
        kit_aws.client("sqs", settings) as sqs,
    ):
        yield s3, sqs


@contextlib.asynccontextmanager
async def make_rig(
    resources: infra.AWSResources, endpoint: str, clips: Clips, work_dir: Path
) -> AsyncIterator[Rig]:
    work_dir.mkdir(parents=True, exist_ok=True)
    async with aws_clients(endpoint) as (s3, sqs):
        yield Rig(resources, endpoint, s3, sqs, clips, work_dir)


@pytest.fixture
async def rig(aws: infra.AWSResources, moto_url: str, clips: Clips, tmp_path: Path):
    async with make_rig(aws, moto_url, clips, tmp_path / "work") as r:
        yield r


@pytest.fixture(scope="module")
async def module_rig(moto_url: str, clips: Clips, tmp_path_factory: pytest.TempPathFactory):
    """A rig shared by a module's tests (one processor run serving several of them)."""
    prefix = f"m{uuid.uuid4().hex[:10]}"
    resources = infra.create_aws_resources(moto_url, prefix)
    async with make_rig(resources, moto_url, clips, tmp_path_factory.mktemp(prefix)) as r:
        yield r


@pytest.fixture
def rig_factory(moto_url: str, clips: Clips, tmp_path: Path):
    """A rig on queues of its own (other maxReceiveCount or visibility timeout)."""

    def make(**queue_options: Any) -> contextlib.AbstractAsyncContextManager[Rig]:
        prefix = f"p{uuid.uuid4().hex[:10]}"
        resources = infra.create_aws_resources(moto_url, prefix, **queue_options)
        return make_rig(resources, moto_url, clips, tmp_path / prefix)

    return make


# -- processes ------------------------------------------------------------------------------


def start_processor(env: dict[str, str], log_path: Path) -> subprocess.Popen:
    log = log_path.open("ab")
    return subprocess.Popen(
        [sys.executable, "-m", "risingstars.processor"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )


def children(pid: int) -> list[tuple[int, str]]:
    """(pid, command line) of the direct children of `pid`."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        # The parent pid is the second field after the parenthesised command name.
        parent = int(stat.rsplit(")", 1)[1].split()[1])
        if parent == pid:
            found.append((int(entry.name), cmdline))
    return found


def encoder_of(pid: int) -> int | None:
    """The pid of the encoding ffmpeg the processor `pid` runs, if any."""
    for child, cmdline in children(pid):
        if "libx264" in cmdline:
            return child
    return None


def process_gone(pid: int) -> bool:
    try:
        state = (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return True
    return state == "Z"


# -- pictures -------------------------------------------------------------------------------


@dataclasses.dataclass
class Decoded:
    width: int
    height: int
    duration: float
    frames: int
    audio_streams: int
    codec: str
    pix_fmt: str
    first: np.ndarray
    last: np.ndarray
    at: dict[float, np.ndarray]


def decode(path: Path, times: tuple[float, ...] = ()) -> Decoded:
    """Every frame is decoded; the first, the last and those nearest `times` are kept (RGB)."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        audio = len(container.streams.audio)
        duration = container.duration / av.time_base if container.duration else 0.0
        first = last = None
        picked: dict[float, np.ndarray] = {}
        count = 0
        for frame in container.decode(stream):
            count += 1
            t = float(frame.time or 0.0)
            image = None
            if first is None:
                image = frame.to_ndarray(format="rgb24")
                first = image
            for wanted in times:
                if wanted not in picked and t >= wanted:
                    picked[wanted] = (
                        image if image is not None else frame.to_ndarray(format="rgb24")
                    )
            last_frame = frame
        last = last_frame.to_ndarray(format="rgb24")
        return Decoded(
            width=stream.codec_context.width,
            height=stream.codec_context.height,
            duration=duration,
            frames=count,
            audio_streams=audio,
            codec=stream.codec_context.name,
            pix_fmt=stream.codec_context.pix_fmt,
            first=first,
            last=last,
            at=picked,
        )


def image(path: Path) -> np.ndarray:
    with av.open(str(path)) as container:
        return next(container.decode(video=0)).to_ndarray(format="rgb24")


def difference(a: np.ndarray, b: np.ndarray) -> float:
    """Mean absolute difference per channel, 0..255."""
    return float(np.abs(a.astype(np.int16) - b.astype(np.int16)).mean())


def top_level_boxes(path: Path) -> list[str]:
    data = path.read_bytes()
    boxes, offset = [], 0
    while offset + 8 <= len(data):
        size, kind = struct.unpack(">I4s", data[offset : offset + 8])
        if size == 1:
            size = struct.unpack(">Q", data[offset + 8 : offset + 16])[0]
        boxes.append(kind.decode("latin-1"))
        if size < 8:
            break
        offset += size
    return boxes


class Tools:
    """The helpers above, for test modules (which cannot import this conftest)."""

    metric = staticmethod(metric)
    eventually = staticmethod(eventually)
    start_processor = staticmethod(start_processor)
    children = staticmethod(children)
    encoder_of = staticmethod(encoder_of)
    process_gone = staticmethod(process_gone)
    decode = staticmethod(decode)
    image = staticmethod(image)
    difference = staticmethod(difference)
    top_level_boxes = staticmethod(top_level_boxes)
    aws_clients = staticmethod(aws_clients)
    ffmpeg = FFMPEG


@pytest.fixture(scope="session")
def tools() -> type[Tools]:
    return Tools
