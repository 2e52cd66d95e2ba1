"""Frame order of COCO images: which annotated images are adjacent frames of one video.

Score refinement (docs/methods.md §4) needs each frame's neighbours. An image's place is read,
in this order of preference, from:

1. ``video_id`` + ``frame_id`` (numbers): frames of one video sorted by ``frame_id``;
2. a time: the image's ``time`` or ``timestamp`` field (seconds as a number, or an ISO-8601
   date-time string; naive date-times are taken as UTC), else a time in the file name:
   a seconds token ``t<seconds>`` or ``<seconds>s`` (``flight1_t12.5.png``, ``clip_3.25s.jpg``)
   or a date-time ``YYYYMMDD[_T-]HHMMSS[.ffffff]`` / ``YYYY-MM-DD[T_]HH-MM-SS[.ffffff]``
   (``DJI_20230206_103015.jpg``; ``:`` may replace ``-`` in the time). Plain frame numbers
   (``frame_000123.png``) are not read as times, since the frame rate is unknown: give a
   ``frame_id``. Timed frames belong to the video named by ``video_id`` when they have one, else
   to the folder of their ``file_name``, and are sorted by time.

Images with none of these are *unordered* and are evaluated without refinement; so is an image
that is the only frame of its video. Within one video all frames must use the same kind of key
(all ``frame_id`` or all times).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path, PurePosixPath
from typing import Any

from damagemap.errors import InputError

_SUFFIXES = {".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".webp"}
_SECONDS = re.compile(r"(?:^|[_\-. ])(?:t(?P<a>\d+(?:\.\d+)?)s?|(?P<b>\d+(?:\.\d+)?)s)(?=$|[_\-. ])", re.IGNORECASE)
_DATETIME = re.compile(
    r"(?<!\d)(?P<y>\d{4})-?(?P<mo>\d{2})-?(?P<d>\d{2})[_T\-]?"
    r"(?P<h>\d{2})[-:]?(?P<mi>\d{2})[-:]?(?P<s>\d{2})(?:\.(?P<f>\d{1,6}))?(?!\d)"
)


@dataclass
class FrameOrder:
    """Videos as lists of image ids in frame order, and the images that have no order."""

    videos: dict[str, list[int]] = field(default_factory=dict)
    keys: dict[str, str] = field(default_factory=dict)
    """Per video: ``"frame_id"`` or ``"time"`` (what the order was read from)."""
    unordered: list[int] = field(default_factory=list)

    @property
    def sequences(self) -> list[list[int]]:
        """Videos with at least two frames: the ones refinement can use."""
        return [ids for ids in self.videos.values() if len(ids) > 1]

    @property
    def single(self) -> list[int]:
        """Images that are the only frame of their video."""
        return [ids[0] for ids in self.videos.values() if len(ids) == 1]


def time_from_name(name: str) -> float | None:
    """Seconds read from a file name (see the module docstring for the forms), else None.

    A date-time gives POSIX seconds (UTC), a seconds token its value; date-times win.
    """
    base = PurePosixPath(name)
    stem = base.stem if base.suffix.lower() in _SUFFIXES else base.name
    m = _DATETIME.search(stem)
    if m is not None:
        try:
            dt = datetime(
                int(m["y"]), int(m["mo"]), int(m["d"]), int(m["h"]), int(m["mi"]), int(m["s"]), tzinfo=timezone.utc
            )
        except ValueError:
            dt = None
        if dt is not None:
            return dt.timestamp() + (float(f"0.{m['f']}") if m["f"] else 0.0)
    found = [m["a"] or m["b"] for m in _SECONDS.finditer(stem)]
    return float(found[-1]) if found else None


def _time_field(image: dict[str, Any], path: str | Path) -> float | None:
    """Seconds from the image's ``time`` / ``timestamp`` field, None when it has neither."""
    for key in ("time", "timestamp"):
        value = image.get(key)
        if value is None:
            continue
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                pass
            try:
                dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
            except ValueError:
                pass
            else:
                return (dt if dt.tzinfo else dt.replace(tzinfo=timezone.utc)).timestamp()
        raise InputError(path, f"image {image.get('id')}: {key} {value!r} is neither seconds nor an ISO-8601 date-time")
    return None


def frame_order(images: Sequence[dict[str, Any]], path: str | Path) -> FrameOrder:
    """The frame order of COCO ``images`` (``path`` names the file in errors).

    Raises:
        InputError: a video mixes ``frame_id`` and time ordering, or a time field is unreadable.
    """
    placed: dict[str, list[tuple[float, int]]] = {}
    kinds: dict[str, str] = {}
    order = FrameOrder()
    for im in images:
        vid, fid = im.get("video_id"), im.get("frame_id")
        if vid is not None and isinstance(fid, (int, float)) and not isinstance(fid, bool):
            video, kind, value = f"video_id {vid}", "frame_id", float(fid)
        else:
            t = _time_field(im, path)
            if t is None:
                t = time_from_name(str(im.get("file_name", "")))
            if t is None:
                order.unordered.append(int(im["id"]))
                continue
            folder = PurePosixPath(str(im.get("file_name", ""))).parent
            video, kind, value = (f"video_id {vid}" if vid is not None else f"folder {folder}"), "time", t
        if kinds.setdefault(video, kind) != kind:
            raise InputError(
                path, f"{video}: some frames have a frame_id, others only a time; give every frame a frame_id"
            )
        placed.setdefault(video, []).append((value, int(im["id"])))
    for video in sorted(placed):
        order.videos[video] = [i for _, i in sorted(placed[video])]
        order.keys[video] = kinds[video]
    return order
