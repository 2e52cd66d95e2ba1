"""Frames from a video file (PyAV) or a folder of images, sampled every k frames, with timestamps."""

from __future__ import annotations

import math
from collections.abc import Collection, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from damagemap.data.io import read_image
from damagemap.errors import InputError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".tif", ".tiff"}


@dataclass
class Frame:
    """One sampled frame: RGB float32 ``[3, H, W]`` in [0, 1], its index and time in seconds."""

    image: np.ndarray
    index: int
    time: float


def video_start_time(path: str | Path) -> datetime | None:
    """The ``creation_time`` tag of a video container, if it has one (None for folders)."""
    path = Path(path)
    if path.is_dir():
        return None
    import av

    try:
        with av.open(str(path)) as container:
            tag = container.metadata.get("creation_time")
    except av.FFmpegError as exc:
        raise InputError(path, f"cannot open as a video ({exc})") from None
    if not tag:
        return None
    try:
        return datetime.fromisoformat(tag.replace("Z", "+00:00"))
    except ValueError:
        return None


def read_frames(
    path: str | Path, every: int = 1, folder_fps: float = 1.0, only: Collection[int] | None = None
) -> Iterator[Frame]:
    """Yield every ``every``-th frame of a video file or of a folder of images (sorted by name).

    Video timestamps are the decoder's presentation times; folder frames get ``index / folder_fps``.
    With ``only``, just the sampled frames whose index is in it are converted and yielded (the
    others are still decoded, which keeps the timestamps exact, but not kept in memory).

    Raises:
        InputError: the file cannot be decoded, has no video stream or no frames, or the
            folder holds no images.
    """
    path = Path(path)
    wanted = None if only is None else set(only)
    if path.is_dir():
        files = _folder_files(path)
        for i in range(0, len(files), every):
            if wanted is None or i in wanted:
                yield Frame(read_image(files[i])[:3], i, i / folder_fps)
        return
    for i, t, frame in _decode(path, every):
        if wanted is None or i in wanted:
            rgb = frame.to_ndarray(format="rgb24").transpose(2, 0, 1)
            yield Frame(rgb.astype(np.float32) / 255.0, i, t)


def frame_times(path: str | Path, every: int = 1, folder_fps: float = 1.0) -> list[tuple[int, float]]:
    """``(index, time)`` of the frames :func:`read_frames` yields, without converting any image."""
    path = Path(path)
    if path.is_dir():
        return [(i, i / folder_fps) for i in range(0, len(_folder_files(path)), every)]
    return [(i, t) for i, t, _ in _decode(path, every)]


def frame_rate(path: str | Path, folder_fps: float = 1.0) -> float | None:
    """Frames per second: the video stream's average (else guessed) rate, ``folder_fps`` for a folder.

    None when the container states no rate.
    """
    path = Path(path)
    if path.is_dir():
        return folder_fps
    if not path.is_file():
        raise InputError(path, "video file not found")
    import av

    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise InputError(path, "file has no video stream")
            stream = container.streams.video[0]
            rate = stream.average_rate or stream.guessed_rate
    except av.FFmpegError as exc:
        raise InputError(path, f"cannot open as a video ({exc})") from None
    return float(rate) if rate else None


def srn_stride(fps: float | None, positive_s: float) -> int:
    """Decode stride for SRN training: ``max(1, floor(fps · positive_s / 2))``; 1 when ``fps`` is unknown.

    Sampled frames are then at most ``positive_s / 2`` apart (when the source has frames that
    close), so every frame has positives within ``positive_s`` on both sides.
    """
    if not fps:
        return 1
    return max(1, math.floor(fps * positive_s / 2 + 1e-9))


def _folder_files(path: Path) -> list[Path]:
    files = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise InputError(path, f"no frame images ({', '.join(sorted(IMAGE_SUFFIXES))}) in folder")
    return files


def _decode(path: Path, every: int) -> Iterator[tuple[int, float, Any]]:
    """``(index, time, av.VideoFrame)`` of every ``every``-th decoded frame."""
    if not path.is_file():
        raise InputError(path, "video file not found")
    import av

    count = 0
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise InputError(path, "file has no video stream")
            stream = container.streams.video[0]
            for i, frame in enumerate(container.decode(stream)):
                if i % every == 0:
                    t = float(frame.time) if frame.time is not None else i / float(stream.average_rate or 1)
                    count += 1
                    yield i, t, frame
    except av.FFmpegError as exc:
        raise InputError(path, f"cannot decode video ({exc})") from None
    if count == 0:
        raise InputError(path, "video has no decodable frames")


def time_span(path: str | Path, folder_fps: float = 1.0) -> tuple[float, float]:
    """First and last frame time in seconds, from container metadata (folders: from the count)."""
    path = Path(path)
    if path.is_dir():
        n = sum(p.suffix.lower() in IMAGE_SUFFIXES for p in path.iterdir())
        return 0.0, max(n - 1, 0) / folder_fps
    import av

    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise InputError(path, "file has no video stream")
            stream = container.streams.video[0]
            if stream.duration is not None and stream.time_base is not None:
                start = float((stream.start_time or 0) * stream.time_base)
                return start, start + float(stream.duration * stream.time_base)
            if container.duration is not None:
                return 0.0, container.duration / 1e6  # microseconds (av.time_base)
    except av.FFmpegError as exc:
        raise InputError(path, f"cannot open as a video ({exc})") from None
    times = [f.time for f in read_frames(path)]
    return times[0], times[-1]
