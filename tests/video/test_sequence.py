"""Tests for damagemap.video.sequence: which annotated images are adjacent frames of a video."""

from __future__ import annotations

import pytest

from damagemap.errors import InputError
from damagemap.video.sequence import frame_order, time_from_name


def test_video_id_and_frame_id_order_within_each_video():
    images = [
        {"id": 1, "file_name": "a.png", "video_id": 2, "frame_id": 30},
        {"id": 2, "file_name": "b.png", "video_id": 1, "frame_id": 5},
        {"id": 3, "file_name": "c.png", "video_id": 2, "frame_id": 10},
        {"id": 4, "file_name": "d.png", "video_id": 2, "frame_id": 20},
        {"id": 5, "file_name": "e.png"},
    ]
    order = frame_order(images, "x.json")
    assert order.videos == {"video_id 1": [2], "video_id 2": [3, 4, 1]}
    assert order.sequences == [[3, 4, 1]] and order.single == [2] and order.unordered == [5]
    assert order.keys == {"video_id 1": "frame_id", "video_id 2": "frame_id"}


def test_times_from_fields_and_file_names():
    images = [
        {"id": 1, "file_name": "v/f.png", "time": 2.5},
        {"id": 2, "file_name": "v/g.png", "timestamp": "1970-01-01T00:00:01Z"},
        {"id": 3, "file_name": "v/h.png", "time": "0.5"},
        {"id": 4, "file_name": "w/clip_t3.5.png"},
        {"id": 5, "file_name": "w/clip_1.25s.png"},
        {"id": 6, "file_name": "DJI_20230206_103016.jpg", "video_id": "d"},
        {"id": 7, "file_name": "DJI_20230206_103015.500.jpg", "video_id": "d"},
        {"id": 8, "file_name": "frame_000123.png"},  # a frame number, not a time
    ]
    order = frame_order(images, "x.json")
    assert order.videos == {"folder v": [3, 2, 1], "folder w": [5, 4], "video_id d": [7, 6]}
    assert set(order.keys.values()) == {"time"} and order.unordered == [8]


def test_file_name_time_forms():
    assert time_from_name("flight1_t12.5.png") == 12.5
    assert time_from_name("a/clip_3.25s.jpg") == 3.25
    assert time_from_name("x-t7s.tif") == 7.0
    assert time_from_name("frame_2023-02-06T10-30-15.250.png") == pytest.approx(1675679415.25)
    assert time_from_name("DJI_20230206103015.jpg") == pytest.approx(1675679415.0)
    for name in ("frame_000123.png", "joplin-tornado_00000000_post_disaster.png", "best.png", "s3.png"):
        assert time_from_name(name) is None


def test_mixed_keys_and_bad_times_are_errors():
    mixed = [
        {"id": 1, "file_name": "a.png", "video_id": 1, "frame_id": 1},
        {"id": 2, "file_name": "b.png", "video_id": 1, "time": 3.0},
    ]
    with pytest.raises(InputError, match=r"x.json: video_id 1: some frames have a frame_id, others only a time"):
        frame_order(mixed, "x.json")
    with pytest.raises(InputError, match=r"x.json: image 1: time 'soon' is neither seconds nor an ISO-8601"):
        frame_order([{"id": 1, "file_name": "a.png", "time": "soon"}], "x.json")
