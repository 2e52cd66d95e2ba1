"""GPS tracks (GPX or CSV time,lat,lon) aligned to video frame times by interpolation."""

from __future__ import annotations

import csv
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from damagemap.errors import InputError


@dataclass
class Track:
    """Track points: ``time`` in seconds (absolute epoch when ``absolute``, else video-relative)."""

    time: np.ndarray
    lat: np.ndarray
    lon: np.ndarray
    absolute: bool
    path: Path


def _parse_time(value: str) -> float:
    dt = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    return (dt if dt.tzinfo else dt.replace(tzinfo=timezone.utc)).timestamp()


def _required(value: str | None, what: str) -> str:
    """``value``; a ``ValueError`` when the track point lacks ``what`` (``None``)."""
    if value is None:
        raise ValueError(f"trkpt without {what}")
    return value


def read_gpx(path: str | Path) -> Track:
    """Track points (``trkpt`` with ``lat``, ``lon`` and ``time``) of a GPX file."""
    path = Path(path)
    try:
        root = ET.parse(path).getroot()
        points = [
            (
                _parse_time(_required(p.findtext("{*}time"), "time")),
                float(_required(p.get("lat"), "lat")),
                float(_required(p.get("lon"), "lon")),
            )
            for p in root.iter()
            if p.tag.endswith("trkpt")
        ]
    except (OSError, ET.ParseError, TypeError, ValueError, AttributeError) as exc:
        raise InputError(path, f"not a GPX track with timed trkpt points ({type(exc).__name__}: {exc})") from None
    return _track(points, True, path)


def read_csv_track(path: str | Path) -> Track:
    """Columns ``time,lat,lon``; time in seconds from the video start or ISO 8601 date-times."""
    path = Path(path)
    try:
        with path.open(newline="") as fh:
            rows = list(csv.DictReader(fh))
        raw = [(r["time"], float(r["lat"]), float(r["lon"])) for r in rows]
    except (OSError, KeyError, TypeError, ValueError) as exc:
        raise InputError(path, f"expected CSV columns time,lat,lon ({type(exc).__name__}: {exc})") from None
    try:
        points, absolute = [(float(t), la, lo) for t, la, lo in raw], False
    except ValueError:
        try:
            points, absolute = [(_parse_time(t), la, lo) for t, la, lo in raw], True
        except ValueError as exc:
            raise InputError(path, f"time must be seconds or ISO 8601 date-times ({exc})") from None
    return _track(points, absolute, path)


def read_track(path: str | Path) -> Track:
    """Read a ``.gpx`` or ``.csv`` track."""
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "GPS track file not found")
    return read_gpx(path) if path.suffix.lower() == ".gpx" else read_csv_track(path)


def _track(points: list[tuple[float, float, float]], absolute: bool, path: Path) -> Track:
    if len(points) < 2:
        raise InputError(path, f"need at least 2 timed track points, found {len(points)}")
    arr = np.array(sorted(points))
    return Track(arr[:, 0], arr[:, 1], arr[:, 2], absolute, path)


def align(track: Track, frame_times: np.ndarray, video_start: datetime | None = None) -> np.ndarray:
    """``[N, 2]`` (lat, lon) per frame time, linearly interpolated; NaN outside the track.

    Absolute tracks are placed on the video clock by ``video_start`` (default: the first track
    point is the video's first frame).

    Raises:
        InputError: the track and the video's time span do not overlap.
    """
    t = np.asarray(frame_times, dtype=float)
    offset = 0.0
    if track.absolute:
        offset = video_start.timestamp() if video_start is not None else track.time[0]
    rel = track.time - offset
    inside = (t >= rel[0]) & (t <= rel[-1])
    if not inside.any():
        raise InputError(
            track.path,
            f"track covers {rel[0]:.1f}..{rel[-1]:.1f} s of video time but the frames "
            f"span {t.min():.1f}..{t.max():.1f} s: no overlap",
        )
    out = np.full((len(t), 2), np.nan)
    out[inside, 0] = np.interp(t[inside], rel, track.lat)
    out[inside, 1] = np.interp(t[inside], rel, track.lon)
    return out
