"""Shared pytest fixtures. Keep this file small and generic; add domain fixtures next to tests."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]

# Commands under test print plain results; progress lines (on by default, also when piped) would
# mix into the output the tests parse. Progress tests turn it back on with monkeypatch.delenv.
os.environ.setdefault("DAMAGEMAP_NO_PROGRESS", "1")


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """Folder of real shared data (``../shared/data`` next to the repo, or $DAMAGEMAP_SHARED_DATA).

    Tests that use it are skipped when the folder is absent (e.g. on a user's machine).
    """
    env = os.environ.get("DAMAGEMAP_SHARED_DATA")
    path = Path(env) if env else (REPO_ROOT / ".." / "shared" / "data").resolve()
    if not path.is_dir():
        source = "DAMAGEMAP_SHARED_DATA" if env else "default location"
        pytest.skip(f"real shared data not found at {path} ({source}); set DAMAGEMAP_SHARED_DATA")
    return path


@pytest.fixture(autouse=True)
def fixed_output_time(monkeypatch: pytest.MonkeyPatch) -> None:
    """Outputs record their run time (provenance); a fixed SOURCE_DATE_EPOCH keeps them byte-comparable."""
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
