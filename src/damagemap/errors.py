"""Exceptions raised for bad user input.

Every error names the offending file (or object) and what was expected, so the CLI can print
it as one line instead of a traceback from deep inside a library.
"""

from __future__ import annotations

import os
from pathlib import Path


class DamagemapError(Exception):
    """Base class of all errors damagemap raises for bad input or configuration."""


class InputError(DamagemapError, ValueError):
    """A data file (image, mask, label, scene) is missing, unreadable or inconsistent.

    Attributes:
        path: the file as a ``Path`` (for a URL or ``/vsi…`` path use ``location``: ``Path``
            merges the ``//`` of ``https://``).
        location: the file or URL exactly as given (a string).
        problem: what is wrong with it.
    """

    def __init__(self, path: str | os.PathLike[str] | None, problem: str) -> None:
        self.location = None if path is None else os.fspath(path)
        self.path = None if path is None else Path(path)
        self.problem = problem
        super().__init__(f"{self.location}: {problem}" if path is not None else problem)

    def __reduce__(self):  # picklable, so the error survives crossing to/from dask workers
        return (type(self), (self.location, self.problem))


class CheckpointError(DamagemapError, ValueError):
    """A model checkpoint is missing, corrupt or does not match the architecture."""

    def __init__(
        self,
        path: str | Path | None,
        problem: str,
        missing: list[str] | None = None,
        unexpected: list[str] | None = None,
    ) -> None:
        self.path = None if path is None else Path(path)
        self.problem = problem
        self.missing = list(missing or [])
        self.unexpected = list(unexpected or [])
        msg = f"{path}: {problem}" if path is not None else problem
        if self.missing:
            msg += f"\n  missing keys ({len(self.missing)}): {_preview(self.missing)}"
        if self.unexpected:
            msg += f"\n  unexpected keys ({len(self.unexpected)}): {_preview(self.unexpected)}"
        super().__init__(msg)

    def __reduce__(self):
        return (type(self), (self.path, self.problem, self.missing, self.unexpected))


class ConfigError(DamagemapError, ValueError):
    """A recipe, manifest or command-line option is invalid."""


class OutputError(ConfigError):
    """An output location (``--out``) cannot be used: not a folder, not writable, or in use."""

    def __init__(self, path: str | os.PathLike[str], problem: str) -> None:
        self.path = Path(path)
        self.problem = problem
        super().__init__(f"{os.fspath(path)}: {problem}")

    def __reduce__(self):
        return (type(self), (self.path, self.problem))


def _preview(keys: list[str], limit: int = 8) -> str:
    shown = ", ".join(keys[:limit])
    return shown + (f", … (+{len(keys) - limit} more)" if len(keys) > limit else "")
