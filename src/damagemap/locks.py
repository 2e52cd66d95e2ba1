"""Exclusive locks on output folders (``map`` and ``experiment`` outputs, model directories).

A lock is a small JSON file (pid, host, start time) created with ``O_EXCL``. A second run on
the same folder is refused with a message naming the owner. A lock left by a process that is
gone (same host, pid no longer alive; or a lock file that was never completed) is stale and
taken over; a lock of another host is never broken automatically.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import time
from pathlib import Path

from damagemap.errors import OutputError

log = logging.getLogger(__name__)

LOCK_NAME = ".damagemap.lock"
"""Lock file inside a folder being written (``map``, ``experiment``)."""

_INCOMPLETE_GRACE_S = 5.0  # a lock file still empty after this long was left by a killed writer


def sibling_lock(target: str | os.PathLike[str]) -> Path:
    """Lock file of a folder created whole at the end (a model directory): ``.NAME.lock`` beside it."""
    p = Path(target)
    return p.with_name(f".{p.name}.lock")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def _owner(lock: Path) -> dict | None:
    """The lock's owner record, or None when the lock is stale (its owner is gone)."""
    try:
        text = lock.read_text()
        age = time.time() - lock.stat().st_mtime
    except FileNotFoundError:
        return None
    try:
        owner = json.loads(text)
        pid, host = int(owner["pid"]), str(owner["host"])
    except (ValueError, KeyError, TypeError):
        return None if age > _INCOMPLETE_GRACE_S else {"pid": "?", "host": "?", "started": "just now"}
    if host == socket.gethostname() and not _alive(pid):
        return None
    return owner


def _link_or_create(staging: Path, lock: Path) -> None:
    """Create ``lock`` with ``staging``'s content, failing with FileExistsError if it exists.

    A hard link is atomic and complete. Where hard links are not supported, the file is created
    exclusively and then written.
    """
    try:
        os.link(staging, lock)
    except FileExistsError:
        raise
    except OSError:
        fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666)
        with os.fdopen(fd, "w") as f:
            f.write(staging.read_text())


class OutputLock:
    """The lock file ``lock`` of an output folder; ``what`` names the folder in the refusal.

    Re-entrant within one process: taking a lock this process already holds is a no-op (the
    outer holder releases it).
    """

    def __init__(self, lock: str | os.PathLike[str], what: str) -> None:
        self.path = Path(lock)
        self.what = what
        self.owned = False

    def acquire(self) -> OutputLock:
        """Take the lock (a stale one is taken over).

        Raises:
            OutputError: another live process holds it.
        """
        self.path.parent.mkdir(parents=True, exist_ok=True)
        record = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
        # the record is written first and linked into place, so a lock file is never seen empty
        # (a run killed between creating the file and writing it used to leave one behind)
        staging = self.path.with_name(f"{self.path.name}.{record['pid']}.new")
        staging.write_text(json.dumps(record))
        try:
            for _ in range(3):
                try:
                    _link_or_create(staging, self.path)
                except FileExistsError:
                    owner = _owner(self.path)
                    if owner is None:
                        log.warning("%s: taking over the lock %s of a run that is gone", self.what, self.path)
                        self.path.unlink(missing_ok=True)  # stale: its owner is gone
                        continue
                    if owner.get("pid") == record["pid"] and owner.get("host") == record["host"]:
                        return self  # already ours (an outer call holds it)
                    raise OutputError(
                        self.what,
                        f"in use by another damagemap run (pid {owner.get('pid')} on {owner.get('host')}, "
                        f"since {owner.get('started')}); wait for it, or delete {self.path} if that run is gone",
                    ) from None
                self.owned = True
                return self
        finally:
            staging.unlink(missing_ok=True)
        raise OutputError(self.what, f"could not take the lock {self.path}")  # pragma: no cover - lost 3 races

    def release(self) -> None:
        """Remove the lock file if this object took it."""
        if self.owned:
            self.owned = False
            with contextlib.suppress(OSError):
                self.path.unlink()

    def __enter__(self) -> OutputLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


def output_lock(lock: str | os.PathLike[str], what: str) -> OutputLock:
    """The lock of an output folder, to use in a ``with`` statement (see :class:`OutputLock`)."""
    return OutputLock(lock, what)
