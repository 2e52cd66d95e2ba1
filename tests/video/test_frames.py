"""Tests for damagemap.video.frames: video and folder frames, sampling and timestamps."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from damagemap.errors import InputError
from damagemap.video.frames import read_frames, time_span, video_start_time
from tests.video.media import START, write_mp4


def _frames(n=12, size=(48, 64)):
    # frame i is a flat grey level 20 * i, so decoded frames can be identified despite H.264
    return [np.full((*size, 3), 20 * i, np.uint8) for i in range(n)]


def test_video_every_k_with_times(tmp_path):
    path = write_mp4(tmp_path / "v.mp4", _frames(), fps=10, creation_time=START)
    frames = list(read_frames(path, every=5))
    assert [f.index for f in frames] == [0, 5, 10]
    np.testing.assert_allclose([f.time for f in frames], [0.0, 0.5, 1.0], atol=1e-6)
    for f in frames:
        assert f.image.shape == (3, 48, 64) and f.image.dtype == np.float32
        assert abs(f.image.mean() * 255 - 20 * f.index) < 4
    start, end = time_span(path)
    assert start == pytest.approx(0.0) and end == pytest.approx(1.2, abs=0.11)
    assert video_start_time(path) == START


def test_folder_frames(tmp_path):
    for i, f in enumerate(_frames(5)):
        Image.fromarray(f).save(tmp_path / f"f{i:03d}.png")
    frames = list(read_frames(tmp_path, every=2, folder_fps=4))
    assert [(f.index, f.time) for f in frames] == [(0, 0.0), (2, 0.5), (4, 1.0)]
    assert time_span(tmp_path, 4) == (0.0, 1.0)


def test_undecodable_video(tmp_path):
    (tmp_path / "bad.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 8)
    with pytest.raises(InputError, match=r"bad.mp4: cannot (open|decode)"):
        list(read_frames(tmp_path / "bad.mp4"))
    with pytest.raises(InputError, match="video file not found"):
        list(read_frames(tmp_path / "none.mp4"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="no frame images"):
        list(read_frames(tmp_path / "empty"))
