"""Tests for damagemap.video.gps: GPX / CSV tracks aligned to frame times."""

from __future__ import annotations

import numpy as np
import pytest

from damagemap.errors import InputError
from damagemap.video.gps import align, read_track
from tests.video.media import START, write_gpx


def test_gpx_interpolated_at_frame_times(tmp_path):
    track = read_track(write_gpx(tmp_path / "t.gpx", [0, 10, 20], [37.0, 37.001, 37.003], [-94.5, -94.5, -94.49]))
    assert track.absolute
    where = align(track, np.array([0.0, 5.0, 15.0, 20.0]), START)
    np.testing.assert_allclose(where[:, 0], [37.0, 37.0005, 37.002, 37.003])
    np.testing.assert_allclose(where[:, 1], [-94.5, -94.5, -94.495, -94.49])
    # without a video start, the first track point is the first frame
    np.testing.assert_allclose(align(track, np.array([5.0]))[0], [37.0005, -94.5])


def test_gpx_video_starts_later_and_partial_overlap(tmp_path):
    track = read_track(write_gpx(tmp_path / "t.gpx", [0, 10], [1.0, 2.0], [3.0, 4.0]))
    from datetime import timedelta

    where = align(track, np.array([0.0, 4.0, 8.0]), START + timedelta(seconds=4))
    np.testing.assert_allclose(where[:2, 0], [1.4, 1.8])
    assert np.isnan(where[2]).all()  # after the track ends: not placed


def test_csv_relative_and_iso(tmp_path):
    (tmp_path / "rel.csv").write_text("time,lat,lon\n0,10,20\n4,12,24\n")
    np.testing.assert_allclose(align(read_track(tmp_path / "rel.csv"), np.array([1.0]))[0], [10.5, 21])
    (tmp_path / "iso.csv").write_text("time,lat,lon\n2024-05-01T12:00:00Z,10,20\n2024-05-01T12:00:04Z,12,24\n")
    track = read_track(tmp_path / "iso.csv")
    assert track.absolute
    np.testing.assert_allclose(align(track, np.array([2.0]), START)[0], [11, 22])


def test_track_outside_video_time_span(tmp_path):
    (tmp_path / "late.csv").write_text("time,lat,lon\n100,10,20\n200,12,24\n")
    with pytest.raises(
        InputError, match=r"late.csv: track covers 100.0..200.0 s .* frames span 0.0..3.0 s: no overlap"
    ):
        align(read_track(tmp_path / "late.csv"), np.array([0.0, 3.0]))


def test_bad_tracks(tmp_path):
    (tmp_path / "cols.csv").write_text("t,y,x\n0,1,2\n")
    with pytest.raises(InputError, match="cols.csv: expected CSV columns time,lat,lon"):
        read_track(tmp_path / "cols.csv")
    (tmp_path / "x.gpx").write_text("<gpx><trk>")
    with pytest.raises(InputError, match="x.gpx: not a GPX track"):
        read_track(tmp_path / "x.gpx")
    (tmp_path / "one.csv").write_text("time,lat,lon\n0,1,2\n")
    with pytest.raises(InputError, match="at least 2 timed track points"):
        read_track(tmp_path / "one.csv")
