"""Frames from a video file (PyAV) or a folder of images, sampled every k frames, with timestamps."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

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


def read_frames(path: str | Path, every: int = 1, folder_fps: float = 1.0) -> Iterator[Frame]:
    """Yield every ``every``-th frame of a video file or of a folder of images (sorted by name).

    Video timestamps are the decoder's presentation times; folder frames get ``index / folder_fps``.

    Raises:
        InputError: the file cannot be decoded, has no video stream or no frames, or the
            folder holds no images.
    """
    path = Path(path)
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise InputError(path, f"no frame images ({', '.join(sorted(IMAGE_SUFFIXES))}) in folder")
        for i in range(0, len(files), every):
            yield Frame(read_image(files[i])[:3], i, i / folder_fps)
        return
    if not path.is_file():
        raise InputError(path, "video file not found")
    yield from _decode(path, every)


def _decode(path: Path, every: int) -> Iterator[Frame]:
    import av

    count = 0
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise InputError(path, "file has no video stream")
            stream = container.streams.video[0]
            for i, frame in enumerate(container.decode(stream)):
                if i % every == 0:
                    rgb = frame.to_ndarray(format="rgb24").transpose(2, 0, 1)
                    t = float(frame.time) if frame.time is not None else i / float(stream.average_rate or 1)
                    count += 1
                    yield Frame(rgb.astype(np.float32) / 255.0, i, t)
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
