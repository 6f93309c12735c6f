"""What the processed video looks like: one processor run (two jobs at a time) turns four
generated inputs into outputs, and each test checks one of them by decoding the pictures."""

from __future__ import annotations

import pytest

from risingstars.processor import media
from risingstars.processor.settings import ASSETS

INPUTS = ("qhd_45s_audio", "short_12s", "four_three", "portrait", "half_second")
WATERMARK = (1280 - 24 - 232, 720 - 24 - 56, 232, 56)  # x, y, w, h of the default watermark


@pytest.fixture(scope="module")
async def processed(module_rig, tmp_path_factory):
    """clip name -> (event, local copy of the video, local copy of the thumbnail, source ETag)."""
    rig = module_rig
    ids = {name: await rig.submit(name) for name in INPUTS}
    async with rig.running(rig.settings(concurrency=2)):
        events = await rig.events(len(INPUTS), timeout=300)
    by_id = {e["video_id"]: e for e in events}
    out = tmp_path_factory.mktemp("outputs")
    results = {}
    for name, video_id in ids.items():
        event = by_id[video_id]
        video = await rig.download(event["processed_key"], out / f"{name}.mp4")
        thumb = await rig.download(event["thumbnail_key"], out / f"{name}.jpg")
        head = await rig.s3.head_object(Bucket=rig.resources.bucket, Key=event["processed_key"])
        source = await rig.s3.head_object(
            Bucket=rig.resources.bucket, Key=f"originals/{video_id}.mp4"
        )
        results[name] = (event, video, thumb, head, source)
    results["queue"] = await rig.queue_counts()
    results["scratch"] = rig.scratch()
    return results


@pytest.fixture(scope="session")
def card(tools):
    return tools.image(ASSETS / "card.png")


def content_box(frame, threshold: int = 40) -> tuple[int, int, int, int]:
    """(left, top, right, bottom) of the non-black picture, the watermark left out."""
    mask = frame.max(axis=2) > threshold
    x, y, w, h = WATERMARK
    mask[y : y + h, x : x + w] = False
    rows, cols = mask.any(axis=1).nonzero()[0], mask.any(axis=0).nonzero()[0]
    return int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1


def white_box(frame) -> tuple[int, int]:
    """Width and height of the white square."""
    mask = frame.min(axis=2) > 200
    rows, cols = mask.any(axis=1).nonzero()[0], mask.any(axis=0).nonzero()[0]
    return int(cols[-1] - cols[0] + 1), int(rows[-1] - rows[0] + 1)


def assert_bars_black(frame, left: int, right: int) -> None:
    x, y, w, h = WATERMARK
    picture = frame.astype(int).copy()
    picture[y : y + h, x : x + w] = 0
    assert picture[:, : left - 2].max() < 30, "left bar is not black"
    assert picture[:, right + 2 :].max() < 30, "right bar is not black"


async def test_a_45s_qhd_clip_with_audio_becomes_35s_of_720p_without_audio(
    processed, card, tools
) -> None:
    event, video, thumb, head, source = processed["qhd_45s_audio"]
    decoded = tools.decode(video, times=(2.5 + 1.0, 20.0))

    assert (decoded.width, decoded.height) == (1280, 720)
    assert decoded.audio_streams == 0
    assert decoded.duration == pytest.approx(35.0, abs=0.1)
    assert decoded.frames / 30 == pytest.approx(35.0, abs=0.1)
    assert (decoded.codec, decoded.pix_fmt) == ("h264", "yuv420p")
    # The opening and closing 2.5 s show the logo card; the content in between does not.
    assert tools.difference(decoded.first, card) < 8
    assert tools.difference(decoded.last, card) < 8
    assert tools.difference(decoded.at[20.0], card) > 30
    # The thumbnail is a picture of the content, not of the card.
    picture = tools.image(thumb)
    assert picture.shape == (720, 1280, 3)
    assert tools.difference(picture, decoded.at[3.5]) < 10
    assert tools.difference(picture, card) > 30

    # How long the job took: the upload service's queue ETA averages it.
    assert event["service_seconds"] > 0
    assert event == {
        "type": "processed",
        "video_id": event["video_id"],
        "processed_key": f"processed/{event['video_id']}.mp4",
        "thumbnail_key": f"processed/{event['video_id']}.jpg",
        "duration_seconds": pytest.approx(35.0, abs=0.1),
        "size_bytes": video.stat().st_size,
        "service_seconds": event["service_seconds"],
        "version": 1,
    }
    assert head["ContentType"] == "video/mp4"
    assert head["Metadata"]["source-etag"] == source["ETag"].strip('"')


async def test_the_index_is_at_the_front(processed, tools) -> None:
    boxes = tools.top_level_boxes(processed["qhd_45s_audio"][1])
    assert boxes.index("moov") < boxes.index("mdat")


async def test_the_watermark_sits_on_the_content(processed, card, tools) -> None:
    decoded = tools.decode(processed["qhd_45s_audio"][1], times=(10.0,))
    x, y, w, h = WATERMARK
    # The middle of the watermark's orange disc.
    disc = decoded.at[10.0][y + 20 : y + 36, x + 20 : x + 36].reshape(-1, 3).mean(axis=0)
    red, green, blue = disc
    assert red > 180 and 90 < green < 180 and blue < 110, disc
    # Not on the cards, which show the logo already.
    corner = (slice(y, y + h), slice(x, x + w))
    assert tools.difference(decoded.first[corner], card[corner]) < 8


async def test_a_12s_input_gives_17s(processed, tools) -> None:
    event, video, _, _, _ = processed["short_12s"]
    decoded = tools.decode(video)
    assert decoded.duration == pytest.approx(17.0, abs=0.1)
    assert decoded.frames == 17 * 30
    assert event["duration_seconds"] == pytest.approx(17.0, abs=0.1)


async def test_a_clip_shorter_than_the_thumbnail_time_still_gets_one(
    processed, card, tools
) -> None:
    event, video, thumb, _, _ = processed["half_second"]
    decoded = tools.decode(video)
    assert decoded.duration == pytest.approx(5.5, abs=0.1)
    assert event["duration_seconds"] == pytest.approx(5.5, abs=0.1)
    assert tools.difference(tools.image(thumb), card) > 30


@pytest.mark.parametrize(
    ("clip", "content_width", "square"),
    [
        # 1440x1080 -> 960x720 between 160 px bars; the 600 px square becomes 400x400.
        ("four_three", 960, 400),
        # 1080x1920 -> 404x720 (even width) between bars; the 800 px square becomes 300x300.
        ("portrait", 404, 300),
    ],
)
async def test_other_shapes_are_padded_not_stretched(
    processed, tools, clip, content_width, square
) -> None:
    _, video, _, _, _ = processed[clip]
    decoded = tools.decode(video, times=(3.0,))
    frame = decoded.at[3.0]
    assert (decoded.width, decoded.height) == (1280, 720)

    left, top, right, bottom = content_box(frame)
    assert (top, bottom) == (0, 720)
    assert right - left == pytest.approx(content_width, abs=2)
    assert left == pytest.approx((1280 - content_width) / 2, abs=2)
    assert_bars_black(frame, left, right)

    width, height = white_box(frame)
    assert width == pytest.approx(square, abs=3)
    assert height == pytest.approx(square, abs=3)


async def test_messages_are_deleted_and_scratch_removed(processed) -> None:
    assert processed["queue"] == (0, 0)
    assert processed["scratch"] == []


async def test_the_probe_reads_what_the_processor_needs(clips, tools) -> None:
    info = await media.probe(tools.ffmpeg, clips.get("qhd_45s_audio"), time_limit=60)
    assert (info.width, info.height, info.codec, info.has_audio) == (2560, 1440, "h264", True)
    assert info.duration == pytest.approx(45.0, abs=0.1)
