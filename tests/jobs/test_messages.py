"""The queue message contract: what one side encodes, the other parses, and what it refuses."""

from __future__ import annotations

import contextlib
import json
import uuid

import pytest
from hypothesis import given
from hypothesis import strategies as st

from risingstars import jobs

VIDEO = str(uuid.uuid4())


def job(**overrides) -> jobs.Job:
    fields = {
        "video_id": VIDEO,
        "source_key": f"originals/{VIDEO}.mp4",
        "processed_key": f"processed/{VIDEO}.mp4",
        "thumbnail_key": f"processed/{VIDEO}.jpg",
    } | overrides
    return jobs.Job(**fields)


def test_job_round_trips_with_its_version():
    text = jobs.encode(job())
    assert json.loads(text)["version"] == jobs.VERSION
    assert json.loads(text)["type"] == "process"
    assert jobs.parse_job(text) == job()


def test_events_round_trip():
    processed = jobs.Processed(VIDEO, "processed/a.mp4", "processed/a.jpg", 35.0, 1234)
    failed = jobs.Failed(VIDEO, "rejected", jobs.Reason.NOT_A_VIDEO, "moov atom not found")
    assert jobs.parse_event(jobs.encode(processed)) == processed
    assert jobs.parse_event(jobs.encode(failed)) == failed
    assert json.loads(jobs.encode(failed))["type"] == "rejected"


def test_started_and_measured_failures_round_trip_with_the_version():
    started = jobs.Started(VIDEO)
    text = jobs.encode(started)
    assert json.loads(text) == {"type": "started", "video_id": VIDEO, "version": jobs.VERSION}
    assert jobs.parse_event(text) == started
    failed = jobs.Failed(VIDEO, "failed", jobs.Reason.SOURCE_MISSING, "gone", service_seconds=2.5)
    assert json.loads(jobs.encode(failed))["service_seconds"] == 2.5
    assert jobs.parse_event(jobs.encode(failed)) == failed
    # An older processor's failure has no service time, and none is invented for it.
    unmeasured = jobs.Failed(VIDEO, "failed", jobs.Reason.SOURCE_MISSING)
    assert "service_seconds" not in json.loads(jobs.encode(unmeasured))


def test_a_message_without_version_is_version_one():
    body = json.loads(jobs.encode(job()))
    del body["version"]
    assert jobs.parse_job(json.dumps(body)) == job()


@pytest.mark.parametrize("version", [0, jobs.VERSION + 1, "1", True, None])
def test_unsupported_versions_are_refused(version):
    body = json.loads(jobs.encode(job())) | {"version": version}
    with pytest.raises(jobs.InvalidMessage) as caught:
        jobs.parse_job(json.dumps(body))
    assert caught.value.video_id == VIDEO


def test_an_unknown_reason_reads_as_the_generic_failure():
    text = json.dumps({"type": "failed", "video_id": VIDEO, "reason": "ffmpeg said: /tmp/x"})
    event = jobs.parse_event(text)
    assert isinstance(event, jobs.Failed)
    assert event.reason is jobs.Reason.PROCESSING_FAILED


@pytest.mark.parametrize(
    "text",
    [
        "not json",
        "[]",
        "[" * 100_000,
        json.dumps({"type": "process"}),
        json.dumps({"type": "process", "video_id": "nope"}),
    ],
)
def test_unusable_jobs_are_refused_without_a_video(text):
    with pytest.raises(jobs.InvalidMessage) as caught:
        jobs.parse_job(text)
    assert caught.value.video_id is None


@pytest.mark.parametrize(
    "overrides",
    [
        {"type": "transcode"},
        {"source_key": ""},
        {"processed_key": "x" * 1025},
        {"thumbnail_key": 7},
        {"processed_key": f"originals/{VIDEO}.mp4"},
    ],
)
def test_bad_jobs_are_refused_naming_their_video(overrides):
    body = json.loads(jobs.encode(job())) | overrides
    with pytest.raises(jobs.InvalidMessage) as caught:
        jobs.parse_job(json.dumps(body))
    assert caught.value.video_id == VIDEO


def test_the_service_time_is_optional_and_old_processed_events_still_parse():
    """`service_seconds` came after version 1: events of older processors (without it) parse,
    an event without a measurement leaves it out, and a bad one never costs the event."""
    measured = jobs.Processed(VIDEO, "processed/a.mp4", "processed/a.jpg", 35.0, 1234, 41.5)
    assert jobs.parse_event(jobs.encode(measured)).service_seconds == 41.5
    old = {
        "type": "processed",
        "video_id": VIDEO,
        "processed_key": "processed/a.mp4",
        "thumbnail_key": "processed/a.jpg",
        "duration_seconds": 35.0,
        "size_bytes": 1234,
    }
    for body in (old, old | {"version": 1}):
        event = jobs.parse_event(json.dumps(body))
        assert event == jobs.Processed(VIDEO, "processed/a.mp4", "processed/a.jpg", 35.0, 1234)
        assert event.service_seconds is None
    unmeasured = json.loads(jobs.encode(jobs.parse_event(json.dumps(old))))
    assert "service_seconds" not in unmeasured and unmeasured["version"] == 1
    for bad in ("41", -1, True, None, [1]):
        assert jobs.parse_event(json.dumps(old | {"service_seconds": bad})).service_seconds is None
    assert jobs.parse_event(json.dumps(old).replace("}", ', "service_seconds": NaN}')) == (
        jobs.parse_event(json.dumps(old))
    )


@pytest.mark.parametrize(
    "overrides",
    [
        {"type": "exploded"},
        {"duration_seconds": "35"},
        {"duration_seconds": -1},
        {"size_bytes": 1.5},
        {"size_bytes": True},
        {"processed_key": None},
    ],
)
def test_bad_events_are_refused(overrides):
    processed = jobs.Processed(VIDEO, "processed/a.mp4", "processed/a.jpg", 35.0, 1234)
    body = json.loads(jobs.encode(processed)) | overrides
    with pytest.raises(jobs.InvalidMessage):
        jobs.parse_event(json.dumps(body))


@given(st.text(max_size=300) | st.binary(max_size=300))
def test_parsers_raise_only_invalid_message(text):
    for parse in (jobs.parse_job, jobs.parse_event):
        with contextlib.suppress(jobs.InvalidMessage):
            parse(text)
